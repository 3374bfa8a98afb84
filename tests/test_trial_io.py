"""A trial's conversation with NNI over its HTTP channel, spoken without importing NNI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from nas_core.evaluator import Reporter, null_reporter
from nas_core.nni_adapter.trial_io import (HttpTrialChannel, TrialSession, decode_payload, encode_payload,
                                           manager_api_root)
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


def test_concurrent_trials_train_what_the_manager_submitted_them_with(tmp_path):
    # NNI's channel hands out submitted parameters in order, whichever trial asks: t1 asks first
    fake = FakeTrialChannel(fifo=True)
    try:
        env0 = fake.add_trial("t0", 0, {**PARAMS, "_candidate": "c0"})
        env1 = fake.add_trial("t1", 1, {**PARAMS, "layer0": 2, "_candidate": "c1"})
        notes: list[str] = []
        first, second = TrialSession(env1, warn=notes.append), TrialSession(env0, warn=notes.append)
        assert first.get_parameters()["_candidate"] == "c1"
        assert second.get_parameters()["_candidate"] == "c0"
        assert fake.requested == ["t1", "t0"], "each trial still takes one parameter set off NNI's queue"
        first.report_final({"default": 1.0, "candidate": "c1"})
        second.report_final({"default": 0.5, "candidate": "c0"})
        assert [m["parameter_id"] for m in fake.finals("t1")] == [1]
        assert [m["parameter_id"] for m in fake.finals("t0")] == [0]
        assert len(notes) == 2 and "manager submitted it with 1" in notes[0]
    finally:
        fake.close()


def test_the_session_waits_for_the_managers_record_of_its_trial(channel):
    env = channel.add_trial("late", 4, PARAMS)
    channel.unrecorded["late"] = 3  # the trial asks before the manager stored its trial job
    notes: list[str] = []
    session = TrialSession(env, warn=notes.append)
    assert session.get_parameters() == PARAMS and notes == []
    assert channel.unrecorded["late"] == 0


@pytest.mark.parametrize("manager_api, faults, unrecorded, named, lookups", [
    # answers that hold for every trial alike: the session falls back at its first look-up
    (False, [], 0, "HTTP 404", 1),  # a remote machine's trial keeper serves the channel, not the manager
    (True, ["html"], 0, "not JSON", 1),
    # the wait ran out
    (True, [], 10_000, "no parameters recorded after 0.3 s", None),
])
def test_without_the_managers_record_the_channels_parameters_are_trained_with_a_warning(manager_api, faults, unrecorded,
                                                                                        named, lookups):
    fake = FakeTrialChannel(fifo=True, manager_api=manager_api)
    try:
        env0 = fake.add_trial("t0", 0, {**PARAMS, "_candidate": "c0"})
        fake.add_trial("t1", 1, {**PARAMS, "_candidate": "c1"})
        fake.unrecorded["t0"] = unrecorded
        fake.faults["t0"] = list(faults)
        notes: list[str] = []
        session = TrialSession(env0, warn=notes.append, manager_wait=0.3)
        assert session.get_parameters()["_candidate"] == "c0"
        session.report_final({"default": 1.0})
        assert fake.finals("t0")[0]["parameter_id"] == 0
        assert len(notes) == 1 and named in notes[0] and "training those the channel gave" in notes[0]
        if lookups is not None:
            assert fake.lookups["t0"] == lookups
    finally:
        fake.close()


def test_a_lookup_that_fails_for_a_while_is_retried_so_no_two_trials_train_one_set():
    # t1 asks first and gets set 0 off NNI's queue; its first look-ups meet a manager that answers
    # 503, resets the connection, answers 500. Had it trained the channel's set 0 while t0 read its
    # own record (set 0), set 1 would never be trained and its candidate would be failed.
    fake = FakeTrialChannel(fifo=True)
    try:
        env0 = fake.add_trial("t0", 0, {**PARAMS, "_candidate": "c0"})
        env1 = fake.add_trial("t1", 1, {**PARAMS, "layer0": 2, "_candidate": "c1"})
        fake.faults["t1"] = [503, "reset", 500]
        notes: list[str] = []
        first, second = TrialSession(env1, warn=notes.append), TrialSession(env0, warn=notes.append)
        trained = [first.get_parameters()["_candidate"], second.get_parameters()["_candidate"]]
        assert trained == ["c1", "c0"]
        assert fake.lookups["t1"] == 4 and not fake.faults["t1"]
        assert not [note for note in notes if note.startswith("warning")], notes
        first.report_final({"default": 1.0})
        assert fake.finals("t1")[0]["parameter_id"] == 1
    finally:
        fake.close()


def test_the_channels_parameters_are_trained_as_sent_when_the_manager_names_that_set():
    # NNI's manager re-serialises the record in JavaScript: 1.0 reads back as 1, big integers lose digits
    sent = {"width": 1.0, "seed": 2 ** 60 + 1, "rate": 0.25, "_candidate": "c0"}
    fake = FakeTrialChannel(js_numbers=True)
    try:
        env = fake.add_trial("t0", 0, sent)
        assert json.loads(fake.job("t0")["hyperParameters"][0])["parameters"] != sent
        params = TrialSession(env).get_parameters()
        assert params == sent and type(params["width"]) is float and params["seed"] == 2 ** 60 + 1
    finally:
        fake.close()


def test_no_proxy_carries_the_calls_to_nni(monkeypatch):
    from nas_core.nni_adapter import rest

    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # set for downloads; nothing listens there
    monkeypatch.setenv("no_proxy", "")
    monkeypatch.setattr(urllib.request, "_opener", None)  # urlopen's own opener reads the proxies when built
    fake = FakeTrialChannel()
    try:
        session = TrialSession(fake.add_trial("t0", 0, PARAMS), warn=pytest.fail)
        assert session.get_parameters() == PARAMS and fake.lookups["t0"] == 1
        session.report_final({"default": 1.0})
        assert len(fake.finals("t0")) == 1
        assert rest.get(fake.port, "trial-jobs")[0]["trialJobId"] == "t0"
    finally:
        fake.close()


def test_a_manager_under_a_url_prefix_is_found_by_the_trials_and_the_tuner():
    from nas_core.nni_adapter import rest

    fake = FakeTrialChannel(fifo=True, prefix="my/pre")
    try:
        env0 = fake.add_trial("t0", 0, {**PARAMS, "_candidate": "c0"})
        env1 = fake.add_trial("t1", 1, {**PARAMS, "_candidate": "c1"})
        notes: list[str] = []
        first, second = TrialSession(env1, warn=notes.append), TrialSession(env0, warn=notes.append)
        assert [first.get_parameters()["_candidate"], second.get_parameters()["_candidate"]] == ["c1", "c0"]
        assert fake.lookups == {"t1": 1, "t0": 1} and all(note.startswith("note") for note in notes)
        # the tuner side: its channel URL names the prefix, and the manager's calls keep it
        root = rest.tuner_api_root(f"ws://localhost:{fake.port}/my/pre/tuner")
        assert root == f"http://127.0.0.1:{fake.port}/my/pre/api/v1/nni"
        assert [job["trialJobId"] for job in rest.get(root, "trial-jobs")] == ["t0", "t1"]
        assert rest.cap_trial_number(root, {(0, "c0"), (1, "c1"), (2, "c2")}, "_candidate", attempts=1, delay=0)
        assert fake.experiment["params"]["maxTrialNumber"] == 3 and fake.experiment_updates == ["MAX_TRIAL_NUM"]
        # c0 proposed again under id 5 and not submitted yet: it still needs a trial of its own
        assert rest.cap_trial_number(root, {(0, "c0"), (1, "c1"), (5, "c0")}, "_candidate", attempts=1, delay=0)
        assert fake.experiment["params"]["maxTrialNumber"] == 3
    finally:
        fake.close()


def test_the_managers_api_is_found_from_the_channel_url_or_the_remote_trial_keepers_launch_file(tmp_path):
    def root(url, **env):
        return manager_api_root({"NNI_PLATFORM": "local", "NNI_TRIAL_COMMAND_CHANNEL": url, **env})

    assert root("http://localhost:8080/env/e1/t1") == "http://localhost:8080/api/v1/nni"
    assert root("http://localhost:8080/my/prefix/env/e1/t1") == "http://localhost:8080/my/prefix/api/v1/nni"
    assert root("http://localhost:8080/t1") is None
    session = TrialSession({"NNI_TRIAL_COMMAND_CHANNEL": "http://127.0.0.1:9/t1", "NNI_TRIAL_JOB_ID": "t1"})
    assert session.identity() == {"trial_job": "t1"}
    # remote: ~/nni-experiments/<exp>/environments/<env>/{trial_keeper[_N]/launcher_config.json, trials/<trial>}
    environment = tmp_path / "environments" / "e1"
    for name, port in (("trial_keeper", 8080), ("trial_keeper_1", 9090)):  # _1: started again by a resume
        (environment / name).mkdir(parents=True)
        (environment / name / "launcher_config.json").write_text(json.dumps(
            {"managerCommandChannel": f"ws://10.0.0.5:{port}/pre/platform/remote_ts/e1", "environmentId": "e1"}))
    os.utime(environment / "trial_keeper" / "launcher_config.json", (1, 1))
    remote = {"NNI_PLATFORM": "remote", "NNI_OUTPUT_DIR": str(environment / "trials" / "t1")}
    assert root("http://localhost:4444/env/e1/t1", **remote) == "http://10.0.0.5:9090/pre/api/v1/nni"
    assert root("http://localhost:4444/env/e1/t1", NNI_PLATFORM="remote", NNI_OUTPUT_DIR=str(tmp_path / "x" / "y")) is None


def test_the_session_knows_its_trial_job_and_trial_number(channel):
    env = channel.add_trial("abc", 7, PARAMS)
    assert TrialSession(env).identity() == {"trial_job": "abc", "trial_number": 7}
    assert TrialSession({**env, "NNI_TRIAL_SEQ_ID": "-1"}).identity() == {"trial_job": "abc"}


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
