"""The node shim that shortens NNI's manager loop, and how the launcher loads it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from nas_core.nni_adapter import experiment as nni_experiment
from nas_core.nni_adapter.experiment import (LOOPBACK_SHIM, MANAGER_POLL_SHIM, TUNER_WAIT_SHIM, bind_environment,
                                             check_manager_poll, parse_manager_poll, patient_manager_check)


def _node() -> Path:
    import nni_node

    return Path(nni_node.__path__[0]) / "node"


FAKE_MANAGER = """
class NNIManager {
  async initTrainingService(interval) { this.pollInterval = interval; return 'service'; }
}
exports.NNIManager = NNIManager;
"""


def _interval_after_init(tmp_path: Path, nni_sets: float, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    (tmp_path / "nnimanager.js").write_text(FAKE_MANAGER, encoding="utf-8")
    script = (f"const {{ NNIManager }} = require({str(tmp_path / 'nnimanager.js')!r});"
              f"const m = new NNIManager(); m.initTrainingService({nni_sets}).then(s => console.log(s, m.pollInterval));")
    full_env = {**os.environ, **env, "NODE_OPTIONS": f"--require={MANAGER_POLL_SHIM}"}
    return subprocess.run([str(_node()), "-e", script], capture_output=True, text=True, env=full_env, timeout=60)


@pytest.mark.parametrize(("setting", "nni_sets", "expected"), [
    (None, 0.5, "0.02"),     # the default replaces NNI's local 0.5 s
    ("0.25", 0.5, "0.25"),
    (None, 5, "5"),          # reuse mode's 5 s is left alone
])
def test_shim_replaces_only_the_local_half_second(tmp_path, monkeypatch, setting, nni_sets, expected):
    monkeypatch.delenv("NAS_CORE_NNI_POLL_S", raising=False)
    env = {} if setting is None else {"NAS_CORE_NNI_POLL_S": setting}
    done = _interval_after_init(tmp_path, nni_sets, env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["service", expected]


def test_shim_with_a_bad_setting_says_so_and_leaves_nni_alone(tmp_path):
    done = _interval_after_init(tmp_path, 0.5, {"NAS_CORE_NNI_POLL_S": "fast"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["service", "0.5"]
    assert "NAS_CORE_NNI_POLL_S=fast" in done.stderr


def test_shim_patches_the_real_nni_manager(monkeypatch):
    """NNI 3.0's own module is found and wrapped (the loop's effect is measured by benchmark B2)."""
    monkeypatch.delenv("NAS_CORE_NNI_POLL_S", raising=False)
    script = ("require('app-module-path/register');"
              "const { NNIManager } = require('core/nnimanager');"
              "console.log(NNIManager.prototype.initTrainingService.nasCorePollSeconds); process.exit(0);")
    env = {**os.environ, "NODE_OPTIONS": f"--require={MANAGER_POLL_SHIM}"}
    done = subprocess.run([str(_node()), "-e", script], capture_output=True, text=True, env=env,
                          cwd=_node().parent, timeout=60)
    assert done.stdout.split()[:1] == ["0.02"], done.stderr


def test_bind_environment_loads_each_shim_once_and_can_leave_nni_polling_alone(monkeypatch):
    monkeypatch.setenv("NODE_OPTIONS", "--max-old-space-size=4096")
    bind_environment("127.0.0.1")
    bind_environment("127.0.0.1", manager_poll=0.2)
    options = os.environ["NODE_OPTIONS"].split()
    assert options == ["--max-old-space-size=4096", f"--require={TUNER_WAIT_SHIM}", f"--require={LOOPBACK_SHIM}",
                       f"--require={MANAGER_POLL_SHIM}"]
    assert os.environ["NAS_CORE_NNI_POLL_S"] == "0.2"
    bind_environment(None, manager_poll=None)
    assert os.environ["NODE_OPTIONS"] == f"--max-old-space-size=4096 --require={TUNER_WAIT_SHIM}"
    assert "NAS_CORE_NNI_POLL_S" not in os.environ and "NAS_CORE_BIND_HOST" not in os.environ


@pytest.mark.parametrize("value", [0.01, 0.6, True, "0.1", float("nan")])
def test_manager_poll_out_of_range_is_refused_by_name(value):
    with pytest.raises(ValueError, match="manager poll interval"):
        check_manager_poll(value)
    with pytest.raises(ValueError, match="manager poll interval"):
        bind_environment(None, manager_poll=value)  # type: ignore[arg-type]


def test_default_is_inside_the_allowed_range_and_the_same_everywhere():
    default = nni_experiment.DEFAULT_MANAGER_POLL_S
    assert check_manager_poll(default) == default
    from nas_core.cli import make_parser

    search = make_parser().parse_args(["search", "config.yml"])
    assert parse_manager_poll(search.manager_poll) == default  # the shim's own default: see the tests above


def test_command_line_interval_is_seconds_or_nni():
    assert parse_manager_poll("0.25") == 0.25
    assert parse_manager_poll(" NNI ") is None


@pytest.mark.parametrize(("text", "named"), [("fast", "got 'fast'"), ("0.9", "got 0.9"), ("nan", "got nan")])
def test_command_line_interval_that_is_neither_is_named(text, named):
    with pytest.raises(ValueError, match=named):
        parse_manager_poll(text)


@pytest.mark.parametrize(("tuner", "kept"), [
    ({"className": "nas_core.nni_adapter.tuner.StrategyTuner", "classArgs": {"strategy": "random"}}, True),
    ({"className": "nas_core.nni_adapter.tuner:StrategyTuner", "classArgs": {"strategy": "random"}}, True),
    ({"name": "NasEvolution"}, True),
    ({"name": "TPE", "classArgs": {"optimize_mode": "maximize"}}, False),
    ({"className": "my_tuners.Mine", "codeDirectory": "."}, False),
])
def test_only_our_tuner_gets_the_shorter_loop(make_toy_config, tuner, kept):
    """NNI's dispatcher may hand a tuner a trial's end before its result; NNI's TPE then fails."""
    from nni.experiment import ExperimentConfig

    config = ExperimentConfig.load(str(make_toy_config(tuner=tuner)))
    poll, note = nni_experiment.manager_poll_for(config, 0.02)
    if kept:
        assert (poll, note) == (0.02, None)
    else:
        assert poll is None and "NNI's own 0.5 s instead of 0.02 s" in note
    assert nni_experiment.manager_poll_for(config, None) == (None, None)
    with pytest.raises(ValueError, match="got 7"):
        nni_experiment.manager_poll_for(config, 7)


def test_the_shim_and_the_launcher_read_one_range(tmp_path, monkeypatch):
    """manager_poll.json is the only place the allowed interval is written: node accepts exactly what Python does."""
    import contextlib

    monkeypatch.delenv("NAS_CORE_NNI_POLL_S", raising=False)
    low, high = nni_experiment.MANAGER_POLL_RANGE
    for value, accepted in ((low, True), (high, True), (low / 2, False), (high * 2, False)):
        done = _interval_after_init(tmp_path, 0.5, {"NAS_CORE_NNI_POLL_S": repr(value)})
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["service", repr(value) if accepted else "0.5"], value
        with contextlib.nullcontext() if accepted else pytest.raises(ValueError):
            check_manager_poll(value)
    default = _interval_after_init(tmp_path, 0.5, {}).stdout.split()
    assert default == ["service", repr(nni_experiment.DEFAULT_MANAGER_POLL_S)]


FAKE_TUNER_SERVER = """
class Deferred {
  constructor() { this.settled = false; this.promise = new Promise((ok, no) => { this.ok = ok; this.no = no; }); }
  resolve() { this.settled = true; this.ok(); }
  reject(e) { this.settled = true; this.no(e); }
}
class TunerServer {
  constructor() { this.connect = new Deferred(); }
  init() { setTimeout(() => { if (!this.connect.settled) this.connect.reject(new Error('10 seconds')); }, 10000);
           return this.connect.promise; }
}
const server = new TunerServer();
exports.getTunerServer = () => server;
"""


def _tuner_init(tmp_path: Path, env: dict[str, str], connect_after_s: float | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "tuner_channel.js").write_text(FAKE_TUNER_SERVER, encoding="utf-8")
    connect = "" if connect_after_s is None else f"setTimeout(() => s.connect.resolve(), {1000 * connect_after_s});"
    script = (f"const s = require({str(tmp_path / 'tuner_channel.js')!r}).getTunerServer(); {connect}"
              "s.init().then(() => { console.log('connected'); process.exit(0); }, "
              "e => { console.log('failed:', e.message); process.exit(0); });")
    full_env = {**os.environ, **env, "NODE_OPTIONS": f"--require={TUNER_WAIT_SHIM}"}
    return subprocess.run([str(_node()), "-e", script], capture_output=True, text=True, env=full_env, timeout=60)


def test_tuner_wait_shim_sets_how_long_the_tuner_may_take_to_connect(tmp_path):
    failed = _tuner_init(tmp_path, {"NAS_CORE_TUNER_CONNECT_S": "0.3"}, None)
    assert failed.stdout.strip() == "failed: tuner_command_channel: Tuner did not connect in 0.3 seconds. " \
                                    "Please check tuner (dispatcher) log.", failed.stderr
    late = _tuner_init(tmp_path, {"NAS_CORE_TUNER_CONNECT_S": "5"}, 0.5)
    assert late.stdout.strip() == "connected", late.stderr


def test_tuner_wait_shim_patches_the_real_nni_tuner_channel(monkeypatch):
    monkeypatch.delenv("NAS_CORE_TUNER_CONNECT_S", raising=False)
    script = ("require('app-module-path/register'); require('common/globals/unittest').resetGlobals();"
              "const c = require('core/tuner_command_channel');"
              "console.log(Object.getPrototypeOf(c.getTunerServer()).init.nasCoreConnectSeconds); process.exit(0);")
    env = {**os.environ, "NODE_OPTIONS": f"--require={TUNER_WAIT_SHIM}"}
    done = subprocess.run([str(_node()), "-e", script], capture_output=True, text=True, env=env,
                          cwd=_node().parent, timeout=60)
    assert done.stdout.split()[:1] == ["120"], done.stderr


@pytest.mark.slow
def test_the_launch_waits_for_a_slow_manager_and_restores_nni_s_check():
    """NNI's launcher gives its manager three 1 s tries; under our launch it waits until the manager answers."""
    import http.server
    import threading

    from nni.experiment import launcher

    original = launcher._check_rest_server

    class Status(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"status": "RUNNING"}')

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Status)
    port = server.server_address[1]
    server.server_close()  # nothing listens yet: the manager is still booting
    late = http.server.ThreadingHTTPServer

    def boot():
        import time

        time.sleep(4)  # longer than NNI's own three tries
        booted = late(("127.0.0.1", port), Status)
        threading.Thread(target=booted.serve_forever, daemon=True).start()
        started.append(booted)

    started: list = []
    thread = threading.Thread(target=boot, daemon=True)
    thread.start()
    try:
        with patient_manager_check(seconds=60):
            launcher._check_rest_server(port)  # returns once the late manager answers
        assert launcher._check_rest_server is original
    finally:
        thread.join()
        for booted in started:
            booted.shutdown()
