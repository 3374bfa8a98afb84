"""The calls to the NNI manager's REST API (``[/prefix]/api/v1/nni/...``) this project makes.

Imports only the standard library: the trial side (:mod:`.trial_io`) uses it too, to read the
manager's record of its own trial job, and a trial must start quickly.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import time
import urllib.error
import urllib.request
from typing import Any

_logger = logging.getLogger("nas_core.rest")

API_PATH = "api/v1/nni"
"""The REST API's path under the manager's URL prefix."""

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def urlopen(url: str | urllib.request.Request, timeout: float | None = None) -> Any:
    """``urllib.request.urlopen`` without proxies, for every call to NNI's manager and trial keeper:
    an ``http_proxy`` set for downloads must not carry them (a proxy cannot reach a manager on
    127.0.0.1, and should not see the experiment's data)."""
    return _OPENER.open(url, timeout=timeout) if timeout is not None else _OPENER.open(url)



def _ws_match(url: str, tail: str) -> re.Match[str] | None:
    return re.match(rf"^wss?://(?P<host>[^/:]+|\[[^\]/]+\]):(?P<port>\d+)(?P<prefix>(?:/[^/]+)*?)/(?:{tail})/?$", url or "")


def api_root(port: int, prefix: str = "", host: str = "127.0.0.1") -> str:
    """The REST API root of the manager listening on ``host:port`` under URL ``prefix``."""
    parts = [f"http://{host}:{port}", prefix.strip("/"), API_PATH]
    return "/".join(p for p in parts if p)


def api_root_from_ws(url: str, tail: str, *, host: str | None = None) -> str | None:
    """The REST API root of the manager whose WebSocket URL is ``url``
    (``ws://host:port[/prefix]/<tail>``, ``tail`` a regular expression of the endpoint's path),
    keeping the URL prefix; ``host`` replaces the URL's host. None when ``url`` is not of that shape."""
    match = _ws_match(url, tail)
    if match is None:
        return None
    return api_root(int(match.group("port")), match.group("prefix"), host or match.group("host"))


def tuner_api_root(channel: str) -> str | None:
    """The manager's REST API root from the tuner's channel URL ``ws://localhost:PORT[/prefix]/tuner``
    (``NNI_TUNER_COMMAND_CHANNEL``), on 127.0.0.1: the tuner runs on the manager's machine."""
    return api_root_from_ws(channel, "tuner", host="127.0.0.1")


def request(root: int | str, method: str, api: str, body: Any = None, *, prefix: str = "",
            timeout: float = 20.0) -> Any:
    """``method`` on ``api`` of the manager's REST API, with a JSON ``body``; the decoded JSON reply,
    or None for an empty one.

    ``root``: the API root (:func:`api_root`, :func:`tuner_api_root`), or the port of a manager on
    this machine, then under URL ``prefix``. Raises ``urllib.error.HTTPError`` for an error status,
    ``OSError`` (``URLError``, timeouts, resets, a broken reply...) when the manager does not answer
    properly, and ``ValueError``
    when the reply is not JSON. No proxy is used.
    """
    base = api_root(root, prefix) if isinstance(root, int) else root.rstrip("/")
    url = f"{base}/{api.lstrip('/')}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method.upper(), headers={"Content-Type": "application/json"})
    try:
        with urlopen(req, timeout=timeout) as resp:
            payload = resp.read()
    except http.client.HTTPException as err:  # a broken reply (IncompleteRead...) is not an OSError
        raise OSError(f"broken reply from {url}: {err!r}") from err
    return json.loads(payload) if payload.strip() else None


def get(root: int | str, api: str, **kw: Any) -> Any:
    return request(root, "GET", api, **kw)


def job_parameters(job: Any) -> dict[str, Any] | None:
    """The parameter record the manager submitted trial job ``job`` with (``parameter_id``,
    ``parameters``...: the first of its ``hyperParameters``, what the web UI shows), or None when
    it has none that reads as one.

    The manager keeps it as the JSON text the tuner sent, re-serialised by its JavaScript, so
    numbers may not be spelled as sent (``1.0`` reads back as ``1``).
    """
    raw = (job.get("hyperParameters") or [None])[0] if isinstance(job, dict) else None
    try:
        record = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("parameters"), dict):
        return None
    return record


ENDED_STATUSES = frozenset({"SUCCEEDED", "FAILED", "USER_CANCELED", "SYS_CANCELED", "EARLY_STOPPED"})
"""A trial job's terminal statuses in NNI 3.0. Any other (WAITING, RUNNING, UNKNOWN, and
``ADD_RESUMED``, which a trial re-submitted by a resume carries until the training service is up)
means it has not ended yet. The one table of them (:mod:`.trial_outcome` uses it too)."""


def decode_metric(data: Any) -> Any:
    """A metric's ``data`` as the manager stores it: the JSON of the JSON string the trial reported."""
    value = json.loads(data) if isinstance(data, str) else data
    return json.loads(value) if isinstance(value, str) else value


def submitted_keys(jobs: list[dict[str, Any]], field: str) -> set[str]:
    """Candidate hashes found in the parameters of the manager's trial jobs."""
    keys: set[str] = set()
    for job in jobs:
        record = job_parameters(job)
        if record is not None and field in record["parameters"]:
            keys.add(str(record["parameters"][field]))
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
    """The final result stored for candidate ``key``, or None.

    A job's result is the candidate's when it echoes ``key`` (the candidate the trial really
    trained), or, echoing none, when the job was handed ``key`` in its parameters. A success is
    preferred to a reported failure (a candidate re-run after a resume may hold both).
    """
    found: list[Any] = []
    for job in jobs:
        value = final_value(job)
        if value is None:
            continue
        echoed = value.get("candidate") if isinstance(value, dict) else None
        if echoed is not None and str(echoed) == key or echoed is None and key in submitted_keys([job], field):
            found.append(value)
    return next((v for v in found if not reported_failure(v)), found[0] if found else None)


def reported_failure(value: Any) -> bool:
    """Whether a trial's final result says it failed (our trial's ``status: failed``)."""
    return isinstance(value, dict) and value.get("status") == "failed"


def final_value(job: dict[str, Any]) -> Any:
    """The final result a job reported (the whole dict), or None."""
    for metric in job.get("finalMetricData") or []:
        try:
            return decode_metric(metric.get("data"))
        except (TypeError, ValueError):
            continue
    return None


def cancel_unfinished(root: int | str, attempts: int = 60, delay: float = 2.0, *, grace: int = 3) -> int:
    """Cancel the trial jobs of the manager at ``root`` (as for :func:`request`) that have not
    ended, while it shows ERROR; returns how many.

    For an experiment that went to ERROR: NNI's manager then stops following its running trials,
    which would stay listed RUNNING for good. Each look first asks the manager's status
    (``check-status``): a healthy experiment's trials are never touched (NNI's ``report_error``
    swallows a failure to send, so the error may never have reached the manager), and the first
    ``grace`` looks wait for the error to arrive. It looks again every ``delay`` seconds, up to
    ``attempts`` looks, while a job is RUNNING or WAITING, or, for ``grace`` looks, while trials a
    resume re-submitted (``ADD_RESUMED``) may still be started.
    """
    cancelled: set[str] = set()
    seen_error = False
    only_resumed = 0
    for look in range(attempts):
        try:
            status = (get(root, "check-status") or {}).get("status")
            jobs = get(root, "trial-jobs") or [] if status == "ERROR" else []
        except (OSError, ValueError, AttributeError) as err:
            _logger.warning("cannot list the trial jobs to cancel: %s", err)
            break
        if status != "ERROR":
            if seen_error or look + 1 >= grace:
                break
            time.sleep(delay)
            continue
        seen_error = True
        unfinished = [job for job in jobs if str(job.get("status")) not in ENDED_STATUSES]
        if not unfinished:
            break
        if all(str(job.get("status")) == "ADD_RESUMED" for job in unfinished):
            only_resumed += 1
            if only_resumed > grace:
                break
        else:
            only_resumed = 0
        for job in unfinished:
            job_id = str(job.get("trialJobId"))
            if str(job.get("status")) in ("RUNNING", "WAITING") and job_id not in cancelled:
                try:
                    request(root, "DELETE", f"trial-jobs/{job_id}")
                    cancelled.add(job_id)
                    _logger.info("cancelled trial job %s", job_id)
                except (OSError, ValueError) as err:
                    _logger.warning("cannot cancel trial job %s: %s", job_id, err)
        time.sleep(delay)
    return len(cancelled)


def submitted_sets(jobs: list[dict[str, Any]], field: str) -> set[tuple[int, str]]:
    """(parameter id, candidate hash) of every parameter set the manager's trial jobs were submitted with."""
    pairs: set[tuple[int, str]] = set()
    for job in jobs:
        record = job_parameters(job)
        if record is not None and field in record["parameters"]:
            try:
                pairs.add((int(record["parameter_id"]), str(record["parameters"][field])))
            except (KeyError, TypeError, ValueError):
                continue
    return pairs


def cap_trial_number(root: int | str, sent: set[tuple[int, str]], field: str, attempts: int = 30,
                     delay: float = 2.0) -> bool:
    """Set ``maxTrialNumber`` to the jobs submitted plus the parameter sets sent (``sent``: parameter
    id and candidate hash of each) but not yet submitted.

    NNI then reaches DONE once running trials end, instead of waiting for trials the finished
    strategy will never propose. A set is told by its id and its candidate together: a candidate
    proposed again has a job already, under another id, and after a resume ids are handed out again.
    """
    for _ in range(attempts):
        try:
            jobs = get(root, "trial-jobs") or []
            missing = len(sent - submitted_sets(jobs, field))
            profile = get(root, "experiment")
            target = len(jobs) + missing
            current = profile["params"].get("maxTrialNumber")
            if current is None or current > target:
                profile["params"]["maxTrialNumber"] = target
                request(root, "PUT", "experiment?update_type=MAX_TRIAL_NUM", profile)
                _logger.info("strategy finished: maxTrialNumber %s -> %s", current, target)
            return True
        except (OSError, KeyError, ValueError, TypeError, AttributeError) as err:
            _logger.warning("cannot update maxTrialNumber yet: %s", err)
            time.sleep(delay)
    _logger.error("strategy finished but maxTrialNumber could not be updated; stop the experiment with nnictl stop")
    return False
