"""What NNI tells a trial process through its environment, read without importing anything heavy.

The thin client of :mod:`.trial` checks these before handing its trial to a resident worker; it
runs once per trial, so it must not pay for :mod:`.trial_io`'s HTTP stack (about 30 ms a trial).
"""

from __future__ import annotations

import os
from collections.abc import Mapping


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
