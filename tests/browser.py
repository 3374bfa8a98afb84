"""Headless Chromium for tests: find or install it, and drive it through the DevTools protocol.

``ensure_chromium()`` returns the browser's path, installing Debian's ``chromium`` with apt when it
is missing and this process is root; otherwise it raises ``BrowserUnavailable`` with the reason
(tests turn that into a skip). ``.ci/install-browser`` does the same install for CI.

``Browser`` starts Chromium headless with a fresh profile and talks the DevTools protocol over
``--remote-debugging-pipe`` (file descriptors 3 and 4, JSON messages ended by a NUL byte), so no
debugging port is opened and no extra package is needed.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# the flags this machine needs (no sandbox as root, no GPU, no background connections out)
HEADLESS_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
)
INSTALL_TIMEOUT = 900.0

_install_failure: str | None = None


class BrowserUnavailable(RuntimeError):
    """No Chromium here and none can be installed; the message says why."""


class BrowserError(RuntimeError):
    """The browser failed, answered a DevTools call with an error, or a wait timed out."""


def find_chromium() -> str | None:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def ensure_chromium(timeout: float = INSTALL_TIMEOUT) -> str:
    """The path of a Chromium binary, installing Debian's package with apt as root if none is found."""
    global _install_failure
    path = find_chromium()
    if path:
        return path
    if _install_failure is not None:  # tried once in this process already
        raise BrowserUnavailable(_install_failure)
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        _install_failure = "chromium is not installed and installing it needs root (run .ci/install-browser as root)"
    elif shutil.which("apt-get") is None:
        _install_failure = "chromium is not installed and there is no apt-get to install it with"
    else:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        command = "apt-get update -q && apt-get install -y -q --no-install-recommends chromium"
        try:
            done = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True,
                                  timeout=timeout)
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
                _install_failure = f"apt-get install chromium failed ({done.returncode}): {' / '.join(tail)}"
        except subprocess.TimeoutExpired:
            _install_failure = f"apt-get install chromium took more than {timeout:.0f} s"
        path = find_chromium()
        if path:
            return path
        _install_failure = _install_failure or "apt-get installed chromium but no chromium binary is on PATH"
    raise BrowserUnavailable(_install_failure)


class Browser:
    """One headless Chromium with one page, driven over the DevTools protocol.

    Use as a context manager; ``evaluate`` runs JavaScript in the page and returns its value,
    ``wait_for`` polls a JavaScript expression until it is truthy.
    """

    def __init__(self, executable: str | None = None, *, width: int = 1400, height: int = 1000) -> None:
        self.executable = executable or ensure_chromium()
        self.width, self.height = width, height
        self._tmp = tempfile.TemporaryDirectory(prefix="chromium-")  # profile and Chromium's own log
        self.profile = Path(self._tmp.name) / "profile"
        self.log_path = Path(self._tmp.name) / "chromium.log"
        self._next_id = 0
        self._buffer = b""
        self.events: list[dict[str, Any]] = []
        self.console: list[str] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._session: str | None = None

    # ------------------------------------------------------------------ process
    def __enter__(self) -> Browser:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        to_child_r, to_child_w = os.pipe()    # we write commands, Chromium reads them on fd 3
        from_child_r, from_child_w = os.pipe()  # Chromium writes replies on fd 4, we read them

        def child_fds() -> None:  # runs in the child before exec
            high_r, high_w = os.dup(to_child_r), os.dup(from_child_w)
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        args = [self.executable, *HEADLESS_FLAGS, f"--user-data-dir={self.profile}",
                f"--window-size={self.width},{self.height}", "--remote-debugging-pipe", "about:blank"]
        self._log = open(self.log_path, "wb")
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                                      pass_fds=(3, 4), preexec_fn=child_fds)
        os.close(to_child_r)
        os.close(from_child_w)
        self._write_fd, self._read_fd = to_child_w, from_child_r
        targets = self.call("Target.getTargets")["targetInfos"]
        pages = [t for t in targets if t["type"] == "page"]
        target_id = pages[0]["targetId"] if pages else self.call("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.call("Target.attachToTarget", targetId=target_id, flatten=True)["sessionId"]
        for domain in ("Page.enable", "Runtime.enable"):
            self.call(domain)
        self.call("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height,
                  deviceScaleFactor=1, mobile=False)

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            self._send({"id": self._new_id(), "method": "Browser.close"})
            proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait(timeout=10)
        finally:
            for fd in (self._write_fd, self._read_fd):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._log.close()
            self._tmp.cleanup()

    def log_tail(self, lines: int = 5) -> str:
        try:
            return " / ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return ""

    # ------------------------------------------------------------------ protocol
    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._write_fd, data):]

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._read_fd], [], [], left)[0]:
                raise BrowserError("no answer from Chromium in time")
            chunk = os.read(self._read_fd, 1 << 20)
            if not chunk:
                code = self._proc.poll() if self._proc else None
                raise BrowserError(f"Chromium exited (code {code}): {self.log_tail()}")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        """Send one DevTools command (to the page once attached) and return its result."""
        if self._proc is None:
            raise BrowserError("the browser is not running")
        message: dict[str, Any] = {"id": self._new_id(), "method": method, "params": params}
        if self._session is not None and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self._session
        self._send(message)
        deadline = time.monotonic() + timeout
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == message["id"]:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._note_event(reply)

    def _note_event(self, event: dict[str, Any]) -> None:
        if event.get("method") == "Runtime.consoleAPICalled":
            args = event["params"].get("args", [])
            self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in args))
        elif event.get("method") == "Runtime.exceptionThrown":
            self.console.append(str(event["params"]["exceptionDetails"].get("exception", {}).get("description")))
        self.events.append(event)

    # ------------------------------------------------------------------ page
    def goto(self, url: str, timeout: float = 30.0) -> None:
        result = self.call("Page.navigate", url=url)
        if result.get("errorText"):
            raise BrowserError(f"cannot open {url}: {result['errorText']}")
        self.wait_for("document.readyState === 'complete'", timeout=timeout)

    def evaluate(self, expression: str, timeout: float = 30.0) -> Any:
        """The value of a JavaScript expression in the page (awaited when it is a promise)."""
        result = self.call("Runtime.evaluate", timeout=timeout, expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise BrowserError(f"{expression[:80]!r}: {details.get('exception', {}).get('description') or details}")
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 30.0, poll: float = 0.25) -> Any:
        """Poll a JavaScript expression until it is truthy (in JavaScript's sense); returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            truthy, value = self.evaluate(f"((v) => v ? [true, v] : [false, null])({expression})")
            if truthy:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"timed out after {timeout:.0f} s waiting for {expression!r}")
            time.sleep(poll)

    def click(self, element: str) -> None:
        """Click the element a JavaScript expression gives; the click runs after this call returns.

        Running the click from a timer keeps a slow handler (a re-render, a dialog) from holding up
        the DevTools answer; wait for its effect with ``wait_for``.
        """
        found = self.evaluate(f"((el) => {{ if (!el) return false; setTimeout(() => el.click(), 0); return true; }})"
                              f"({element})")
        if not found:
            raise BrowserError(f"nothing to click: {element}")

    def screenshot(self, path: str | Path, *, full_page: bool = False) -> Path:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
        data = self.call("Page.captureScreenshot", **params)["data"]
        path = Path(path)
        path.write_bytes(base64.b64decode(data))
        return path
