"""A trial's conversation with NNI over its HTTP channel, spoken without importing NNI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from nas_core.evaluator import Reporter, null_reporter
from nas_core.nni_adapter.trial_io import HttpTrialChannel, TrialSession, decode_payload, encode_payload
from tests.fake_nni_channel import FakeTrialChannel
from nas_core.space import Architecture
from tests.toy_plugins import ToyEvaluator

REPO = Path(__file__).resolve().parent.parent
PARAMS = {"layer0": 1, "layer1": 2.5, "name": "x", "_candidate": "c1"}
FINAL = {"default": 0.75, "accuracy": 0.8, "flops_norm": 0.125, "status": "succeeded", "candidate": "c1",
         "evaluator": {"name": "toy", "args": {"epochs": 2}}, "loss": float("nan")}


class ModuleReportingEvaluator(ToyEvaluator):
    """The toy evaluator, also reporting whether its process has imported NNI or scikit-learn."""

    name = "toy_modules"

    def evaluate(self, arch: Architecture, reporter: Reporter = null_reporter) -> dict[str, float]:
        return {**super().evaluate(arch, reporter), "nni_imported": float("nni" in sys.modules),
                "sklearn_imported": float("sklearn" in sys.modules)}


@pytest.fixture()
def channel():
    fake = FakeTrialChannel()
    yield fake
    fake.close()


def converse(make_channel, env):
    ours = make_channel(env["NNI_TRIAL_COMMAND_CHANNEL"])
    record = ours.receive_parameter()
    ours.send_metric(type="PERIODICAL", parameter_id=record["parameter_id"], trial_job_id=env["NNI_TRIAL_JOB_ID"],
                     sequence=0, value={"default": 0.5, "accuracy": 0.5})
    ours.send_metric(type="FINAL", parameter_id=record["parameter_id"], trial_job_id=env["NNI_TRIAL_JOB_ID"],
                     sequence=0, value=FINAL)
    return record


def test_the_http_channel_says_what_nnis_own_channel_says(channel):
    from nni.runtime.trial_command_channel.v3 import TrialCommandChannelV3

    ours = converse(HttpTrialChannel, channel.add_trial("ours", 3, PARAMS))
    nnis = converse(TrialCommandChannelV3, channel.add_trial("nnis", 3, PARAMS))
    assert ours == nnis and ours["parameters"] == PARAMS and ours["parameter_id"] == 3
    sent_ours, sent_nnis = channel.metrics["ours"], channel.metrics["nnis"]
    for metric in sent_ours + sent_nnis:
        metric.pop("trial_job_id")
        metric["value"] = json.dumps(metric["value"])  # NaN != NaN: compare the text
    assert sent_ours == sent_nnis and [m["type"] for m in sent_ours] == ["PERIODICAL", "FINAL"]


@pytest.mark.filterwarnings("ignore:json-tricks")
def test_payloads_plain_json_cannot_carry_go_through_nnis_serializer():
    import nni

    assert decode_payload(nni.dump({"a": {1, 2}, "b": [1.5]})) == {"a": {1, 2}, "b": [1.5]}
    text = encode_payload({"accuracy": np.float32(0.5), "n": 3})
    assert nni.load(text) == {"accuracy": 0.5, "n": 3}
    assert encode_payload({"a": 1.5, "b": "x"}) == nni.dump({"a": 1.5, "b": "x"})


def test_a_closed_channel_gives_no_parameters_and_a_bad_url_is_named():
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Gone(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_PUT(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.end_headers()

        def do_GET(self):
            self.send_response(410)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Gone)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        session = TrialSession({"NNI_TRIAL_COMMAND_CHANNEL": f"http://127.0.0.1:{server.server_address[1]}/t",
                                "NNI_TRIAL_JOB_ID": "t"})
        assert session.get_parameters() is None
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(ValueError, match="ws://x"):
        HttpTrialChannel("ws://x")


def test_a_resident_worker_imports_neither_nni_nor_sklearn(channel):
    tmp = tempfile.mkdtemp(prefix="tio", dir="/tmp")  # Unix socket paths must stay short
    env = {k: v for k, v in os.environ.items() if not k.startswith("NNI_")}
    env.update(channel.add_trial("t1", 1, {"layer0": 1, "layer1": 2, "layer2": 3, "_candidate": "c1"}))
    env.update(TMPDIR=tmp, PYTHONPATH=str(REPO))
    command = [sys.executable, "-m", "nas_core.trial", "--evaluator", "tests.test_trial_io:ModuleReportingEvaluator",
               "--args", '{"epochs": 1}']
    try:
        proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "in its own process" not in proc.stderr and list(Path(tmp).glob("**/slot-*.log"))
        (final,) = channel.finals("t1")
        value = final["value"]
        assert value["nni_imported"] == 0.0 and value["sklearn_imported"] == 0.0
        assert value["candidate"] == "c1" and final["parameter_id"] == 1
    finally:
        for log in Path(tmp).glob("**/slot-*.log"):
            for line in log.read_text().splitlines():
                if line.startswith("worker ") and "serving" in line:
                    try:
                        os.kill(int(line.split()[1]), 9)
                    except ProcessLookupError:
                        pass
