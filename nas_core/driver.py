"""What every search does around its strategy: dedup, failure handling, history, best and front.

:class:`SearchDriver` sits between a runner (in-process or NNI) and a :class:`Strategy`:

* **dedup** — an architecture that was already evaluated is never trained again: the stored
  result is told to the strategy at once and the strategy is asked again. One that is being
  trained right now by another trial waits for that trial's result.
* **failure handling** — failed candidates (and results with non-finite metrics) are told as
  failed, kept in the history with their reason, and never chosen as best. A failed
  architecture proposed again reuses its failure rather than training again.
* **history** — every outcome, with where it came from, in JSON-serialisable state together with
  the strategy's own state, so a runner can persist it after every result.
* **exactly once** — a candidate id has one record, whatever paths and however many times its
  result arrives: the first result settles the candidate, a later one for the same architecture is
  ignored ("duplicate"), and only a success replacing a recorded failure changes the record, in
  place ("upgraded"). Runners may therefore feed the same result through every path they have.

Strategies see driver-owned candidate ids (consecutive integers), so dedup and history replay
never hand a strategy an id twice. A strategy that lets its batches be reordered gets the
``batch_order`` policy (:mod:`nas_core.scheduling`; longest predicted evaluation first by default).

The driver also keeps the evaluator's description (:meth:`Evaluator.describe`) once the runner
tells it (:meth:`SearchDriver.set_evaluator_description`): its declared metrics reach the
strategy (:meth:`Strategy.declare_metrics`) and give :meth:`SearchDriver.pareto_front` its two
metrics and their directions. Nothing here knows a metric by name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from . import scheduling
from .evaluator import Metric, declaration_of
from .space import Architecture
from .strategy import FINISHED, WAIT, Ask, Strategy, StrategyError, TrialResult

TrialId = int | str
Source = Literal["trained", "reused", "replayed"]


@dataclass(frozen=True)
class Record:
    """One outcome told to the strategy."""

    candidate_id: int
    trial_id: TrialId | None
    arch: Architecture
    key: str
    result: TrialResult
    source: Source
    external_id: str | None = None
    """The id the runner's own system gave the trial that trained it (e.g. a scheduler's job id)."""
    external_number: int | None = None
    """The number that system shows for that trial in its own UI, so a person can find it there."""
    strategy_told: str | None = None
    """The status the strategy was told instead of ``result``'s, when a success arrived after a
    failure had been told (the result was upgraded in place): the strategy's choices never saw it."""

    def to_json(self) -> dict[str, Any]:
        data = {
            "candidate_id": self.candidate_id,
            "trial_id": self.trial_id,
            "arch": self.arch,
            "key": self.key,
            "result": self.result.to_json(),
            "source": self.source,
        }
        if self.external_id is not None:
            data["external_id"] = self.external_id
        if self.external_number is not None:
            data["external_number"] = self.external_number
        if self.strategy_told is not None:
            data["strategy_told"] = self.strategy_told
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Record:
        return cls(
            candidate_id=int(data["candidate_id"]),
            trial_id=data.get("trial_id"),
            arch=dict(data["arch"]),
            key=str(data["key"]),
            result=TrialResult.from_json(data["result"]),
            source=data["source"],
            external_id=data.get("external_id"),
            external_number=data.get("external_number"),
            strategy_told=data.get("strategy_told"),
        )


@dataclass
class _InFlight:
    candidate_id: int
    trial_id: TrialId | None
    arch: Architecture
    followers: list[int]


class SearchDriver:
    """Dedup, failure handling and history around one strategy. Not thread-safe: lock outside."""

    def __init__(self, strategy: Strategy, *, max_consecutive_duplicates: int = 10_000,
                 batch_order: str = "longest_first") -> None:
        if max_consecutive_duplicates < 1:
            raise ValueError(f"max_consecutive_duplicates must be >= 1, got {max_consecutive_duplicates!r}")
        self.strategy = strategy
        self.space = strategy.space
        self.max_consecutive_duplicates = max_consecutive_duplicates
        self.records: list[Record] = []
        self.upgrades = 0  # records replaced in place ("upgraded"); readers of records rebuild on a change
        self._recorded: set[int] = set()  # candidate ids with a record
        self._known: dict[str, Record] = {}  # key -> the record that evaluated it
        self._in_flight: dict[str, _InFlight] = {}  # key -> candidate being trained
        self._by_trial: dict[TrialId, str] = {}  # runner trial id -> key
        self._next_candidate = 0
        self._strategy_finished = False
        self._resend: list[str] = []  # orphans to hand out again before asking the strategy
        self._evaluator: dict[str, Any] | None = None  # the evaluator's describe(), once told
        self.metrics: tuple[Metric, ...] = ()
        """The evaluator's declared metrics (empty until its description is known)."""
        self.pareto_metrics: tuple[str, str] | None = None
        self.scheduler = scheduling.attach(self, batch_order)

    # -------------------------------------------------------------- evaluator
    @property
    def evaluator_description(self) -> dict[str, Any] | None:
        """The evaluator's :meth:`~nas_core.evaluator.Evaluator.describe`, if the runner told it."""
        return self._evaluator

    def set_evaluator_description(self, description: Mapping[str, Any]) -> None:
        """Record the evaluator's description and declare its metrics to the strategy.

        Runners call it when they learn the description (before the first candidate in process,
        with the first result under NNI); it is saved in :meth:`state_dict` and declared again on
        :meth:`load_state_dict`. A malformed declaration raises :class:`StrategyError` naming it;
        so does a strategy that was told to use a metric the evaluator does not declare.
        """
        try:
            metrics, pareto_pair = declaration_of(description)
        except (ValueError, AttributeError) as err:
            raise StrategyError(f"malformed evaluator description: {err}") from None
        self._evaluator = dict(description)
        self.metrics = metrics
        self.pareto_metrics = pareto_pair
        self.strategy.declare_metrics(metrics, pareto_pair)

    # ------------------------------------------------------------------ asking
    def ask(self, trial_id: TrialId) -> Ask:
        """An architecture for runner trial ``trial_id`` to train, or WAIT, or FINISHED."""
        if trial_id in self._by_trial:
            raise StrategyError(f"trial id {trial_id!r} already has a pending candidate")
        while self._resend:
            key = self._resend.pop(0)
            flight = self._in_flight.get(key)
            if flight is not None and flight.trial_id is None:
                flight.trial_id = trial_id
                self._by_trial[trial_id] = key
                return flight.arch
        duplicates = 0
        while True:
            if self._strategy_finished:
                return FINISHED
            if not self.strategy.supports_parallel and self._in_flight:
                return WAIT  # the strategy declared that one candidate at a time is all it handles
            candidate = self._next_candidate
            answer = self.strategy.ask(candidate)
            if answer is FINISHED:
                self._strategy_finished = True
                return FINISHED
            if answer is WAIT:
                return WAIT
            self._next_candidate += 1
            arch: Architecture = answer  # type: ignore[assignment]
            key = self.space.key(arch)
            if key in self._known:
                self._tell(candidate, None, arch, key, self._known[key].result, "reused")
            elif key in self._in_flight:
                self._in_flight[key].followers.append(candidate)
            else:
                self._in_flight[key] = _InFlight(candidate, trial_id, arch, [])
                self._by_trial[trial_id] = key
                return arch
            duplicates += 1
            if duplicates >= self.max_consecutive_duplicates:
                raise StrategyError(
                    f"strategy {self.strategy.name!r} proposed {duplicates} already-evaluated architectures "
                    "in a row; is the search space exhausted?"
                )

    # ----------------------------------------------------------------- telling
    def tell(self, trial_id: TrialId, result: TrialResult) -> Architecture:
        """The result of the candidate handed to runner trial ``trial_id``; returns its architecture."""
        key = self._by_trial.get(trial_id)
        if key is None:
            raise StrategyError(f"trial id {trial_id!r} has no pending candidate")
        arch = self._in_flight[key].arch
        self._resolve(key, result)
        return arch

    def fail(self, trial_id: TrialId, reason: str, *, external_id: str | None = None,
             external_number: int | None = None) -> Architecture | None:
        """Mark ``trial_id`` failed if it is still pending; returns its architecture, if it was.
        ``external_id``/``external_number`` as for :meth:`complete`."""
        key = self._by_trial.get(trial_id)
        if key is None:
            return None
        arch = self._in_flight[key].arch
        self._resolve(key, TrialResult.failed(reason), external_id=external_id, external_number=external_number)
        return arch

    def complete(self, arch: Mapping[str, Any], result: TrialResult, *, external_id: str | None = None,
                 external_number: int | None = None) -> Source | Literal["duplicate", "upgraded"]:
        """A result identified by its architecture rather than its trial id.

        ``external_id``/``external_number``: the runner's own name for the trial that produced it
        (kept on its :class:`Record`).

        Resolves the pending candidate with that architecture (robust to runners that swap trial
        ids), or, for an architecture never asked, replays it into the strategy (history replay on
        resume). A result for an architecture already known is ignored ("duplicate"), except a
        success arriving after a failure was recorded for it, which replaces the failure as the
        stored result, in its record's place, without telling the strategy twice ("upgraded").
        """
        canonical = self.space.validate(arch)
        key = self.space.key(canonical)
        external = {"external_id": external_id, "external_number": external_number}
        if key in self._in_flight:
            self._resolve(key, result, **external)
            return "trained"
        known = self._known.get(key)
        if known is not None:
            upgraded = Record(known.candidate_id, known.trial_id, canonical, key, result, known.source, **external,
                              strategy_told=known.strategy_told or known.result.status)
            if counts_instead(upgraded, known):
                self._known[key] = upgraded
                self.records[self._position(known)] = upgraded  # in place: one record per candidate id
                self.upgrades += 1
                return "upgraded"
            return "duplicate"
        candidate = self._next_candidate
        self._next_candidate += 1
        self._tell(candidate, None, canonical, key, result, "replayed", **external)
        return "replayed"

    def _resolve(self, key: str, result: TrialResult, **external: Any) -> None:
        flight = self._in_flight[key]
        recorded = [c for c in (flight.candidate_id, *flight.followers) if c in self._recorded]
        if recorded:  # checked before anything changes: the candidate stays in flight as it was
            raise StrategyError(f"candidate {recorded[0]} already has a record")
        del self._in_flight[key]
        if flight.trial_id is not None:
            self._by_trial.pop(flight.trial_id, None)
        self._tell(flight.candidate_id, flight.trial_id, flight.arch, key, result, "trained", **external)
        for follower in flight.followers:
            self._tell(follower, None, flight.arch, key, result, "reused")

    def _tell(
        self, candidate: int, trial_id: TrialId | None, arch: Architecture, key: str, result: TrialResult, source: Source,
        **external: Any,
    ) -> None:
        if candidate in self._recorded:  # the driver hands out each id once; a second record is a bug
            raise StrategyError(f"candidate {candidate} already has a record")
        record = Record(candidate, trial_id, arch, key, result, source, **external)
        self._recorded.add(candidate)
        self.records.append(record)
        if counts_instead(record, self._known.get(key)):
            self._known[key] = record
        self.strategy.tell(candidate, arch, result)

    def _position(self, record: Record) -> int:
        return next(i for i, r in enumerate(self.records) if r is record)

    # ------------------------------------------------------------------- views
    @property
    def pending(self) -> dict[TrialId, Architecture]:
        """Runner trials that were handed a candidate and have not reported."""
        return {tid: self._in_flight[key].arch for tid, key in self._by_trial.items()}

    @property
    def orphans(self) -> list[Architecture]:
        """Candidates in flight whose runner trial id is unknown (e.g. after a resume)."""
        return [f.arch for f in self._in_flight.values() if f.trial_id is None]

    @property
    def finished(self) -> bool:
        """The strategy answered FINISHED and no candidate is in flight."""
        return self._strategy_finished and not self._in_flight

    @property
    def has_resend(self) -> bool:
        return bool(self._resend)

    @property
    def strategy_finished(self) -> bool:
        return self._strategy_finished

    def evaluated(self) -> list[Record]:
        """One record per distinct architecture: the result that counts for it."""
        return list(self._known.values())

    def best(self, n: int = 1) -> list[Record]:
        """The ``n`` best distinct architectures by fitness; failures are never included."""
        return best_records(self._known.values(), n)

    def pareto_front(self, metrics: Sequence[Metric] | None = None) -> list[Record]:
        """Non-dominated distinct architectures over ``metrics`` (default: the evaluator's declared
        Pareto pair); raises ``ValueError`` when none is given or declared."""
        return pareto_front(self._known.values(), metrics or declared_pareto(self.metrics, self.pareto_metrics))

    # ------------------------------------------------------------------- state
    def forget_trial_ids(self) -> None:
        """Detach in-flight candidates from runner trial ids (a resumed runner reuses ids)."""
        for flight in self._in_flight.values():
            flight.trial_id = None
        self._by_trial.clear()

    def resend(self, arch: Mapping[str, Any]) -> bool:
        """Hand a candidate in flight out again at the next ``ask``: an orphan (its trial never ran,
        or its result is lost), or one whose runner trial ended without training it (that trial id
        is let go). False when ``arch`` is not in flight or already waits to be handed out."""
        key = self.space.key(arch)
        flight = self._in_flight.get(key)
        if flight is None or key in self._resend:
            return False
        if flight.trial_id is not None:
            self._by_trial.pop(flight.trial_id, None)
            flight.trial_id = None
        self._resend.append(key)
        return True

    def fail_orphans(self, reason: str) -> int:
        """Fail every in-flight candidate without a runner trial id; returns how many."""
        keys = [k for k, f in self._in_flight.items() if f.trial_id is None]
        for key in keys:
            self._resolve(key, TrialResult.failed(reason))
        return len(keys)

    def state_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "evaluator": self._evaluator,
            "strategy": self.strategy.state_dict(),
            "next_candidate": self._next_candidate,
            "strategy_finished": self._strategy_finished,
            "records": [r.to_json() for r in self.records],
            "known": _record_positions(self.records, self._known),
            "resend": list(self._resend),
            "in_flight": [
                {"key": k, "candidate_id": f.candidate_id, "trial_id": f.trial_id, "arch": f.arch, "followers": f.followers}
                for k, f in self._in_flight.items()
            ],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("version") != 1:
            raise StrategyError(f"unsupported search state version {state.get('version')!r}")
        if state.get("evaluator") is not None:  # first: a strategy may need the declared metrics to rebuild
            self.set_evaluator_description(state["evaluator"])
        self.strategy.load_state_dict(state["strategy"])
        self._next_candidate = int(state["next_candidate"])
        self._strategy_finished = bool(state["strategy_finished"])
        self.records = one_record_per_candidate(Record.from_json(r) for r in state["records"])
        self._recorded = {r.candidate_id for r in self.records}
        self._known = counted_records(self.records)
        self._in_flight = {}
        self._by_trial = {}
        self._resend = list(state.get("resend", []))
        for entry in state["in_flight"]:
            flight = _InFlight(int(entry["candidate_id"]), entry["trial_id"], dict(entry["arch"]), list(entry["followers"]))
            self._in_flight[entry["key"]] = flight
            if flight.trial_id is not None:
                self._by_trial[flight.trial_id] = entry["key"]


def _record_positions(records: list[Record], known: Mapping[str, Record]) -> dict[str, int]:
    position = {id(record): i for i, record in enumerate(records)}
    return {key: position[id(record)] for key, record in known.items()}


def counts_instead(record: Record, current: Record | None) -> bool:
    """Whether ``record`` becomes the result that counts for its architecture, ``current`` being
    the one that counts so far (None: none yet).

    The one rule for "which record counts", used by the driver as results arrive and by
    :mod:`nas_core.results` over a saved history: a reused result never counts (it repeats
    another record); the first trained or replayed result counts, and later only a success
    replaces a failure.
    """
    if record.source == "reused":
        return False
    return current is None or (not current.result.ok and record.result.ok)


def one_record_per_candidate(records: Iterable[Record]) -> list[Record]:
    """The history with one record per candidate id, at its first position.

    Histories saved before recording was exactly-once appended a success that replaced a failure
    as a second record of the same candidate; that one (the one that counts) takes the first's place.
    """
    out: list[Record] = []
    where: dict[int, int] = {}
    for record in records:
        at = where.get(record.candidate_id)
        if at is None:
            where[record.candidate_id] = len(out)
            out.append(record)
        elif record.key == out[at].key and counts_instead(record, out[at]):
            out[at] = record
    return out


def counted_records(records: Iterable[Record]) -> dict[str, Record]:
    """Architecture key -> the record that counts for it (:func:`counts_instead`), in history order."""
    counted: dict[str, Record] = {}
    for record in records:
        if counts_instead(record, counted.get(record.key)):
            counted[record.key] = record
    return counted


def best_records(records: Iterable[Record], n: int = 1) -> list[Record]:
    """The ``n`` successful records of highest fitness (earliest first among equals)."""
    ok = [r for r in records if r.result.ok]
    ok.sort(key=lambda r: (-float(r.result.fitness or 0.0), r.candidate_id))
    return ok[:n]


def declared_pareto(metrics: Sequence[Metric], pareto_metrics: Sequence[str] | None) -> tuple[Metric, Metric]:
    """The two declared :class:`Metric` objects a Pareto front uses (y first, then x).

    Raises ``ValueError`` when no pair is declared or it names an undeclared metric.
    """
    if pareto_metrics is None:
        raise ValueError("no Pareto metrics: the evaluator declares no pareto_metrics (or its description is "
                         "unknown); pass the two metrics explicitly")
    by_name = {m.name: m for m in metrics}
    missing = [name for name in pareto_metrics if name not in by_name]
    if missing:
        raise ValueError(f"pareto_metrics names {missing[0]!r}, which is not declared "
                         f"(declared: {', '.join(by_name) or 'none'})")
    first, second = pareto_metrics
    return by_name[first], by_name[second]


def _better_or_equal(metric: Metric, a: float, b: float) -> bool:
    return a >= b if metric.direction == "maximize" else a <= b


def dominates(a: Record, b: Record, metrics: Sequence[Metric]) -> bool:
    """``a`` is at least as good as ``b`` in every metric (by its direction) and better in one."""
    va = [a.result.metrics[m.name] for m in metrics]
    vb = [b.result.metrics[m.name] for m in metrics]
    return (all(_better_or_equal(m, x, y) for m, x, y in zip(metrics, va, vb))
            and any(m.better(x, y) for m, x, y in zip(metrics, va, vb)))


def pareto_front(records: Iterable[Record], metrics: Sequence[Metric]) -> list[Record]:
    """Non-dominated successful records over ``metrics`` (each by its direction).

    Records lacking one of the metrics are left out. Sorted by the last metric's value, ascending
    (the x axis of a front drawn as the first metric against the last), then the first metric's
    better value first.
    """
    metrics = tuple(metrics)
    if len(metrics) < 1:
        raise ValueError("pareto_front needs at least one metric")
    usable = [r for r in records if r.result.ok and all(m.name in r.result.metrics for m in metrics)]
    front = [r for r in usable if not any(dominates(o, r, metrics) for o in usable)]
    x, y = metrics[-1], metrics[0]
    sign = -1.0 if y.direction == "maximize" else 1.0
    front.sort(key=lambda r: (r.result.metrics[x.name], sign * r.result.metrics[y.name], r.candidate_id))
    return front
