"""Trial workers warmed up on the cores NNI's own start-up leaves idle, for experiments launched from Python.

The first trial of each slot would otherwise start its resident worker itself
(:mod:`.worker_pool`) and wait for Python, torch and the data to load: about 2.5 s of every
slot's time on the default digits job, during which nothing trains. NNI's start-up before the
first trial (launcher, manager, tuner, one after the other) keeps one core busy for several
seconds, so the launcher, which knows the trial command, warms the workers then, one at a time
per idle core (:func:`spare_cores`): fewer than that would leave a core idle, more would slow
NNI's start-up, which is what made starting them all at once gain no wall time (docs/benchmarks.md, B2).

The workers must land in the pool the trials will look in, whose key is the trial's command
line, interpreter, working directory and environment. The environment is predicted from what
NNI 3.0's local training service passes to a trial: the launcher's own environment (NNI's
manager inherits it) plus the experiment's ``NNI_*`` variables. A wrong prediction costs
nothing but the warm-up: the trials then start their own workers, as they do under plain
``nnictl create``, and the unused workers exit after their idle timeout.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shlex
import shutil
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..nni_names import TRIAL_MODULE

_log = logging.getLogger(__name__)


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
        return None  # trials given GPUs run in their own process (nas_core.nni_adapter.trial)
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


def spare_cores() -> int:
    """The cores this process may use, less the one NNI's start-up keeps busy."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 1
    return usable - 1


def prestart_trial_workers(config: Any, experiment_id: str, env: Mapping[str, str] | None = None,
                           cores: int | None = None) -> str:
    """Start warming workers for the first ``trialConcurrency`` slots of this experiment's trials in
    a background thread, at most ``cores`` (default :func:`spare_cores`) at a time; returns a line
    saying what was decided (the launcher shows it). Whatever goes wrong is only logged: this
    saves time, it must never stop an experiment."""
    from .worker_pool import supported

    launch = predict_trial_launch(config, experiment_id, dict(os.environ if env is None else env))
    if launch is None:
        return "trial workers: not started ahead (the trials do not use resident workers)"
    if not supported():
        return "trial workers: not started ahead (this platform has no Unix sockets or fcntl locks)"
    at_once = spare_cores() if cores is None else cores
    if at_once < 1:
        return "trial workers: not started ahead (no core to spare while NNI starts)"
    slots = int(config.trial_concurrency)
    thread = threading.Thread(target=_warm, args=(launch, slots, at_once), daemon=True, name="prestart-workers")
    thread.start()
    return (f"trial workers: warming {slots} ahead of the first trials, {min(at_once, slots)} at a time "
            f"(NNI's own start-up keeps a core)")


def _warm(launch: TrialLaunch, slots: int, at_once: int) -> None:
    from .worker_pool import prestart

    try:
        started = prestart(launch.argv, env=launch.env, cwd=launch.cwd, slots=slots, at_once=at_once,
                           executable=launch.executable)
    except Exception as err:  # noqa: BLE001 - the trials then start their own workers
        _log.warning("trial workers not started ahead: %s", err)
        return
    _log.info("trial workers warmed up ahead in slots %s", started)
