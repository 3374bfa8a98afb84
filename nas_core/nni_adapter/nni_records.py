"""Search records rebuilt from an NNI experiment's own trial database.

An experiment run with NNI's own tuners (TPE, Anneal, ...) has no search state of ours, but NNI
keeps every trial in ``<experiment dir>/db/nni.sqlite``: the ``TrialJobEvent`` table (each job's
status changes, its parameters, its Trial No. as ``sequenceId``) and the ``MetricData`` table
(every per-epoch and final result, with the parameter id the trial really trained). Reading that
file with the standard library works on a stopped experiment, without starting the manager.

The events are replayed into job records as NNI's manager does for its ``trial-jobs`` API
(``getTrialJobsByReplayEvents`` in ``nni_node/core/nniDataStore.js``), and each ended job becomes
one :class:`~nas_core.driver.Record` through the same :func:`~.trial_outcome.outcome` the tuner
uses: ``trial_id`` is its NNI job id, ``candidate_id`` its Trial No. (unique: NNI numbers again
after a resume, so a number already taken goes after the largest, and the notes say so), the
architecture the parameters it trained (less the tuner's ``_candidate`` field), and the result
as :mod:`.trial_outcome` says (a ``USER_CANCELED`` job of an experiment with an assessor is an early
stop whose reason says a user may also have cancelled it). Only numeric metrics of a final result
are kept (NNI's own trials often report text beside them; the notes name what was left out).

What a job trained: the candidate its final result echoes; else its own parameters when its
results carry its own parameter id; else (NNI's local service can hand a job another job's
parameters) those of the job with the id its results carry, among the jobs of the run it last ran
in (between resumes: a resume starts the parameter ids again, after those of the trials it re-submits).

Trials still waiting or running are left out. The fitness is maximised: when the experiment's
tuner minimised (``classArgs.optimize_mode: minimize``), the fitness is the negated ``default``
and the results' notes say so.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..driver import Record
from ..results import ResultsError, SearchResults
from ..space import InvalidArchitectureError, InvalidSpaceError, SearchSpace
from ..strategy import TrialResult
from .trial import CANDIDATE_FIELD, RESULT_FIELDS, split_parameters
from .trial_outcome import decode_metric, int_or_none, is_number, job_form, outcome, result_from_value

DATABASE = Path("db") / "nni.sqlite"
"""The trial database's place inside an NNI experiment directory."""

_REPLAYED_STATUS = {"USER_TO_CANCEL": "USER_CANCELED", "ADD_CUSTOMIZED": "WAITING"}
"""Events NNI's replay turns into another status (``getJobStatusByLatestEvent``)."""
_NOT_STATUSES = frozenset({"ADD_HYPERPARAMETER"})
"""Events that leave a job's status as it was."""


def database_of(location: str | Path) -> Path | None:
    """The trial database of the experiment directory ``location`` (or the file itself), if any."""
    path = Path(location)
    if path.is_file() and path.name == DATABASE.name:
        return path
    return path / DATABASE if (path / DATABASE).is_file() else None


@dataclass
class _Job:
    """One trial job replayed from the events, in the shape of a ``trial-jobs`` record, with the
    runs (between resumes) it belongs to and its metric rows."""

    record: dict[str, Any]
    runs: set[int] = field(default_factory=set)
    rows: list[dict[str, Any]] = field(default_factory=list)


def _replay(events: Sequence[tuple[Any, ...]]) -> list[_Job]:
    """Jobs from ``(trialJobId, event, data, logPath, sequenceId)`` rows in the order stored, as
    NNI's replay builds them: rows without a job id (IMPORT_DATA, ADD_CUSTOMIZED) are no trial,
    the first sequence id and every distinct ``parameter_index`` kept.

    A run starts again where the manager resumed: it marks re-submitted jobs ``ADD_RESUMED`` and
    numbers new jobs again (from one past the largest re-submitted Trial No.), so a new job whose
    Trial No. is not above every earlier one, or the first new job after ``ADD_RESUMED`` events,
    opens a new run. A re-submitted job belongs to its first run and to the one it resumed into.
    """
    jobs: dict[str, _Job] = {}
    indexes: dict[str, set[Any]] = {}
    run, top, resumed = 0, -1, False
    for job_id, event, data, log_path, sequence in events:
        if not job_id:
            continue
        event = str(event)
        job = jobs.get(job_id)
        if job is None:
            number = int_or_none(sequence)
            if resumed or (number is not None and number <= top):
                run, top, resumed = run + 1, -1, False
            top = max(top, number if number is not None else top)
            job = jobs[job_id] = _Job({"trialJobId": job_id, "status": "UNKNOWN", "hyperParameters": []}, {run})
        if event == "ADD_RESUMED":
            resumed = True
            job.runs.add(run + 1)
        if event not in _NOT_STATUSES:
            job.record["status"] = _REPLAYED_STATUS.get(event, event)
        if log_path:
            job.record["logPath"] = log_path
        if data and str(data).strip():
            try:
                form = json.loads(data)
            except ValueError:
                form = None
            if isinstance(form, dict) and form.get("parameter_index") not in indexes.setdefault(job_id, set()):
                indexes[job_id].add(form.get("parameter_index"))
                job.record["hyperParameters"].append(json.dumps(form))
        if sequence is not None and "sequenceId" not in job.record:
            job.record["sequenceId"] = int_or_none(sequence)
    return list(jobs.values())


def _read(database: Path) -> tuple[dict[str, Any], list[_Job]]:
    """The experiment's latest profile parameters and its jobs, in the order NNI stored them."""
    uri = f"{database.resolve().as_uri()}?mode=ro"
    connection = sqlite3.connect(uri, uri=True, timeout=10.0)
    try:
        row = connection.execute("SELECT params FROM ExperimentProfile ORDER BY revision DESC LIMIT 1").fetchone()
        profile = json.loads(row[0]) if row and row[0] else {}
        jobs = _replay(connection.execute(
            "SELECT trialJobId, event, data, logPath, sequenceId FROM TrialJobEvent ORDER BY rowid").fetchall())
        by_id = {job.record["trialJobId"]: job for job in jobs}
        for job_id, parameter_id, kind, sequence, data in connection.execute(
                "SELECT trialJobId, parameterId, type, sequence, data FROM MetricData ORDER BY rowid"):
            if job_id in by_id:
                by_id[job_id].rows.append({"parameterId": parameter_id, "type": kind, "sequence": sequence, "data": data})
    finally:
        connection.close()
    return profile if isinstance(profile, dict) else {}, jobs


def saved_tuner(location: str | Path) -> dict[str, Any] | None:
    """The tuner config (``className``/``name``, ``classArgs``) the experiment in directory ``location``
    saved in its database, or None when there is none or it cannot be read."""
    database = database_of(location)
    if database is None:
        return None
    uri = f"{database.resolve().as_uri()}?mode=ro"
    try:
        connection = sqlite3.connect(uri, uri=True, timeout=10.0)
        try:
            row = connection.execute("SELECT params FROM ExperimentProfile ORDER BY revision DESC LIMIT 1").fetchone()
        finally:
            connection.close()
        profile = json.loads(row[0]) if row and row[0] else {}
    except (sqlite3.Error, OSError, ValueError):
        return None
    tuner = profile.get("tuner") if isinstance(profile, dict) else None
    return tuner if isinstance(tuner, dict) else None


def trial_jobs_submitted(location: str | Path) -> int:
    """How many trial jobs the experiment in directory ``location`` ever submitted (0 without a
    database); sqlite3.Error or OSError when its database cannot be read."""
    database = database_of(location)
    if database is None:
        return 0
    uri = f"{database.resolve().as_uri()}?mode=ro"
    connection = sqlite3.connect(uri, uri=True, timeout=10.0)
    try:
        row = connection.execute("SELECT COUNT(DISTINCT trialJobId) FROM TrialJobEvent "
                                 "WHERE trialJobId IS NOT NULL AND trialJobId != ''").fetchone()
    finally:
        connection.close()
    return int(row[0]) if row else 0


def _trained_parameters(job: _Job, trained: int | None, jobs: Sequence[_Job],
                        by_candidate: Mapping[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The parameters ``job`` trained (see the module's docstring); ``trained`` is the parameter id
    its results carry."""
    value = _final_value(job)
    echoed = value.get("candidate") if isinstance(value, Mapping) else None
    if echoed is not None and str(echoed) in by_candidate:
        return by_candidate[str(echoed)]
    own_id, own = job_form(job.record)
    if trained is None or trained == own_id:
        return own
    run = max(job.runs)  # the run it last ran in, whose ids its results carry
    for other in jobs:
        if other is not job and run in other.runs:
            other_id, params = job_form(other.record)
            if other_id == trained and params is not None:
                return params
    return own


class _NumericFinal:
    """Turns a final result into a :class:`TrialResult` keeping only its numeric metrics (and
    negating the fitness for a minimising tuner); remembers the names it left out."""

    def __init__(self, sign: float) -> None:
        self.sign = sign
        self.dropped: set[str] = set()

    def __call__(self, value: Any) -> TrialResult:
        if isinstance(value, Mapping) and value.get("status") != "failed":
            kept = {}
            for name, item in value.items():
                if name in RESULT_FIELDS or is_number(item):
                    kept[name] = item
                else:
                    self.dropped.add(str(name))
            value = kept
            if is_number(value.get("default")):
                value["default"] = self.sign * value["default"]
        elif is_number(value):
            value = self.sign * value
        return result_from_value(value)


def load_nni_results(location: str | Path) -> SearchResults:
    """The ended trials of the NNI experiment in directory ``location`` as search results.

    Raises :class:`~nas_core.results.ResultsError` naming the path when there is no trial
    database or it cannot be read.
    """
    database = database_of(location)
    if database is None:
        raise ResultsError(f"{location}: no NNI trial database ({DATABASE}) found")
    try:
        profile, jobs = _read(database)
    except (sqlite3.Error, OSError, ValueError, TypeError) as err:
        raise ResultsError(f"{database}: not a readable NNI trial database ({err})") from None
    notes = [f"records rebuilt from NNI's trial database (the experiment has no search state of ours): {database}"]
    space: SearchSpace | None
    try:
        space = SearchSpace.from_nni(profile.get("searchSpace"))
    except (InvalidSpaceError, ValueError, TypeError):
        space = None
    tuner = profile.get("tuner") if isinstance(profile.get("tuner"), dict) else {}
    class_args = tuner.get("classArgs") if isinstance(tuner.get("classArgs"), dict) else {}
    sign = -1.0 if class_args.get("optimize_mode") == "minimize" else 1.0
    assessor_config = profile.get("assessor") if isinstance(profile.get("assessor"), dict) else {}
    assessor = assessor_config.get("name") or assessor_config.get("className")
    if sign < 0:
        notes.append("the experiment's tuner minimised the trials' `default` value: fitness here is its negative")

    by_candidate: dict[str, dict[str, Any]] = {}
    for job in jobs:
        params = job_form(job.record)[1]
        if params is not None and CANDIDATE_FIELD in params:
            by_candidate[str(params[CANDIDATE_FIELD])] = params
    from_final = _NumericFinal(sign)
    records: list[Record] = []
    evaluator: dict[str, Any] | None = None
    not_ended = unreadable = renumbered = 0
    ordered = sorted(jobs, key=lambda j: (min(j.runs), j.record.get("sequenceId") is None, j.record.get("sequenceId") or 0))
    taken = {j.record["sequenceId"] for j in ordered if j.record.get("sequenceId") is not None}
    next_free = max(taken, default=-1) + 1
    used: set[int] = set()
    for job in ordered:
        ended = outcome(job.record, job.rows, assessor=assessor, from_final=from_final)
        parameters = _trained_parameters(job, ended.trained, jobs, by_candidate) if ended is not None else None
        if ended is None:
            not_ended += 1
            continue
        if parameters is None:
            unreadable += 1
            continue
        arch, _ = split_parameters(parameters)
        try:
            key = space.key(arch) if space is not None else json.dumps(arch, sort_keys=True, separators=(",", ":"))
            if space is not None:
                arch = space.validate(arch)
        except InvalidArchitectureError:
            key = json.dumps(arch, sort_keys=True, separators=(",", ":"))
        value = _final_value(job)
        if evaluator is None and isinstance(value, Mapping) and isinstance(value.get("evaluator"), dict):
            evaluator = dict(value["evaluator"])
        number = job.record.get("sequenceId")
        candidate = number
        if candidate is None or candidate in used:
            candidate, next_free = next_free, next_free + 1
            renumbered += 1
        used.add(candidate)
        records.append(Record(candidate, job.record["trialJobId"], arch, key, ended.result, "trained",
                              external_id=job.record["trialJobId"], external_number=number))
    if not_ended:
        notes.append(f"{not_ended} trial{'s' if not_ended != 1 else ''} not ended (waiting or running) left out")
    if unreadable:
        notes.append(f"{unreadable} ended trial{'s' if unreadable != 1 else ''} left out: the parameters "
                     f"{'they' if unreadable != 1 else 'it'} trained could not be read from the database")
    if renumbered:
        notes.append(f"{renumbered} trial{'s' if renumbered != 1 else ''} had no Trial No. or one an earlier trial "
                     "had (NNI numbers trials again after a resume): numbered after the largest")
    if from_final.dropped:
        notes.append("non-numeric values in the trials' final results left out of the metrics: "
                     + ", ".join(sorted(from_final.dropped)))
    results = SearchResults(database, space, records, evaluator, notes=notes)
    try:
        _ = results.pareto_metrics  # a malformed saved declaration is told here, naming the file
    except ValueError as err:
        raise ResultsError(f"{database}: the evaluator description its trials reported is malformed ({err})") from None
    return results


def _final_value(job: _Job) -> Any:
    """The first final result ``job`` reported (the one NNI keeps), or None."""
    for row in job.rows:
        if row.get("type") == "FINAL":
            try:
                return decode_metric(row.get("data"))
            except ValueError:
                return None
    return None
