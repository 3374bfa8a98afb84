"""Trial-side NNI calls: parameters in, intermediate and final results out."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any


def in_nni_trial() -> bool:
    """True inside a trial process started by an NNI training service."""
    return bool(os.environ.get("NNI_PLATFORM")) and os.environ.get("NNI_PLATFORM") != "unittest"


def get_parameters() -> dict[str, Any] | None:
    import nni

    params = nni.get_next_parameter()
    return dict(params) if params else None


def report_intermediate(metrics: Mapping[str, Any]) -> None:
    import nni

    nni.report_intermediate_result(dict(metrics))


def report_final(metrics: Mapping[str, Any]) -> None:
    import nni

    nni.report_final_result(dict(metrics))
