"""A strategy plugin: neighbour search around the best architecture found so far.

Every ask proposes a mutant of the incumbent (the best successful candidate) that was not
proposed before, so several asks may be in flight at once; a better result moves the incumbent.
It uses only the space's interface (``sample``, ``mutate``, ``key``), so it searches any space
and uses a space's own mutation, like the ladder space's one-rung steps.

Used by dotted path, no registration: ``strategy: "neighbour_search:NeighbourSearch"`` with this
folder on ``sys.path`` (an NNI tuner's ``codeDirectory``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nas_core import FINISHED, SearchSpace, Strategy, TrialResult
from nas_core.space import Architecture
from nas_core.strategy import Ask


class NeighbourSearch(Strategy):
    """Mutate the incumbent; start from ``initial`` random samples; FINISHED when the space is exhausted."""

    name = "neighbour_search"

    def __init__(self, *, space: SearchSpace, seed: int = 0, initial: int = 4, tries: int = 50) -> None:
        super().__init__(space=space, seed=seed)
        for name, value in (("initial", initial), ("tries", tries)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.initial, self.tries = initial, tries
        self._seen: set[str] = set()
        self._best: tuple[Architecture, float] | None = None

    def _ask(self, trial_id: int) -> Ask:
        if len(self._seen) >= self.space.size:
            return FINISHED
        for _ in range(self.tries):
            if self._best is None or len(self._seen) < self.initial:
                arch = self.space.sample(self.rng)
            else:
                arch = self.space.mutate(self._best[0], self.rng)
            if self.space.key(arch) not in self._seen:
                break
        else:  # the incumbent's neighbourhood is used up: jump somewhere new
            while self.space.key(arch := self.space.sample(self.rng)) in self._seen:
                pass
        self._seen.add(self.space.key(arch))
        return arch

    def _tell(self, trial_id: int, arch: Architecture, result: TrialResult) -> None:
        self._seen.add(self.space.key(arch))  # results never asked (history replay) count as seen too
        if result.ok and result.fitness is not None and (self._best is None or result.fitness > self._best[1]):
            self._best = (arch, result.fitness)

    def _state_dict(self) -> dict[str, Any]:
        return {"seen": sorted(self._seen), "best": None if self._best is None else list(self._best)}

    def _load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._seen = set(state["seen"])
        best = state["best"]
        self._best = None if best is None else (self.space.validate(best[0]), float(best[1]))
