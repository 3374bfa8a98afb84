"""A stand-in for NNI 3.0's trial command channel (the trial keeper's HTTP endpoint).

The trial PUTs commands (``request_parameter``, ``metric``) to its URL and GETs the keeper's
answers (``parameter``; 408 when none is ready yet). Tests give each fake trial a URL of its own
and read back the metrics it sent.

Like the local training service, it also serves the manager's REST API for a trial job
(``GET /api/v1/nni/trial-jobs/<id>``: the parameters the trial was submitted with, or an empty
body while the manager has not stored the record yet). ``fifo=True`` answers parameter requests
as NNI 3.0 does, from one queue in submission order whichever trial asks (the cause of swapped
parameters); ``manager_api=False`` plays a remote machine's trial keeper, which has no REST API.
``faults[trial]`` lists what the next look-ups of that trial job meet instead of an answer (an
HTTP status such as 503; ``"reset"``: the connection closed unanswered; ``"html"``: a page that is
not JSON), and ``lookups[trial]`` counts them; ``js_numbers=True``
serves the record as NNI's JavaScript re-serialises it (``1.0`` as ``1``, integers beyond 2**53
rounded). ``prefix`` puts everything under a URL prefix (``nnictl create --url_prefix``); the
manager's ``trial-jobs`` list and ``experiment`` profile (``GET``, ``PUT``) are served there too.
"""

from __future__ import annotations

import json
import queue
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def js_json(value: Any) -> Any:
    """``value`` as JavaScript's ``JSON.parse`` then ``JSON.stringify`` give it back."""
    if isinstance(value, dict):
        return {k: js_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [js_json(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2 ** 53:
        return int(float(value))
    return value


class FakeTrialChannel:
    def __init__(self, *, fifo: bool = False, manager_api: bool = True, js_numbers: bool = False,
                 prefix: str = "") -> None:
        self.parameters: dict[str, dict[str, Any]] = {}  # trial id -> parameter record
        self.submitted: list[str] = []  # trials in submission order (the FIFO's order)
        self.unrecorded: dict[str, int] = {}  # trial id -> REST answers still empty before its record
        self.faults: dict[str, list[int | str]] = defaultdict(list)  # trial id -> what its next look-ups meet
        self.fifo = fifo
        self.manager_api = manager_api
        self.js_numbers = js_numbers
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.experiment: dict[str, Any] = {"params": {"maxTrialNumber": 100}}
        self.experiment_updates: list[str] = []  # the update_type of every PUT experiment
        self.metrics: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.requested: list[str] = []  # trials that asked for their parameters, in order
        self.lookups: dict[str, int] = defaultdict(int)  # trial id -> look-ups of its trial job
        self._answers: dict[str, queue.Queue] = defaultdict(queue.Queue)
        channel = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_PUT(self) -> None:
                trial = self.path.rsplit("/", 1)[-1]
                command = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path.startswith(f"{channel.prefix}/api/v1/nni/experiment?update_type="):
                    channel.experiment = command
                    channel.experiment_updates.append(self.path.rsplit("=", 1)[-1])
                    self._json(None)
                    return
                if command["type"] == "request_parameter":
                    given = channel.submitted[len(channel.requested)] if channel.fifo else trial
                    record = channel.parameters[given]
                    channel.requested.append(trial)
                    channel._answers[trial].put({"type": "parameter", "parameter": json.dumps(record)})
                elif command["type"] == "metric":
                    metric = json.loads(command["metric"])
                    metric["value"] = json.loads(metric["value"])
                    channel.metrics[trial].append(metric)
                self.send_response(200)
                self.end_headers()

            def do_GET(self) -> None:
                trial = self.path.rsplit("/", 1)[-1]
                api = f"{channel.prefix}/api/v1/nni/"
                if self.path.startswith(api + "trial-jobs/"):
                    self._trial_job(trial)
                    return
                if self.path in (api + "trial-jobs", api + "experiment"):
                    self._json(channel.experiment if self.path.endswith("experiment") else channel.jobs())
                    return
                if not self.path.startswith(f"{channel.prefix}/env/"):
                    self.send_response(404)
                    self.end_headers()
                    return
                try:
                    answer = channel._answers[trial].get(timeout=1.0)
                except queue.Empty:
                    self.send_response(408)
                    self.end_headers()
                    return
                body = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _json(self, value: Any) -> None:
                body = json.dumps(value).encode() if value is not None else b""
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _trial_job(self, trial: str) -> None:
                channel.lookups[trial] += 1
                if not channel.manager_api:
                    self.send_response(404)
                    self.end_headers()
                    return
                if channel.faults[trial]:
                    fault = channel.faults[trial].pop(0)
                    if fault == "reset":
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    if fault == "html":
                        self.send_response(200)
                        self.end_headers()
                        self.wfile.write(b"<html>not the manager</html>")
                        return
                    self.send_response(int(fault))
                    self.end_headers()
                    return
                job = None
                if channel.unrecorded.get(trial, 0) > 0:
                    channel.unrecorded[trial] -= 1
                elif trial in channel.parameters:
                    job = channel.job(trial)
                self._json(job)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def add_trial(self, trial: str, parameter_id: int, params: dict[str, Any]) -> dict[str, str]:
        """Register a trial; returns the environment NNI's local training service would give it."""
        self.parameters[trial] = {"parameter_id": parameter_id, "parameter_source": "algorithm",
                                  "parameters": params, "parameter_index": 0}
        self.submitted.append(trial)
        port = self._server.server_address[1]
        return {"NNI_PLATFORM": "local", "NNI_EXP_ID": "fakeexp", "NNI_TRIAL_JOB_ID": trial,
                "NNI_TRIAL_SEQ_ID": str(parameter_id),
                "NNI_TRIAL_COMMAND_CHANNEL": f"http://127.0.0.1:{port}{self.prefix}/env/fakeenv/{trial}",
                "NNI_OUTPUT_DIR": f"/tmp/{trial}", "NNI_SYS_DIR": f"/tmp/{trial}"}

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def job(self, trial: str) -> dict[str, Any]:
        """The manager's trial job record of ``trial``, as ``GET trial-jobs`` lists it."""
        record = js_json(self.parameters[trial]) if self.js_numbers else self.parameters[trial]
        return {"trialJobId": trial, "sequenceId": self.parameters[trial]["parameter_id"], "status": "RUNNING",
                "hyperParameters": [json.dumps(record)]}

    def jobs(self) -> list[dict[str, Any]]:
        return [self.job(trial) for trial in self.submitted]

    def finals(self, trial: str) -> list[dict[str, Any]]:
        return [m for m in self.metrics[trial] if m["type"] == "FINAL"]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
