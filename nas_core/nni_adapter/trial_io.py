"""Trial-side NNI calls: parameters in, intermediate and final results out.

A :class:`TrialSession` is one trial's conversation with NNI, built from the environment NNI gave
that trial rather than from ``nni.trial``'s module globals. That is what lets a resident worker
(:mod:`nas_core.nni_adapter.worker_server`) run many trials one after another in one process: each gets its
own session from the environment its trial process forwarded.
"""

from __future__ import annotations

import os
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


class TrialSession:
    """Parameters and metrics of one NNI trial, identified by the environment NNI set for it."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = dict(os.environ if env is None else env)
        if has_http_channel(env):
            from nni.runtime.trial_command_channel.v3 import TrialCommandChannelV3

            self._channel: Any = TrialCommandChannelV3(env["NNI_TRIAL_COMMAND_CHANNEL"])
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
