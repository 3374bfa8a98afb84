"""How a trial job ended, from NNI's own record of it: one reading for the tuner and for ``report``.

NNI 3.0 tells a tuner only ``trial_end(parameter_id, success=False)`` for a trial that failed,
was cancelled, or was killed early by an assessor (or by ``maxTrialDuration``): the reason and
the per-epoch results never reach it. The manager knows both: its REST API gives ``trial-jobs``
(each job's status, parameters, Trial No., log path) and ``metric-data/<job>`` (every per-epoch
and final result, with the parameter id the trial really trained; NNI's local service can hand a
job another job's parameters), and the experiment's ``db/nni.sqlite`` holds the same rows
(:mod:`.nni_records` replays them into the same job records).

:data:`ENDED_STATUSES` is the one table of which statuses have ended, and :func:`outcome` the one
mapping of an ended job and its metric rows to a :class:`~nas_core.strategy.TrialResult`, used by
the tuner (an unsuccessful end, an orphan after a resume) and by ``report`` on NNI's own database:

* a final result the trial reported decides, whatever the status that followed (the trial had
  finished training; a kill or a crash after it changes nothing, and the tuner receives that
  result before the trial's end): :func:`result_from_value`;
* otherwise EARLY_STOPPED, or USER_CANCELED when the assessor's kill for the job was seen
  (NNI 3.0's local training service lists many assessor stops that way; the tuner knows them from
  the dispatcher, :mod:`.dispatcher_hooks`), is ``early_stopped`` with the last per-epoch metrics;
  USER_CANCELED in an experiment that has an assessor, when who stopped it is not known, is an
  early stop whose reason says it may have been a user;
* anything else (FAILED, cancelled, SUCCEEDED without a final result) is ``failed`` naming the status.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..strategy import TrialResult
from .trial import RESULT_FIELDS

ENDED_STATUSES = frozenset({"SUCCEEDED", "FAILED", "USER_CANCELED", "SYS_CANCELED", "EARLY_STOPPED"})
"""A trial job's terminal statuses in NNI 3.0. Any other (WAITING, RUNNING, UNKNOWN, and
``ADD_RESUMED``, which a trial re-submitted by a resume carries until the training service is up)
means it has not ended yet."""
UNSUCCESSFUL = ENDED_STATUSES - {"SUCCEEDED"}
"""The terminal job statuses NNI reports to a tuner as ``success=False``."""


def int_or_none(value: Any) -> int | None:
    """``value`` as an int (NNI stores parameter ids as text), or None."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def is_number(value: Any) -> bool:
    """A metric value: an int or float, not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def decode_metric(data: Any) -> Any:
    """A metric's ``data`` as the manager stores it: the JSON of the JSON string the trial reported."""
    value = json.loads(data) if isinstance(data, str) else data
    return json.loads(value) if isinstance(value, str) else value


def result_from_value(value: Any) -> TrialResult:
    """What a trial reported as its final result, as a :class:`TrialResult`: its ``default`` the
    fitness, its other keys (less our trial's bookkeeping fields) the metrics, and a final with
    ``status: failed`` a failure keeping its reason."""
    if isinstance(value, Mapping):
        if value.get("status") == "failed":
            return TrialResult.failed(str(value.get("reason") or "trial reported failure"), value)
        metrics = {k: v for k, v in value.items() if k not in RESULT_FIELDS}
        return TrialResult.succeeded(metrics, value.get("default"))  # type: ignore[arg-type]
    return TrialResult.succeeded({}, value)


def job_form(job: Mapping[str, Any]) -> tuple[int | None, dict[str, Any] | None]:
    """(parameter id, parameters) the manager assigned to ``job`` (its first ``hyperParameters``)."""
    for raw in job.get("hyperParameters") or []:
        try:
            form = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            continue
        if isinstance(form, Mapping) and isinstance(form.get("parameters"), dict):
            return int_or_none(form.get("parameter_id")), dict(form["parameters"])
    return None, None


def job_of_parameter(jobs: Sequence[Mapping[str, Any]], parameter_id: int) -> Mapping[str, Any] | None:
    """The job the manager assigned ``parameter_id`` to (the one ``trial_end`` speaks of).

    Parameter ids can start again at 1 after a resume: of several such jobs, the latest one that
    ended unsuccessfully, else the latest.
    """
    matching = sorted((job for job in jobs if job_form(job)[0] == parameter_id),
                      key=lambda job: int_or_none(job.get("sequenceId")) or 0)
    ended = [job for job in matching if str(job.get("status")) in UNSUCCESSFUL]
    return (ended or matching or [None])[-1]


def parameters_by_id(jobs: Sequence[Mapping[str, Any]]) -> dict[int, dict[str, Any]]:
    """Every parameter set the manager assigned to ``jobs``, by parameter id (pass the jobs of one
    run between resumes: a resume starts the ids again)."""
    found: dict[int, dict[str, Any]] = {}
    for job in jobs:
        pid, params = job_form(job)
        if pid is not None and params is not None:
            found[pid] = params
    return found


def last_epoch_metrics(value: Any) -> dict[str, Any]:
    """The metrics of a per-epoch result: its keys, or ``default`` alone when it has no others."""
    if isinstance(value, Mapping):
        metrics = {k: v for k, v in value.items() if k not in RESULT_FIELDS}
        return metrics or {"default": value.get("default")}
    return {"default": value}


@dataclass(frozen=True)
class Outcome:
    """How one job ended: ``trained`` is the parameter id its metrics carry (what it really
    trained; None when it reported nothing), ``result`` what the strategy is told."""

    trained: int | None
    result: TrialResult


def outcome(job: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], *, killed_by_assessor: bool = False,
            assessor: str | None = None, from_final: Callable[[Any], TrialResult] = result_from_value
            ) -> Outcome | None:
    """How ``job`` (a ``trial-jobs`` record) ended, from its metric rows (``metric-data/<job>``:
    ``parameterId``, ``type``, ``sequence``, ``data``); None while it has not ended.

    ``killed_by_assessor``: the dispatcher sent the assessor's kill for this job. ``assessor``: the
    experiment's assessor, when who cancelled a job is not known. ``from_final`` turns a final
    result into a :class:`TrialResult` (default :func:`result_from_value`).
    """
    status = str(job.get("status"))
    if status not in ENDED_STATUSES:
        return None
    periodical = sorted((r for r in rows if r.get("type") == "PERIODICAL"), key=lambda r: int_or_none(r.get("sequence")) or 0)
    finals = [r for r in rows if r.get("type") == "FINAL"]
    trained = int_or_none((finals[:1] or periodical[-1:] or [{}])[0].get("parameterId"))
    if finals:  # the manager keeps the first final result a job reports
        try:
            return Outcome(trained, from_final(decode_metric(finals[0].get("data"))))
        except ValueError:
            pass
    metrics: dict[str, Any] = {}
    if periodical:
        try:
            metrics = last_epoch_metrics(decode_metric(periodical[-1].get("data")))
        except ValueError:
            metrics = {}
    if status == "EARLY_STOPPED" or (status == "USER_CANCELED" and killed_by_assessor):
        return Outcome(trained, early_stopped_result(len(periodical), metrics,
                                                     by="NNI's assessor" if killed_by_assessor else None))
    if status == "USER_CANCELED" and assessor:
        return Outcome(trained, early_stopped_result(
            len(periodical), metrics, by=f"its assessor {assessor} or by a user (NNI lists both as USER_CANCELED)"))
    log = f" (its log: {job['logPath']}/trial.log)" if job.get("logPath") else ""
    if status == "SUCCEEDED":
        return Outcome(trained, TrialResult.failed(f"trial succeeded but reported no final result{log}"))
    return Outcome(trained, TrialResult.failed(f"trial ended {status} without a final result{log}"))


def unsuccessful_outcome(job: Mapping[str, Any], rows: Sequence[Mapping[str, Any]],
                         from_final: Callable[[Any], TrialResult] = result_from_value, *,
                         killed_by_assessor: bool = False) -> tuple[int | None, TrialResult | None]:
    """(parameter id the job trained, its result) for an ended ``job``: :func:`outcome` as a pair,
    the parameter id falling back to the job's own; the result is None while it has not ended."""
    ended = outcome(job, rows, killed_by_assessor=killed_by_assessor, from_final=from_final)
    trained = ended.trained if ended is not None and ended.trained is not None else None
    if trained is None:
        trained = job_form(job)[0]
    return trained, ended.result if ended is not None else None


def early_stopped_result(epochs: int | None, metrics: Mapping[str, Any], by: str | None = None) -> TrialResult:
    """An early stop after ``epochs`` per-epoch results (None: not known), with the last one's
    ``metrics``; ``by`` names who stopped it when that is known."""
    if epochs is None:
        return TrialResult.stopped_early("stopped early by NNI's assessor (its last per-epoch result, re-sent by NNI)",
                                         metrics)
    who = by or "NNI (its assessor, or maxTrialDuration)"
    return TrialResult.stopped_early(f"stopped early by {who} after {epochs} per-epoch result{'s' if epochs != 1 else ''}",
                                     metrics)
