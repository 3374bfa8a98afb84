"""NNI's remote training service over SSH, against an sshd this test starts on 127.0.0.1.

The sshd (Debian's openssh-server, installed by ``.ci/install-sshd``) runs with its own config
file, host key and client key generated in a temporary folder, on a free port. Its ``SetEnv``
gives every remote session ``PIP_NO_INDEX=1`` (NNI's remote worker runs ``pip install nni
--upgrade`` at every start), ``PYTHONPATH`` to this checkout (so remote trials import this code),
a ``HOME`` in the temporary folder (NNI's remote side writes under ``~/nni-experiments``), and
``NODE_OPTIONS`` loading our loopback shim, so that NNI's trial keeper (a node process that NNI
starts on each worker without ``reuseMode``, and that otherwise listens on every interface
without authentication) listens on 127.0.0.1 only: docs/security.md advises the same for workers.
The machine entries name this interpreter's directory as ``pythonPath``, so the "remote" trials
run with the same environment as the launcher, as the docs ask of a real worker.

The tests skip, saying why, only when sshd cannot be installed or started.
"""

from __future__ import annotations

import atexit
import errno
import getpass
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from nas_core.nni_adapter import experiment as nni_experiment
from nas_core.nni_adapter import rest
from nas_core.nni_adapter.tuner import CANDIDATE_FIELD, StrategyTuner, candidate_hash, state_path_of
from nas_core.results import load_results
from nas_core.space import SearchSpace
from tests.conftest import REPO, toy_config
from tests.test_nni_e2e import free_port
from tests.test_nni_webui_pairing import mismatched_trials
from tests.test_security import connect_errno, own_non_loopback_ipv4
from tests.toy_plugins import toy_space

NNICTL = str(Path(sys.executable).with_name("nnictl"))
SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd")
INSTALL_TIMEOUT_S = 900
SSH_OPTIONS = ("-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
               "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=20")


# ------------------------------------------------------------ the ended-status fix (fast)
def job(status: str, params: dict, value: dict | None = None) -> dict:
    found = {"status": status, "hyperParameters": [json.dumps({"parameter_id": 1, "parameters": params})]}
    if value is not None:
        found["finalMetricData"] = [{"data": json.dumps(json.dumps(value))}]
    return found


def test_only_terminal_statuses_count_as_ended():
    params = {"a": 1, CANDIDATE_FIELD: "h"}
    for status in ("SUCCEEDED", "FAILED", "USER_CANCELED", "SYS_CANCELED", "EARLY_STOPPED"):
        assert rest.ended_candidates([job(status, params)], CANDIDATE_FIELD) == {"h": job(status, params)}
    for status in ("WAITING", "RUNNING", "UNKNOWN", "ADD_RESUMED", "ADD_CUSTOMIZED", "USER_TO_CANCEL", "None"):
        assert rest.ended_candidates([job(status, params)], CANDIDATE_FIELD) == {}, status


def test_a_resumed_trial_waiting_for_the_remote_side_keeps_its_candidate_in_flight(tmp_path):
    # A trial running at `nnictl stop` is re-submitted on resume with status ADD_RESUMED until the
    # remote training service is up (about 20 s); its candidate must wait, not fail.
    def tuner() -> StrategyTuner:
        return StrategyTuner(strategy="tests.toy_plugins:BatchStrategy", strategy_args={"batch": 2, "batches": 2},
                             seed=0, state_file=str(tmp_path / "state.json"), missing_result_timeout=-1)

    first = tuner()
    first.update_search_space(toy_space().to_nni())
    a, b = first.generate_multiple_parameters([1, 2], st_callback=lambda *x: None)
    value_a = {"default": 1.0, "accuracy": 1.0, "candidate": a[CANDIDATE_FIELD], "status": "succeeded"}
    first.receive_trial_result(1, a, value_a)
    again = tuner()  # the resumed tuner: b was running at the stop
    again.load_checkpoint()
    again.update_search_space(toy_space().to_nni())
    assert [candidate_hash(toy_space().key(arch)) for arch in again._driver.orphans] == [b[CANDIDATE_FIELD]]
    waiting = [job("SUCCEEDED", a, value_a), job("ADD_RESUMED", b)]
    assert again.check_orphans(waiting) is True
    assert [r.result.fitness for r in again._driver.records] == [1.0]  # b neither failed nor recorded
    value_b = {"default": 2.0, "accuracy": 2.0, "candidate": b[CANDIDATE_FIELD], "status": "succeeded"}
    assert again.check_orphans([job("SUCCEEDED", a, value_a), job("SUCCEEDED", b, value_b)]) is False
    assert [r.result.fitness for r in again._driver.records] == [1.0, 2.0]


# ------------------------------------------------------------------- the loopback sshd
def find_sshd() -> str | None:
    for path in (shutil.which("sshd"), *SSHD_CANDIDATES):
        if path and os.access(path, os.X_OK):
            return path
    return None


def ensure_sshd() -> str:
    """The sshd binary, installed with ``.ci/install-sshd`` when missing; skips with the reason if impossible."""
    path = find_sshd()
    if path:
        return path
    try:
        done = subprocess.run(["bash", str(REPO / ".ci/install-sshd")], capture_output=True, text=True,
                              timeout=INSTALL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.skip(f"sshd is not installed and .ci/install-sshd took more than {INSTALL_TIMEOUT_S} s")
    path = find_sshd()
    if path:
        return path
    tail = " / ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
    pytest.skip(f"sshd is not installed and .ci/install-sshd could not install it ({done.returncode}): {tail}")


@dataclass
class Sshd:
    port: int
    user: str
    key: Path
    home: Path

    def machine(self) -> dict:
        """An NNI ``machineList`` entry for this sshd, trials run by this interpreter."""
        return {"host": "127.0.0.1", "port": self.port, "user": self.user, "sshKeyFile": str(self.key),
                "pythonPath": str(Path(sys.executable).parent)}

    def run(self, command: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(["ssh", *SSH_OPTIONS, "-i", str(self.key), "-p", str(self.port),
                               f"{self.user}@127.0.0.1", command], capture_output=True, text=True, timeout=timeout)


def keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "nas_core-test", "-f", str(path)],
                   check=True, capture_output=True, timeout=60)


def sshd_config(folder: Path, port: int, user: str, home: Path) -> str:
    sftp = next((p for p in ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server",
                             "/usr/libexec/sftp-server") if os.path.exists(p)), "internal-sftp")
    env = {"PIP_NO_INDEX": "1", "PYTHONPATH": str(REPO), "HOME": str(home),
           "NODE_OPTIONS": f"--require={nni_experiment.LOOPBACK_SHIM}",  # the trial keeper on loopback
           "NAS_CORE_WORKER_IDLE_S": "20"}  # resident trial workers end soon after the test
    return "\n".join([
        f"Port {port}",
        "ListenAddress 127.0.0.1",
        f"HostKey {folder / 'host_key'}",
        f"PidFile {folder / 'sshd.pid'}",
        f"AuthorizedKeysFile {folder / 'authorized_keys'}",
        f"AllowUsers {user}",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",  # the temporary folder sits under a world-writable /tmp
        "MaxStartups 50",  # NNI opens several sessions at once per machine
        "MaxSessions 50",
        f"Subsystem sftp {sftp}",  # NNI uploads the trial code over SFTP
        "SetEnv " + " ".join(f"{k}={v}" for k, v in env.items()),
        "LogLevel ERROR",
        "",
    ])


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    binary = ensure_sshd()
    folder = tmp_path_factory.mktemp("sshd")
    home = folder / "home"
    home.mkdir()
    user = getpass.getuser()
    keygen(folder / "host_key")
    keygen(folder / "client_key")
    shutil.copy(folder / "client_key.pub", folder / "authorized_keys")
    try:
        Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)  # sshd's privilege separation folder
    except OSError as err:
        pytest.skip(f"sshd cannot start: cannot create /run/sshd ({err})")
    port = free_port()
    config = folder / "sshd_config"
    config.write_text(sshd_config(folder, port, user, home))
    log = open(folder / "sshd.log", "wb")
    proc = subprocess.Popen([binary, "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
    server = Sshd(port, user, folder / "client_key", home)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.skip(f"sshd cannot start (exit {proc.returncode}): "
                            f"{(folder / 'sshd.log').read_text(errors='replace').strip()[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.skip(f"sshd started but does not accept connections on 127.0.0.1:{port}")
                time.sleep(0.2)
        check = server.run(f"{Path(sys.executable).parent}/python -c "
                           "'import os, nas_core; print(os.environ[\"PIP_NO_INDEX\"], nas_core.__file__)'")
        assert check.returncode == 0, f"ssh into the test sshd failed: {check.stderr or check.stdout}"
        assert check.stdout.split() == ["1", str(REPO / "nas_core/__init__.py")], check.stdout
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


# ------------------------------------------------------------------- remote experiments
def remote_service(sshd: Sshd, reuse: bool, machines: int) -> dict:
    return {"platform": "remote", "reuseMode": reuse, "machineList": [sshd.machine() for _ in range(machines)]}


def remote_config(tmp_path: Path, sshd: Sshd, *, reuse: bool, machines: int = 1, **top) -> Path:
    """A toy config moved to the remote service; the uploaded code folder holds nothing but a marker
    (the trials import this checkout through PYTHONPATH, as a worker with the project installed)."""
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / "README").write_text("uploaded to the remote machine as the trial code directory\n")
    top.setdefault("trainingService", remote_service(sshd, reuse, machines))
    return toy_config(tmp_path, trialCodeDirectory=str(code), nniManagerIp="127.0.0.1", **top)


def trial_keeper_ports(sshd: Sshd, exp_id: str) -> list[int]:
    """The ports NNI's trial keepers on the "remote machine" said they listen on (from their logs)."""
    logs = (sshd.home / "nni-experiments" / exp_id / "environments").glob("*/trial_keeper*/trial_keeper.log")
    return [int(port) for log in logs for port in re.findall(r"Running on port (\d+)", log.read_text())]


def remove_remote_files(sshd: Sshd, exp_id: str) -> None:
    """What NNI left on the "remote machine": under the sshd's HOME, and reuse mode's /tmp folder."""
    shutil.rmtree(sshd.home / "nni-experiments" / exp_id, ignore_errors=True)
    shutil.rmtree(Path("/tmp/nni-experiments") / exp_id, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.parametrize("reuse, machines", [(False, 1), (True, 2)], ids=["reuse-false", "reuse-true-2-machines"])
def test_digits_search_on_remote_machines_reaches_done(tmp_path, sshd, reuse, machines):
    # the paper's evaluator on digits, 1 epoch; evolution of 4 candidates over 2 generations
    args = json.dumps({"epochs": 1, "threads": 1, "dataset": "digits"})
    tuner = {"className": "nas_core.nni_adapter.tuner.StrategyTuner", "codeDirectory": str(REPO),
             "classArgs": {"strategy": "evolution", "strategy_args": {"population_size": 4, "generations": 2},
                           "seed": 0}}
    config = remote_config(tmp_path, sshd, reuse=reuse, machines=machines, tuner=tuner, maxTrialNumber=8,
                           searchSpaceFile=str(REPO / "examples/digits/search_space.json"),
                           trialCommand=f"python3 -m nas_core.trial --evaluator binary_width --args '{args}'")
    port = free_port()
    exp = nni_experiment.start(config, port=port, host="127.0.0.1")
    try:
        outcome = nni_experiment.wait(exp, poll=2.0, progress=False, timeout=900)
        jobs = rest.get(port, "trial-jobs") or []
        keepers = trial_keeper_ports(sshd, exp.id)  # still running until the experiment stops
        stderr = [path.read_text() for path in (sshd.home / "nni-experiments" / exp.id).glob("**/trial.stderr")]
        reached = {(address, keeper): connect_errno(address, keeper)
                   for keeper in keepers for address in ["127.0.0.1", *own_non_loopback_ipv4()]}
    finally:
        exp.stop()
        remove_remote_files(sshd, exp.id)
    assert outcome.status == "DONE", outcome.errors
    assert jobs and all(job["status"] == "SUCCEEDED" for job in jobs), [job["status"] for job in jobs]
    results = load_results(state_path_of(outcome.experiment_dir))
    trained = [r for r in results.records if r.source == "trained"]
    assert len(trained) == len(jobs) <= 8
    values = [rest.final_value(job) for job in jobs]
    assert all(0 <= v["accuracy"] <= 100 and v["flops_norm"] > 0 for v in values)
    assert {v["candidate"] for v in values} == rest.submitted_keys(jobs, CANDIDATE_FIELD)
    assert len({v["candidate"] for v in values}) == len(jobs)  # no architecture trained twice
    space = SearchSpace.from_nni(json.loads((REPO / "examples/digits/search_space.json").read_text()))
    assert mismatched_trials(jobs, space) == []  # NNI's trial list shows what each trial trained
    assert sorted(v["trial_number"] for v in values) == sorted(job["sequenceId"] for job in jobs)
    if not reuse:  # each trial found the manager (the trial keeper's launch file names it) to read its parameters
        assert len(stderr) == len(jobs) and not [text for text in stderr if "NNI manager" in text], stderr
    if not reuse:  # one trial keeper per machine, which the shim keeps off every other interface
        assert len(keepers) == machines
        assert reached == {(address, keeper): 0 if address == "127.0.0.1" else errno.ECONNREFUSED
                           for address, keeper in reached}


@pytest.mark.slow
@pytest.mark.parametrize("reuse, machines", [(False, 1), (True, 2)], ids=["reuse-false", "reuse-true-2-machines"])
def test_remote_stop_then_resume_continues_exactly(tmp_path, sshd, reuse, machines):
    from tests import test_nni_resume as local

    tuner = {"className": "nas_core.nni_adapter.tuner.StrategyTuner", "codeDirectory": str(REPO),
             "classArgs": {"strategy": "evolution", "strategy_args": local.STRATEGY_ARGS, "seed": 3}}
    config = remote_config(tmp_path, sshd, reuse=reuse, machines=machines, tuner=tuner, maxTrialNumber=30,
                           trialConcurrency=2,
                           trial_args={"sleep": 8.0})  # long enough that nnictl stop lands mid-generation
    port = free_port()
    exp = nni_experiment.start(config, port=port, host="127.0.0.1")
    exp_id, exp_dir = exp.id, nni_experiment.experiment_dir(exp)
    atexit.unregister(exp.stop)  # stopped and resumed by nnictl below
    try:
        local.wait_for(port, lambda status, jobs: local.succeeded(jobs) >= 2, timeout=600)
        subprocess.run([NNICTL, "stop", exp_id], capture_output=True, timeout=180, check=True)
        before = len(load_results(state_path_of(exp_dir)).records)
        assert 2 <= before < 12  # stopped mid-search with the results so far persisted
        port = free_port()
        local.resume(exp_id, port)
        status, jobs = local.wait_for(port, lambda status, jobs: status in ("DONE", "ERROR"),
                                      timeout=900)
    finally:
        subprocess.run([NNICTL, "stop", exp_id], capture_output=True, timeout=180)
        remove_remote_files(sshd, exp_id)
    assert status == "DONE"
    local.check_against_uninterrupted(exp_dir, jobs)
