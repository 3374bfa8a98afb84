"""Evaluators score one candidate; objectives turn raw metrics into a fitness.

The two are separate on purpose: an evaluator returns raw metrics (accuracy, FLOPs, memory...),
and an :class:`Objective` computes the scalar the search maximises. Stored results can then be
re-scored with another objective (say, another λ) without training anything again.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

from .space import Architecture, SearchSpace

Metrics = dict[str, float]
Direction = Literal["maximize", "minimize"]


@dataclass(frozen=True)
class Metric:
    """One metric an evaluator reports, and which way is better.

    Declared by the evaluator so that multi-objective strategies, reports and NNI's displayed
    value never guess from a metric's name.
    """

    name: str
    direction: Direction
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"metric name must be a non-empty string, got {self.name!r}")
        if self.direction not in ("maximize", "minimize"):
            raise ValueError(f"metric {self.name!r}: direction must be 'maximize' or 'minimize', got {self.direction!r}")

    def better(self, a: float, b: float) -> bool:
        """Whether value ``a`` is strictly better than ``b`` for this metric."""
        return a > b if self.direction == "maximize" else a < b

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "direction": self.direction, "description": self.description}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Metric:
        return cls(str(data["name"]), data["direction"], str(data.get("description", "")))


def check_metric_declaration(metrics: Sequence[Metric], pareto: Sequence[str] | None) -> None:
    """Raise ``ValueError`` naming the problem if a declaration is inconsistent."""
    names = [m.name for m in metrics]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"metric(s) declared twice: {', '.join(duplicates)}")
    if pareto is not None:
        if len(pareto) != 2 or pareto[0] == pareto[1]:
            raise ValueError(f"pareto_metrics must name two different metrics, got {list(pareto)!r}")
        for name in pareto:
            if name not in names:
                raise ValueError(f"pareto_metrics names {name!r}, which is not declared (declared: {', '.join(names) or 'none'})")


class CandidateFailed(RuntimeError):
    """A candidate could not be scored (diverged, out of memory...); the message is the reason."""


class Reporter(Protocol):
    """Receives per-epoch intermediate values; in an NNI trial they become intermediate results."""

    def __call__(self, step: int, metrics: Mapping[str, float]) -> None: ...


def null_reporter(step: int, metrics: Mapping[str, float]) -> None:
    """A reporter that ignores everything."""


class Objective(ABC):
    """Maps raw metrics to the fitness a strategy maximises."""

    name: ClassVar[str] = "objective"

    @abstractmethod
    def fitness(self, metrics: Mapping[str, float]) -> float: ...

    def describe(self) -> dict[str, Any]:
        """JSON description stored next to results, so a reader knows how fitness was made."""
        return {"name": self.name}


class MetricObjective(Objective):
    """Fitness is one metric as it is (maximised)."""

    name = "metric"

    def __init__(self, metric: str = "accuracy") -> None:
        self.metric = metric

    def fitness(self, metrics: Mapping[str, float]) -> float:
        if self.metric not in metrics:
            raise KeyError(f"metric {self.metric!r} missing; have {sorted(metrics)}")
        return float(metrics[self.metric])

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "metric": self.metric}


class Evaluator(ABC):
    """Trains and scores one candidate architecture.

    ``evaluate`` returns raw metrics only; ``objective`` turns them into fitness. Raise
    :class:`CandidateFailed` with a reason when the candidate cannot be scored (e.g. NaN loss):
    a failed candidate is never given a fitness of 0 and is never chosen as best.
    """

    name: ClassVar[str] = "evaluator"
    objective: Objective
    metrics: Sequence[Metric] = ()
    """Every metric ``evaluate`` returns, with its direction. The first is the primary one (the
    value NNI shows per epoch). A class attribute usually; an instance may set its own."""
    pareto_metrics: tuple[str, str] | None = None
    """The two declared metrics whose trade-off a Pareto front shows (y first, then x), if any."""

    @abstractmethod
    def evaluate(self, arch: Architecture, reporter: Reporter = null_reporter) -> Metrics: ...

    def search_space(self) -> SearchSpace | None:
        """The space this evaluator's architectures come from, when it knows one."""
        return None

    def prepare(self) -> None:
        """Once-per-process work that no single candidate should be charged for (loading the data,
        training a supernet). Called before the first evaluation, outside its timing, and by a
        resident worker before its first trial; must be cheap when repeated."""


def check_metrics(metrics: object) -> Metrics:
    """Validate an evaluator's output: a mapping of names to finite numbers.

    Raises :class:`CandidateFailed` naming the offending metric, so a NaN never becomes a result.
    """
    if not isinstance(metrics, Mapping):
        raise CandidateFailed(f"evaluator returned {type(metrics).__name__}, expected a mapping of metrics")
    clean: Metrics = {}
    for name, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CandidateFailed(f"metric {name!r} is not a number: {value!r}")
        if not math.isfinite(value):
            raise CandidateFailed(f"metric {name!r} is not finite: {value!r}")
        clean[str(name)] = float(value)
    return clean
