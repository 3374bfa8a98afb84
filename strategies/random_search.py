"""Random search: uniform sampling without repeats, the baseline every NAS study reports.

Every architecture asked or told is remembered (as its index in the space's mixed-radix
enumeration, so the state stays small JSON integers); the next ask is drawn uniformly from
the architectures not seen yet. In a large space that is rejection sampling; once more than
half of the space has been seen (only possible in small spaces) the remaining architectures
are enumerated and one is drawn from them, so exhausting a space costs ``space.size`` asks,
not a coupon collector's ``size * ln(size)``. When nothing is left the answer is FINISHED.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nas_core.space import Architecture, SearchSpace
from nas_core.strategy import FINISHED, Ask, Strategy, StrategyError, TrialResult


def architecture_index(space: SearchSpace, arch: Mapping[str, Any]) -> int:
    """Position of ``arch`` in the space's enumeration (first dimension most significant)."""
    index = 0
    for dim, choice in zip(space.dimensions, space.encode(arch)):
        index = index * len(dim.choices) + choice
    return index


def architecture_at(space: SearchSpace, index: int) -> Architecture:
    """Inverse of :func:`architecture_index`."""
    if not 0 <= index < space.size:
        raise ValueError(f"index {index} is outside the space (0..{space.size - 1})")
    digits = []
    for dim in reversed(space.dimensions):
        index, digit = divmod(index, len(dim.choices))
        digits.append(digit)
    return space.decode(list(reversed(digits)))


class RandomSearch(Strategy):
    """Uniformly random architectures, never the same one twice; FINISHED when the space is spent.

    Architectures told without being asked (history replay) count as seen and are not proposed.
    ``reaches_optimum`` is False: random search is the baseline, not an optimiser, and on the
    conformance suite's toy space (1.7 million architectures) the chance of reaching 90 % of the
    optimum within 300 candidates is about 9 %, so the quality check does not apply to it.
    """

    name = "random"
    nni_tuner_name = "NasRandom"
    supports_parallel = True
    may_wait = False
    reaches_optimum = False

    def __init__(self, *, space: SearchSpace, seed: int = 0) -> None:
        super().__init__(space=space, seed=seed)
        self._size = space.size
        self._seen: set[int] = set()

    def _ask(self, trial_id: int) -> Ask:
        if len(self._seen) >= self._size:
            return FINISHED
        if 2 * len(self._seen) < self._size:
            while True:
                arch = self.space.sample(self.rng)
                index = architecture_index(self.space, arch)
                if index not in self._seen:
                    self._seen.add(index)
                    return arch
        remaining = [i for i in range(self._size) if i not in self._seen]
        index = remaining[self.rng.randrange(len(remaining))]
        self._seen.add(index)
        return architecture_at(self.space, index)

    def _tell(self, trial_id: int, arch: Architecture, result: TrialResult) -> None:
        self._seen.add(architecture_index(self.space, arch))

    def _state_dict(self) -> dict[str, Any]:
        return {"seen": sorted(self._seen)}

    def _load_state_dict(self, state: Mapping[str, Any]) -> None:
        seen = state.get("seen")
        if not isinstance(seen, list) or not all(isinstance(i, int) and 0 <= i < self._size for i in seen):
            raise StrategyError(f"random search state: 'seen' must be a list of indices below {self._size}")
        self._seen = set(seen)
