"""NSGA-II (Deb et al. 2002, "A fast and elitist multiobjective genetic algorithm: NSGA-II").

Two objectives read from each result's metrics: maximise ``objective_max`` (default "accuracy")
and minimise ``objective_min`` (default "flops") -- the trade-off the paper folds into one
fitness with λ, kept here as a Pareto front instead. The scalar fitness is not used.

Generation 0 is K random architectures. After each generation, parents and children (plus any
results told without being asked, see :class:`~strategies.evolution.GenerationalStrategy`) are
merged, duplicates dropped, and the next K parents chosen by fast non-dominated sort, the last
front that fits partly being filled by crowding distance. K children are then bred: two binary
tournaments on (rank, crowding distance), two-point crossover with ``crossover_prob`` (else a
copy of the first parent), then ``space.mutate`` (``mutation_rate`` per gene, default 1/n, at
least one gene changed). Failed results, and successes missing either metric, rank after every
valid front. Generations are synchronous (WAIT at the barrier); FINISHED after G generations.

The run's result is the whole front: ``SearchDriver.pareto_front()`` over every evaluated
architecture, or :meth:`NSGA2.front` for the strategy's current population.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from nas_core.space import Architecture, SearchSpace
from nas_core.strategy import StrategyError, TrialResult

from .evolution import Evaluated, GenerationalStrategy, check_mutation_rate, check_probability

Point = tuple[float, ...]


def _dominates(a: Point, b: Point) -> bool:
    """``a`` is no worse than ``b`` in every objective and better in one (all minimised)."""
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def non_dominated_sort(points: Sequence[Point | None]) -> list[int]:
    """Pareto rank of every point (0 = non-dominated; all objectives minimised).

    ``None`` points (failed or missing metrics) all get the rank after the last valid front.
    """
    valid = [i for i, p in enumerate(points) if p is not None]
    ranks = [0] * len(points)
    dominated_by: dict[int, list[int]] = {i: [] for i in valid}
    counts = {i: 0 for i in valid}
    for a in valid:
        for b in valid:
            if a != b and _dominates(points[a], points[b]):  # type: ignore[arg-type]
                dominated_by[a].append(b)
                counts[b] += 1
    front = [i for i in valid if counts[i] == 0]
    rank = 0
    while front:
        following = []
        for i in front:
            ranks[i] = rank
            for j in dominated_by[i]:
                counts[j] -= 1
                if counts[j] == 0:
                    following.append(j)
        front = sorted(following)
        rank += 1
    for i, p in enumerate(points):
        if p is None:
            ranks[i] = rank
    return ranks


def crowding_distance(points: Sequence[Point]) -> list[float]:
    """Crowding distance of each point within one front; the extremes of any objective get inf."""
    n = len(points)
    if n == 0:
        return []
    distance = [0.0] * n
    for m in range(len(points[0])):
        order = sorted(range(n), key=lambda i: points[i][m])
        low, high = points[order[0]][m], points[order[-1]][m]
        distance[order[0]] = distance[order[-1]] = math.inf
        if high == low:
            continue
        for before, here, after in zip(order, order[1:], order[2:]):
            distance[here] += (points[after][m] - points[before][m]) / (high - low)
    return distance


def rank_and_crowding(points: Sequence[Point | None]) -> tuple[list[int], list[float]]:
    """Pareto rank and crowding distance (within its front; 0 for invalid points) of every point."""
    ranks = non_dominated_sort(points)
    crowding = [0.0] * len(points)
    for rank in sorted(set(ranks)):
        members = [i for i, r in enumerate(ranks) if r == rank and points[i] is not None]
        for i, d in zip(members, crowding_distance([points[i] for i in members])):  # type: ignore[misc]
            crowding[i] = d
    return ranks, crowding


def select_survivors(points: Sequence[Point | None], k: int) -> list[int]:
    """Indices of the ``k`` points NSGA-II keeps: whole fronts in rank order, then the most crowded-apart."""
    ranks, crowding = rank_and_crowding(points)
    order = sorted(range(len(points)), key=lambda i: (ranks[i], -crowding[i], i))
    return sorted(order[:k])


class NSGA2(GenerationalStrategy):
    """Multi-objective NSGA-II over two metrics (one maximised, one minimised), with a generation barrier."""

    name = "nsga2"
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
        objective_max: str = "accuracy",
        objective_min: str = "flops",
        crossover_prob: float = 0.9,
        mutation_rate: float | None = None,
        ask_order: str = "longest_first",
    ) -> None:
        super().__init__(space=space, seed=seed, population_size=population_size, generations=generations,
                         ask_order=ask_order)
        for label, value in (("objective_max", objective_max), ("objective_min", objective_min)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{label} must be a non-empty metric name, got {value!r}")
        if objective_max == objective_min:
            raise ValueError(f"objective_max and objective_min must differ, both are {objective_max!r}")
        self.objective_max = objective_max
        self.objective_min = objective_min
        self.crossover_prob = check_probability("crossover_prob", crossover_prob)
        self.mutation_rate = check_mutation_rate(mutation_rate)
        self._parents: list[Evaluated] = []

    def point(self, result: TrialResult) -> Point | None:
        """The result as a point to minimise, or None when it failed or lacks a metric."""
        if not result.ok:
            return None
        values = [result.metrics.get(self.objective_max), result.metrics.get(self.objective_min)]
        if any(v is None or not math.isfinite(v) for v in values):
            return None
        return (-float(values[0]), float(values[1]))  # type: ignore[arg-type]

    def front(self) -> list[tuple[Architecture, dict[str, float]]]:
        """Non-dominated architectures among the parents and this generation's results so far."""
        pool = list(self._parents)
        if self._members is not None:
            pool += [(a, r) for a, r in zip(self._members, self._results) if r is not None]
        pool = self._distinct(pool)
        points = [self.point(r) for _, r in pool]
        ranks = non_dominated_sort(points)
        best = [
            (dict(arch), dict(result.metrics))
            for (arch, result), point, rank in zip(pool, points, ranks)
            if point is not None and rank == 0
        ]
        best.sort(key=lambda item: (item[1][self.objective_min], -item[1][self.objective_max]))
        return best

    def _distinct(self, evaluated: list[Evaluated]) -> list[Evaluated]:
        seen: set[str] = set()
        kept = []
        for arch, result in evaluated:
            key = self.space.key(arch)
            if key not in seen:
                seen.add(key)
                kept.append((arch, result))
        return kept

    # -------------------------------------------------------------- generations
    def _first_generation(self) -> list[Architecture]:
        return [self.space.sample(self.rng) for _ in range(self.population_size)]

    def _breed(self, evaluated: list[Evaluated]) -> list[Architecture]:
        pool = self._distinct(self._parents + evaluated)
        survivors = select_survivors([self.point(r) for _, r in pool], self.population_size)
        self._parents = [pool[i] for i in survivors]
        ranks, crowding = rank_and_crowding([self.point(r) for _, r in self._parents])
        children = []
        for _ in range(self.population_size):
            first = self._parents[self._tournament(ranks, crowding)][0]
            second = self._parents[self._tournament(ranks, crowding)][0]
            if self.rng.random() < self.crossover_prob:
                child = self.space.crossover(first, second, self.rng)
            else:
                child = dict(first)
            children.append(self.space.mutate(child, self.rng, self.mutation_rate))
        return children

    def _tournament(self, ranks: list[int], crowding: list[float]) -> int:
        """Binary tournament: lower rank wins, then larger crowding distance, then the first drawn."""
        if len(ranks) == 1:
            return 0
        a, b = self.rng.sample(range(len(ranks)), 2)
        if (ranks[b], -crowding[b]) < (ranks[a], -crowding[a]):
            return b
        return a

    # ------------------------------------------------------------------- state
    def _extra_state(self) -> dict[str, Any]:
        return {"parents": [[arch, result.to_json()] for arch, result in self._parents]}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        try:
            self._parents = [(self.space.validate(a), TrialResult.from_json(r)) for a, r in state["parents"]]
        except (KeyError, TypeError, ValueError) as err:
            raise StrategyError(f"NSGA-II state is malformed: {err!r}") from None
