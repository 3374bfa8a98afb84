"""Why a trial ended without success, from the NNI manager's own record of it.

NNI 3.0 tells a tuner only ``trial_end(parameter_id, success=False)`` for a trial that failed,
was cancelled, or was killed early by an assessor (or by ``maxTrialDuration``): the reason and
the per-epoch results never reach it. The manager knows both, and its REST API gives them:
``trial-jobs`` (each job's status, its parameters, its final result) and ``metric-data/<job>``
(every per-epoch result, with the parameter id the trial really trained; NNI's local service can
hand a job another job's parameters).

:func:`unsuccessful_outcome` turns one ended job and its metric rows into what it trained and its
:class:`~nas_core.strategy.TrialResult`: an early stop becomes ``early_stopped`` with the metrics
of its last per-epoch result, a failure a ``failed`` result naming the status. The tuner asks the
manager once the trial has ended, so a stopped trial is never a success nor a failure that hides
why. NNI 3.0's local training service may list a trial its assessor stopped as ``USER_CANCELED``;
the tuner knows those from the dispatcher's kill (:mod:`.dispatcher_hooks`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..strategy import TrialResult
from .trial import RESULT_FIELDS

UNSUCCESSFUL = frozenset({"EARLY_STOPPED", "FAILED", "USER_CANCELED", "SYS_CANCELED"})
"""The terminal job statuses NNI reports to a tuner as ``success=False``."""


def decode_metric(data: Any) -> Any:
    """A metric's ``data`` as the manager stores it: the JSON of the JSON string the trial reported."""
    value = json.loads(data) if isinstance(data, str) else data
    return json.loads(value) if isinstance(value, str) else value


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def job_form(job: Mapping[str, Any]) -> tuple[int | None, dict[str, Any] | None]:
    """(parameter id, parameters) the manager assigned to ``job`` (its ``hyperParameters``)."""
    for raw in job.get("hyperParameters") or []:
        try:
            form = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            continue
        if isinstance(form, Mapping) and isinstance(form.get("parameters"), dict):
            return _int_or_none(form.get("parameter_id")), dict(form["parameters"])
    return None, None


def job_of_parameter(jobs: Sequence[Mapping[str, Any]], parameter_id: int) -> Mapping[str, Any] | None:
    """The job the manager assigned ``parameter_id`` to (the one ``trial_end`` speaks of).

    Parameter ids can start again at 1 after a resume: of several such jobs, the latest one that
    ended unsuccessfully, else the latest.
    """
    matching = sorted((job for job in jobs if job_form(job)[0] == parameter_id),
                      key=lambda job: _int_or_none(job.get("sequenceId")) or 0)
    ended = [job for job in matching if str(job.get("status")) in UNSUCCESSFUL]
    return (ended or matching or [None])[-1]


def parameters_by_id(jobs: Sequence[Mapping[str, Any]]) -> dict[int, dict[str, Any]]:
    """Every parameter set the manager assigned, by parameter id."""
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


def unsuccessful_outcome(job: Mapping[str, Any], rows: Sequence[Mapping[str, Any]],
                         from_final: Callable[[Any], TrialResult], *, killed_by_assessor: bool = False
                         ) -> tuple[int | None, TrialResult | None]:
    """(parameter id the job trained, its result) for an ended, unsuccessful ``job``.

    ``rows`` are the job's metric rows (``metric-data/<job>``); ``from_final`` turns a final
    result into a :class:`TrialResult` (a trial that reported its own failure keeps its reason).
    ``killed_by_assessor``: the dispatcher sent the assessor's kill for this job, which NNI 3.0's
    local training service may list as USER_CANCELED. The result is None while the job has not ended.
    """
    status = str(job.get("status"))
    if killed_by_assessor and status in ("USER_CANCELED", "EARLY_STOPPED"):
        status = "EARLY_STOPPED"
    periodical = sorted((r for r in rows if r.get("type") == "PERIODICAL"), key=lambda r: int(r.get("sequence") or 0))
    finals = [r for r in rows if r.get("type") == "FINAL"]
    trained = _int_or_none((finals or periodical[-1:] or [{}])[-1].get("parameterId"))
    if trained is None:
        trained = job_form(job)[0]
    if status not in UNSUCCESSFUL:
        return trained, None
    if finals:
        try:
            return trained, from_final(decode_metric(finals[-1].get("data")))
        except ValueError:
            pass
    if status == "EARLY_STOPPED":
        metrics: dict[str, Any] = {}
        if periodical:
            try:
                metrics = last_epoch_metrics(decode_metric(periodical[-1].get("data")))
            except ValueError:
                metrics = {}
        return trained, early_stopped_result(len(periodical), metrics,
                                             by="NNI's assessor" if killed_by_assessor else None)
    return trained, TrialResult.failed(f"trial ended {status} without a final result")


def early_stopped_result(epochs: int | None, metrics: Mapping[str, Any], by: str | None = None) -> TrialResult:
    """An early stop after ``epochs`` per-epoch results (None: not known), with the last one's
    ``metrics``; ``by`` names who stopped it when that is known."""
    if epochs is None:
        return TrialResult.stopped_early("stopped early by NNI's assessor (its last per-epoch result, re-sent by NNI)",
                                         metrics)
    who = by or "NNI (its assessor, or maxTrialDuration)"
    return TrialResult.stopped_early(f"stopped early by {who} after {epochs} per-epoch result{'s' if epochs != 1 else ''}",
                                     metrics)
