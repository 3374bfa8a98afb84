"""A conformance suite for search spaces, shipped with the package (the twin of the strategy suite).

A plugin author subclasses :class:`SpaceConformance` in a test module, under a name starting with
``Test`` so that pytest collects its ``test_*`` methods, and says how to build the space::

    from nas_core.testing import SpaceConformance

    class TestMySpace(SpaceConformance):
        space_path = "my_package.my_module:MySpace"   # or a registered name
        space_args = {"layers": 4}                   # optional

``make_space()`` builds it from those two attributes; override it for anything fancier (a
generic ``SearchSpace`` built by hand, say), but keep ``space_path``/``space_args`` building the
same space, because one check rebuilds it in a fresh Python process from them.

The checks are those of the contract written on :class:`nas_core.space.SearchSpace`. They use only
the standard library and nas_core; each takes well under a second on a space of reasonable size
(they sample a few hundred architectures, never enumerate the space).
"""

from __future__ import annotations

import copy
import inspect
import json
import os
import random
import subprocess
import sys
import unittest
from collections.abc import Mapping
from typing import Any, ClassVar

from ..registry import SPACES
from ..space import Architecture, Choice, InvalidArchitectureError, SearchSpace

DRAWS = 200
"""Architectures drawn per property (sampled, mutated or crossed)."""


def build_space(path: str, args: Mapping[str, Any]) -> SearchSpace:
    """A space from a registered name or dotted path, as a user's configuration would build it."""
    space = SPACES.build(path, dict(args))
    if not isinstance(space, SearchSpace):
        raise TypeError(f"{path!r} built a {type(space).__name__}, not a nas_core SearchSpace")
    return space


def _samples_main() -> None:
    """Entry point of the fresh-process check: spec on stdin, sampled/mutated/crossed archs on stdout."""
    spec = json.load(sys.stdin)
    space = SearchSpace.from_nni(spec["nni"]) if spec["space"] is None else build_space(spec["space"], spec["args"])
    json.dump(variation_trace(space, spec["seed"]), sys.stdout)


_CHILD = (
    "import json, sys; sys.path[:0] = json.loads(sys.argv[1]); "
    "from nas_core.testing.space_conformance import _samples_main; _samples_main()"
)


def variation_trace(space: SearchSpace, seed: int, n: int = 20) -> list[Architecture]:
    """``n`` samples, mutations and crossovers drawn from one ``random.Random(seed)``, in order."""
    rng = random.Random(seed)
    out: list[Architecture] = []
    for _ in range(n):
        a, b = space.sample(rng), space.sample(rng)
        out += [a, space.mutate(a, rng), space.crossover(a, b, rng)]
    return out


def _outside_value(space: SearchSpace, arch: Architecture, name: str) -> Choice:
    """A value that ``validate`` refuses for dimension ``name`` of ``arch``."""
    first = space.dimension(name).choices[0]
    for value in (f"{first}!", "not-a-choice", -(10**9), 10**9 + 0.5):
        if space.check({**arch, name: value}) is not None:
            return value
    raise AssertionError(f"validate accepts every value tried for dimension {name!r}")


class SpaceConformance:
    """Checks every search space must pass. Subclass as ``Test...`` and set ``space_path``.

    Class attributes a subclass may set:

    * ``space_path`` -- registered name or ``"package.module:Class"`` of the space;
    * ``space_args`` -- its constructor arguments.
    """

    space_path: ClassVar[str | None] = None
    space_args: ClassVar[Mapping[str, Any]] = {}

    # ------------------------------------------------------------------ to provide
    def make_space(self) -> SearchSpace:
        """A new space; by default built from ``space_path`` and ``space_args``."""
        if self.space_path is None:
            raise NotImplementedError(f"{type(self).__name__}: set space_path or override make_space")
        return build_space(self.space_path, self.space_args)

    # ------------------------------------------------------------------- helpers
    def _draw(self, space: SearchSpace, seed: int, n: int = DRAWS) -> list[Architecture]:
        rng = random.Random(seed)
        return [space.sample(rng) for _ in range(n)]

    def _assert_canonical(self, space: SearchSpace, arch: object, what: str) -> None:
        assert isinstance(arch, dict), f"{what} returned {type(arch).__name__}, not a dict"
        reason = space.check(arch)
        assert reason is None, f"{what} returned an architecture outside the space: {arch!r} ({reason})"
        canonical = space.validate(arch)
        assert arch == canonical and list(arch) == list(canonical), (
            f"{what} returned {arch!r}, not the canonical form {canonical!r} (choices as listed, keys in order)"
        )

    # -------------------------------------------------------------------- checks
    def test_dimensions_are_well_formed(self) -> None:
        """A SearchSpace with at least one uniquely named dimension; equal when built twice."""
        space = self.make_space()
        assert isinstance(space, SearchSpace), f"make_space returned {type(space).__name__}"
        assert space.dimensions, "a space needs at least one dimension"
        assert list(space.names) == [d.name for d in space.dimensions]
        assert len(set(space.names)) == len(space.names), f"dimension names repeat: {space.names}"
        size = 1
        for dim in space.dimensions:
            assert dim.choices, f"dimension {dim.name!r} has no choice"
            size *= len(dim.choices)
            assert space.dimension(dim.name) is dim
        assert space.size == size
        again = self.make_space()
        assert again == space and hash(again) == hash(space), "two builds with the same arguments differ"

    def test_constructor_is_keyword_only(self) -> None:
        """A registered or dotted-path space takes keyword arguments only, as configs give them."""
        if self.space_path is None:
            raise unittest.SkipTest("make_space is overridden: no factory to inspect")
        factory = SPACES.resolve(self.space_path)
        for parameter in inspect.signature(factory).parameters.values():
            assert parameter.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.VAR_KEYWORD), (
                f"{self.space_path}: argument {parameter.name!r} must be keyword-only"
            )

    def test_sample_is_valid_and_reproducible(self) -> None:
        """Samples are canonical architectures; the same rng state gives the same samples."""
        space = self.make_space()
        first = self._draw(space, 11)
        for arch in first:
            self._assert_canonical(space, arch, "sample")
        assert self._draw(self.make_space(), 11) == first, "the same seed sampled differently"
        if space.size > 1:
            assert len({space.key(a) for a in first}) > 1, f"{DRAWS} samples were all the same architecture"
            assert self._draw(space, 12) != first, "seeds 11 and 12 sampled the same architectures"

    def test_mutate_is_valid_changes_and_is_reproducible(self) -> None:
        """A mutant is canonical, differs from its parent, depends only on the rng; the parent is untouched."""
        space = self.make_space()
        can_change = any(len(d.choices) > 1 for d in space.dimensions)
        for rate in (None, 0.0, 0.5, 1.0):
            rng, twin = random.Random(21), random.Random(21)
            for parent in self._draw(space, 20, 50):
                kept = copy.deepcopy(parent)
                child = space.mutate(parent, rng, rate)
                assert parent == kept, f"mutate changed its argument {kept!r} into {parent!r}"
                self._assert_canonical(space, child, f"mutate(rate={rate})")
                if can_change:
                    assert child != parent, f"mutate(rate={rate}) returned its parent {parent!r} unchanged"
                assert space.mutate(parent, twin, rate) == child, f"mutate(rate={rate}) is not reproducible"

    def test_crossover_is_valid_and_reproducible(self) -> None:
        """A child is canonical and depends only on the rng; equal parents give that parent; parents untouched."""
        space = self.make_space()
        parents = self._draw(space, 30)
        rng, twin, other = random.Random(31), random.Random(31), random.Random(32)
        for a, b in zip(parents[::2], parents[1::2]):
            kept = copy.deepcopy((a, b))
            child = space.crossover(a, b, rng)
            assert (a, b) == kept, "crossover changed its arguments"
            self._assert_canonical(space, child, "crossover")
            assert space.crossover(a, b, twin) == child, "crossover is not reproducible"
            assert space.crossover(a, copy.deepcopy(a), other) == a, f"crossover of {a!r} with itself changed it"

    def test_variation_is_reproducible_in_a_fresh_process(self) -> None:
        """Sampling, mutation and crossover from one seed give the same in a fresh interpreter."""
        space = self.make_space()
        expected = variation_trace(space, 41)
        path = self.space_path
        if path is None and type(space) is not SearchSpace:
            raise unittest.SkipTest("make_space is overridden and space_path is not set: a fresh process cannot build it")
        env = dict(os.environ)
        env["PYTHONHASHSEED"] = "1" if os.environ.get("PYTHONHASHSEED") != "1" else "2"
        sys_path = [p or os.getcwd() for p in sys.path]
        child = subprocess.run(
            [sys.executable, "-c", _CHILD, json.dumps(sys_path)],
            input=json.dumps({"space": path, "args": dict(self.space_args), "nni": space.to_nni(), "seed": 41}),
            capture_output=True, text=True, env=env, timeout=120, check=False,
        )
        assert child.returncode == 0, f"the fresh process failed building {path or space!r}:\n{child.stderr[-3000:]}"
        assert json.loads(child.stdout) == json.loads(json.dumps(expected)), (
            f"a fresh process (PYTHONHASHSEED={env['PYTHONHASHSEED']}) drew other architectures from the same seed: "
            "the space's operators depend on process state (hash order, the global random module), or "
            "make_space does not build what space_path/space_args build"
        )

    def test_validate_canonicalises_and_names_the_problem(self) -> None:
        """validate is idempotent and leaves its argument alone; its errors name the dimension (and value)."""
        space = self.make_space()
        arch = self._draw(space, 50, 1)[0]
        reordered = dict(reversed(list(arch.items())))
        kept = dict(reordered)
        assert space.validate(reordered) == arch and list(space.validate(reordered)) == list(space.names)
        assert reordered == kept and list(reordered) == list(kept), "validate changed its argument"
        assert space.validate(space.validate(arch)) == space.validate(arch)
        assert space.check(arch) is None
        for name in space.names:
            missing = {k: v for k, v in arch.items() if k != name}
            self._assert_refused(space, missing, name)
            bad = _outside_value(space, arch, name)
            self._assert_refused(space, {**arch, name: bad}, name, repr(bad))
        unknown = "no_such_dimension"
        while unknown in space.names:
            unknown += "_"
        self._assert_refused(space, {**arch, unknown: 1}, unknown)
        for not_a_mapping in (None, [1, 2], "arch"):
            self._assert_refused(space, not_a_mapping)

    def _assert_refused(self, space: SearchSpace, arch: object, *named: str) -> None:
        try:
            space.validate(arch)
        except InvalidArchitectureError as err:
            message = str(err)
        else:
            raise AssertionError(f"validate accepted {arch!r}")
        assert "\n" not in message, f"the error is not one line: {message!r}"
        for part in named:
            assert part in message, f"validate's error {message!r} does not name {part!r} (for {arch!r})"
        reason = space.check(arch)
        assert reason is not None and all(part in reason for part in named), f"check({arch!r}) returned {reason!r}"

    def test_architectures_survive_json(self) -> None:
        """An architecture sent through JSON (NNI parameters, state files) validates to itself, with the same key."""
        space = self.make_space()
        for arch in self._draw(space, 60):
            back = json.loads(json.dumps(arch, allow_nan=False))
            assert space.validate(back) == arch, f"{arch!r} came back from JSON as {back!r}"
            assert space.key(back) == space.key(arch)
            assert space.decode(space.encode(arch)) == arch

    def test_nni_json_round_trip(self) -> None:
        """to_nni is plain JSON, and from_nni of it is an equal space accepting the same architectures."""
        space = self.make_space()
        text = json.dumps(space.to_nni(), allow_nan=False)
        rebuilt = SearchSpace.from_nni(json.loads(text))
        assert rebuilt.dimensions == space.dimensions and rebuilt == space, (
            f"from_nni(to_nni()) differs: {list(rebuilt.dimensions)!r} vs {list(space.dimensions)!r}"
        )
        for arch in self._draw(space, 70):
            assert rebuilt.validate(arch) == arch
