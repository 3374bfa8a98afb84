"""Launching and watching an NNI experiment from a standard config file.

The web server is bound to 127.0.0.1 unless asked otherwise: NNI itself listens on every
interface without authentication, so a small script loaded into its node process
(``NODE_OPTIONS=--require loopback.js``) passes the host to every ``listen`` call.

A second script (``manager_poll.js``) shortens the loop on which NNI's manager notices finished
trials and starts queued ones, from its fixed 0.5 s to 0.02 s: with trials of a few seconds that
wait is a tenth of every slot's time (benchmark B2). The shorter loop costs NNI's node process
about 1 % of one core (measured with one trial running: 1.4 % at 0.02 s, 0.3 % at 0.1 s). It is
used with our own tuner only (:func:`manager_poll_for`).

NNI's launch has two start-up windows fixed for an idle machine: its launcher gives the manager
3 s to answer (then "Create experiment failed"), and the manager gives the tuner process 10 s to
connect. On a loaded machine both were seen to fail a launch, so :func:`start` waits up to
``MANAGER_START_S`` for the manager and a third script (``tuner_wait.js``) gives the tuner
``NAS_CORE_TUNER_CONNECT_S`` seconds (default 120).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import rest
from .trial_outcome import ENDED_STATUSES

_log = logging.getLogger(__name__)

LOOPBACK_SHIM = Path(__file__).with_name("loopback.js")
MANAGER_POLL_SHIM = Path(__file__).with_name("manager_poll.js")
TUNER_WAIT_SHIM = Path(__file__).with_name("tuner_wait.js")
MANAGER_START_S = 120.0
"""How long :func:`start` waits for NNI's manager to answer (NNI's own launcher: 3 s)."""
_POLL_LIMITS = json.loads(MANAGER_POLL_SHIM.with_suffix(".json").read_text(encoding="utf-8"))
DEFAULT_MANAGER_POLL_S: float = _POLL_LIMITS["default"]
MANAGER_POLL_RANGE: tuple[float, float] = (_POLL_LIMITS["min"], _POLL_LIMITS["max"])
"""Seconds allowed for the manager's loop (``manager_poll.json``, which the node shim reads too)."""
TERMINAL = ("DONE", "ERROR", "STOPPED")


def check_manager_poll(seconds: object) -> float:
    """``seconds`` as a float if it is an allowed manager poll interval; ValueError naming it otherwise."""
    low, high = MANAGER_POLL_RANGE
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not low <= seconds <= high:
        raise ValueError(f"manager poll interval must be a number of seconds in [{low}, {high}], got {seconds!r}")
    return float(seconds)


def parse_manager_poll(text: str) -> float | None:
    """A command-line manager poll interval: seconds, or ``nni`` (None) for NNI's own 0.5 s.

    Raises ValueError naming the value when it is neither.
    """
    if text.strip().lower() == "nni":
        return None
    try:
        seconds = float(text)
    except ValueError:
        raise ValueError(f"manager poll interval must be a number of seconds, got {text!r}") from None
    return check_manager_poll(seconds)


def manager_poll_for(config: Any, requested: float | None) -> tuple[float | None, str | None]:
    """The manager loop to use with ``config``'s tuner, and a line saying why when it is not ``requested``.

    With a short loop a trial's end is sent to the tuner milliseconds after its result, and NNI's
    dispatcher handles the two on different threads, so the end can be handled first. Our
    StrategyTuner waits for a result that arrives after its trial's end; NNI's own tuners do not
    (TPE then fails on a KeyError and the experiment hangs), so they keep NNI's 0.5 s loop.
    """
    if requested is None:
        return None, None
    check_manager_poll(requested)
    from .tuner import is_strategy_tuner

    class_name, name = getattr(config.tuner, "class_name", None), getattr(config.tuner, "name", None)
    if is_strategy_tuner(class_name, name):
        return requested, None
    label = name or class_name or "(none)"
    return None, (f"manager loop: NNI's own 0.5 s instead of {requested} s, since tuner {label} may fail when a "
                  "trial's end reaches it before the trial's result")


def bind_environment(host: str | None, *, manager_poll: float | None = DEFAULT_MANAGER_POLL_S) -> None:
    """Set up the environment of NNI processes started from this process.

    ``host``: make NNI's servers listen on this address only (None: every interface).
    ``manager_poll``: seconds between the manager's looks at trial ends for the local training
    service (None: NNI's own 0.5 s). The tuner gets ``NAS_CORE_TUNER_CONNECT_S`` (default 120 s)
    instead of NNI's 10 s to connect, whatever the tuner. Also puts this interpreter's directory first on PATH so
    that ``python3`` in a trial command is the interpreter that has this project installed.
    """
    poll = None if manager_poll is None else check_manager_poll(manager_poll)
    bin_dir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if path.split(os.pathsep)[:1] != [bin_dir]:
        os.environ["PATH"] = bin_dir + os.pathsep + path
    shims = (str(LOOPBACK_SHIM), str(MANAGER_POLL_SHIM), str(TUNER_WAIT_SHIM))
    options = [o for o in os.environ.get("NODE_OPTIONS", "").split() if not any(shim in o for shim in shims)]
    options.append(f"--require={TUNER_WAIT_SHIM}")
    if host is None:
        os.environ.pop("NAS_CORE_BIND_HOST", None)
    else:
        os.environ["NAS_CORE_BIND_HOST"] = host
        options.append(f"--require={LOOPBACK_SHIM}")
    if poll is None:
        os.environ.pop("NAS_CORE_NNI_POLL_S", None)
    else:
        os.environ["NAS_CORE_NNI_POLL_S"] = repr(poll)
        options.append(f"--require={MANAGER_POLL_SHIM}")
    os.environ["NODE_OPTIONS"] = " ".join(options)


@contextlib.contextmanager
def patient_manager_check(seconds: float = MANAGER_START_S) -> Iterator[None]:
    """While NNI launches an experiment, let its launcher wait up to ``seconds`` for the manager.

    NNI 3.0's ``launcher._check_rest_server`` tries three times a second apart; a manager that
    needs longer to boot (a loaded machine) fails the launch. Replaced for the ``with`` block only.
    """
    from nni.experiment import launcher

    original = launcher._check_rest_server

    def check(port: int, retry: int = 3, url_prefix: str | None = None) -> None:
        deadline = time.monotonic() + seconds
        while True:
            try:
                rest.get(port, "check-status", prefix=url_prefix or "", timeout=5.0)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    launcher._check_rest_server = check
    try:
        yield
    finally:
        launcher._check_rest_server = original


@dataclass
class Outcome:
    experiment_id: str
    status: str
    experiment_dir: Path
    trials: Counter[str]
    errors: list[str]


def quiet_nni_logging() -> None:
    """NNI's experiment logger prints every step to the console; keep warnings only."""
    for name in ("nni", "nni.experiment", "nni.runtime"):
        logging.getLogger(name).setLevel(logging.WARNING)


class ResumeRefused(ValueError):
    """``search --resume`` cannot continue the experiment; the message (one line) says why."""


def resumable_config(config: Any, experiment_id: str) -> Any:
    """The saved config of stopped experiment ``experiment_id`` (found under ``config``'s working
    directory), after checking that it can be resumed: :class:`ResumeRefused`, one line, saying why not.

    With our tuner its search state must be intact: a missing or unreadable one is refused here,
    before NNI starts (the tuner refuses it too, under ``nnictl resume``). An experiment that never
    submitted a trial never wrote one either: there is nothing to continue.
    """
    import sqlite3

    import psutil
    from nni.experiment import launcher
    from nni.tools.nnictl.config_utils import Experiments

    from .tuner import ResumeError, is_strategy_tuner, read_resumable_state, state_path_of

    working_dir = Path(config.canonical_copy().experiment_working_directory)
    label = f"--resume {experiment_id!r}"
    try:
        exp_dir = working_dir / experiment_id
        if not (exp_dir / "db").is_dir():
            raise ResumeRefused(f"{label}: no experiment of that id under {working_dir}")
        info = Experiments().get_all_experiments().get(experiment_id) or {}
        pid = info.get("pid")
        if info.get("status") != "STOPPED" and isinstance(pid, int) and psutil.pid_exists(pid):
            raise ResumeRefused(f"{label}: the experiment is still running (nnictl stop {experiment_id})")
        try:
            saved = launcher.get_stopped_experiment_config(experiment_id, exp_dir=working_dir)
        except (ValueError, TypeError, KeyError, AttributeError, AssertionError) as err:
            # NNI rebuilds it with ExperimentConfig(**saved): an unknown field is an AttributeError
            raise ResumeRefused(f"{label}: cannot read its saved config ({one_line(err)})") from None
        if is_strategy_tuner(getattr(saved.tuner, "class_name", None), getattr(saved.tuner, "name", None)):
            state = state_path_of(exp_dir, saved.tuner)
            try:
                read_resumable_state(state, exp_dir)
            except ResumeError as err:
                raise ResumeRefused(f"{label}: {err}") from None
    except (OSError, sqlite3.Error) as err:
        raise ResumeRefused(f"{label}: cannot read the experiment under {working_dir} ({one_line(err)})") from None
    return saved


def one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def start(config_path: str | Path, *, port: int, host: str | None, experiment_id: str | None = None,
          manager_poll: float | None = DEFAULT_MANAGER_POLL_S, say: Callable[[str], None] | None = None,
          resume: bool = False) -> Any:
    """Start the experiment described by ``config_path`` in the background; returns it.

    ``manager_poll``: see :func:`bind_environment`; NNI's own tuners keep NNI's loop
    (:func:`manager_poll_for`). ``say`` is given the lines that tell what was decided (they are
    logged at INFO level otherwise). ``resume``: continue the stopped experiment ``experiment_id``
    with its saved config (:func:`resumable_config`, which raises :class:`ResumeRefused` when it cannot be).
    """
    from nni.experiment import Experiment, ExperimentConfig

    config = ExperimentConfig.load(str(config_path))
    if resume:
        if experiment_id is None:
            raise ValueError("resuming needs the experiment's id")
        config = resumable_config(config, experiment_id)
    manager_poll, note = manager_poll_for(config, manager_poll)
    bind_environment(host, manager_poll=manager_poll)
    experiment = Experiment(config, id=experiment_id)
    if resume:
        experiment._action = "resume"  # as nnictl resume does: NNI's manager reloads the experiment
    tell = say or _log.info
    if note is not None:
        tell(note)
    with patient_manager_check():
        experiment.start(port)
    return experiment


def experiment_dir(experiment: Any) -> Path:
    config = experiment.config.canonical_copy()
    return Path(config.experiment_working_directory) / experiment.id


def trial_counts(port: int) -> Counter[str]:
    jobs = rest.get(port, "trial-jobs") or []
    return Counter(str(job.get("status")) for job in jobs)


def finished_trials(counts: Counter[str]) -> int:
    """How many trials have ended, from their counts by status: a trial a resume submitted again
    (``ADD_RESUMED``) has not, it runs again."""
    return sum(n for status, n in counts.items() if status in ENDED_STATUSES)


def wait(experiment: Any, *, poll: float = 2.0, progress: bool = True, timeout: float | None = None) -> Outcome:
    """Poll the manager until the experiment is DONE, ERROR or STOPPED, showing progress."""
    port = experiment.port
    total = experiment.config.max_trial_number
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="trials", unit="trial")
    started = time.monotonic()
    status, counts, errors = "UNKNOWN", Counter[str](), []
    shown: tuple[object, ...] = ()
    try:
        while True:
            info = rest.get(port, "check-status") or {}
            status = str(info.get("status"))
            errors = list(info.get("errors") or [])
            if bar is not None:  # the trial list only when it is shown: a short poll stays one request
                counts = trial_counts(port)
                finished = finished_trials(counts)
                if (finished, status, counts.get("FAILED", 0)) != shown:
                    shown = (finished, status, counts.get("FAILED", 0))
                    bar.n = finished
                    bar.set_postfix(status=status, failed=counts.get("FAILED", 0), refresh=False)
                    bar.refresh()
            if status in TERMINAL:
                counts = trial_counts(port)
                break
            if timeout is not None and time.monotonic() - started > timeout:
                raise TimeoutError(f"experiment {experiment.id} still {status} after {timeout:.0f} s")
            time.sleep(poll)
    finally:
        if bar is not None:
            bar.close()
    return Outcome(experiment.id, status, experiment_dir(experiment), counts, errors)
