"""Trial-side NNI calls: parameters in, intermediate and final results out.

A :class:`TrialSession` is one trial's conversation with NNI, built from the environment NNI gave
that trial rather than from ``nni.trial``'s module globals. That is what lets a resident worker
(:mod:`nas_core.nni_adapter.worker_server`) run many trials one after another in one process: each gets its
own session from the environment its trial process forwarded.

Over NNI 3.0's HTTP channel (local and remote training services) the session speaks NNI's wire
format itself with the standard library (:class:`HttpTrialChannel`), so a trial, and the resident
worker that runs it, never imports ``nni`` (about 0.5 s idle, 1.4 s on a loaded machine, in every
worker's first trial); only a payload that plain JSON cannot carry brings NNI in.

NNI 3.0's local and remote training services answer a trial's parameter request with the head
of one queue of submitted parameters, whichever trial asks (``training_service/v3/compat.js``),
so two trials started together can receive each other's parameters while the manager, its REST
API and the web UI keep showing the ones each trial was submitted with. A session therefore still
asks the channel (that keeps NNI's queue in step), but then trains what the manager recorded for
its own trial job (:class:`ManagerRecord`), and reports its metrics under that parameter id. The
record only chooses the set: when it names the set the channel gave, the channel's parameters are
trained as received (the manager's copy went through its JavaScript, which may respell numbers).

Every trial must come to the same choice, or two trials train one set and another set is never
trained: a trial that cannot read its record while others can is the harm. So the session waits
out what may pass (no connection, a reset, a timeout, a 5xx, a record not stored yet) and trains
the channel's set only on an answer that holds for every trial alike (no manager address, 404,
a reply that is not JSON) or when the wait is over.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from . import rest
from .trial_env import has_http_channel

MANAGER_RECORD_WAIT_S = 30.0
"""How long a trial waits for the manager's record of its trial job: the manager stores it just
after starting the trial's process, so a fast trial can ask first, and a busy manager may answer
late or not at all for a while."""
MANAGER_REQUEST_TIMEOUT_S = 10.0
"""The longest one request to the manager may take within that wait."""


def import_nni_quietly() -> None:
    """Import NNI without letting it set this process up as one trial.

    Imported in a trial's environment, NNI sends the root logger to that trial's ``trial.log``
    and replaces ``sys.stdout`` for good; a resident worker serves many trials, so NNI is imported
    under NNI's own "configure nothing" platform (a no-op once NNI is imported).
    """
    saved = os.environ.get("NNI_PLATFORM")
    os.environ["NNI_PLATFORM"] = "unittest"
    try:
        import nni  # noqa: F401
    finally:
        if saved is None:
            os.environ.pop("NNI_PLATFORM", None)
        else:
            os.environ["NNI_PLATFORM"] = saved


def _has_marker(value: Any) -> bool:
    """True when a JSON value holds a ``__name__`` key: how NNI's serializer (json_tricks, and NNI's
    own ``__nni_type__``...) marks a value that plain JSON cannot carry."""
    if isinstance(value, dict):
        return (any(key.startswith("__") and key.endswith("__") and len(key) > 4 for key in value)
                or any(_has_marker(v) for v in value.values()))
    if isinstance(value, list):
        return any(_has_marker(v) for v in value)
    return False


def decode_payload(text: str) -> Any:
    """A string NNI's serializer (``nni.dump``) wrote: plain JSON is read here; anything it encoded
    specially (numpy arrays, sets, pickled objects...) is handed to ``nni.load``."""
    value = json.loads(text)
    if _has_marker(value):
        import_nni_quietly()
        import nni

        return nni.load(text)
    return value


def encode_payload(value: Any) -> str:
    """``value`` as NNI's serializer (``nni.dump``) writes it: plain JSON when it is plain data
    (the same text), otherwise ``nni.dump``'s own encoding."""
    try:
        return json.dumps(value, allow_nan=True)
    except TypeError:  # numpy scalars, sets...: NNI's serializer knows them
        import_nni_quietly()
        import nni

        return nni.dump(value)


class HttpTrialChannel:
    """NNI 3.0's HTTP trial command channel, spoken with the standard library.

    Mirrors ``nni.runtime.trial_command_channel.v3.TrialCommandChannelV3`` over NNI's
    ``HttpChannel`` (``ts/nni_manager/common/command_channel/http.ts`` on the manager's side):
    a command is a JSON object sent with ``PUT`` to the trial's URL; ``GET`` on it long-polls for
    the next one (200: a command; 408: nothing yet, ask again; 410: the channel is closed).
    """

    def __init__(self, url: str) -> None:
        if not url.startswith("http://"):
            raise ValueError(f"NNI trial channel must be an http:// URL, got {url!r}")
        self._url = url

    @property
    def url(self) -> str:
        return self._url

    def _send(self, command: Mapping[str, Any]) -> None:
        request = urllib.request.Request(self._url, data=json.dumps(command).encode(), method="PUT",
                                         headers={"Content-Type": "application/json"})
        with rest.urlopen(request) as response:
            response.read()

    def _receive(self) -> dict[str, Any] | None:
        while True:
            try:
                with rest.urlopen(self._url) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as err:
                if err.code == 408:
                    continue
                if err.code == 410:
                    return None
                raise OSError(f"NNI trial channel {self._url} answered HTTP {err.code}") from None

    def receive_parameter(self) -> dict[str, Any] | None:
        """The trial's parameter record (``parameter_id``, ``parameters``...), or None when closed."""
        self._send({"type": "request_parameter"})
        command = self._receive()
        if command is None:
            return None
        if command.get("type") != "parameter":
            raise OSError(f"NNI trial channel sent {command.get('type')!r} where a parameter was expected")
        return decode_payload(command["parameter"])

    def send_metric(self, *, type: str, parameter_id: int | None, trial_job_id: str | None,  # noqa: A002
                    sequence: int, value: Mapping[str, Any]) -> None:
        metric = {"parameter_id": parameter_id, "trial_job_id": trial_job_id, "type": type,
                  "sequence": sequence, "value": encode_payload(dict(value))}
        self._send({"type": "metric", "metric": encode_payload(metric)})


_CHANNEL_URL = re.compile(r"^(?P<root>http://[^/]+(?:/.*)?)/env/[^/]+/(?P<trial>[^/]+)/?$")
_MANAGER_CHANNEL_TAIL = "platform/[^/]+/[^/]+"


def manager_api_root(env: Mapping[str, str]) -> str | None:
    """The NNI manager's REST API root (``http://host:port[/prefix]/api/v1/nni``) for the trial
    whose environment is ``env``, or None when it cannot be told.

    On the local training service the trial's channel (``.../env/<environment>/<trial>``) is served
    by the manager's own web server. On a remote machine it is served by the machine's trial keeper,
    which has no REST API; the keeper's launch file, two folders above the trial's output folder,
    names the manager's address (its command channel ``ws://host:port[/prefix]/platform/...``).
    """
    if env.get("NNI_PLATFORM") == "remote":
        return _remote_manager_root(env.get("NNI_OUTPUT_DIR") or "")
    match = _CHANNEL_URL.match(env.get("NNI_TRIAL_COMMAND_CHANNEL") or "")
    return f"{match.group('root')}/{rest.API_PATH}" if match else None


def _remote_manager_root(output_dir: str) -> str | None:
    """The manager's REST API root from the newest trial keeper launch file of this trial's environment."""
    if not output_dir:
        return None
    environment = Path(output_dir).parent.parent
    try:
        launches = sorted(environment.glob("trial_keeper*/launcher_config.json"), key=lambda p: p.stat().st_mtime)
        channel = json.loads(launches[-1].read_text(encoding="utf-8"))["managerCommandChannel"] if launches else ""
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return rest.api_root_from_ws(channel, _MANAGER_CHANNEL_TAIL) if isinstance(channel, str) else None


class ManagerUnavailable(Exception):
    """The manager's record of this trial cannot be had; the message says why."""


class ManagerRecord:
    """What the NNI manager recorded for one trial job: the parameter record it was submitted with
    (what the web UI and ``GET /api/v1/nni/trial-jobs`` show as the trial's parameters)."""

    def __init__(self, api_root: str, trial_job_id: str, *, wait: float = MANAGER_RECORD_WAIT_S,
                 poll: float = 0.1) -> None:
        self._root = api_root
        self._api = f"trial-jobs/{trial_job_id}"
        self._url = f"{api_root}/{self._api}"
        self._wait = wait
        self._poll = poll

    def fetch(self) -> dict[str, Any]:
        """The parameter record (``parameter_id``, ``parameters``...) the manager holds for the
        trial, waiting up to ``wait`` seconds for it.

        What may pass is waited out: no connection, a reset, a timeout, an HTTP 5xx, an empty
        answer (the manager has not stored the trial job yet). Raises :class:`ManagerUnavailable`
        at once on an answer that will not change (HTTP 4xx, e.g. a remote trial keeper's 404; a
        reply that is not JSON, or a record that does not read as parameters), and when the wait
        is over.
        """
        deadline = time.monotonic() + self._wait
        waiting_for = "no answer"
        while True:
            timeout = min(MANAGER_REQUEST_TIMEOUT_S, max(deadline - time.monotonic(), 0.05))
            try:
                job = rest.get(self._root, self._api, timeout=timeout)
            except urllib.error.HTTPError as err:
                if err.code < 500:
                    raise ManagerUnavailable(f"{self._url} answered HTTP {err.code}") from None
                waiting_for = f"HTTP {err.code}"
            except ValueError:
                raise ManagerUnavailable(f"{self._url} answered something that is not JSON") from None
            except (OSError, http.client.HTTPException) as err:  # URLError, reset, timeout, broken reply
                waiting_for = str(getattr(err, "reason", None) or err or type(err).__name__)
            else:
                waiting_for = "no parameters recorded"  # an empty answer: the trial job is not stored yet
                if job is not None and not (isinstance(job, dict) and not job.get("hyperParameters")):
                    record = rest.job_parameters(job)
                    if record is None:
                        raise ManagerUnavailable(f"{self._url}: its parameters are not a parameter record: {job!r}")
                    return record
            left = deadline - time.monotonic()
            if left <= 0:
                raise ManagerUnavailable(f"{self._url}: {waiting_for} after {self._wait:g} s")
            time.sleep(min(self._poll, left))


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr)


class TrialSession:
    """Parameters and metrics of one NNI trial, identified by the environment NNI set for it.

    ``manager_wait``: seconds to wait for the manager's record of this trial (:class:`ManagerRecord`);
    ``warn`` is told (one line, default: stderr, i.e. the trial's log) when the session falls back to
    the channel's parameters, and when the channel's differ from the manager's.
    """

    def __init__(self, env: Mapping[str, str] | None = None, *, manager_wait: float = MANAGER_RECORD_WAIT_S,
                 warn: Callable[[str], None] = _to_stderr) -> None:
        env = dict(os.environ if env is None else env)
        self._trial_id = env.get("NNI_TRIAL_JOB_ID")
        self._manager: ManagerRecord | None = None
        if has_http_channel(env):
            self._channel: Any = HttpTrialChannel(env["NNI_TRIAL_COMMAND_CHANNEL"])
            root = manager_api_root(env)
            if root is not None and self._trial_id:
                self._manager = ManagerRecord(root, self._trial_id, wait=manager_wait)
        else:  # file-based channel of the older training services; bound to this process's environment
            from nni.runtime.trial_command_channel import get_default_trial_command_channel

            self._channel = get_default_trial_command_channel()
        self._http = has_http_channel(env)
        self._number = _sequence_number(env.get("NNI_TRIAL_SEQ_ID"))
        self._warn = warn
        self._parameter_id: int | None = None
        self._sequence = 0

    def identity(self) -> dict[str, Any]:
        """This trial's job id and sequence number (the web UI's Trial No.), as far as NNI told them."""
        known: dict[str, Any] = {}
        if self._trial_id:
            known["trial_job"] = self._trial_id
        if self._number is not None:
            known["trial_number"] = self._number
        return known

    def get_parameters(self) -> dict[str, Any] | None:
        """This trial's parameters, or None when NNI has none for it.

        Over the HTTP channel these are the parameters the manager recorded for this trial job,
        not necessarily those the channel handed over (see the module's docstring); when the
        manager's record cannot be had (its address unknown or unreachable), the channel's, with a
        warning.
        """
        record = self._channel.receive_parameter()
        if record is None:
            return None
        if self._http:
            record = self._recorded(record)
        self._parameter_id = record.get("parameter_id")
        params = record.get("parameters")
        return dict(params) if params else None

    def _recorded(self, received: dict[str, Any]) -> dict[str, Any]:
        """The parameter record to train: the one the manager holds for this trial (``received``
        itself when it is that set), or ``received``, with a warning, when the manager cannot say."""
        if self._manager is None:
            self._warn(f"warning: cannot find the NNI manager's address (trial channel {self._channel.url}); training the "
                       "parameters the channel gave, which NNI may show on another trial")
            return received
        try:
            recorded = self._manager.fetch()
        except ManagerUnavailable as err:
            self._warn(f"warning: cannot look up this trial's parameters at the NNI manager ({err}); training those the "
                       "channel gave, which NNI may show on another trial")
            return received
        if recorded.get("parameter_id") == received.get("parameter_id"):
            return received  # as sent: the manager's copy may spell numbers otherwise (1.0 as 1)
        self._warn(f"note: NNI's channel gave this trial parameter set {received.get('parameter_id')}, but the manager "
                   f"submitted it with {recorded.get('parameter_id')}: training the manager's")
        return recorded

    def report_intermediate(self, metrics: Mapping[str, Any]) -> None:
        self._send("PERIODICAL", self._sequence, metrics)
        self._sequence += 1

    def report_final(self, metrics: Mapping[str, Any]) -> None:
        self._send("FINAL", 0, metrics)

    def _send(self, kind: str, sequence: int, metrics: Mapping[str, Any]) -> None:
        self._channel.send_metric(type=kind, parameter_id=self._parameter_id, trial_job_id=self._trial_id,
                                  sequence=sequence, value=dict(metrics))


def _sequence_number(text: str | None) -> int | None:
    """NNI's trial sequence number from ``NNI_TRIAL_SEQ_ID`` (NNI writes -1 when it has none)."""
    try:
        number = int(text or "")
    except ValueError:
        return None
    return number if number >= 0 else None
