"""Resident trial workers: trials handed to a warm process, with NNI's trial channel faked."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from nas_core.nni_adapter import worker_pool
from tests.fake_nni_channel import FakeTrialChannel

REPO = Path(__file__).resolve().parent.parent
ARCH = {"layer0": 1, "layer1": 2, "layer2": 3}
TRIAL = [sys.executable, "-m", "nas_core.trial", "--evaluator", "tests.toy_plugins:ProcessReportingEvaluator"]


@pytest.fixture()
def channel():
    fake = FakeTrialChannel()
    yield fake
    fake.close()


@pytest.fixture()
def tmpdir_short():
    """A short TMPDIR: Unix socket paths must stay under ~100 characters."""
    path = tempfile.mkdtemp(prefix="wp", dir="/tmp")
    yield path
    for pid_file in Path(path).glob("**/slot-*.log"):
        for line in pid_file.read_text().splitlines():
            if line.startswith("worker ") and "serving" in line:
                try:
                    os.kill(int(line.split()[1]), signal.SIGKILL)
                except ProcessLookupError:
                    pass
    shutil.rmtree(path, ignore_errors=True)


def trial_env(channel, tmpdir, trial_id, pid, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NNI_")}
    env.update(channel.add_trial(trial_id, pid, {**ARCH, "_candidate": f"c{pid}"}))
    env.update(TMPDIR=tmpdir, PYTHONPATH=str(REPO), **extra)
    return env


def run_trial(channel, tmpdir, trial_id, pid, args=("--args", '{"epochs": 2}'), **extra):
    env = trial_env(channel, tmpdir, trial_id, pid, **extra)
    proc = subprocess.run([*TRIAL, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    return proc


def exits_soon(pid, seconds=5.0):
    """True once process ``pid`` has exited, False if it still runs after ``seconds``.

    An exited worker whose parent is gone stays a zombie until PID 1 reaps it, which some
    container inits do only every few seconds: a zombie has exited."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if _is_zombie(pid):
            return True
        time.sleep(0.05)
    return False


def process_view(pid):
    """What a failed liveness check shows of process ``pid``: its state, threads and kernel wait."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        wchan = Path(f"/proc/{pid}/wchan").read_text()
    except OSError as err:
        return f"pid {pid}: {err}"
    keep = ("State", "PPid", "Threads", "SigBlk", "SigIgn")
    return "; ".join(line for line in status.splitlines() if line.split(":")[0] in keep) + f"; wchan {wchan}"


def _is_zombie(pid):
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def final_of(channel, trial_id):
    (final,) = channel.finals(trial_id)
    return final


def test_trials_reuse_one_resident_worker_and_report_through_their_own_channel(channel, tmpdir_short):
    first = run_trial(channel, tmpdir_short, "trialA", 1)
    second = run_trial(channel, tmpdir_short, "trialB", 2)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    a, b = final_of(channel, "trialA"), final_of(channel, "trialB")
    assert a["parameter_id"] == 1 and b["parameter_id"] == 2
    assert a["trial_job_id"] == "trialA" and b["trial_job_id"] == "trialB"
    assert a["value"]["default"] == 6.0 and a["value"]["candidate"] == "c1" and b["value"]["candidate"] == "c2"
    assert a["value"]["pid"] == b["value"]["pid"], "the second trial should run in the same warm worker"
    periodic = [m["sequence"] for m in channel.metrics["trialB"] if m["type"] == "PERIODICAL"]
    assert periodic == [0, 1]
    assert "fitness 6.0000" in second.stdout  # the worker's output reaches the trial's own log


def test_worker_results_equal_own_process_results(channel, tmpdir_short):
    warm = run_trial(channel, tmpdir_short, "warm", 1)
    cold = run_trial(channel, tmpdir_short, "cold", 2, args=("--args", '{"epochs": 2}', "--worker", "off"))
    assert warm.returncode == 0 and cold.returncode == 0
    w, c = final_of(channel, "warm")["value"], final_of(channel, "cold")["value"]
    ignore = {"pid", "evaluator_seconds", "candidate", "trial_job", "trial_number"}
    assert {k: v for k, v in w.items() if k not in ignore} == {k: v for k, v in c.items() if k not in ignore}
    assert w["pid"] != c["pid"]
    assert (w["trial_job"], w["trial_number"], c["trial_job"], c["trial_number"]) == ("warm", 1, "cold", 2)


@pytest.mark.slow
def test_concurrent_trials_get_separate_workers(channel, tmpdir_short):
    args = ("--args", '{"epochs": 2, "sleep": 1.5}')
    procs = [subprocess.Popen([*TRIAL, *args], cwd=REPO, env=trial_env(channel, tmpdir_short, f"t{i}", i),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in (1, 2)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    assert final_of(channel, "t1")["value"]["pid"] != final_of(channel, "t2")["value"]["pid"]


@pytest.mark.slow
def test_stopping_the_trial_stops_its_worker_and_the_slot_recovers(channel, tmpdir_short):
    # started as NNI starts a trial, with SIGINT's default action: a test run as a background job
    # inherits SIGINT ignored, and the client then never saw the cancel (seen in CI runs started with &)
    proc = subprocess.Popen([*TRIAL, "--args", '{"epochs": 3, "sleep": 60}'], cwd=REPO,
                            env=trial_env(channel, tmpdir_short, "long", 1), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while "long" not in channel.requested and time.monotonic() < deadline:  # parameters fetched: training
        time.sleep(0.05)
    time.sleep(0.2)
    logs = list(Path(tmpdir_short).glob("**/slot-0.log"))
    worker_pid = int(logs[0].read_text().split()[1])
    proc.send_signal(signal.SIGINT)  # what NNI's trial keeper sends to cancel a trial
    proc.wait(timeout=60)
    # the trial would train for 60 s: a worker gone well before that stopped training it
    assert exits_soon(worker_pid, seconds=30), (
        f"the worker kept training a cancelled trial: {process_view(worker_pid)}\n"
        f"client's stderr: {proc.stderr.read()}\nworker's log: {logs[0].read_text()}")
    again = run_trial(channel, tmpdir_short, "after", 2)
    assert again.returncode == 0 and final_of(channel, "after")["value"]["default"] == 6.0


@pytest.mark.slow
def test_idle_worker_exits(channel, tmpdir_short):
    done = run_trial(channel, tmpdir_short, "t", 1, NAS_CORE_WORKER_IDLE_S="0.5")
    assert done.returncode == 0
    pid = int(final_of(channel, "t")["value"]["pid"])
    assert exits_soon(pid), "the idle worker did not exit"
    assert not list(Path(tmpdir_short).glob("**/*.sock"))


def test_a_trial_given_gpus_runs_in_its_own_process(channel, tmpdir_short):
    proc = subprocess.Popen([*TRIAL, "--args", '{"epochs": 1}'], cwd=REPO,
                            env=trial_env(channel, tmpdir_short, "gpu", 1, CUDA_VISIBLE_DEVICES="0"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    assert final_of(channel, "gpu")["value"]["pid"] == proc.pid
    assert not list(Path(tmpdir_short).glob("**/*.sock"))


def test_unsafe_pool_folder_falls_back_to_the_trials_own_process(channel, tmpdir_short):
    shared = worker_pool.pools_root().name
    os.mkdir(Path(tmpdir_short) / shared, 0o777)
    os.chmod(Path(tmpdir_short) / shared, 0o777)
    proc = run_trial(channel, tmpdir_short, "t", 1)
    assert proc.returncode == 0
    assert "not a private folder" in proc.stderr and "running this trial in its own process" in proc.stderr
    assert final_of(channel, "t")["value"]["default"] == 6.0


def test_bad_idle_timeout_is_named_and_the_trial_still_runs(channel, tmpdir_short):
    proc = run_trial(channel, tmpdir_short, "t", 1, NAS_CORE_WORKER_IDLE_S="soon")
    assert proc.returncode == 0 and "NAS_CORE_WORKER_IDLE_S='soon'" in proc.stderr


def test_pool_key_ignores_per_trial_variables_only():
    base = {"NNI_EXP_ID": "e1", "NNI_TRIAL_JOB_ID": "a", "CUDA_VISIBLE_DEVICES": "0"}
    same = worker_pool.pool_key(["x"], {**base, "NNI_TRIAL_JOB_ID": "b", "PWD": "/"}, "/tmp")
    assert worker_pool.pool_key(["x"], base, "/tmp") == same
    assert worker_pool.pool_key(["x"], {**base, "CUDA_VISIBLE_DEVICES": "1"}, "/tmp") != same
    assert worker_pool.pool_key(["x"], {**base, "NNI_EXP_ID": "e2"}, "/tmp") != same
    assert worker_pool.pool_key(["y"], base, "/tmp") != same


def wait_for_log(path, text, seconds=60.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path} never said {text!r}: {path.read_text() if path.exists() else '(no file)'}")


def log_pid(log):
    return int(log.split()[1])  # "worker PID serving ..."


@pytest.fixture()
def pools_in(tmpdir_short, monkeypatch):
    """This process's pools in the same short folder as the trials' pools."""
    monkeypatch.setattr(tempfile, "tempdir", tmpdir_short)
    return tmpdir_short


ARGS = ["--args", '{"epochs": 2}']


def test_a_worker_writes_no_nni_log_into_the_code_folder_and_routes_each_trials_log_records(channel, pools_in):
    code = Path(pools_in) / "code"
    code.mkdir()
    args = ("--args", '{"epochs": 1, "log_warning": "toy says"}')
    runs = []
    for trial_id, pid, arch in (("one", 1, {"layer0": 1, "layer1": 0, "layer2": 0}),
                                ("two", 2, {"layer0": 3, "layer1": 3, "layer2": 0})):
        trial = trial_env(channel, pools_in, trial_id, pid)
        channel.parameters[trial_id]["parameters"] = arch
        runs.append(subprocess.run([*TRIAL, *args], cwd=code, env=trial, capture_output=True, text=True, timeout=120))
    assert [r.returncode for r in runs] == [0, 0], [r.stderr for r in runs]
    assert "toy says 1" in runs[0].stderr and "toy says 6" in runs[1].stderr
    assert "toy says 1" not in runs[1].stderr, "a trial's log records reached a later trial"
    assert not list(code.glob("*.log")), "NNI's trial logging was set up in the worker's folder"


def test_a_worker_that_dies_on_start_up_is_named_and_its_slot_left_free(channel, pools_in, monkeypatch):
    argv, env = [*TRIAL[3:], *ARGS], trial_env(channel, pools_in, "t", 1)
    monkeypatch.setattr(sys, "executable", "/bin/false")  # the worker's interpreter exits at once
    with pytest.raises(worker_pool.WorkerUnavailable, match="exited with status 1 on start-up"):
        worker_pool.run_in_worker(argv, env=env, cwd=str(REPO))
    pool = worker_pool.pools_root() / worker_pool.pool_key(argv, env, str(REPO))
    fd = worker_pool._try_lock_slot(pool, 0)
    assert fd is not None, "the failed start kept the slot locked"
    os.close(fd)


@pytest.mark.slow
def test_an_idle_worker_leaves_a_newer_workers_socket_alone(channel, pools_in):
    import socket

    argv = [*TRIAL[3:], *ARGS]
    done = run_trial(channel, pools_in, "t", 1, NAS_CORE_WORKER_IDLE_S="1")
    assert done.returncode == 0, done.stderr
    env = trial_env(channel, pools_in, "t2", 2, NAS_CORE_WORKER_IDLE_S="1")
    pool = worker_pool.pools_root() / worker_pool.pool_key(argv, env, str(REPO))
    pid = log_pid(wait_for_log(pool / "slot-0.log", "serving"))
    newer = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    newer.bind(str(pool / "newer.sock"))
    os.replace(pool / "newer.sock", pool / "slot-0.sock")  # as a worker started after this one would
    try:
        assert exits_soon(pid, seconds=30), "the idle worker did not exit"
        assert (pool / "slot-0.sock").exists(), "the idle worker removed a socket that was not its own"
    finally:
        newer.close()
