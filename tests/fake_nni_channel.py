"""A stand-in for NNI 3.0's trial command channel (the trial keeper's HTTP endpoint).

The trial PUTs commands (``request_parameter``, ``metric``) to its URL and GETs the keeper's
answers (``parameter``; 408 when none is ready yet). Tests give each fake trial a URL of its own
and read back the metrics it sent.

Like the local training service, it also serves the manager's REST API for a trial job
(``GET /api/v1/nni/trial-jobs/<id>``: the parameters the trial was submitted with, or an empty
body while the manager has not stored the record yet). ``fifo=True`` answers parameter requests
as NNI 3.0 does, from one queue in submission order whichever trial asks (the cause of swapped
parameters); ``manager_api=False`` plays a remote machine's trial keeper, which has no REST API.
"""

from __future__ import annotations

import json
import queue
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeTrialChannel:
    def __init__(self, *, fifo: bool = False, manager_api: bool = True) -> None:
        self.parameters: dict[str, dict[str, Any]] = {}  # trial id -> parameter record
        self.submitted: list[str] = []  # trials in submission order (the FIFO's order)
        self.unrecorded: dict[str, int] = {}  # trial id -> REST answers still empty before its record
        self.fifo = fifo
        self.manager_api = manager_api
        self.metrics: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.requested: list[str] = []  # trials that asked for their parameters, in order
        self._answers: dict[str, queue.Queue] = defaultdict(queue.Queue)
        channel = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_PUT(self) -> None:
                trial = self.path.rsplit("/", 1)[-1]
                command = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
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
                if self.path.startswith("/api/v1/nni/trial-jobs/"):
                    self._trial_job(trial)
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

            def _trial_job(self, trial: str) -> None:
                if not channel.manager_api:
                    self.send_response(404)
                    self.end_headers()
                    return
                body = b""
                if channel.unrecorded.get(trial, 0) > 0:
                    channel.unrecorded[trial] -= 1
                elif trial in channel.parameters:
                    body = json.dumps({"trialJobId": trial, "status": "RUNNING",
                                       "hyperParameters": [json.dumps(channel.parameters[trial])]}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

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
                "NNI_TRIAL_COMMAND_CHANNEL": f"http://127.0.0.1:{port}/env/fakeenv/{trial}",
                "NNI_OUTPUT_DIR": f"/tmp/{trial}", "NNI_SYS_DIR": f"/tmp/{trial}"}

    def finals(self, trial: str) -> list[dict[str, Any]]:
        return [m for m in self.metrics[trial] if m["type"] == "FINAL"]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
