"""Search spaces: flat, named, categorical dimensions.

An architecture is a plain JSON-serialisable ``dict`` mapping every dimension name to one of
its choices. The space owns variation (sampling, mutation, crossover) so that strategies work
on any space, including spaces built from an NNI search-space JSON that nobody registered.
The contract every space keeps is written on :class:`SearchSpace`; a plugin author checks a
space against it with :class:`nas_core.testing.SpaceConformance`.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from .errors import UserError

Choice: TypeAlias = str | int | float | bool
Architecture: TypeAlias = dict[str, Choice]


class InvalidArchitectureError(UserError, ValueError):
    """An architecture does not belong to a search space; the message names the bad key/value."""


class InvalidSpaceError(UserError, ValueError):
    """A search-space definition is malformed; the message names the bad dimension or value."""


def _is_choice(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, (str, int, bool))


def _same_choice(a: object, b: object) -> bool:
    """Equality that does not confuse ``True`` with ``1`` but accepts ``1.0`` for ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    return a == b


def _choice_key(value: object) -> tuple[type, object]:
    """A dict key under which two values are :func:`_same_choice` exactly when their keys are equal."""
    if isinstance(value, (bool, str)):
        return type(value), value
    return float, value


@dataclass(frozen=True)
class Dimension:
    """One named categorical decision with its ordered list of choices."""

    name: str
    choices: tuple[Choice, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidSpaceError(f"dimension name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.choices, tuple) or len(self.choices) == 0:
            raise InvalidSpaceError(f"dimension {self.name!r}: needs a non-empty list of choices, got {self.choices!r}")
        for value in self.choices:
            if not _is_choice(value):
                raise InvalidSpaceError(
                    f"dimension {self.name!r}: choice {value!r} is not a JSON scalar (str, int, finite float, bool)"
                )
        for i, value in enumerate(self.choices):
            for other in self.choices[:i]:
                if _same_choice(value, other):
                    raise InvalidSpaceError(f"dimension {self.name!r}: choice {value!r} appears twice")
        # Every validation looks choices up; dicts keep that cheap (not fields: no effect on ==).
        # ``_by_type`` serves the exact types of JSON scalars (True must not find 1, nor "1" find 1).
        positions = {_choice_key(c): i for i, c in enumerate(self.choices)}
        numbers = {c: i for (kind, c), i in positions.items() if kind is float}
        by_type = {bool: {c: i for (kind, c), i in positions.items() if kind is bool}, int: numbers, float: numbers,
                   str: {c: i for (kind, c), i in positions.items() if kind is str}}
        object.__setattr__(self, "_positions", positions)
        object.__setattr__(self, "_by_type", by_type)

    def index(self, value: object) -> int:
        """Position of ``value`` among the choices; raises naming the dimension and value."""
        try:
            return self._positions[_choice_key(value)]  # type: ignore[attr-defined]
        except (KeyError, TypeError):  # not a choice, or unhashable: the scan below names it
            pass
        for i, choice in enumerate(self.choices):
            if _same_choice(value, choice):
                return i
        raise InvalidArchitectureError(
            f"{self.name}={value!r} is not one of the choices {list(self.choices)!r}"
        )


class SearchSpace:
    """A product of categorical dimensions, with default variation operators.

    Subclasses (e.g. a binary-width space) may override ``mutate``/``crossover`` or add
    meaning (which layer a dimension widens); strategies only rely on this interface.

    The contract (checked by :class:`nas_core.testing.SpaceConformance`):

    * **Dimensions.** At least one, with unique non-empty names and non-empty tuples of distinct
      JSON scalars (str, int, finite float, bool). They are fixed at construction; a subclass's
      constructor takes keyword arguments only and raises :class:`InvalidSpaceError` (or
      ``ValueError``) naming a bad argument. Two spaces are equal when their dimensions are.
    * **Architectures.** A ``dict`` with exactly one choice per dimension. :meth:`validate`
      returns the canonical form (the choice as listed, keys in dimension order), is idempotent,
      never changes its argument, and raises :class:`InvalidArchitectureError` whose message names
      the missing, unknown or bad dimension (and the bad value). :meth:`key` is equal for equal
      architectures and survives a JSON round trip of the architecture.
    * **Variation.** :meth:`sample`, :meth:`mutate` and :meth:`crossover` draw randomness only
      from the ``rng`` they are given, so the same rng state gives the same result in any
      process (no ``random`` module functions, no iteration over sets or hashes). They return new
      canonical architectures of this space and never change their arguments. A subclass that
      overrides them must keep this: its operators must return valid architectures whatever
      valid parents it is given. ``mutate`` changes at least one dimension whenever some
      dimension has two choices or more; ``crossover(a, a, rng)`` returns ``a``.
    * **NNI.** :meth:`to_nni` is plain JSON (choice dimensions only), and
      ``SearchSpace.from_nni(json.loads(json.dumps(space.to_nni())))`` equals the space: what an
      NNI experiment's search-space file holds. The rebuilt space is a generic one, with the
      default operators; meaning beyond the dimensions (a subclass's own variation, constraints
      that :meth:`validate` adds) does not travel through that file, so a tuner must be given the
      space itself to use it.
    """

    def __init__(self, dimensions: Sequence[Dimension]) -> None:
        dims = tuple(dimensions)
        if not dims:
            raise InvalidSpaceError("a search space needs at least one dimension")
        names = [d.name for d in dims]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise InvalidSpaceError(f"dimension names must be unique; repeated: {duplicates}")
        self._dims = dims
        self._by_name = {d.name: d for d in dims}

    # ----------------------------------------------------------------- structure
    @property
    def dimensions(self) -> tuple[Dimension, ...]:
        return self._dims

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self._dims)

    def dimension(self, name: str) -> Dimension:
        try:
            return self._by_name[name]
        except KeyError:
            raise InvalidArchitectureError(f"unknown dimension {name!r}; known: {list(self.names)}") from None

    @property
    def size(self) -> int:
        """Number of distinct architectures."""
        return math.prod(len(d.choices) for d in self._dims)

    def _identity(self) -> str:
        """What two equal spaces share: NNI's description with every choice spelled by its kind, so
        that ``True`` and ``1`` differ (they validate differently) while ``1`` and ``1.0`` do not."""
        def spelled(value: Any) -> Any:
            if isinstance(value, bool):
                return ["bool", value]
            if isinstance(value, int):
                return ["number", value]
            if isinstance(value, float):
                return ["number", int(value) if value.is_integer() else value]
            if isinstance(value, (list, tuple)):
                return [spelled(item) for item in value]
            if isinstance(value, dict):
                return {str(k): spelled(v) for k, v in value.items()}
            return value

        return json.dumps(spelled(self.to_nni()), sort_keys=True, default=repr)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchSpace) and self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self._dims)} dimensions, {self.size} architectures)"

    # ------------------------------------------------------------- architectures
    def check(self, arch: object) -> str | None:
        """The reason ``arch`` is not in this space, or ``None`` when it is."""
        try:
            self.validate(arch)
        except InvalidArchitectureError as err:
            return str(err)
        return None

    def validate(self, arch: object) -> Architecture:
        """Return ``arch`` in canonical form (choices as listed, keys in space order).

        Raises :class:`InvalidArchitectureError` naming the first bad key or value.
        """
        if type(arch) is dict and len(arch) == len(self._dims):  # the usual case, checked by lookups alone
            try:
                return {d.name: d.choices[d._by_type[type(value := arch[d.name])][value]]  # type: ignore[attr-defined]
                        for d in self._dims}
            except (KeyError, TypeError):
                pass  # the checks below name what is wrong
        if not isinstance(arch, Mapping):
            raise InvalidArchitectureError(f"an architecture must be a mapping of dimension to choice, got {arch!r}")
        unknown = [k for k in arch if k not in self._by_name]
        if unknown:
            raise InvalidArchitectureError(f"unknown dimension {unknown[0]!r}; known: {list(self.names)}")
        missing = [d.name for d in self._dims if d.name not in arch]
        if missing:
            raise InvalidArchitectureError(f"missing dimension {missing[0]!r}")
        return {d.name: d.choices[d.index(arch[d.name])] for d in self._dims}

    def key(self, arch: Mapping[str, Any]) -> str:
        """A stable string identifying an architecture (for dedup and caching)."""
        canonical = self.validate(arch)
        return json.dumps(canonical, separators=(",", ":"))

    def encode(self, arch: Mapping[str, Any]) -> tuple[int, ...]:
        """Choice indices in dimension order (useful for ordinal operators and plots)."""
        return tuple(d.index(arch[d.name]) for d in self._dims)

    def decode(self, indices: Sequence[int]) -> Architecture:
        if len(indices) != len(self._dims):
            raise InvalidArchitectureError(f"expected {len(self._dims)} indices, got {len(indices)}")
        arch: Architecture = {}
        for d, i in zip(self._dims, indices):
            if not 0 <= i < len(d.choices):
                raise InvalidArchitectureError(f"{d.name}: index {i} out of range 0..{len(d.choices) - 1}")
            arch[d.name] = d.choices[i]
        return arch

    # ----------------------------------------------------------------- variation
    def sample(self, rng: random.Random) -> Architecture:
        """A uniformly random architecture (an override may use another distribution over the
        space; it must still depend only on ``rng``)."""
        return {d.name: d.choices[rng.randrange(len(d.choices))] for d in self._dims}

    def mutate(self, arch: Mapping[str, Any], rng: random.Random, rate: float | None = None) -> Architecture:
        """Re-sample each gene with probability ``rate`` (default 1/n) to a *different* choice.

        At least one gene changes whenever some dimension has more than one choice, so a
        mutation never silently returns its parent. ``rate`` outside [0, 1] raises ``ValueError``;
        an override may read ``rate`` its own way but must accept ``None``.
        """
        parent = self.validate(arch)
        mutable = [d for d in self._dims if len(d.choices) > 1]
        if not mutable:
            return parent
        p = 1.0 / len(self._dims) if rate is None else rate
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"mutation rate must be in [0, 1], got {p!r}")
        chosen = [d for d in mutable if rng.random() < p]
        if not chosen:
            chosen = [mutable[rng.randrange(len(mutable))]]
        child = dict(parent)
        for d in chosen:
            current = d.index(parent[d.name])
            offset = rng.randrange(1, len(d.choices))
            child[d.name] = d.choices[(current + offset) % len(d.choices)]
        return child

    def crossover(self, a: Mapping[str, Any], b: Mapping[str, Any], rng: random.Random) -> Architecture:
        """Two-point crossover in dimension order: the child takes ``b``'s genes in [i, j).

        An override may recombine otherwise; its child must be valid, and equal to the parents
        when they are equal.
        """
        first, second = self.validate(a), self.validate(b)
        n = len(self._dims)
        i, j = sorted(rng.sample(range(n + 1), 2)) if n >= 1 else (0, 0)
        child = dict(first)
        for d in self._dims[i:j]:
            child[d.name] = second[d.name]
        return child

    # ----------------------------------------------------------------------- NNI
    def to_nni(self) -> dict[str, dict[str, Any]]:
        """NNI's search-space JSON: ``{"name": {"_type": "choice", "_value": [...]}}``."""
        return {d.name: {"_type": "choice", "_value": list(d.choices)} for d in self._dims}

    @classmethod
    def from_nni(cls, spec: object) -> SearchSpace:
        """Build a generic space from any choice-only NNI search space."""
        return SearchSpace(dimensions_from_nni(spec))


def dimensions_from_nni(spec: object) -> list[Dimension]:
    """Parse NNI's search-space JSON, refusing anything but flat ``choice`` dimensions."""
    if not isinstance(spec, Mapping) or not spec:
        raise InvalidSpaceError(f"an NNI search space must be a non-empty JSON object, got {spec!r}")
    dims = []
    for name, entry in spec.items():
        if not isinstance(entry, Mapping) or "_type" not in entry or "_value" not in entry:
            raise InvalidSpaceError(f"dimension {name!r}: expected {{'_type': 'choice', '_value': [...]}}, got {entry!r}")
        if entry["_type"] != "choice":
            raise InvalidSpaceError(
                f"dimension {name!r}: _type {entry['_type']!r} is not supported (only 'choice' dimensions)"
            )
        values = entry["_value"]
        if not isinstance(values, list):
            raise InvalidSpaceError(f"dimension {name!r}: _value must be a list, got {values!r}")
        if any(isinstance(v, Mapping) for v in values):
            raise InvalidSpaceError(f"dimension {name!r}: nested choices are not supported")
        dims.append(Dimension(str(name), tuple(values)))
    return dims
