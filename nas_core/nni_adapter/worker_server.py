"""A resident worker: runs trials one after another in one warm process.

Started by :mod:`nas_core.nni_adapter.worker_pool` for one slot of a pool; not meant to be run by hand::

    python -m nas_core.nni_adapter.worker_server --socket SLOT.sock --lock SLOT.lock --idle-timeout 120

Each connection is one trial: the client sends its command line, environment and working
directory; the worker adopts that environment and directory, runs :func:`nas_core.nni_adapter.trial.main`
with its output sent back to the client, and answers the exit status. Built evaluators are kept
between trials (keyed on their name, arguments and directory), so torch and the data set are
loaded once per worker instead of once per trial; NNI itself is not imported at all
(:mod:`.trial_io` speaks its HTTP channel with the standard library). An evaluator's ``evaluate`` must not
depend on earlier calls, which :func:`nas_core.run_search` already requires.

The socket appears only once it accepts connections.

If the client goes away during a trial (NNI cancelled it), the worker exits at once, which is the
only sure way to stop a training loop; the slot's next trial starts a new worker. After
``--idle-timeout`` seconds without a trial, the worker exits once it can take the slot's lock
(no client is using or connecting to it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import select
import socket
import sys
import threading
import traceback
from typing import Any

from ..evaluator import Evaluator
from .worker_pool import send_message

CANCELLED_EXIT = 75
"""Exit status of a worker whose client left during a trial."""


class _Relay:
    """A text stream that sends what is written to the client as ``{stream: text}`` messages."""

    def __init__(self, sock: socket.socket, stream: str, lock: threading.Lock) -> None:
        self._sock, self._stream, self._lock = sock, stream, lock

    def write(self, text: str) -> int:
        if text:
            with self._lock:
                send_message(self._sock, {self._stream: text})
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def _watch_client(sock: socket.socket, finished: threading.Event) -> None:
    """Exit the worker if the client disconnects before its trial finished."""
    def watch() -> None:
        try:
            while sock.recv(4096):
                pass
        except OSError:
            pass
        if not finished.is_set():
            os._exit(CANCELLED_EXIT)

    threading.Thread(target=watch, daemon=True, name="client-watch").start()


class NoRequest(Exception):
    """The client closed without a word: it only checked that this worker is alive."""


def _read_request(sock: socket.socket) -> dict[str, Any]:
    """The client's one request line (read byte-exactly, so nothing after it is consumed)."""
    data = bytearray()
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            if not data:
                raise NoRequest()
            raise ConnectionError("the client closed the connection before sending its request")
        data += chunk
    request = json.loads(data)
    if not isinstance(request, dict):
        raise ValueError(f"a request must be a JSON object, got {request!r}")
    return request


def serve_one(sock: socket.socket, evaluators: dict[Any, Evaluator]) -> None:
    """Run the trial one client asked for."""
    from .trial import main as trial_main

    request = _read_request(sock)
    finished = threading.Event()
    _watch_client(sock, finished)
    os.environ.clear()
    os.environ.update(request["env"])
    lock = threading.Lock()
    code = 1
    err = _Relay(sock, "err", lock)
    log_handler = logging.StreamHandler(err)  # type: ignore[arg-type]
    log_handler.setFormatter(logging.Formatter("[%(asctime)s] %(levelname)s (%(name)s) %(message)s"))
    logging.getLogger().addHandler(log_handler)
    try:
        os.chdir(request["cwd"])
        with contextlib.redirect_stdout(_Relay(sock, "out", lock)), \
                contextlib.redirect_stderr(err):  # type: ignore[type-var]
            try:
                code = trial_main(list(request["argv"]), evaluators=evaluators, in_worker=True)
            except BaseException:  # the worker must outlive any trial
                traceback.print_exc()
                code = 1
    finally:
        logging.getLogger().removeHandler(log_handler)
        finished.set()
        with lock:
            send_message(sock, {"exit": code})


def _listen(socket_path: str) -> socket.socket:
    """Listen on ``socket_path``; the path appears only once connections are accepted."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    staging = os.path.join(os.path.dirname(socket_path), f"s{os.getpid()}")  # no longer than the final name
    with contextlib.suppress(FileNotFoundError):
        os.unlink(staging)
    old_umask = os.umask(0o177)
    try:
        listener.bind(staging)
    finally:
        os.umask(old_umask)
    listener.listen(4)
    os.replace(staging, socket_path)  # atomic: replaces a socket left by a worker that died
    return listener


def serve(socket_path: str, lock_path: str, idle_timeout: float) -> int:
    import fcntl

    listener = _listen(socket_path)
    bound = os.stat(socket_path).st_ino
    evaluators: dict[Any, Evaluator] = {}
    print(f"worker {os.getpid()} serving {socket_path}", flush=True)
    while True:
        ready, _, _ = select.select([listener], [], [], idle_timeout)
        if not ready:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue  # a client holds the slot and is about to connect
            listener.close()
            with contextlib.suppress(FileNotFoundError):
                if os.stat(socket_path).st_ino == bound:  # not a newer worker's socket
                    os.unlink(socket_path)
            print(f"worker {os.getpid()} idle for {idle_timeout:.0f} s: exiting", flush=True)
            return 0
        conn, _ = listener.accept()
        with conn:
            try:
                serve_one(conn, evaluators)
            except NoRequest:
                pass
            except (OSError, ValueError, KeyError):
                traceback.print_exc()
                sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nas_core.nni_adapter.worker_server", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--socket", required=True, help="Unix socket to listen on")
    parser.add_argument("--lock", required=True, help="the slot's lock file (taken only to exit when idle)")
    parser.add_argument("--idle-timeout", type=float, required=True, help="seconds without a trial before exiting")
    args = parser.parse_args(argv)
    return serve(args.socket, args.lock, args.idle_timeout)


if __name__ == "__main__":
    sys.exit(main())
