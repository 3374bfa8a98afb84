"""Evaluators score one candidate; objectives turn raw metrics into a fitness.

The two are separate on purpose: an evaluator returns raw metrics (a score, a cost, a size...),
and an :class:`Objective` computes the scalar the search maximises. Stored results can then be
re-scored with another objective (say, another λ) without training anything again.
The contract every evaluator keeps is written on :class:`Evaluator`; a plugin author checks an
evaluator against it with :class:`nas_core.testing.EvaluatorConformance`.
"""

from __future__ import annotations

import json
import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from .space import Architecture, SearchSpace

if TYPE_CHECKING:
    from .report import ReportSection
    from .results import SearchResults

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


def declaration_of(description: Mapping[str, Any]) -> tuple[tuple[Metric, ...], tuple[str, str] | None]:
    """The metrics and Pareto pair an evaluator description (:meth:`Evaluator.describe`) declares.

    The one reader of a saved declaration, shared by the driver and the results loader, so both
    accept and refuse the same descriptions. ``pareto_metrics`` is ``None`` or absent when none is
    declared; anything else must name two different declared metrics. Raises ``ValueError``
    naming what is malformed.
    """
    try:
        metrics = tuple(Metric.from_json(m) for m in description.get("metrics") or ())
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ValueError(f"malformed metrics declaration: {err}") from None
    pareto = description.get("pareto_metrics")
    if pareto is None:
        pair = None
    elif isinstance(pareto, (list, tuple)) and len(pareto) == 2 and all(isinstance(n, str) for n in pareto):
        pair = (pareto[0], pareto[1])
    else:
        raise ValueError(f"pareto_metrics must be null or name two metrics, got {pareto!r}")
    check_metric_declaration(metrics, pair)
    return metrics, pair


class CandidateFailed(RuntimeError):
    """A candidate could not be scored (diverged, out of memory...); the message is the reason.

    The one way an evaluator says "this candidate has no score": the search records it as failed
    with the message, never gives it a fitness and goes on. Any other exception from ``evaluate``
    is treated as a bug of the evaluator (logged with its traceback, then recorded as failed).
    """


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

    def __init__(self, metric: str) -> None:
        if not isinstance(metric, str) or not metric:
            raise ValueError(f"metric must be a non-empty metric name, got {metric!r}")
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

    The contract (checked by :class:`nas_core.testing.EvaluatorConformance`):

    * **Construction.** Keyword arguments only (a config's ``evaluator_args``); every argument is
      checked there, raising ``ValueError`` naming it, so a bad config fails before any trial.
      Building is cheap: heavy work belongs in :meth:`prepare`.
    * **Metrics.** :attr:`metrics` declares every metric the search may rely on, the primary one
      first, each with its direction; :attr:`pareto_metrics` names two of them or is ``None``.
      ``evaluate`` returns a mapping holding at least every declared metric, each a finite number;
      it may add undeclared diagnostics (a training time, a loss) that nothing optimises.
      Intermediate reports through ``reporter`` are optional; each one carries the primary
      metric (finite), at increasing integer steps.
    * **Objective.** :attr:`objective` is an :class:`Objective` whose ``fitness`` is finite for
      every mapping ``evaluate`` returns; its ``describe()``, like the evaluator's own
      :meth:`describe` (saved with the results), is plain JSON.
    * **Space.** :meth:`search_space` returns the space its architectures come from (or ``None``
      when any is accepted). ``evaluate`` is called with valid canonical architectures of that
      space; given one outside it, it raises :class:`InvalidArchitectureError` (call
      ``search_space().validate(arch)`` first) and scores nothing.
    * **Failure.** A candidate of the space that cannot be scored raises :class:`CandidateFailed`
      with the reason; returning NaN or a placeholder score instead is a bug.
    * **Independence.** ``evaluate`` must not depend on earlier calls: a resident worker reuses
      one evaluator for many trials, in whatever order the search hands them out, and a resumed
      search evaluates in another order than the first run. Caches are fine when they change
      no result.
    * **Determinism.** An evaluator that sets :attr:`deterministic` promises that one
      configuration (its seed included) gives the same declared metrics for the same
      architecture in every process and call order; derive any noise from the seed and the
      candidate, never from a shared generator.
    * **Preparation.** :meth:`prepare` holds once-per-process work; see there.
    """

    name: ClassVar[str] = "evaluator"
    objective: Objective
    deterministic: ClassVar[bool] = False
    """True if the declared metrics are a function of the configuration and the architecture
    alone (same in every process and call order); the conformance suite then checks it."""
    metrics: Sequence[Metric] = ()
    """Every metric the search may rely on (``evaluate`` returns each), with its direction. The
    first is the primary one (the value NNI shows per epoch). A class attribute usually; an
    instance may set its own."""
    pareto_metrics: tuple[str, str] | None = None
    """The two declared metrics whose trade-off a Pareto front shows (y first, then x), if any."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Evaluator:
        # Keep the constructor arguments as given, for describe(): a report made later reads the
        # setting from them instead of guessing it.
        instance = super().__new__(cls)
        instance._given_arguments = {**({"*args": list(args)} if args else {}), **kwargs}
        return instance

    @abstractmethod
    def evaluate(self, arch: Architecture, reporter: Reporter = null_reporter) -> Metrics: ...

    def describe(self) -> dict[str, Any]:
        """What this evaluator is, as JSON saved with the search's results.

        ``name``, ``class`` (its dotted path), ``args`` (the constructor arguments as given),
        ``metrics`` (each :meth:`Metric.to_json`), ``pareto_metrics`` and ``objective``
        (:meth:`Objective.describe`). Reports read the setting from here; a subclass may add
        keys (say, the setting its defaults resolved to) but should keep these.
        """
        pareto = self.pareto_metrics
        return {
            "name": self.name,
            "class": f"{type(self).__module__}:{type(self).__qualname__}",
            "args": _plain_json(getattr(self, "_given_arguments", {})),
            "metrics": [m.to_json() for m in self.metrics],
            "pareto_metrics": list(pareto) if pareto is not None else None,
            "objective": _plain_json(self.objective.describe()) if hasattr(self, "objective") else None,
        }

    @classmethod
    def report_sections(cls, results: SearchResults, out_dir: Path) -> Sequence[ReportSection]:
        """Sections this evaluator adds to a finished search's report (``nas_core.report``).

        A class method: reports are written after the search, from its saved state, where this
        evaluator may not be constructible (no data, no accelerator). ``results.evaluator`` is
        the :meth:`describe` the search saved (None for a search saved without one); figures go
        into ``out_dir``. The default adds nothing.
        """
        return ()

    def search_space(self) -> SearchSpace | None:
        """The space this evaluator's architectures come from, when it knows one."""
        return None

    def prepare(self) -> None:
        """Once-per-process work that no single candidate should be charged for (loading the data,
        training a supernet). Called before the first evaluation, outside its timing, and by a
        resident worker before its first trial; must be cheap when repeated.

        The framework calls it before every evaluation, so it must be idempotent: a second call
        does no work again and changes no later result. ``evaluate`` must also work when it was
        never called (a user scoring one candidate by hand), doing the same work on first need.
        An error here fails the trial as the evaluator's, not the candidate's."""


def _plain_json(value: Any) -> Any:
    """``value`` as plain JSON (tuples as lists; anything else JSON lacks, such as a path, as text)."""
    return json.loads(json.dumps(value, default=str))


def check_metrics(metrics: object) -> Metrics:
    """Validate an evaluator's output: a mapping of names to finite numbers.

    Raises :class:`CandidateFailed` naming the offending metric, so a NaN never becomes a result.
    """
    if not isinstance(metrics, Mapping):
        raise CandidateFailed(f"evaluator returned {type(metrics).__name__}, expected a mapping of metrics")
    clean: Metrics = {}
    for name, value in metrics.items():
        # any real number (numpy's int64 and float32 too), but not a bool
        if isinstance(value, bool) or getattr(value, "dtype", None) == bool or not isinstance(value, numbers.Real):
            raise CandidateFailed(f"metric {name!r} is not a number: {value!r}")
        number = float(value)
        if not math.isfinite(number):
            raise CandidateFailed(f"metric {name!r} is not finite: {value!r}")
        clean[str(name)] = number
    return clean
