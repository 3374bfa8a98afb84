"""The space conformance suite over every registered space, plus the test plugins' spaces.

Every name in ``SPACES.names()`` gets a ``TestSpaceConformance_<name>`` class, built with the
arguments in :data:`SPACE_ARGS` (none when it has no entry: a space whose defaults do not build
fails ``test_every_registered_space_builds`` with what to add). Every registered strategy also
runs a short search on every registered space, since strategies may rely on nothing but the
space's interface.
"""

from __future__ import annotations

from typing import Any

import pytest

from nas_core import run_search
from nas_core.registry import SPACES, STRATEGIES
from nas_core.space import SearchSpace
from nas_core.strategy import TrialResult
from nas_core.testing import SpaceConformance, tiny_space, toy_space

SPACE_ARGS: dict[str, dict[str, Any]] = {
    "binary_width": {"backbone": "resnet18"},  # the larger of the paper's two layouts (12 dimensions)
}
"""Constructor arguments per registered space, when its defaults are not what the suite should check."""


def _conformance_class(name: str) -> type[SpaceConformance]:
    return type(f"TestSpaceConformance_{name}", (SpaceConformance,),
                {"space_path": name, "space_args": SPACE_ARGS.get(name, {}), "__module__": __name__})


for _name in SPACES.names():
    globals()[f"TestSpaceConformance_{_name}"] = _conformance_class(_name)


class TestSpaceConformanceGenericToy(SpaceConformance):
    """A generic space built by hand (8 dimensions of mixed int/float choices)."""

    def make_space(self) -> SearchSpace:
        return toy_space()


class TestSpaceConformanceGenericTiny(SpaceConformance):
    """Mixed str/int/bool choices: JSON and NNI round trips must keep True apart from 1."""

    def make_space(self) -> SearchSpace:
        return tiny_space()


@pytest.mark.parametrize("name", SPACES.names())
def test_every_registered_space_builds(name: str) -> None:
    try:
        space = SPACES.build(name, SPACE_ARGS.get(name, {}))
    except Exception as err:  # noqa: BLE001 - the message below says what to do
        pytest.fail(f"space {name!r} does not build with {SPACE_ARGS.get(name, {})!r} ({type(err).__name__}: {err}); "
                    f"give it arguments in SPACE_ARGS of {__name__}")
    assert isinstance(space, SearchSpace)


@pytest.mark.parametrize("space_name", SPACES.names())
@pytest.mark.parametrize("strategy_name", STRATEGIES.names())
def test_every_strategy_searches_every_space(strategy_name: str, space_name: str) -> None:
    """A short search proposes only valid architectures of the space, with any registered strategy."""
    space = SPACES.build(space_name, SPACE_ARGS.get(space_name, {}))
    proposed = []

    def score(arch: dict) -> TrialResult:
        proposed.append(arch)
        return TrialResult.succeeded({"accuracy": float(sum(space.encode(arch))), "flops": 1.0},
                                     float(sum(space.encode(arch))))

    strategy = STRATEGIES.build(strategy_name, {}, space=space, seed=0)
    driver = run_search(strategy, score, budget=20, concurrency=2, progress=False)
    assert proposed and len(driver.records) >= len(proposed) > 0
    for arch in proposed:
        assert space.check(arch) is None, f"{strategy_name} proposed {arch!r} outside {space_name}"
