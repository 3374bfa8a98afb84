"""The paper's evolutionary search (Shen et al., "Searching for Accurate Binary Neural Architectures").

A population of K architectures evolves for G generations (paper, section 3.1: K = 32, G = 50).
The first generation is random, optionally seeded with given architectures (e.g. the uniformly
widened networks). Each later generation keeps the best individual(s) (elitism) and fills the
remaining places with children, each made by one operator drawn at random:

* selection copy (p = 0.2): a parent chosen by roulette, unchanged;
* two-point crossover (p = 0.7): two roulette parents, ``space.crossover``;
* mutation (p = 0.1): a roulette parent, ``space.mutate`` (each gene re-sampled with
  ``mutation_rate``, default 1/n).

Roulette selection is fitness-proportional (the paper's fitness ``max(Acc - λ·FLOPs, 0)`` is
never negative; a negative or non-finite fitness counts as weight 0). Failed candidates are never
parents nor elites; when every successful parent has fitness 0 the choice is uniform among them,
and when there is no successful parent at all the children are random architectures.

Generations are synchronous: the K candidates of a generation are asked, then ``ask`` answers
WAIT until all K results are in. Copies and elites often re-propose evaluated architectures;
the driver answers those at once from its store, so they cost no training.

History replay: results told for ids this strategy never asked (e.g. NNI ``import_data``) are
kept in an archive. At the end of the current generation the archive joins that generation's
members as potential parents and elites of the next one (failed ones never qualify), then empties.

:class:`GenerationalStrategy`, the barrier and bookkeeping shared with NSGA-II, lives here too.
"""

from __future__ import annotations

import math
import random
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

from nas_core.duration import DurationModel
from nas_core.space import Architecture, InvalidArchitectureError, SearchSpace
from nas_core.strategy import FINISHED, WAIT, Ask, Strategy, StrategyError, TrialResult

Evaluated = tuple[Architecture, TrialResult]


def check_int(name: str, value: object, minimum: int) -> int:
    """``value`` if it is an integer >= ``minimum``; otherwise ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_probability(name: str, value: object) -> float:
    """``value`` as a float in [0, 1]; otherwise ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def check_mutation_rate(value: object) -> float | None:
    """``None`` (the space's default 1/n) or a per-gene probability in [0, 1]."""
    return None if value is None else check_probability("mutation_rate", value)


def usable_fitness(result: TrialResult) -> float | None:
    """The fitness of a success, or None for a failure (or a success without a finite fitness)."""
    fitness = result.fitness
    if not result.ok or fitness is None or not math.isfinite(fitness):
        return None
    return float(fitness)


def roulette_index(fitnesses: Sequence[float | None], rng: random.Random) -> int:
    """Fitness-proportional choice among the entries that are not None.

    ``None`` (failed) entries are never chosen. A negative or non-finite fitness weighs 0, and an
    entry of weight 0 is never chosen while another has positive weight; when every candidate
    weighs 0 the choice is uniform among the non-None entries.
    """
    candidates = [i for i, f in enumerate(fitnesses) if f is not None]
    if not candidates:
        raise ValueError("roulette selection needs at least one successful individual")
    weights = [max(f, 0.0) if f is not None and math.isfinite(f) else 0.0 for f in fitnesses]
    positive = [i for i in candidates if weights[i] > 0.0]
    if not positive:
        return candidates[rng.randrange(len(candidates))]
    total = math.fsum(weights[i] for i in positive)
    threshold = rng.random() * total
    cumulative = 0.0
    for i in positive:
        cumulative += weights[i]
        if cumulative > threshold:
            return i
    return positive[-1]  # rounding left the threshold at the very top


FITNESS_SCALINGS = ("window", "none")


def window_scaled(fitnesses: Sequence[float | None]) -> list[float | None]:
    """Fitness minus the generation's worst (windowing), so roulette selection has pressure.

    The paper's fitness is accuracy in percent minus a FLOPs penalty, so a generation's values
    sit close together (e.g. 84–92): raw fitness-proportional selection is then almost uniform.
    Subtracting the worst keeps the ranking and the proportionality of the differences; the worst
    member is never picked while another is better, and equal fitnesses stay uniform.
    """
    finite = [f for f in fitnesses if f is not None and math.isfinite(f)]
    floor = min(finite)
    return [None if f is None else (f - floor if math.isfinite(f) else 0.0) for f in fitnesses]


ASK_ORDERS = ("longest_first", "member")
"""How a generation's members are handed out: longest predicted evaluation first, or as bred."""


class GenerationalStrategy(Strategy):
    """Generation barrier bookkeeping: K asks per generation, WAIT until all K are told, G generations.

    A generation's members are asked longest predicted evaluation first (:mod:`nas_core.duration`,
    learned from earlier results; member order while nothing is known), so that at the barrier
    the slots finish close together. The order changes only when trials start, not what is bred;
    ``ask_order="member"`` asks in the order bred.

    Subclasses make the members of each generation (:meth:`_first_generation`,
    :meth:`_breed`) and may keep extra JSON state (:meth:`_extra_state`). Results for ids that
    were never asked go to an archive handed to :meth:`_breed` with the generation's members.
    """

    may_wait = True

    def __init__(self, *, space: SearchSpace, seed: int = 0, population_size: int, generations: int,
                 ask_order: str = "longest_first") -> None:
        super().__init__(space=space, seed=seed)
        self.population_size = check_int("population_size", population_size, 1)
        self.generations = check_int("generations", generations, 1)
        if ask_order not in ASK_ORDERS:
            raise ValueError(f"ask_order must be one of {ASK_ORDERS}, got {ask_order!r}")
        self.ask_order = ask_order
        self._generation = 0
        self._members: list[Architecture] | None = None  # None until the first ask plans generation 0
        self._results: list[TrialResult | None] = []
        self._pending: dict[int, int] = {}  # candidate id -> member index
        self._order: list[int] = []  # member indices in asking order
        self._next = 0  # position in _order
        self._archive: list[Evaluated] = []
        self._durations = DurationModel(space)

    @property
    def generation(self) -> int:
        """Index of the generation being asked or evaluated (== ``generations`` when finished)."""
        return self._generation

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
        if self.ask_order == "longest_first":
            self._order = self._durations.longest_first(members)
        else:
            self._order = list(range(len(members)))
        self._next = 0

    def _tell(self, trial_id: int, arch: Architecture, result: TrialResult) -> None:
        self._durations.observe(arch, result.metrics)
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
            "durations": self._durations.to_json(),
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
            # States written before asking was ordered have neither: member order, nothing learned.
            n_members = 0 if self._members is None else len(self._members)
            self._order = [int(i) for i in state.get("order", range(n_members))]
            if sorted(self._order) != list(range(n_members)):
                raise ValueError(f"order {self._order} is not a permutation of the {n_members} members")
            if "durations" in state:
                self._durations.load_json(state["durations"])
            self._archive = [(self.space.validate(a), TrialResult.from_json(r)) for a, r in state["archive"]]
            self._load_extra_state(state["extra"])
        except (KeyError, TypeError, ValueError) as err:
            raise StrategyError(f"{type(self).__name__} state is malformed: {err!r}") from None


class Evolution(GenerationalStrategy):
    """The paper's genetic algorithm: roulette selection, copy/crossover/mutation, elitism, barrier."""

    name = "evolution"
    nni_tuner_name = "NasEvolution"
    supports_parallel = True
    may_wait = True
    reaches_optimum = True

    def __init__(
        self,
        *,
        space: SearchSpace,
        seed: int = 0,
        population_size: int = 32,
        generations: int = 50,
        copy_prob: float = 0.2,
        crossover_prob: float = 0.7,
        mutation_prob: float = 0.1,
        mutation_rate: float | None = None,
        elitism: int = 1,
        initial_architectures: Sequence[Mapping[str, Any]] | None = None,
        fitness_scaling: str = "window",
        ask_order: str = "longest_first",
    ) -> None:
        super().__init__(space=space, seed=seed, population_size=population_size, generations=generations,
                         ask_order=ask_order)
        if fitness_scaling not in FITNESS_SCALINGS:
            raise ValueError(f"fitness_scaling must be one of {FITNESS_SCALINGS}, got {fitness_scaling!r}")
        self.fitness_scaling = fitness_scaling
        self.copy_prob = check_probability("copy_prob", copy_prob)
        self.crossover_prob = check_probability("crossover_prob", crossover_prob)
        self.mutation_prob = check_probability("mutation_prob", mutation_prob)
        total = self.copy_prob + self.crossover_prob + self.mutation_prob
        if abs(total - 1.0) > 1e-9:
            raise ValueError(
                f"copy_prob + crossover_prob + mutation_prob must sum to 1, got "
                f"{copy_prob!r} + {crossover_prob!r} + {mutation_prob!r} = {total!r}"
            )
        self.mutation_rate = check_mutation_rate(mutation_rate)
        self.elitism = check_int("elitism", elitism, 0)
        if self.elitism >= self.population_size:
            raise ValueError(
                f"elitism must be smaller than population_size ({self.population_size}), got {elitism!r}"
            )
        self.initial_architectures = self._check_initial(initial_architectures)

    def _check_initial(self, archs: Sequence[Mapping[str, Any]] | None) -> list[Architecture]:
        if archs is None:
            return []
        if isinstance(archs, (str, bytes, Mapping)) or not isinstance(archs, Sequence):
            raise ValueError(f"initial_architectures must be a list of architectures, got {archs!r}")
        if len(archs) > self.population_size:
            raise ValueError(
                f"initial_architectures has {len(archs)} entries, more than population_size={self.population_size}"
            )
        checked = []
        for i, arch in enumerate(archs):
            try:
                checked.append(self.space.validate(arch))
            except InvalidArchitectureError as err:
                raise ValueError(f"initial_architectures[{i}] is not in the search space: {err}") from None
        return checked

    # -------------------------------------------------------------- generations
    def _first_generation(self) -> list[Architecture]:
        members = [dict(a) for a in self.initial_architectures]
        while len(members) < self.population_size:
            members.append(self.space.sample(self.rng))
        return members

    def _breed(self, evaluated: list[Evaluated]) -> list[Architecture]:
        archs = [arch for arch, _ in evaluated]
        fitnesses = [usable_fitness(result) for _, result in evaluated]
        members = self._elites(archs, fitnesses)
        has_parent = any(f is not None for f in fitnesses)
        if self.fitness_scaling == "window" and has_parent:
            fitnesses = window_scaled(fitnesses)
        while len(members) < self.population_size:
            if not has_parent:
                members.append(self.space.sample(self.rng))
                continue
            draw = self.rng.random()
            parent = archs[roulette_index(fitnesses, self.rng)]
            if draw < self.copy_prob:
                child = dict(parent)
            elif draw < self.copy_prob + self.crossover_prob:
                other = archs[roulette_index(fitnesses, self.rng)]
                child = self.space.crossover(parent, other, self.rng)
            else:
                child = self.space.mutate(parent, self.rng, self.mutation_rate)
            members.append(child)
        return members

    def _elites(self, archs: list[Architecture], fitnesses: list[float | None]) -> list[Architecture]:
        """The ``elitism`` best distinct successful architectures, best first (earliest on ties)."""
        successes = {i: f for i, f in enumerate(fitnesses) if f is not None}
        ranked = sorted(successes, key=lambda i: -successes[i])
        elites: list[Architecture] = []
        keys: set[str] = set()
        for i in ranked:
            if len(elites) >= self.elitism:
                break
            key = self.space.key(archs[i])
            if key not in keys:
                keys.add(key)
                elites.append(dict(archs[i]))
        return elites
