"""NSGA-II (Deb et al. 2002, "A fast and elitist multiobjective genetic algorithm: NSGA-II").

Two objectives read from each result's metrics: by default the evaluator's declared
``pareto_metrics``, each in its declared direction (for the paper's evaluator accuracy and FLOPs,
the trade-off the paper folds into one fitness with λ, kept here as a Pareto front instead); or
``objective_max`` and ``objective_min`` given together, which must be declared metrics of those
directions. Without either, the first generation barrier raises :class:`StrategyError` rather
than breed blindly. The scalar fitness is not used.

Generation 0 is K random architectures. After each generation, parents and children (plus any
results told without being asked, see :class:`~strategies.generational.GenerationalStrategy`) are
merged, duplicates dropped, and the next K parents chosen by fast non-dominated sort, the last
front that fits partly being filled by crowding distance. K children are then bred: two binary
tournaments on (rank, crowding distance), two-point crossover with ``crossover_prob`` (else a
copy of the first parent), then ``space.mutate`` (``mutation_rate`` per gene, default 1/n, at
least one gene changed). Generations are synchronous (WAIT at the barrier); FINISHED after G
generations.

Only results with both objectives take part in selection: a failure or an early stop (``not
result.ok``), or a success missing either metric, is never a survivor nor a tournament entrant
(ours: Deb et al. have no failures). When fewer than K results with both objectives remain, the
places among the parents that the others would have taken go to fresh random architectures in the
next generation, as in generation 0, and the parents breed the rest; with no parent at all the
whole generation is fresh. A run in which every result has both objectives breeds all K children.

Two more additions of ours, to the variation step only (selection among successes is Deb et
al.'s): with ``unseen_children`` a child equal to an architecture already evaluated or handed out
is bred again (a few tries), since a repeat is a place in the generation that teaches nothing;
with ``prescreen`` = m > 1, m children are bred for each place to breed, and those evaluated are
the ones NSGA-II's own rank and crowding prefer when their objectives are *predicted* by an
additive per-choice model of the results so far (competing with the parents' measured points).
The model picks which offspring to evaluate; nothing predicted enters the population.

The run's result is the whole front: ``SearchDriver.pareto_front()`` over every evaluated
architecture, or :meth:`NSGA2.front` for the strategy's current population.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from nas_core.arguments import check_bool, check_int, check_probability
from nas_core.evaluator import Metric
from nas_core.space import Architecture, SearchSpace
from nas_core.strategy import StrategyError, TrialResult

from .generational import Evaluated, GenerationalStrategy, check_mutation_rate

Point = tuple[float, ...]
Objective = tuple[str, str]
"""A metric name and its direction, "maximize" or "minimize"."""


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


_UNSEEN_TRIES = 20
"""Re-breeding tries for a child that repeats an evaluated or handed-out architecture."""


class _AdditiveModel:
    """Each objective predicted as a sum of per-choice effects, fitted from the results so far.

    A choice's effect is the mean of the results that have it, shrunk towards the overall mean by
    one pseudo-result (so a choice seen once does not dominate), minus the overall mean. Cheap
    (counts only) and, on NAS-Bench-201, close for latency and a fair guide for accuracy.
    """

    def __init__(self, space: SearchSpace, history: Sequence[tuple[tuple[int, ...], Point | None]]) -> None:
        valid = [(e, p) for e, p in history if p is not None]
        m = len(valid[0][1]) if valid else 0
        self.mean = [statistics.fmean(p[k] for _, p in valid) for k in range(m)] if valid else []
        self.effect: list[list[list[float]]] = []  # [dimension][choice][objective]
        for d, dim in enumerate(space.dimensions):
            sums = [[0.0] * m for _ in dim.choices]
            counts = [0] * len(dim.choices)
            for encoding, point in valid:
                counts[encoding[d]] += 1
                for k in range(m):
                    sums[encoding[d]][k] += point[k]  # type: ignore[index]
            self.effect.append([[(sums[c][k] + self.mean[k]) / (counts[c] + 1) - self.mean[k] for k in range(m)]
                                for c in range(len(dim.choices))])

    def predict(self, encoding: tuple[int, ...]) -> Point | None:
        if not self.mean:
            return None
        return tuple(mean + sum(self.effect[d][c][k] for d, c in enumerate(encoding))
                     for k, mean in enumerate(self.mean))


class NSGA2(GenerationalStrategy):
    """Multi-objective NSGA-II over two metrics, each in its declared direction, with a generation barrier."""

    name = "nsga2"
    nni_tuner_name = "NasNSGA2"
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
        objective_max: str | None = None,
        objective_min: str | None = None,
        crossover_prob: float = 0.9,
        mutation_rate: float | None = None,
        unseen_children: bool = True,
        prescreen: int = 1,
    ) -> None:
        super().__init__(space=space, seed=seed, population_size=population_size, generations=generations)
        for label, value in (("objective_max", objective_max), ("objective_min", objective_min)):
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"{label} must be a non-empty metric name, got {value!r}")
        if (objective_max is None) != (objective_min is None):
            given = "objective_max" if objective_max is not None else "objective_min"
            raise ValueError(f"{given} given alone: give objective_max and objective_min together, or neither "
                             "for the evaluator's declared pareto_metrics")
        if objective_max is not None and objective_max == objective_min:
            raise ValueError(f"objective_max and objective_min must differ, both are {objective_max!r}")
        self.objective_max = objective_max
        self.objective_min = objective_min
        self.objectives: tuple[Objective, Objective] | None = None
        """The two objectives in use, once known: the explicit ones, or the declared Pareto pair."""
        if objective_max is not None and objective_min is not None:
            self.objectives = ((objective_max, "maximize"), (objective_min, "minimize"))
        self.crossover_prob = check_probability("crossover_prob", crossover_prob)
        self.mutation_rate = check_mutation_rate(mutation_rate)
        self.unseen_children = check_bool("unseen_children", unseen_children)
        self.prescreen = check_int("prescreen", prescreen, minimum=1)
        self._parents: list[Evaluated] = []
        self._history: list[tuple[tuple[int, ...], Point | None]] = []  # every result bred from: encoding, point
        self._seen: set[tuple[int, ...]] = set()  # encodings evaluated or handed out

    def declare_metrics(self, metrics: Sequence[Metric], pareto_metrics: tuple[str, str] | None) -> None:
        """Take the declared Pareto pair as objectives, or check the explicit ones against the declaration."""
        declared = {m.name: m for m in metrics}
        names = ", ".join(declared) or "none"
        if self.objective_max is not None and self.objective_min is not None:
            for label, name, direction in (("objective_max", self.objective_max, "maximize"),
                                           ("objective_min", self.objective_min, "minimize")):
                if name not in declared:
                    raise StrategyError(f"nsga2: {label} {name!r} is not a metric the evaluator declares "
                                        f"(declared: {names})")
                if declared[name].direction != direction:
                    raise StrategyError(f"nsga2: {label} {name!r} asks to {direction} it, but the evaluator declares "
                                        f"it '{declared[name].direction}'")
            return
        if pareto_metrics is None:
            raise StrategyError("nsga2: the evaluator declares no pareto_metrics; give objective_max and "
                                f"objective_min (declared metrics: {names})")
        first, second = (declared[name] for name in pareto_metrics)
        self.objectives = ((first.name, first.direction), (second.name, second.direction))

    def _require_objectives(self) -> tuple[Objective, Objective]:
        if self.objectives is None:
            raise StrategyError("nsga2: no objectives: the evaluator's metric declaration is unknown and "
                                "objective_max/objective_min are not given")
        return self.objectives

    def point(self, result: TrialResult) -> Point | None:
        """The result as a point to minimise, or None when it failed or lacks a metric."""
        objectives = self._require_objectives()
        if not result.ok:
            return None
        values = [result.metrics.get(name) for name, _ in objectives]
        if any(v is None or not math.isfinite(v) for v in values):
            return None
        return tuple(-float(v) if direction == "maximize" else float(v)  # type: ignore[arg-type]
                     for v, (_, direction) in zip(values, objectives))

    def front(self) -> list[tuple[Architecture, dict[str, float]]]:
        """Non-dominated architectures among the parents and this generation's results so far."""
        pool = list(self._parents)
        if self._members is not None:
            pool += [(a, r) for a, r in zip(self._members, self._results) if r is not None]
        pool = self._distinct(pool)
        points = [self.point(r) for _, r in pool]
        ranks = non_dominated_sort(points)
        best = [
            (point, dict(arch), dict(result.metrics))
            for (arch, result), point, rank in zip(pool, points, ranks)
            if point is not None and rank == 0
        ]
        best.sort(key=lambda item: (item[0][1], item[0][0]))  # along the second objective, best first
        return [(arch, metrics) for _, arch, metrics in best]

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
        members: list[Architecture] = []
        for _ in range(self.population_size):
            members.append(self._unseen(lambda: self.space.sample(self.rng)))
        return members

    def _breed(self, evaluated: list[Evaluated]) -> list[Architecture]:
        pool = self._distinct(self._parents + evaluated)
        points = [self.point(r) for _, r in pool]
        succeeded = [r for _, r in pool if r.ok]
        if succeeded and all(p is None for p in points):
            wanted = " and ".join(repr(name) for name, _ in self._require_objectives())
            raise StrategyError(f"nsga2: no successful result has the objectives {wanted} (results have: "
                                f"{', '.join(sorted(succeeded[0].metrics)) or 'no metrics'})")
        for arch, result in evaluated:
            encoding = self.space.encode(arch)
            self._seen.add(encoding)
            self._history.append((encoding, self.point(result)))
        known = frozenset(self._seen)  # evaluated or handed out before the children: screening keeps them seen
        # Only results with both objectives compete: a failure (or early stop) is never a survivor nor a parent.
        ranked = self._distinct([(a, r) for a, r in self._parents + evaluated if self.point(r) is not None])
        ranked_points = [self.point(r) for _, r in ranked]
        self._parents = [ranked[i] for i in select_survivors(ranked_points, self.population_size)]
        parent_points = [self.point(r) for _, r in self._parents]
        # The places among the parents that results without both objectives would have taken go to fresh ones.
        fresh = min(self.population_size, len(pool)) - len(self._parents) if self._parents else self.population_size
        bred = self.population_size - fresh
        ranks, crowding = rank_and_crowding(parent_points)

        def offspring() -> Architecture:
            first = self._parents[self._tournament(ranks, crowding)][0]
            second = self._parents[self._tournament(ranks, crowding)][0]
            if self.rng.random() < self.crossover_prob:
                child = self.space.crossover(first, second, self.rng)
            else:
                child = dict(first)
            return self.space.mutate(child, self.rng, self.mutation_rate)

        children = [self._unseen(offspring) for _ in range(bred * self.prescreen)]
        if self.prescreen > 1 and children:
            children = self._screen(children, parent_points, bred, known)
        return children + [self._unseen(lambda: self.space.sample(self.rng)) for _ in range(fresh)]

    def _unseen(self, make: Callable[[], Architecture]) -> Architecture:
        """A child from ``make`` that was neither evaluated nor handed out yet, when one turns up in a few tries."""
        child = make()
        if self.unseen_children:
            for _ in range(_UNSEEN_TRIES):
                if self.space.encode(child) not in self._seen:
                    break
                child = make()
        self._seen.add(self.space.encode(child))
        return child

    def _screen(self, candidates: list[Architecture], parent_points: list[Point | None], keep: int,
                known: frozenset[tuple[int, ...]]) -> list[Architecture]:
        """The ``keep`` candidates NSGA-II's own selection keeps when each is scored by the model.

        The parents compete with their measured points, so a candidate is kept for being predicted
        on or near the current front, and spread along it; those not kept are forgotten (unseen
        again), unless ``known`` (evaluated or handed out before this breeding step) already held them.
        """
        model = _AdditiveModel(self.space, self._history)
        predicted = [model.predict(self.space.encode(c)) for c in candidates]
        points: list[Point | None] = [*predicted, *parent_points]
        ranks, crowding = rank_and_crowding(points)
        order = sorted(range(len(candidates)), key=lambda i: (ranks[i], -crowding[i], i))
        kept = sorted(order[:keep])
        kept_encodings = {self.space.encode(candidates[i]) for i in kept}
        for i in order[keep:]:
            encoding = self.space.encode(candidates[i])
            if encoding not in kept_encodings and encoding not in known:
                self._seen.discard(encoding)
        return [candidates[i] for i in kept]

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
        return {"parents": [[arch, result.to_json()] for arch, result in self._parents],
                "history": [[list(e), None if p is None else list(p)] for e, p in self._history],
                "seen": sorted(list(e) for e in self._seen)}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        try:
            self._parents = [(self.space.validate(a), TrialResult.from_json(r)) for a, r in state["parents"]]
            # states written before duplicate avoidance have neither: it starts afresh from the parents
            self._history = [(tuple(int(i) for i in e), None if p is None else tuple(float(v) for v in p))
                             for e, p in state.get("history", [])]
            self._seen = {tuple(int(i) for i in e) for e in state.get("seen", [])}
            for encoding, _ in self._history:
                self.space.decode(encoding)
            for encoding in self._seen:
                self.space.decode(encoding)
        except (KeyError, TypeError, ValueError) as err:
            raise StrategyError(f"NSGA-II state is malformed: {err!r}") from None
