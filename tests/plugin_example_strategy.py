"""A strategy written outside the ``strategies`` package, as a plugin author would: never registered,
used through its dotted path ``tests.plugin_example_strategy:HillClimber``.

It is deliberately sequential (``supports_parallel = False``) so that the conformance suite's
handling of a declared missing capability is exercised too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nas_core import FINISHED, SearchSpace, Strategy, StrategyError, TrialResult
from nas_core.space import Architecture
from nas_core.strategy import Ask


class HillClimber(Strategy):
    """Greedy hill climbing: mutate the best architecture seen so far, keep a child only if it is better.

    One candidate at a time. FINISHED once every architecture has been asked or told.
    """

    name = "hill_climber"
    supports_parallel = False
    may_wait = False
    reaches_optimum = True

    def __init__(self, *, space: SearchSpace, seed: int = 0, mutation_rate: float | None = None) -> None:
        super().__init__(space=space, seed=seed)
        if mutation_rate is not None and not 0.0 <= mutation_rate <= 1.0:
            raise ValueError(f"mutation_rate must be in [0, 1], got {mutation_rate!r}")
        self.mutation_rate = mutation_rate
        self._best: tuple[Architecture, float] | None = None
        self._outstanding: int | None = None
        self._seen: set[str] = set()

    def _ask(self, trial_id: int) -> Ask:
        if self._outstanding is not None:
            raise StrategyError(f"hill climber asked for {trial_id} while {self._outstanding} is still out")
        if len(self._seen) >= self.space.size:
            return FINISHED
        if self._best is None:
            arch = self.space.sample(self.rng)
        else:
            arch = self.space.mutate(self._best[0], self.rng, self.mutation_rate)
        self._outstanding = trial_id
        self._seen.add(self.space.key(arch))
        return arch

    def _tell(self, trial_id: int, arch: Architecture, result: TrialResult) -> None:
        if trial_id == self._outstanding:
            self._outstanding = None
        self._seen.add(self.space.key(arch))
        if result.ok and result.fitness is not None and (self._best is None or result.fitness > self._best[1]):
            self._best = (arch, result.fitness)

    def _state_dict(self) -> dict[str, Any]:
        return {
            "best": None if self._best is None else [self._best[0], self._best[1]],
            "outstanding": self._outstanding,
            "seen": sorted(self._seen),
        }

    def _load_state_dict(self, state: Mapping[str, Any]) -> None:
        best = state["best"]
        self._best = None if best is None else (self.space.validate(best[0]), float(best[1]))
        self._outstanding = state["outstanding"]
        self._seen = set(state["seen"])
