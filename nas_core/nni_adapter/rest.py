"""The few calls to the NNI manager's REST API (``/api/v1/nni/...``) this project makes."""

from __future__ import annotations

import json
import logging
import re
import time
import urllib.error
import urllib.request
from typing import Any

from .trial_outcome import ENDED_STATUSES, decode_metric

_logger = logging.getLogger("nas_core.rest")


def port_from_channel(url: str) -> int | None:
    """The manager's port from the tuner channel URL ``ws://localhost:PORT[/prefix]/tuner``."""
    match = re.match(r"^wss?://[^/:]+:(\d+)(/|$)", url or "")
    return int(match.group(1)) if match else None


def request(port: int, method: str, api: str, body: Any = None, *, prefix: str = "", timeout: float = 20.0) -> Any:
    parts = [f"http://127.0.0.1:{port}", prefix.strip("/"), "api/v1/nni", api.lstrip("/")]
    url = "/".join(p for p in parts if p)
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method.upper(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        payload = resp.read()
    return json.loads(payload) if payload else None


def get(port: int, api: str, **kw: Any) -> Any:
    return request(port, "GET", api, **kw)


def submitted_keys(jobs: list[dict[str, Any]], field: str) -> set[str]:
    """Candidate hashes found in the parameters of the manager's trial jobs."""
    keys: set[str] = set()
    for job in jobs:
        for raw in job.get("hyperParameters") or []:
            try:
                params = json.loads(raw).get("parameters") or {}
            except (TypeError, ValueError, AttributeError):
                continue
            if isinstance(params, dict) and field in params:
                keys.add(str(params[field]))
    return keys




def ended_candidates(jobs: list[dict[str, Any]], field: str) -> dict[str, dict[str, Any]]:
    """Candidate hash -> the job that ran it, for jobs in a terminal status (:data:`ENDED_STATUSES`)."""
    ended: dict[str, dict[str, Any]] = {}
    for job in jobs:
        if str(job.get("status")) not in ENDED_STATUSES:
            continue
        for key in submitted_keys([job], field):
            ended[key] = job
    return ended


def final_value_for(jobs: list[dict[str, Any]], field: str, key: str) -> Any:
    """The final result stored for any job that ran candidate ``key``, or None."""
    for job in jobs:
        if key in submitted_keys([job], field):
            value = final_value(job)
            if value is not None:
                return value
    return None


def final_value(job: dict[str, Any]) -> Any:
    """The final result a job reported (the whole dict), or None."""
    for metric in job.get("finalMetricData") or []:
        try:
            return decode_metric(metric.get("data"))
        except (TypeError, ValueError):
            continue
    return None


def cancel_unfinished(port: int, attempts: int = 60, delay: float = 2.0) -> int:
    """Cancel every trial job of the manager on ``port`` that has not ended; returns how many.

    For an experiment that went to ERROR: NNI's manager then stops following its running trials,
    which would stay listed RUNNING for good, though a trial a resume re-submitted (``ADD_RESUMED``)
    may still be started a moment later. So this looks again every ``delay`` seconds while any job
    has not ended, cancelling those RUNNING or WAITING, up to ``attempts`` looks.
    """
    cancelled: set[str] = set()
    for _ in range(attempts):
        try:
            jobs = get(port, "trial-jobs") or []
        except (OSError, ValueError) as err:
            _logger.warning("cannot list the trial jobs to cancel: %s", err)
            break
        if all(str(job.get("status")) in ENDED_STATUSES for job in jobs):
            break
        for job in jobs:
            job_id = str(job.get("trialJobId"))
            if str(job.get("status")) in ("RUNNING", "WAITING") and job_id not in cancelled:
                try:
                    request(port, "DELETE", f"trial-jobs/{job_id}")
                    cancelled.add(job_id)
                    _logger.info("cancelled trial job %s", job_id)
                except (OSError, ValueError) as err:
                    _logger.warning("cannot cancel trial job %s: %s", job_id, err)
        time.sleep(delay)
    return len(cancelled)


def parameter_id_of(job: dict[str, Any]) -> Any:
    """The parameter id NNI sent to a trial job (its first parameter set), or None."""
    for raw in job.get("hyperParameters") or []:
        try:
            return json.loads(raw).get("parameter_id")
        except (TypeError, ValueError, AttributeError):
            continue
    return None


def final_value_of(jobs: list[dict[str, Any]], parameter_id: Any) -> Any:
    """The final result the manager stored for the job of ``parameter_id``, or None."""
    for job in jobs:
        if parameter_id_of(job) == parameter_id:
            value = final_value(job)
            if value is not None:
                return value
    return None


def cap_trial_number(port: int, sent: set[str], field: str, attempts: int = 30, delay: float = 2.0) -> bool:
    """Set ``maxTrialNumber`` to the jobs submitted plus those sent but not yet submitted.

    NNI then reaches DONE once running trials end, instead of waiting for trials the finished
    strategy will never propose.
    """
    for _ in range(attempts):
        try:
            jobs = get(port, "trial-jobs") or []
            missing = len(sent - submitted_keys(jobs, field))
            profile = get(port, "experiment")
            target = len(jobs) + missing
            current = profile["params"].get("maxTrialNumber")
            if current is None or current > target:
                profile["params"]["maxTrialNumber"] = target
                request(port, "PUT", "experiment?update_type=MAX_TRIAL_NUM", profile)
                _logger.info("strategy finished: maxTrialNumber %s -> %s", current, target)
            return True
        except (urllib.error.URLError, OSError, KeyError, ValueError) as err:
            _logger.warning("cannot update maxTrialNumber yet: %s", err)
            time.sleep(delay)
    _logger.error("strategy finished but maxTrialNumber could not be updated; stop the experiment with nnictl stop")
    return False
