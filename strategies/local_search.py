"""Best-first local search around the incumbent, with neighbours ranked by an additive model.

A generic strategy for any categorical space, not the paper's: on tabular NAS benchmarks the
neighbourhood of the best architecture found so far is where the next improvement usually is
(White et al. 2021, "Local search is state of the art for neural architecture search
benchmarks"), and a per-choice additive model learned from the results so far is a cheap,
surprisingly good guide to which neighbour to try first.

* The first ``initial`` asks are random architectures (never repeated): uniformly random, except
  the last ``screened`` of them, each the best by the model (below) of ``screen_pool`` random unseen
  ones, so the climb starts from a better incumbent (default 3 of 10, pool 32: on NAS-Bench-201,
  seeds 0-99, regret at N = 50 0.273 -> 0.206 on CIFAR-10 and 0.899 -> 0.715 on CIFAR-100).
* Every later ask looks at the evaluated architectures from the fittest down and takes the first
  one with a neighbour (one dimension changed) not yet asked or told; among its unseen neighbours
  it proposes the one the model predicts best (random order among equals), or a random one when
  ``prescreen`` is false. So it climbs from the incumbent, and when the incumbent's whole
  neighbourhood is spent it continues from the next best: it never stalls and never repeats.
* The model, in the spirit of TPE: for every dimension and choice, how over-represented the choice
  is among the best ``top_fraction`` of the successful results, ``(n_top + 1) / (n_all + 2)``. A
  neighbour's score is the change in that share for the one dimension it changes.
* Restarts, as in iterated local search: once ``restart_after`` × (the neighbourhood's size)
  results in a row have not improved the current climb, the climb is taken to sit on a local
  optimum; the next ask is a random unseen architecture and climbing continues only from results
  told since (the model keeps learning from all). On NAS-Bench-201 (24 neighbours) the default
  1.25 restarts after 30; without restarts a few searches in ten spent the rest of the budget around
  a local optimum 0.5 points below the best (docs/benchmarks.md, B6). None: never restart.

Failed candidates are never climbed from and do not feed the model; results told without being
asked (history replay) count like any other. FINISHED once the space is exhausted.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from typing import Any, ClassVar

from nas_core.arguments import check_bool, check_int, check_number, check_optional_int
from nas_core.space import Architecture, SearchSpace
from nas_core.strategy import FINISHED, Ask, Strategy, StrategyError, TrialResult

from .random_search import architecture_at, architecture_index


class LocalSearch(Strategy):
    """Climb from the fittest architecture with unseen neighbours, model-ranked first; restart when stuck."""

    name = "local_search"
    nni_tuner_name: ClassVar[str] = "NasLocalSearch"
    supports_parallel = True
    may_wait = False
    reaches_optimum = True

    def __init__(
        self,
        *,
        space: SearchSpace,
        seed: int = 0,
        initial: int = 10,
        prescreen: bool = True,
        top_fraction: float = 0.4,
        max_candidates: int | None = None,
        restart_after: float | None = 1.25,
        screened: int = 3,
        screen_pool: int = 32,
    ) -> None:
        super().__init__(space=space, seed=seed)
        self.initial = check_int("initial", initial, minimum=1)
        self.prescreen = check_bool("prescreen", prescreen)
        self.top_fraction = check_number("top_fraction", top_fraction, minimum=0.0, maximum=1.0,
                                         exclusive_minimum=True)
        self.max_candidates = check_optional_int("max_candidates", max_candidates, minimum=1)
        self.restart_after = (None if restart_after is None else
                              check_number("restart_after", restart_after, minimum=0.0, exclusive_minimum=True))
        self.screened = check_int("screened", screened, minimum=0)
        self.screen_pool = check_int("screen_pool", screen_pool, minimum=1)
        self._size = space.size
        self._radix = [len(d.choices) for d in space.dimensions]
        self._patience = (None if self.restart_after is None else
                          max(1, round(self.restart_after * (sum(self._radix) - len(self._radix)))))
        self._stride = [1] * len(self._radix)
        for i in range(len(self._radix) - 2, -1, -1):
            self._stride[i] = self._stride[i + 1] * self._radix[i + 1]
        self._asked = 0
        self._seen: set[int] = set()
        self._results: list[list[float]] = []  # [index, fitness] of successes, in the order told
        self._reset_derived()

    # --------------------------------------------------------- derived from results
    def _reset_derived(self) -> None:
        self._ranking: list[tuple[float, int, int]] = []  # (-fitness, order told, index), best first
        self._exhausted: set[int] = set()  # indices whose every neighbour is seen (seen only grows)
        self._counts = [[0] * k for k in self._radix]
        self._top: list[list[int]] | None = None  # counts among the best top_fraction; None: stale
        self._climb_from = 0  # climbs only from results told from this one on (the current restart)
        self._climb_best = float("-inf")
        self._stalled = 0  # results told since the current climb last improved
        self._restart = False  # the next ask starts a new climb at a random architecture

    def _learn(self, index: int, fitness: float) -> None:
        order = len(self._ranking)
        bisect.insort(self._ranking, (-fitness, order, index))
        self._top = None
        for d, choice in enumerate(self._digits(index)):
            self._counts[d][choice] += 1
        if self._patience is not None and order >= self._climb_from:
            if fitness > self._climb_best:
                self._climb_best, self._stalled = fitness, 0
            else:
                self._stalled += 1
                if self._stalled >= self._patience:
                    self._climb_from, self._climb_best, self._stalled = order + 1, float("-inf"), 0
                    self._restart = True

    def _digits(self, index: int) -> list[int]:
        return [(index // stride) % k for stride, k in zip(self._stride, self._radix)]

    def _top_shares(self) -> list[list[float]]:
        """Per dimension and choice: (count among the best ``top_fraction`` + 1) / (count + 2)."""
        if self._top is None:  # recounted once per new result, not once per ask
            self._top = [[0] * k for k in self._radix]
            for _, _, index in self._ranking[: max(1, int(len(self._ranking) * self.top_fraction))]:
                for d, choice in enumerate(self._digits(index)):
                    self._top[d][choice] += 1
        return [[(t + 1) / (n + 2) for t, n in zip(row, counts)] for row, counts in zip(self._top, self._counts)]

    # ------------------------------------------------------------------- asking
    def _ask(self, trial_id: int) -> Ask:
        if len(self._seen) >= self._size or (self.max_candidates is not None and self._asked >= self.max_candidates):
            return FINISHED
        index = None
        if self._restart:
            self._restart = False
        elif self._asked >= self.initial and self._ranking:
            index = self._best_neighbour()
        elif self._asked >= self.initial - self.screened and self._ranking:
            index = self._screened_unseen()
        if index is None:
            index = self._random_unseen()
        self._asked += 1
        self._seen.add(index)
        return architecture_at(self.space, index)

    def _best_neighbour(self) -> int | None:
        """An unseen neighbour of the fittest architecture that still has one, or None."""
        for _, order, center in self._ranking:
            if order < self._climb_from or center in self._exhausted:
                continue
            unseen = self._unseen_neighbours(center)
            if not unseen:
                self._exhausted.add(center)
                continue
            self.rng.shuffle(unseen)
            if not self.prescreen:
                return unseen[0][1]
            share = self._top_shares()
            digits = self._digits(center)
            gains = [sum(share[d][new] - share[d][digits[d]] for d, new in changes) for changes, _ in unseen]
            return unseen[max(range(len(unseen)), key=gains.__getitem__)][1]  # first of the best on ties
        return None

    def _screened_unseen(self) -> int:
        """Of ``screen_pool`` random unseen architectures, the one the model scores best."""
        share = self._top_shares()
        pool = [self._random_unseen() for _ in range(self.screen_pool)]
        return max(pool, key=lambda i: sum(share[d][c] for d, c in enumerate(self._digits(i))))

    def _unseen_neighbours(self, center: int) -> list[tuple[list[tuple[int, int]], int]]:
        """(changes, index) of every unseen architecture one changed dimension away from ``center``."""
        digits = self._digits(center)
        return [
            ([(d, choice)], neighbour)
            for d in range(len(digits))
            for choice in range(self._radix[d])
            if choice != digits[d]
            and (neighbour := center + (choice - digits[d]) * self._stride[d]) not in self._seen
        ]

    def _random_unseen(self) -> int:
        if 2 * len(self._seen) < self._size:
            while True:
                index = architecture_index(self.space, self.space.sample(self.rng))
                if index not in self._seen:
                    return index
        remaining = [i for i in range(self._size) if i not in self._seen]
        return remaining[self.rng.randrange(len(remaining))]

    # ------------------------------------------------------------------ telling
    def _tell(self, trial_id: int, arch: Architecture, result: TrialResult) -> None:
        index = architecture_index(self.space, arch)
        self._seen.add(index)
        fitness = result.fitness if result.ok else None  # a success's fitness is finite (TrialResult)
        if fitness is not None:
            self._results.append([index, fitness])
            self._learn(index, fitness)

    # -------------------------------------------------------------------- state
    def _state_dict(self) -> dict[str, Any]:
        return {"asked": self._asked, "seen": sorted(self._seen), "results": [list(r) for r in self._results],
                "restart": self._restart}

    def _load_state_dict(self, state: Mapping[str, Any]) -> None:
        try:
            self._asked = int(state["asked"])
            self._seen = {int(i) for i in state["seen"]}
            self._results = [[int(i), float(f)] for i, f in state["results"]]
        except (KeyError, TypeError, ValueError) as err:
            raise StrategyError(f"local search state is malformed: {err!r}") from None
        if any(not 0 <= i < self._size for i in self._seen):
            raise StrategyError(f"local search state: 'seen' must hold indices below {self._size}")
        self._reset_derived()
        for index, fitness in self._results:
            self._learn(index, fitness)
        self._restart = bool(state.get("restart", False))  # a restart told but not yet asked
