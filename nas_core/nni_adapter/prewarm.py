"""Warm trial workers started while NNI itself starts, for experiments launched from Python.

A trial under NNI's local training service hands its candidate to a resident worker of its slot
(:mod:`nas_core.nni_adapter.worker_pool`); the first trial of each slot would otherwise start that worker
itself and wait for Python, torch, NNI and the data to load (about 2 s on a CPU, benchmark B2).
The launcher knows the trial command before NNI runs any trial, so it starts those workers
during the seconds NNI's manager takes to boot.

The workers must land in the pool the trials will look in, whose key is the trial's command
line, interpreter, working directory and environment. The environment is predicted from what
NNI 3.0's local training service passes to a trial: the launcher's own environment (NNI's
manager inherits it) plus the experiment's ``NNI_*`` variables. A wrong prediction costs
nothing but the warm-up: the trials then start their own workers, as they would under plain
``nnictl create``, and the unused workers exit after their idle timeout.
"""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..nni_names import TRIAL_MODULE


@dataclass(frozen=True)
class TrialLaunch:
    """How NNI will start this experiment's trials: interpreter, ``nas_core.trial`` arguments, directory, environment."""

    executable: str
    argv: list[str]
    cwd: str
    env: dict[str, str]


def predict_trial_launch(config: Any, experiment_id: str, env: Mapping[str, str]) -> TrialLaunch | None:
    """The launch of the trials of ``config`` (a canonical NNI ``ExperimentConfig``), or None when
    they will not use resident workers or the launch cannot be predicted.

    Only a local experiment without GPUs whose trial command is plainly
    ``PYTHON -m nas_core.trial ARGS`` (no shell expansions) qualifies. The trial fields are read
    from the training service, where a canonical config holds them wherever they were written.
    """
    from .trial import make_parser

    service = config.training_service
    if isinstance(service, list) or getattr(service, "platform", None) != "local":
        return None

    def field(name: str) -> Any:
        value = getattr(service, name, None)
        return getattr(config, name, None) if value is None else value

    gpus = field("trial_gpu_number")
    if gpus:
        return None  # trials given GPUs run in their own process (nas_core.trial)
    command = str(field("trial_command") or "")
    if any(char in command for char in "$`\\"):
        return None
    try:
        tokens = shlex.split(command)
    except ValueError:
        return None
    if len(tokens) < 3 or tokens[1:3] != ["-m", TRIAL_MODULE]:
        return None
    executable = shutil.which(tokens[0], path=env.get("PATH"))
    if executable is None:
        return None
    argv = tokens[3:]
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # the trials will report a bad command line themselves
            args = make_parser().parse_args(argv)
    except SystemExit:
        return None
    if args.worker != "auto" or args.arch is not None:
        return None
    code_dir = str(field("trial_code_directory"))
    trial_env = {**env, "NNI_PLATFORM": "local", "NNI_EXP_ID": experiment_id, "NNI_CODE_DIR": code_dir}
    if gpus == 0:
        trial_env["CUDA_VISIBLE_DEVICES"] = ""  # what NNI sets for trialGpuNumber: 0
    return TrialLaunch(executable=executable, argv=argv, cwd=code_dir, env=trial_env)


def prestart_trial_workers(config: Any, experiment_id: str, env: Mapping[str, str] | None = None) -> str:
    """Start warm workers for the first ``trialConcurrency`` slots of this experiment's trials;
    returns a line saying what was done (the launcher may log it)."""
    from .worker_pool import WorkerUnavailable, prestart

    launch = predict_trial_launch(config, experiment_id, dict(os.environ if env is None else env))
    if launch is None:
        return "trial workers: not started ahead (the trials do not use resident workers)"
    try:
        slots = prestart(launch.argv, env=launch.env, cwd=launch.cwd, slots=int(config.trial_concurrency),
                         executable=launch.executable)
    except (WorkerUnavailable, OSError) as err:
        return f"trial workers: not started ahead ({err})"
    except Exception as err:  # noqa: BLE001 - an optimisation must never stop the experiment's start
        return f"trial workers: not started ahead (unexpected {type(err).__name__}: {err})"
    return f"trial workers: started {len(slots)} ahead of the first trials"
