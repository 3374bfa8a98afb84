"""Search strategies: the ask/tell interface every search algorithm implements.

The runner owns trial ids. ``ask`` answers an architecture, :data:`WAIT` (e.g. at a generation
barrier while results are outstanding) or :data:`FINISHED`. ``tell`` reports an outcome and must
also accept results that were never asked for (history replayed on resume). State is JSON-only
and includes the random generator, so a stopped search continues exactly.
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from .arguments import check_int
from .space import Architecture, InvalidArchitectureError, SearchSpace

if TYPE_CHECKING:
    from .evaluator import Metric


class StrategyError(RuntimeError):
    """A strategy broke its contract (proposed an invalid architecture, bad state...)."""


class _Signal:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name

    def __reduce__(self) -> str:
        return self._name


WAIT = _Signal("WAIT")
"""``ask`` answer: nothing to propose until outstanding results arrive."""

FINISHED = _Signal("FINISHED")
"""``ask`` answer: the strategy has nothing more to propose, ever."""

Ask = Architecture | _Signal


@dataclass(frozen=True)
class TrialResult:
    """The outcome of one candidate: one of three statuses.

    * ``"succeeded"``: trained to the end; ``metrics`` and a finite ``fitness``.
    * ``"failed"``: no usable result; ``reason`` says why (``metrics`` keeps any finite values).
    * ``"early_stopped"``: training was stopped before the end on purpose (e.g. an NNI assessor
      judged its per-epoch results poor); ``metrics`` are the last per-epoch metrics it reported,
      ``epochs`` how many per-epoch results it reported (None: not known), and ``reason`` says who
      stopped it. It has no fitness: it was not fully trained, so it is never a success (``ok`` is
      False) and never chosen as best.

    Strategies see ``ok`` False for both failures and early stops; one that wants to tell them
    apart (e.g. to learn from the partial metrics) reads ``status`` or :attr:`early_stopped`.
    """

    status: Literal["succeeded", "failed", "early_stopped"]
    metrics: Mapping[str, float] = field(default_factory=dict)
    fitness: float | None = None
    reason: str | None = None
    epochs: int | None = None

    def __post_init__(self) -> None:
        if self.epochs is not None and (self.status != "early_stopped" or isinstance(self.epochs, bool)
                                        or not isinstance(self.epochs, int) or self.epochs < 0):
            raise ValueError(f"only an early stop counts its epochs, as an int >= 0; got epochs={self.epochs!r} "
                             f"for a {self.status} result")
        if self.status == "succeeded":
            if isinstance(self.fitness, bool) or not isinstance(self.fitness, (int, float)) or not math.isfinite(self.fitness):
                raise ValueError(f"a succeeded result needs a finite fitness, got {self.fitness!r} (use TrialResult.succeeded)")
        elif self.status in ("failed", "early_stopped"):
            if self.fitness is not None:
                raise ValueError(f"a {self.status} result has no fitness, got {self.fitness!r}")
        else:
            raise ValueError(f"status must be 'succeeded', 'failed' or 'early_stopped', got {self.status!r}")

    @classmethod
    def succeeded(cls, metrics: Mapping[str, float], fitness: float) -> TrialResult:
        """A success; a non-finite fitness or metric turns it into a failure naming the value."""
        if isinstance(fitness, bool) or not isinstance(fitness, (int, float)) or not math.isfinite(fitness):
            return cls.failed(f"fitness is not a finite number: {fitness!r}", metrics)
        for name, value in metrics.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                return cls.failed(f"metric {name!r} is not a finite number: {value!r}", metrics)
        return cls("succeeded", {k: float(v) for k, v in metrics.items()}, float(fitness))

    @classmethod
    def failed(cls, reason: str, metrics: Mapping[str, Any] | None = None) -> TrialResult:
        return cls("failed", _finite(metrics), None, reason or "failed")

    @classmethod
    def stopped_early(cls, reason: str, metrics: Mapping[str, Any] | None = None,
                      epochs: int | None = None) -> TrialResult:
        """Stopped before the end on purpose; ``metrics`` are the last per-epoch ones (finite
        values kept), ``epochs`` how many per-epoch results came before the stop (None: not
        known), ``reason`` says by whom."""
        return cls("early_stopped", _finite(metrics), None, reason or "early-stopped", epochs)

    @property
    def ok(self) -> bool:
        """Fully trained with a fitness: the only results that can be best or on a front."""
        return self.status == "succeeded"

    @property
    def early_stopped(self) -> bool:
        return self.status == "early_stopped"

    def to_json(self) -> dict[str, Any]:
        data = {"status": self.status, "metrics": dict(self.metrics), "fitness": self.fitness, "reason": self.reason}
        if self.epochs is not None:
            data["epochs"] = self.epochs
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrialResult:
        if data.get("status") == "succeeded":
            return cls.succeeded(data.get("metrics", {}), data.get("fitness"))  # type: ignore[arg-type]
        if data.get("status") == "early_stopped":
            epochs = data.get("epochs")
            return cls.stopped_early(str(data.get("reason") or "early-stopped"), data.get("metrics"),
                                     epochs if isinstance(epochs, int) and not isinstance(epochs, bool) and epochs >= 0
                                     else None)
        return cls.failed(str(data.get("reason") or "failed"), data.get("metrics"))


def _finite(metrics: Mapping[str, Any] | None) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in (metrics or {}).items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }


def rng_state_to_json(rng: random.Random) -> list[Any]:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def rng_state_from_json(data: Any) -> tuple[Any, ...]:
    try:
        version, internal, gauss = data
        return (int(version), tuple(int(x) for x in internal), gauss)
    except (TypeError, ValueError) as err:
        raise StrategyError(f"malformed random-generator state: {err}") from None


class Strategy(ABC):
    """Base class of every search strategy.

    Subclasses implement ``_ask``, ``_tell``, ``_state_dict`` and ``_load_state_dict``; the base
    validates proposals and handles the random generator and the JSON envelope. Constructors are
    keyword-only; validate every argument there and raise ``ValueError`` naming it.

    Capability flags (class attributes) declare what a strategy does not support, so runners and
    the conformance suite need not guess from names.
    """

    name: ClassVar[str] = ""
    supports_parallel: ClassVar[bool] = True
    """False if at most one ask may be outstanding at a time."""
    may_wait: ClassVar[bool] = False
    """True if ``ask`` can answer :data:`WAIT` (e.g. generation barriers)."""
    reaches_optimum: ClassVar[bool] = True
    """False for strategies not meant to optimise (the conformance suite skips its quality check)."""
    nni_tuner_name: ClassVar[str | None] = None
    """The NNI builtin tuner name this strategy is registered under by ``python -m nas_core register``
    (``tuner: {name: ...}`` in an NNI config), or None for none."""

    def __init__(self, *, space: SearchSpace, seed: int = 0) -> None:
        if not isinstance(space, SearchSpace):
            raise ValueError(f"space must be a SearchSpace, got {type(space).__name__}")
        self.space = space
        self.seed = check_int("seed", seed)
        self.rng = random.Random(seed)

    # ------------------------------------------------------------------ public
    def ask(self, trial_id: int) -> Ask:
        answer = self._ask(trial_id)
        if answer is WAIT or answer is FINISHED:
            return answer
        try:
            return self.space.validate(answer)
        except InvalidArchitectureError as err:
            raise StrategyError(f"strategy {self.name!r} proposed an invalid architecture: {err}") from None

    def tell(self, trial_id: int, arch: Architecture, result: TrialResult) -> None:
        """Report an outcome; ``trial_id`` may be one this strategy never asked (history replay).

        ``result.status`` is ``"succeeded"``, ``"failed"`` or ``"early_stopped"`` (stopped on
        purpose before the end, e.g. by an NNI assessor, with its last per-epoch metrics and no
        fitness). Only a success has a fitness: a strategy must treat the other two alike for
        selection (never keep them as parents, elites or best) unless it deliberately uses the
        partial metrics of an early stop, which it then documents.
        """
        self._tell(trial_id, self.space.validate(arch), result)

    def declare_metrics(self, metrics: Sequence[Metric], pareto_metrics: tuple[str, str] | None) -> None:
        """The evaluator's declared metrics (with directions) and its Pareto pair, once known.

        Called by the driver when the search learns the evaluator's description (at the start of
        an in-process search, with the first result under NNI, and again on resume), possibly
        after some ``ask`` calls; a strategy that reads metrics other than the fitness takes its
        defaults from here and raises :class:`StrategyError` naming a metric it was told to use
        that is not declared. The default ignores it: most strategies use the fitness only.
        """

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state, random generator included."""
        return {
            "strategy": self.name or type(self).__name__,
            "seed": self.seed,
            "rng": rng_state_to_json(self.rng),
            "state": self._state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        expected = self.name or type(self).__name__
        if state.get("strategy") != expected:
            raise StrategyError(f"state belongs to strategy {state.get('strategy')!r}, not {expected!r}")
        self.seed = int(state.get("seed", self.seed))
        self.rng.setstate(rng_state_from_json(state["rng"]))
        self._load_state_dict(state["state"])

    # ------------------------------------------------------------------- hooks
    @abstractmethod
    def _ask(self, trial_id: int) -> Ask: ...

    @abstractmethod
    def _tell(self, trial_id: int, arch: Architecture, result: TrialResult) -> None: ...

    @abstractmethod
    def _state_dict(self) -> dict[str, Any]: ...

    @abstractmethod
    def _load_state_dict(self, state: Mapping[str, Any]) -> None: ...
