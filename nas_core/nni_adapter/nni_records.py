"""Search records rebuilt from an NNI experiment's own trial database.

An experiment run with NNI's own tuners (TPE, Anneal, ...) has no search state of ours, but NNI
keeps every trial in ``<experiment dir>/db/nni.sqlite``: the ``TrialJobEvent`` table (each job's
status changes, its parameters, its Trial No. as ``sequenceId``) and the ``MetricData`` table
(every per-epoch and final result, with the parameter id the trial really trained). Reading that
file with the standard library works on a stopped experiment, without starting the manager.

Each ended trial becomes one :class:`~nas_core.driver.Record`: ``candidate_id`` is its Trial No.,
``trial_id`` its NNI job id, the architecture is the parameters it trained (less the tuner's
``_candidate`` field), and the result is

* SUCCEEDED with a final result: the final dict's ``default`` as fitness and its other numeric
  keys as metrics (a final with ``status: failed`` is a failure with its reason);
* EARLY_STOPPED: early-stopped, with the metrics of its last per-epoch result; so is USER_CANCELED
  when the experiment has an assessor (NNI 3.0's local training service lists many assessor stops
  that way; the reason says it may also have been a user);
* anything else (FAILED, cancelled, succeeded without a final result): failed, saying so.

Trials still waiting or running are left out. The fitness is maximised: when the experiment's
tuner minimised (``classArgs.optimize_mode: minimize``), the fitness is the negated ``default``
and the results' notes say so.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..driver import Record
from ..results import ResultsError, SearchResults
from ..space import InvalidArchitectureError, InvalidSpaceError, SearchSpace
from ..strategy import TrialResult
from .trial import CANDIDATE_FIELD, RESULT_FIELDS, split_parameters
from .trial_outcome import decode_metric, early_stopped_result, last_epoch_metrics

DATABASE = Path("db") / "nni.sqlite"
"""The trial database's place inside an NNI experiment directory."""

NOT_ENDED = frozenset({"WAITING", "RUNNING", "UNKNOWN", "ADD_RESUMED"})
"""Job statuses of a trial that has not ended (left out of the records)."""
_NOT_STATUSES = frozenset({"ADD_CUSTOMIZED", "ADD_HYPERPARAMETER"})
"""Events in ``TrialJobEvent`` that are not status changes."""


def database_of(location: str | Path) -> Path | None:
    """The trial database of the experiment directory ``location`` (or the file itself), if any."""
    path = Path(location)
    if path.is_file() and path.name == DATABASE.name:
        return path
    return path / DATABASE if (path / DATABASE).is_file() else None


@dataclass
class _Job:
    job_id: str
    sequence: int | None = None
    parameter_id: int | None = None
    parameters: dict[str, Any] | None = None
    status: str | None = None
    log_path: str | None = None
    final: tuple[int | None, Any] | None = None  # (parameter id, value)
    periodical: list[tuple[int, int | None, Any]] = field(default_factory=list)  # (sequence, parameter id, value)


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _read(database: Path) -> tuple[dict[str, Any], dict[str, _Job]]:
    """The experiment's latest profile parameters and its jobs, in submission order."""
    uri = f"{database.resolve().as_uri()}?mode=ro"
    connection = sqlite3.connect(uri, uri=True, timeout=10.0)
    try:
        row = connection.execute("SELECT params FROM ExperimentProfile ORDER BY revision DESC LIMIT 1").fetchone()
        profile = json.loads(row[0]) if row and row[0] else {}
        jobs: dict[str, _Job] = {}
        for job_id, event, data, log_path, sequence in connection.execute(
                "SELECT trialJobId, event, data, logPath, sequenceId FROM TrialJobEvent ORDER BY timestamp, rowid"):
            job = jobs.setdefault(job_id, _Job(job_id))
            if job.sequence is None and sequence is not None:
                job.sequence = int(sequence)
            job.log_path = log_path or job.log_path
            if data and job.parameters is None:
                try:
                    form = json.loads(data)
                except ValueError:
                    form = None
                if isinstance(form, dict) and isinstance(form.get("parameters"), dict):
                    job.parameters = form["parameters"]
                    job.parameter_id = _int_or_none(form.get("parameter_id"))
            if event not in _NOT_STATUSES:
                job.status = str(event)
        for job_id, parameter_id, kind, sequence, data in connection.execute(
                "SELECT trialJobId, parameterId, type, sequence, data FROM MetricData ORDER BY timestamp, rowid"):
            job = jobs.get(job_id)
            try:
                value = decode_metric(data)
            except ValueError:
                continue
            if job is None:
                continue
            if kind == "FINAL":
                job.final = (_int_or_none(parameter_id), value)
            elif kind == "PERIODICAL":
                job.periodical.append((int(sequence or 0), _int_or_none(parameter_id), value))
    finally:
        connection.close()
    return profile if isinstance(profile, dict) else {}, jobs


def _final_result(value: Any, sign: float) -> TrialResult:
    if isinstance(value, Mapping):
        if value.get("status") == "failed":
            return TrialResult.failed(str(value.get("reason") or "trial reported failure"), value)
        metrics = {k: v for k, v in value.items() if k not in RESULT_FIELDS}
        fitness = value.get("default")
    else:
        metrics, fitness = {}, value
    if isinstance(fitness, (int, float)) and not isinstance(fitness, bool):
        fitness = sign * fitness
    return TrialResult.succeeded(metrics, fitness)  # type: ignore[arg-type]


def _result_of(job: _Job, sign: float, assessor: str | None) -> TrialResult:
    status = job.status or "UNKNOWN"
    log = f" (its log: {job.log_path}/trial.log)" if job.log_path else ""
    if job.final is not None and status in ("SUCCEEDED", "FAILED"):
        return _final_result(job.final[1], sign)
    last = sorted(job.periodical, key=lambda p: p[0])
    metrics = last_epoch_metrics(last[-1][2]) if last else {}
    if status == "EARLY_STOPPED":
        return early_stopped_result(len(last), metrics)
    if status == "USER_CANCELED" and assessor:
        # NNI 3.0's local training service lists many of its assessor's stops as USER_CANCELED.
        return early_stopped_result(len(last), metrics, by=f"its assessor {assessor} or by a user (NNI lists both as "
                                                           "USER_CANCELED)")
    if status == "SUCCEEDED":
        return TrialResult.failed(f"trial succeeded but reported no final result{log}")
    return TrialResult.failed(f"trial ended {status} without a result{log}")


def _parameters_of(job: _Job, by_id: Mapping[int, dict[str, Any]], by_candidate: Mapping[str, dict[str, Any]]
                   ) -> dict[str, Any] | None:
    """What the job trained: the candidate its final result echoes, else the parameters of the
    id its results carry (NNI's local service can hand a job another job's parameters), else its own."""
    if job.final is not None:
        value = job.final[1]
        echoed = value.get("candidate") if isinstance(value, Mapping) else None
        if echoed in by_candidate:
            return by_candidate[echoed]
        if job.final[0] in by_id:
            return by_id[job.final[0]]  # type: ignore[index]
    for _, parameter_id, _ in reversed(job.periodical):
        if parameter_id in by_id:
            return by_id[parameter_id]  # type: ignore[index]
    return job.parameters


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

    by_id = {job.parameter_id: job.parameters for job in jobs.values()
             if job.parameter_id is not None and job.parameters is not None}
    by_candidate = {str(p[CANDIDATE_FIELD]): p for p in by_id.values() if CANDIDATE_FIELD in p}
    records: list[Record] = []
    evaluator: dict[str, Any] | None = None
    left_out = 0
    ordered = sorted(jobs.values(), key=lambda j: (j.sequence is None, j.sequence or 0))
    for position, job in enumerate(ordered):
        if job.status in NOT_ENDED or job.status is None:
            left_out += 1
            continue
        parameters = _parameters_of(job, by_id, by_candidate)
        if parameters is None:
            left_out += 1
            continue
        arch, _ = split_parameters(parameters)
        try:
            key = space.key(arch) if space is not None else json.dumps(arch, sort_keys=True, separators=(",", ":"))
            if space is not None:
                arch = space.validate(arch)
        except InvalidArchitectureError:
            key = json.dumps(arch, sort_keys=True, separators=(",", ":"))
        value = job.final[1] if job.final is not None else None
        if evaluator is None and isinstance(value, Mapping) and isinstance(value.get("evaluator"), dict):
            evaluator = dict(value["evaluator"])
        candidate = job.sequence if job.sequence is not None else position
        records.append(Record(candidate, job.job_id, arch, key, _result_of(job, sign, assessor), "trained",
                              external_id=job.job_id, external_number=job.sequence))
    if left_out:
        notes.append(f"{left_out} trial{'s' if left_out != 1 else ''} not ended (waiting or running) left out")
    results = SearchResults(database, space, records, evaluator, notes=notes)
    try:
        _ = results.pareto_metrics  # a malformed saved declaration is told here, naming the file
    except ValueError as err:
        raise ResultsError(f"{database}: the evaluator description its trials reported is malformed ({err})") from None
    return results
