"""A stand-in for NNI 3.0's trial command channel (the trial keeper's HTTP endpoint).

The trial PUTs commands (``request_parameter``, ``metric``) to its URL and GETs the keeper's
answers (``parameter``; 408 when none is ready yet). Tests give each fake trial a URL of its own
and read back the metrics it sent.
"""

from __future__ import annotations

import json
import queue
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeTrialChannel:
    def __init__(self) -> None:
        self.parameters: dict[str, dict[str, Any]] = {}  # trial id -> parameter record
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
                    record = channel.parameters[trial]
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

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def add_trial(self, trial: str, parameter_id: int, params: dict[str, Any]) -> dict[str, str]:
        """Register a trial; returns the environment NNI's local training service would give it."""
        self.parameters[trial] = {"parameter_id": parameter_id, "parameter_source": "algorithm",
                                  "parameters": params, "parameter_index": 0}
        port = self._server.server_address[1]
        return {"NNI_PLATFORM": "local", "NNI_EXP_ID": "fakeexp", "NNI_TRIAL_JOB_ID": trial,
                "NNI_TRIAL_SEQ_ID": str(parameter_id), "NNI_TRIAL_COMMAND_CHANNEL": f"http://127.0.0.1:{port}/trial/{trial}",
                "NNI_OUTPUT_DIR": f"/tmp/{trial}", "NNI_SYS_DIR": f"/tmp/{trial}"}

    def finals(self, trial: str) -> list[dict[str, Any]]:
        return [m for m in self.metrics[trial] if m["type"] == "FINAL"]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
