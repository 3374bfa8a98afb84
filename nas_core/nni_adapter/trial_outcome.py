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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..strategy import TrialResult
from .rest import ENDED_STATUSES, decode_metric, job_parameters  # the manager's formats, kept in rest
from .trial import RESULT_FIELDS

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
    form = job_parameters(dict(job))
    if form is None:
        return None, None
    return int_or_none(form.get("parameter_id")), dict(form["parameters"])


def job_identity(job: Mapping[str, Any]) -> dict[str, Any]:
    """The job's id and Trial No. as :meth:`~nas_core.driver.SearchDriver.complete` keeps them
    (``external_id``, ``external_number``), for a trial that reported no final result echoing them."""
    known: dict[str, Any] = {}
    if job.get("trialJobId") is not None:
        known["external_id"] = str(job["trialJobId"])
    if int_or_none(job.get("sequenceId")) is not None:
        known["external_number"] = int_or_none(job.get("sequenceId"))
    return known


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


def outcome(job: Mapping[str, Any], rows: Sequence[Mapping[str, Any]] | None, *, killed_by_assessor: bool = False,
            assessor: str | None = None, from_final: Callable[[Any], TrialResult] = result_from_value
            ) -> Outcome | None:
    """How ``job`` (a ``trial-jobs`` record) ended, from its metric rows (``metric-data/<job>``:
    ``parameterId``, ``type``, ``sequence``, ``data``; None: not read, when only the job's stored
    final result, ``finalMetricData``, is known); None while it has not ended.

    ``killed_by_assessor``: the dispatcher sent the assessor's kill for this job. ``assessor``: the
    experiment's assessor, when who cancelled a job is not known. ``from_final`` turns a final
    result into a :class:`TrialResult` (default :func:`result_from_value`).
    """
    status = str(job.get("status"))
    if status not in ENDED_STATUSES:
        return None
    known = rows is not None
    if rows is None:
        rows = [{**r, "type": "FINAL"} for r in job.get("finalMetricData") or []]
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
    epochs = len(periodical) if known else None
    if status == "EARLY_STOPPED" or (status == "USER_CANCELED" and killed_by_assessor):
        return Outcome(trained, early_stopped_result(epochs, metrics, by="NNI's assessor" if killed_by_assessor else None))
    if status == "USER_CANCELED" and assessor:
        return Outcome(trained, early_stopped_result(
            epochs, metrics, by=f"its assessor {assessor} or by a user (NNI lists both as USER_CANCELED)"))
    log = f" (its log: {job['logPath']}/trial.log)" if job.get("logPath") else ""
    if status == "SUCCEEDED":
        return Outcome(trained, TrialResult.failed(f"trial succeeded but reported no final result{log}"))
    return Outcome(trained, TrialResult.failed(f"trial ended {status} without a final result{log}"))


def early_stopped_result(epochs: int | None, metrics: Mapping[str, Any], by: str | None = None) -> TrialResult:
    """An early stop after ``epochs`` per-epoch results (None: not known), with the last one's
    ``metrics``; ``by`` names who stopped it when that is known."""
    who = by or "NNI (its assessor, or maxTrialDuration)"
    if epochs is None:
        return TrialResult.stopped_early(f"stopped early by {who}", metrics)
    return TrialResult.stopped_early(f"stopped early by {who} after {epochs} per-epoch result{'s' if epochs != 1 else ''}",
                                     metrics, epochs)
