"""Hand a trial to a resident worker process, so that trials do not each pay for Python start-up.

A fresh trial process imports torch and NNI and loads its data before it trains anything; on a
small candidate that costs as much as the training (see docs/benchmarks.md, B2). The trial
command therefore stays a thin client: it takes a free *slot* of a pool, connects to that slot's
worker (started on first use, kept warm between trials), forwards its command line, environment
and working directory, relays the worker's output and exits with the trial's exit status.

A pool belongs to one set of trials that may share a process: same Python, same working
directory, same trial arguments and same environment apart from the variables NNI sets per trial
(so each experiment gets its own pool; a trial given GPUs does not use a pool at all, see
:func:`nas_core.nni_adapter.trial.main`). A slot is held by an exclusive file lock for the whole trial, so a
worker serves one trial at a time. Everything here is standard library only: the client must start in milliseconds.

Failure handling:

* no worker can be started (no Unix sockets, unsafe pool folder, the worker dies on start-up):
  :func:`run_in_worker` raises :class:`WorkerUnavailable` and the caller runs the trial in its
  own process;
* the worker dies during a trial: the trial fails with the reason and the worker's log file;
* the trial process is stopped (NNI cancels it): the worker sees the connection close, stops the
  trial by exiting, and the slot's next trial starts a new worker.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

PER_TRIAL_ENV = frozenset({
    "NNI_OUTPUT_DIR", "NNI_SYS_DIR", "NNI_TRIAL_COMMAND_CHANNEL", "NNI_TRIAL_JOB_ID", "NNI_TRIAL_SEQ_ID",
    "NNI_CODE_DIR", "PWD", "OLDPWD", "SHLVL", "_", "PS1", "PS2", "COLUMNS", "LINES",
})
"""Variables left out of a pool's key: NNI's per-trial ones, what shells set or unset (bash drops
the prompts when not interactive and may set the terminal size), and NNI_CODE_DIR (the working
directory, which the key holds resolved)."""

IDLE_TIMEOUT_ENV = "NAS_CORE_WORKER_IDLE_S"
DEFAULT_IDLE_TIMEOUT_S = 120.0
MAX_SLOTS = 64
START_TIMEOUT_S = 300.0


class WorkerUnavailable(RuntimeError):
    """No resident worker can serve this trial; it should run in its own process."""


def supported() -> bool:
    """Resident workers need Unix sockets and ``fcntl`` locks (Linux, macOS)."""
    try:
        import fcntl  # noqa: F401
    except ImportError:
        return False
    return hasattr(socket, "AF_UNIX")


def pool_key(argv: Sequence[str], env: Mapping[str, str], cwd: str) -> str:
    """Identity of the trials that may share a worker: interpreter, directory, arguments, shared environment."""
    shared_env = sorted((k, v) for k, v in env.items() if k not in PER_TRIAL_ENV)
    blob = json.dumps([sys.executable, os.path.realpath(cwd), list(argv), shared_env])
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def pools_root() -> Path:
    """Private folder of this user's pools (short, so socket paths stay within the OS limit)."""
    return Path(tempfile.gettempdir()) / f"nas_core-workers-{os.getuid()}"


def _private_dir(path: Path) -> Path:
    """Create ``path`` readable by this user only, or refuse a folder someone else could use."""
    path.mkdir(mode=0o700, parents=False, exist_ok=True)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise WorkerUnavailable(f"{path} is not a private folder of this user; not using resident workers")
    return path


def pool_dir(key: str) -> Path:
    root = _private_dir(pools_root())
    return _private_dir(root / key)


def idle_timeout(env: Mapping[str, str] | None = None) -> float:
    """The idle timeout the environment sets (``NAS_CORE_WORKER_IDLE_S``, default 120 s)."""
    text = (os.environ if env is None else env).get(IDLE_TIMEOUT_ENV)
    if not text:
        return DEFAULT_IDLE_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        raise WorkerUnavailable(f"{IDLE_TIMEOUT_ENV}={text!r} is not a number of seconds") from None
    if not value > 0:
        raise WorkerUnavailable(f"{IDLE_TIMEOUT_ENV}={text!r} must be positive")
    return value


def _try_lock_slot(directory: Path, slot: int) -> int | None:
    """The file descriptor holding slot ``slot``'s lock, or None when another process holds it."""
    import fcntl

    fd = os.open(directory / f"slot-{slot}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _take_slot(directory: Path) -> tuple[int, int]:
    """Lock the first free slot; returns (slot number, file descriptor holding the lock)."""
    for slot in range(MAX_SLOTS):
        fd = _try_lock_slot(directory, slot)
        if fd is not None:
            return slot, fd
    raise WorkerUnavailable(f"all {MAX_SLOTS} worker slots of {directory} are busy")


def _connect(path: Path) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError as err:
        sock.close()
        if err.errno in (errno.ENOENT, errno.ECONNREFUSED):
            return None
        raise
    return sock


def _spawn_worker(directory: Path, slot: int, env: Mapping[str, str], cwd: str) -> subprocess.Popen[bytes]:
    """Start the slot's worker, detached (NNI must not kill it with the trial); the caller holds the slot."""
    sock_path = directory / f"slot-{slot}.sock"
    sock_path.unlink(missing_ok=True)  # left by a worker that died; we hold the slot, none is alive
    command = [sys.executable, "-m", "nas_core.nni_adapter.worker_server", "--socket", str(sock_path),
               "--lock", str(directory / f"slot-{slot}.lock"), "--idle-timeout", str(idle_timeout(env))]
    with open(directory / f"slot-{slot}.log", "ab") as log:
        return subprocess.Popen(command, cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _start_worker(directory: Path, slot: int, env: Mapping[str, str], cwd: str) -> socket.socket:
    """Start the slot's worker and connect."""
    process = _spawn_worker(directory, slot, env, cwd)
    sock_path, log_path = directory / f"slot-{slot}.sock", directory / f"slot-{slot}.log"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        sock = _connect(sock_path)
        if sock is not None:
            return sock
        if process.poll() is not None:
            raise WorkerUnavailable(f"the worker exited with status {process.returncode} on start-up; "
                                    f"see {log_path}:\n{_tail(log_path)}")
        time.sleep(0.02)
    process.kill()
    raise WorkerUnavailable(f"the worker did not start within {START_TIMEOUT_S:.0f} s; see {log_path}")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def send_message(sock: socket.socket, message: Mapping[str, Any]) -> None:
    sock.sendall(json.dumps(message).encode("utf-8") + b"\n")


def read_messages(sock: socket.socket) -> Any:
    """Yield the JSON messages (one per line) the other side sends, until it closes."""
    with sock.makefile("rb") as stream:
        for line in stream:
            yield json.loads(line)


def run_in_worker(argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | None = None,
                  out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    """Run ``python -m nas_core.trial ARGV`` in a resident worker; returns the trial's exit status.

    Raises :class:`WorkerUnavailable` when no worker can be had; the caller then runs the trial
    itself.
    """
    if not supported():
        raise WorkerUnavailable("this platform has no Unix sockets or fcntl locks")
    env = dict(os.environ if env is None else env)
    cwd = os.getcwd() if cwd is None else cwd
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    directory = pool_dir(pool_key(argv, env, cwd))
    slot, lock_fd = _take_slot(directory)
    try:
        sock = _connect(directory / f"slot-{slot}.sock") or _start_worker(directory, slot, env, cwd)
        with sock:
            send_message(sock, {"argv": list(argv), "env": env, "cwd": cwd})
            for message in read_messages(sock):
                if "out" in message:
                    out.write(message["out"])
                    out.flush()
                elif "err" in message:
                    err.write(message["err"])
                    err.flush()
                elif "exit" in message:
                    return int(message["exit"])
        err.write(f"error: the resident worker of slot {slot} died during the trial; its log "
                  f"{directory / f'slot-{slot}.log'} ends with:\n{_tail(directory / f'slot-{slot}.log')}\n")
        return 1
    finally:
        os.close(lock_fd)
