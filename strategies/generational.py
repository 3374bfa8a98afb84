"""What generation-based strategies share: the barrier, its bookkeeping, and a few small helpers.

:class:`GenerationalStrategy` hands out a generation of members, answers WAIT until every one
of them is told, then breeds the next generation from the results; after ``generations``
generations it answers FINISHED. Subclasses only make members (:meth:`~GenerationalStrategy.
_first_generation`, :meth:`~GenerationalStrategy._breed`). Results told for ids it never asked
(history replay, NNI ``import_data``) go to an archive that joins the finished generation when
the next one is bred.

In which order a generation's members are handed out is not the algorithm's business: the
strategy opts into :class:`nas_core.scheduling.OrdersBatches`, so whoever runs it (the search
driver, by default longest predicted evaluation first) may set ``batch_order`` to reorder each
generation as it is formed. Without one, members go out in the order bred. The order changes
which trial runs which member, never the members themselves nor the random generator.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Mapping
from typing import Any

from nas_core.arguments import check_int, check_probability
from nas_core.scheduling import BatchOrder
from nas_core.space import Architecture, SearchSpace
from nas_core.strategy import FINISHED, WAIT, Ask, Strategy, StrategyError, TrialResult

Evaluated = tuple[Architecture, TrialResult]


def check_mutation_rate(value: object) -> float | None:
    """``None`` (the space's default, 1/n per gene) or a per-gene probability in [0, 1]."""
    return None if value is None else check_probability("mutation_rate", value)


def usable_fitness(result: TrialResult) -> float | None:
    """The fitness of a success, or None for a failure (or a success without a finite fitness)."""
    fitness = result.fitness
    if not result.ok or fitness is None or not math.isfinite(fitness):
        return None
    return float(fitness)


class GenerationalStrategy(Strategy):
    """Generation barrier bookkeeping: K asks per generation, WAIT until all K are told, G generations.

    Subclasses make the members of each generation (:meth:`_first_generation`, :meth:`_breed`)
    and may keep extra JSON state (:meth:`_extra_state`). ``batch_order``, when set (by the
    runner, see :mod:`nas_core.scheduling`), chooses the asking order of each generation.
    States written when the duration model lived inside the strategy still load; the model is dropped.
    """

    may_wait = True

    def __init__(self, *, space: SearchSpace, seed: int = 0, population_size: int, generations: int) -> None:
        super().__init__(space=space, seed=seed)
        self.population_size = check_int("population_size", population_size, minimum=1)
        self.generations = check_int("generations", generations, minimum=1)
        self.batch_order: BatchOrder | None = None
        self._generation = 0
        self._members: list[Architecture] | None = None  # None until the first ask plans generation 0
        self._results: list[TrialResult | None] = []
        self._pending: dict[int, int] = {}  # candidate id -> member index
        self._order: list[int] = []  # member indices in asking order
        self._next = 0  # position in _order
        self._archive: list[Evaluated] = []

    @property
    def generation(self) -> int:
        """Index of the generation being asked or evaluated (== ``generations`` when finished)."""
        return self._generation

    @property
    def upcoming(self) -> list[Architecture]:
        """The members of the current generation not handed out yet, in asking order."""
        if self._members is None:
            return []
        return [dict(self._members[i]) for i in self._order[self._next:]]

    # ------------------------------------------------------------------- hooks
    @abstractmethod
    def _first_generation(self) -> list[Architecture]:
        """The members of generation 0."""

    @abstractmethod
    def _breed(self, evaluated: list[Evaluated]) -> list[Architecture]:
        """The members of the next generation, from the finished one (plus the archive)."""

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        pass

    # ------------------------------------------------------------ ask and tell
    def _ask(self, trial_id: int) -> Ask:
        if self._members is None:
            self._start(self._first_generation())
        assert self._members is not None
        while self._generation < self.generations:
            if self._next < len(self._members):
                index = self._order[self._next]
                self._next += 1
                self._pending[trial_id] = index
                return self._members[index]
            if self._pending:
                return WAIT
            evaluated = [(arch, result) for arch, result in zip(self._members, self._results) if result is not None]
            evaluated.extend(self._archive)
            self._archive = []
            self._generation += 1
            if self._generation < self.generations:
                self._start(self._breed(evaluated))
        return FINISHED

    def _start(self, members: list[Architecture]) -> None:
        if not members:
            raise StrategyError(f"{type(self).__name__} bred an empty generation")
        self._members = members
        self._results = [None] * len(members)
        self._pending = {}
        self._order = list(range(len(members)))
        if self.batch_order is not None:
            order = [int(i) for i in self.batch_order(members)]
            if sorted(order) != self._order:
                raise StrategyError(f"batch order {order} is not a permutation of the {len(members)} members")
            self._order = order
        self._next = 0

    def _tell(self, trial_id: int, arch: Architecture, result: TrialResult) -> None:
        index = self._pending.pop(trial_id, None)
        if index is None:
            self._archive.append((arch, result))
        else:
            self._results[index] = result

    # ------------------------------------------------------------------- state
    def _state_dict(self) -> dict[str, Any]:
        return {
            "generation": self._generation,
            "members": self._members,
            "results": [None if r is None else r.to_json() for r in self._results],
            "pending": [[cid, index] for cid, index in self._pending.items()],
            "order": self._order,
            "next": self._next,
            "archive": [[arch, result.to_json()] for arch, result in self._archive],
            "extra": self._extra_state(),
        }

    def _load_state_dict(self, state: Mapping[str, Any]) -> None:
        try:
            members = state["members"]
            self._members = None if members is None else [self.space.validate(a) for a in members]
            self._generation = int(state["generation"])
            self._results = [None if r is None else TrialResult.from_json(r) for r in state["results"]]
            self._pending = {int(cid): int(index) for cid, index in state["pending"]}
            self._next = int(state["next"])
            # States written before asking was ordered have no order: member order.
            n_members = 0 if self._members is None else len(self._members)
            self._order = [int(i) for i in state.get("order", range(n_members))]
            if sorted(self._order) != list(range(n_members)):
                raise ValueError(f"order {self._order} is not a permutation of the {n_members} members")
            self._archive = [(self.space.validate(a), TrialResult.from_json(r)) for a, r in state["archive"]]
            self._load_extra_state(state["extra"])
        except (KeyError, TypeError, ValueError) as err:
            raise StrategyError(f"{type(self).__name__} state is malformed: {err!r}") from None
