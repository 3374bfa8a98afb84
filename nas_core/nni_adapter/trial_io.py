"""Trial-side NNI calls: parameters in, intermediate and final results out.

A :class:`TrialSession` is one trial's conversation with NNI, built from the environment NNI gave
that trial rather than from ``nni.trial``'s module globals. That is what lets a resident worker
(:mod:`nas_core.nni_adapter.worker_server`) run many trials one after another in one process: each gets its
own session from the environment its trial process forwarded.

Over NNI 3.0's HTTP channel (local and remote training services) the session speaks NNI's wire
format itself with the standard library (:class:`HttpTrialChannel`), so a trial, and the resident
worker that runs it, never imports ``nni`` (about 0.5 s idle, 1.4 s on a loaded machine, in every
worker's first trial); only a payload that plain JSON cannot carry brings NNI in.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any


def in_nni_trial(env: Mapping[str, str] | None = None) -> bool:
    """True inside a trial process started by an NNI training service."""
    platform = (os.environ if env is None else env).get("NNI_PLATFORM")
    return bool(platform) and platform != "unittest"


def has_http_channel(env: Mapping[str, str] | None = None) -> bool:
    """True when the trial talks to NNI over HTTP (local and remote training services of NNI 3.0).

    Only such a trial can be served by a resident worker: its channel is a URL that any process
    may use, while the older file-based channel is tied to the trial's own process.
    """
    url = (os.environ if env is None else env).get("NNI_TRIAL_COMMAND_CHANNEL") or ""
    return url.startswith("http://")


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

    def _send(self, command: Mapping[str, Any]) -> None:
        request = urllib.request.Request(self._url, data=json.dumps(command).encode(), method="PUT",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request) as response:
            response.read()

    def _receive(self) -> dict[str, Any] | None:
        while True:
            try:
                with urllib.request.urlopen(self._url) as response:
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


class TrialSession:
    """Parameters and metrics of one NNI trial, identified by the environment NNI set for it."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = dict(os.environ if env is None else env)
        if has_http_channel(env):
            self._channel: Any = HttpTrialChannel(env["NNI_TRIAL_COMMAND_CHANNEL"])
        else:  # file-based channel of the older training services; bound to this process's environment
            from nni.runtime.trial_command_channel import get_default_trial_command_channel

            self._channel = get_default_trial_command_channel()
        self._trial_id = env.get("NNI_TRIAL_JOB_ID")
        self._parameter_id: int | None = None
        self._sequence = 0

    def get_parameters(self) -> dict[str, Any] | None:
        """This trial's parameters, or None when NNI has none for it."""
        record = self._channel.receive_parameter()
        if record is None:
            return None
        self._parameter_id = record.get("parameter_id")
        params = record.get("parameters")
        return dict(params) if params else None

    def report_intermediate(self, metrics: Mapping[str, Any]) -> None:
        self._send("PERIODICAL", self._sequence, metrics)
        self._sequence += 1

    def report_final(self, metrics: Mapping[str, Any]) -> None:
        self._send("FINAL", 0, metrics)

    def _send(self, kind: str, sequence: int, metrics: Mapping[str, Any]) -> None:
        self._channel.send_metric(type=kind, parameter_id=self._parameter_id, trial_job_id=self._trial_id,
                                  sequence=sequence, value=dict(metrics))
