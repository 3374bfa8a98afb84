"""Longest-first scheduling: the order in which a strategy's batch of candidates is handed out.

A strategy that hands out a batch of candidates and then waits for all of them (a generation
barrier) loses slot time whenever the batch's last trial runs alone. Asking the longest
candidates first (longest-processing-time order) leaves short ones for the end, so the slots
finish close together. This is scheduling, not search: it changes which trial runs which
candidate, never which candidates are proposed.

Three pieces, kept apart so that no strategy carries scheduling in its algorithm state:

* :class:`OrdersBatches`: a strategy opts in by having a ``batch_order`` attribute, which it
  calls on each batch as the batch is formed (``None``: the order the strategy made them in).
* :class:`DurationModel`: predicted evaluation seconds, learned from the ``evaluator_seconds``
  metric that both runners add to every result.
* :class:`LongestFirst`: the policy :class:`~nas_core.driver.SearchDriver` attaches by default
  (``batch_order="longest_first"``); the NNI tuner uses it by default, the in-process runner, which
  scores one candidate at a time, only when asked.
  It learns from the driver's records, which are the search's state; a resumed search rebuilds
  the model from them and orders exactly as before, so the model needs no state of its own.

The model is a ridge regression of the measured seconds on the architecture, where a dimension
whose choices are all numbers (a width ratio, a kernel size) is one standardised numeric feature
and any other dimension is one indicator per choice. With the few results of a first generation,
a numeric dimension's single slope generalises to values not yet seen, where a mean per value
could not: replayed on the digits search's own trial times it recovered almost all of what exact
durations would, against about half for per-value means (benchmark B2). Each architecture counts
once: a search that re-proposes its elites is told their stored result again and again, and
counting every copy would tilt the model toward them. It is refitted only when a batch is
ordered after enough new results arrived (see :data:`REFIT_GROWTH`; a Cholesky solve on as many
unknowns as features, 31 for a 6 x 5 categorical space: about a millisecond in pure Python).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .arguments import check_choice
from .space import Architecture, Dimension, SearchSpace

if TYPE_CHECKING:
    from .driver import SearchDriver

DURATION_METRIC = "evaluator_seconds"
RIDGE = 1.0
"""Penalty on every coefficient but the intercept, in units of observations: with a handful of
results the prediction stays near their mean, and each feature's effect grows as evidence does."""
REFIT_GROWTH = 20
"""The fit uses the first k observations, k stepping by one up to REFIT_GROWTH and then by
1/REFIT_GROWTH (5 %): every early result counts, later ones barely move the fit, and refits stay
few. k depends on the number of observations only, so a model rebuilt from the same results
(a resumed search) predicts exactly as the one that learned them one by one."""

BatchOrder = Callable[[Sequence[Architecture]], Sequence[int]]
"""Given a batch about to be handed out, the indices of its members in asking order."""

BATCH_ORDERS = ("longest_first", "none")
"""The driver's choices: longest predicted evaluation first, or the strategy's own order."""


@runtime_checkable
class OrdersBatches(Protocol):
    """A strategy whose batches (e.g. generations) may be reordered before they are handed out."""

    batch_order: BatchOrder | None


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _Encoder:
    """One dimension's features: a standardised number, or one indicator per choice."""

    def __init__(self, dim: Dimension, offset: int) -> None:
        self.dim = dim
        self.offset = offset
        self.numeric = len(dim.choices) > 1 and all(_is_number(c) for c in dim.choices)
        self.width = 1 if self.numeric else len(dim.choices)
        self._positions = {(type(c), c): i for i, c in enumerate(dim.choices)}
        if self.numeric:
            low, high = min(float(c) for c in dim.choices), max(float(c) for c in dim.choices)
            center, half_range = (low + high) / 2, (high - low) / 2
            self.values = [(float(c) - center) / half_range for c in dim.choices]

    def position(self, value: Any) -> int:
        found = self._positions.get((type(value), value))
        return self.dim.index(value) if found is None else found

    def feature(self, position: int) -> tuple[int, float]:
        """(feature index, value) of the choice at ``position``; every other feature of this dimension is 0."""
        if self.numeric:
            return self.offset, self.values[position]
        return self.offset + position, 1.0


def _cholesky_solve(matrix: list[list[float]], vector: list[float]) -> list[float]:
    """Solve a small symmetric positive definite system."""
    n = len(vector)
    lower = [[0.0] * n for _ in range(n)]
    for i in range(n):
        row = lower[i]
        for j in range(i + 1):
            other = lower[j]
            total = matrix[i][j] - sum(row[k] * other[k] for k in range(j))
            if i == j:
                row[i] = math.sqrt(max(total, 1e-12))
            else:
                row[j] = total / other[j]
    forward = [0.0] * n
    for i in range(n):
        forward[i] = (vector[i] - sum(lower[i][k] * forward[k] for k in range(i))) / lower[i][i]
    solution = [0.0] * n
    for i in reversed(range(n)):
        solution[i] = (forward[i] - sum(lower[k][i] * solution[k] for k in range(i + 1, n))) / lower[i][i]
    return solution


class DurationModel:
    """Predicted evaluation seconds of an architecture of ``space`` (None until one is observed)."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self._encoders: list[_Encoder] = []
        offset = 1  # the intercept first
        for dim in space.dimensions:
            self._encoders.append(_Encoder(dim, offset))
            offset += self._encoders[-1].width
        self._size = offset
        self._names = space.names
        self._xtx = [[0.0] * self._size for _ in range(self._size)]
        self._xty = [0.0] * self._size
        self._count = 0
        self._seen: set[str] = set()
        self._table: list[list[float]] | None = None  # per dimension, each choice's fitted contribution
        self._intercept = 0.0
        self._predicted: dict[tuple[Any, ...], float] = {}  # per fit: choice values -> prediction
        self._next_fit = 1  # observations at which the fitted statistics are next taken
        self._fit_xtx: list[list[float]] = []
        self._fit_xty: list[float] = []

    def _features(self, arch: Mapping[str, Any]) -> list[tuple[int, float]]:
        return [(0, 1.0)] + [e.feature(e.position(arch[e.dim.name])) for e in self._encoders]

    def observe(self, arch: Mapping[str, Any], metrics: Mapping[str, float], key: str | None = None) -> None:
        """Learn from one result's metrics; repeats of an architecture (by ``key``, the space's key
        when not given), and results without a finite positive duration, are ignored."""
        seconds = metrics.get(DURATION_METRIC)
        if not _is_number(seconds) or not math.isfinite(seconds) or seconds <= 0:  # type: ignore[arg-type]
            return
        key = self.space.key(arch) if key is None else key
        if key in self._seen:
            return
        self._seen.add(key)
        features = self._features(arch)
        for i, xi in features:
            self._xty[i] += xi * float(seconds)  # type: ignore[arg-type]
            row = self._xtx[i]
            for j, xj in features:
                row[j] += xi * xj
        self._count += 1
        if self._count == self._next_fit:
            self._fit_xtx, self._fit_xty = [list(row) for row in self._xtx], list(self._xty)
            self._next_fit = self._count + max(1, self._count // REFIT_GROWTH)
            self._table = None

    @property
    def observations(self) -> int:
        return self._count

    def _fit(self) -> list[list[float]]:
        if self._table is None:
            penalised = [list(row) for row in self._fit_xtx]
            for i in range(1, self._size):
                penalised[i][i] += RIDGE
            weights = _cholesky_solve(penalised, self._fit_xty)
            self._predicted = {}
            self._intercept = weights[0]
            self._table = [
                [weights[index] * value for index, value in (e.feature(p) for p in range(len(e.dim.choices)))]
                for e in self._encoders
            ]
        return self._table

    def predict(self, arch: Mapping[str, Any]) -> float | None:
        if self._count == 0:
            return None
        table = self._fit()
        values = tuple(map(arch.__getitem__, self._names))
        cached = self._predicted.get(values)
        if cached is None:  # a converged generation repeats its members: predict each once per fit
            cached = self._intercept + math.fsum(
                contributions[e.position(value)] for e, contributions, value in zip(self._encoders, table, values)
            )
            self._predicted[values] = cached
        return cached

    def longest_first(self, members: Sequence[Architecture]) -> list[int]:
        """Indices of ``members``, longest predicted first; their own order while nothing is observed."""
        if self._count == 0:
            return list(range(len(members)))
        predicted = [self.predict(arch) or 0.0 for arch in members]
        return sorted(range(len(members)), key=lambda i: -predicted[i])  # stable: ties keep member order


class LongestFirst:
    """A driver's batch order: longest predicted first, learned from the driver's records.

    The model catches up with the records each time a batch is ordered, so results cost nothing
    until a batch is formed; when the records are replaced (a loaded state) or one is replaced in
    place (a failure upgraded to a success), it is rebuilt from them all, in their order, as a
    resumed search rebuilds it: both then order batches alike.
    """

    def __init__(self, driver: SearchDriver) -> None:
        self._driver = driver
        self._records: list[Any] | None = None
        self._read = 0
        self._upgrades = 0
        self.model = DurationModel(driver.space)

    def __call__(self, members: Sequence[Architecture]) -> list[int]:
        self.catch_up()
        return self.model.longest_first(members)

    def catch_up(self) -> None:
        """Learn from the records added since the last call (all of them after a load)."""
        records = self._driver.records
        if records is not self._records or len(records) < self._read or self._driver.upgrades != self._upgrades:
            self._records, self._read, self._upgrades = records, 0, self._driver.upgrades
            self.model = DurationModel(self._driver.space)
        for record in records[self._read:]:
            if record.source != "reused":
                self.model.observe(record.arch, record.result.metrics, record.key)
        self._read = len(records)


def attach(driver: SearchDriver, batch_order: str) -> LongestFirst | None:
    """Give ``driver``'s strategy the batch order named ``batch_order``, if the strategy opts in.

    ``"none"`` leaves the strategy as it is (its own order, or a policy set on it directly).
    """
    check_choice("batch_order", batch_order, BATCH_ORDERS)
    if batch_order != "longest_first" or not isinstance(driver.strategy, OrdersBatches):
        return None
    policy = LongestFirst(driver)
    driver.strategy.batch_order = policy
    return policy
