"""Stop/resume and crash/resume through real nnictl: the search continues exactly where it was."""

import atexit
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nas_core import STRATEGIES, run_search
from nas_core.nni_adapter import experiment as nni_experiment
from nas_core.nni_adapter import rest
from nas_core.nni_adapter.tuner import state_path_of
from nas_core.results import load_results
from tests.conftest import REPO
from tests.test_nni_e2e import free_port
from tests.toy_plugins import ToyEvaluator

NNICTL = str(Path(sys.executable).with_name("nnictl"))
STRATEGY_ARGS = {"population_size": 4, "generations": 3}


def config_for(make_toy_config):
    tuner = {"className": "nas_core.nni_adapter.tuner.StrategyTuner", "codeDirectory": str(REPO),
             "classArgs": {"strategy": "evolution", "strategy_args": STRATEGY_ARGS, "seed": 3}}
    return make_toy_config(tuner=tuner, maxTrialNumber=30, trialConcurrency=2, trial_args={"sleep": 3.0})  # long enough to stop mid-search


def wait_for(port, predicate, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            # the status first: a trial list read after DONE holds every trial's end (read before, it
            # could miss the last one, which ended in the same manager loop as DONE)
            status = rest.get(port, "check-status")["status"]
            jobs = rest.get(port, "trial-jobs") or []
            if predicate(status, jobs):
                return status, jobs
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError("experiment did not reach the expected state")


def succeeded(jobs):
    return sum(job["status"] == "SUCCEEDED" for job in jobs)


def resume(exp_id, port):
    env = dict(os.environ)
    nni_experiment.bind_environment("127.0.0.1")
    env.update({k: os.environ[k] for k in ("NODE_OPTIONS", "NAS_CORE_BIND_HOST", "PATH") if k in os.environ})
    out = subprocess.run([NNICTL, "resume", exp_id, "--port", str(port)], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def uninterrupted_records():
    space = ToyEvaluator().search_space()
    strategy = STRATEGIES.build("evolution", STRATEGY_ARGS, space=space, seed=3)
    driver = run_search(strategy, ToyEvaluator(), budget=100, concurrency=2, progress=False)
    records = sorted(driver.records, key=lambda r: r.candidate_id)
    return [(r.candidate_id, r.arch, r.result.fitness) for r in records]


@contextlib.contextmanager
def cpu_load(processes: int = 4):
    """Busy processes (not niced) for the duration of the block: the manager, tuner and trials of
    the experiment then run late and out of their usual order, as on a loaded machine."""
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)]
    try:
        yield
    finally:
        for proc in busy:
            proc.kill()
        for proc in busy:
            proc.wait()


def check_against_uninterrupted(exp_dir, jobs):
    results = load_results(state_path_of(exp_dir))
    ids = [r.candidate_id for r in results.records]
    assert len(ids) == len(set(ids)), f"a candidate recorded twice: {sorted(ids)} ({exp_dir})"
    records = sorted(results.records, key=lambda r: r.candidate_id)
    got = [(r.candidate_id, r.arch, r.result.fitness, r.source) for r in records]
    want = uninterrupted_records()
    # The evolution asks each generation longest (measured) first, so within a generation the
    # order, and with it the candidate numbering, follows the timings; the generations must match.
    assert [g[0] for g in got] == [w[0] for w in want]
    size = STRATEGY_ARGS["population_size"]
    for first in range(0, len(want), size):
        block_got = sorted((repr(g[1]), g[2]) for g in got[first:first + size])
        block_want = sorted((repr(w[1]), w[2]) for w in want[first:first + size])
        assert block_got == block_want, "\n".join(f"{g} | {w}" for g, w in zip(got, want + [None] * len(got)))
    # nothing trained twice: every job ran a different candidate, and every trained record has its job
    hashes = [job for job in jobs if job["status"] == "SUCCEEDED"]
    assert len([r for r in results.records if r.source == "trained"]) == len(hashes)
    assert results.best()[0].result.fitness == max(r.result.fitness for r in results.records if r.result.ok)


def interrupt_and_resume(make_toy_config, after_results: int, interrupt, *, loaded: bool = False,
                         launcher: bool = False) -> None:
    """Start the search, interrupt it once ``after_results`` trials succeeded, resume with nnictl
    (``launcher``: with ``python -m nas_core search --resume``, which waits for the end).

    ``loaded``: keep the CPUs busy from the interruption until the resumed search ends.
    """
    config = config_for(make_toy_config)
    port = free_port()
    exp = nni_experiment.start(config, port=port, host="127.0.0.1")
    exp_id, exp_dir = exp.id, nni_experiment.experiment_dir(exp)
    atexit.unregister(exp.stop)  # stopped and resumed by nnictl below
    try:
        wait_for(port, lambda status, jobs: succeeded(jobs) >= after_results)
        with cpu_load() if loaded else contextlib.nullcontext():
            interrupt(exp)
            before = len(load_results(state_path_of(exp_dir)).records)
            assert after_results <= before < 12  # interrupted mid-search, with the results so far persisted
            if launcher:
                code, out, err = launch_resume(config, exp_id)
                assert code == 0, out + err
                status = "DONE" if f"experiment {exp_id} DONE: " in out else out
                count = int(re.search(r"(\d+) succeeded", out).group(1))
                jobs = [{"status": "SUCCEEDED"}] * count
            else:
                port2 = free_port()
                resume(exp_id, port2)
                status, jobs = wait_for(port2, lambda status, jobs: status in ("DONE", "ERROR"), timeout=600)
    finally:
        subprocess.run([NNICTL, "stop", exp_id], capture_output=True, timeout=120)
    assert status == "DONE"
    check_against_uninterrupted(exp_dir, jobs)


def stop_manager(exp):
    """What ``nnictl stop`` does (the manager stops its trials and tuner), without the seconds a
    new Python process needs to start: the search (six trainings) must still be mid-way."""
    exp.stop()


@pytest.mark.slow
def test_stop_then_resume_continues_exactly(make_toy_config):
    interrupt_and_resume(make_toy_config, 3, stop_manager)


@pytest.mark.slow
def test_stop_then_resume_through_our_launcher_continues_exactly(make_toy_config):
    interrupt_and_resume(make_toy_config, 3, stop_manager, launcher=True)


@pytest.mark.slow
def test_manager_killed_then_resumed_continues_from_the_persisted_state(make_toy_config):
    def kill(exp):
        os.kill(exp._proc.pid, signal.SIGKILL)  # the NNI manager dies without running anything
        exp._proc.wait()
        time.sleep(3)

    interrupt_and_resume(make_toy_config, 3, kill)


def kill_manager(exp):
    os.kill(exp._proc.pid, signal.SIGKILL)  # the NNI manager dies without running anything
    exp._proc.wait()


@pytest.mark.slow
def test_manager_killed_and_resumed_under_cpu_load_records_each_candidate_once(make_toy_config):
    """The resumed manager, tuner and trials run late and interleaved (busy CPUs, the killed
    manager's trials still running while the new one starts): still one record per candidate,
    and the same search as an uninterrupted one."""
    interrupt_and_resume(make_toy_config, 3, kill_manager, loaded=True)


FAKE_TUNER_CHANNEL = """
// NNI 3.0's core/tuner_command_channel.js in outline: the WebSocket server attaches its onReceive
// callbacks to a new channel before telling its connection listeners; the TunerServer turns an ER
// command, and any error of the channel itself, into its 'error' event.
const {EventEmitter} = require('events');
class Channel extends EventEmitter {
  onReceive(cb) { this.on('__receive', cb); }
  onError(cb) { this.on('__error', cb); }
}
class WsChannelServer extends EventEmitter {
  constructor() { super(); this.receiveCallbacks = []; }
  onReceive(cb) { this.receiveCallbacks.push(cb); }
  onConnection(cb) { this.on('connection', cb); }
  handleConnection() {
    const channel = new Channel();
    for (const cb of this.receiveCallbacks) channel.onReceive(command => cb('tuner', command));
    this.emit('connection', 'tuner', channel);
    return channel;
  }
}
class TunerServer {
  constructor() {
    this.emitter = new EventEmitter();
    this.connect = {settled: true};
    this.server = new WsChannelServer();
    this.server.onConnection((_id, channel) => {
      channel.onError(error => this.emitter.emit('error', error));
      channel.onReceive(command => {
        if (command.type === 'ER') this.emitter.emit('error', new Error(command.content));
        else this.emitter.emit('command', command.type, command.content);
      });
    });
  }
  init() { return Promise.resolve(); }
  onError(listener) { this.emitter.on('error', listener); }
}
const server = new TunerServer();
exports.getTunerServer = () => server;
"""

FAKE_MANAGER = """
const {getTunerServer} = require('./tuner_command_channel.js');
class NNIManager {
  constructor() { this.dispatcher = getTunerServer(); this.status = {errors: []}; }
  addEventListeners() {  // as NNI 3.0's: any tuner error becomes one fixed line
    this.dispatcher.onError(() => this.status.errors.push('Dispatcher stream error, tuner may have crashed.'));
  }
}
exports.NNIManager = NNIManager;
"""


def test_the_tuner_s_reported_error_replaces_nni_s_fixed_line_and_a_channel_error_keeps_it(tmp_path):
    """Loaded with the tuner-wait shim, the manager shows what the tuner reported (its ER command),
    not only that it 'may have crashed'; a failure of the channel itself keeps NNI's hint."""
    import nni_node

    from nas_core.nni_adapter.experiment import TUNER_WAIT_SHIM

    (tmp_path / "tuner_command_channel.js").write_text(FAKE_TUNER_CHANNEL, encoding="utf-8")
    (tmp_path / "nnimanager.js").write_text(FAKE_MANAGER, encoding="utf-8")
    script = (f"const c = require({str(tmp_path / 'tuner_command_channel.js')!r});"
              f"const {{NNIManager}} = require({str(tmp_path / 'nnimanager.js')!r}); const m = new NNIManager();"
              "m.addEventListeners(); const channel = c.getTunerServer().server.handleConnection();"
              "channel.emit('__receive', {type: 'ER', content: 'cannot resume: the search state x is missing'});"
              "channel.emit('__error', new Error('WsChannel terminated: peer gone'));"
              "console.log(JSON.stringify(m.status.errors));")
    node = Path(nni_node.__path__[0]) / "node"
    done = subprocess.run([str(node), "-e", script], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "NODE_OPTIONS": f"--require={TUNER_WAIT_SHIM}"})
    assert json.loads(done.stdout) == ["Tuner error: cannot resume: the search state x is missing",
                                       "Dispatcher stream error, tuner may have crashed."], done.stderr


def test_the_tuner_wait_shim_tags_the_real_nni_tuner_server_s_errors(monkeypatch):
    import nni_node

    from nas_core.nni_adapter.experiment import TUNER_WAIT_SHIM

    monkeypatch.setenv("NAS_CORE_TUNER_CONNECT_S", "not a number")  # the tags do not depend on it
    node = Path(nni_node.__path__[0]) / "node"
    script = ("require('app-module-path/register'); require('common/globals/unittest').resetGlobals();"
              "const c = require('core/tuner_command_channel');"
              "console.log(c.getTunerServer().emitter.emit.nasCoreTagsTunerErrors); process.exit(0);")
    done = subprocess.run([str(node), "-e", script], capture_output=True, text=True, cwd=node.parent, timeout=60,
                          env={**os.environ, "NODE_OPTIONS": f"--require={TUNER_WAIT_SHIM}"})
    assert done.stdout.split()[:1] == ["true"], done.stderr


def launch_resume(config, exp_id):
    """``python -m nas_core search CONFIG --resume ID``: exit status, stdout, stderr."""
    done = subprocess.run([sys.executable, "-m", "nas_core", "search", str(config), "--resume", exp_id,
                           "--port", str(free_port()), "--no-progress"],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    return done.returncode, done.stdout, done.stderr


def live_jobs(jobs):
    return [job for job in jobs if job["status"] in ("RUNNING", "WAITING", "UNKNOWN")]


@pytest.mark.slow
def test_resume_with_a_damaged_state_file_is_refused_with_the_reason_and_stops_cleanly(make_toy_config):
    """Run, stop, damage the search state, resume: never a search that trains architectures again,
    always one line saying why, and no trial left running."""
    config = config_for(make_toy_config)
    port = free_port()
    exp = nni_experiment.start(config, port=port, host="127.0.0.1")
    exp_id, exp_dir = exp.id, nni_experiment.experiment_dir(exp)
    state = state_path_of(exp_dir)
    atexit.unregister(exp.stop)
    try:
        wait_for(port, lambda status, jobs: succeeded(jobs) >= 2)
        subprocess.run([NNICTL, "stop", exp_id], capture_output=True, timeout=120, check=True)
        intact = state.read_text()

        # our launcher refuses before NNI starts: one line, exit 2
        state.unlink()
        code, out, err = launch_resume(config, exp_id)
        assert code == 2 and err.strip().count("\n") == 0, out + err
        assert err.startswith(f"error: --resume '{exp_id}': cannot resume: the search state ") and "is missing" in err
        state.write_text(intact[:200])
        code, out, err = launch_resume(config, exp_id)
        assert code == 2 and "is unreadable (Expecting value" in err and err.strip().count("\n") == 0, out + err

        # under nnictl resume the tuner refuses: the experiment shows ERROR with the reason, its trials end
        port2 = free_port()
        resume(exp_id, port2)
        status, jobs = wait_for(port2, lambda status, jobs: status in ("DONE", "ERROR", "STOPPED"), timeout=240)
        errors = rest.get(port2, "check-status").get("errors") or []
        assert status == "ERROR"
        assert len(errors) == 1 and errors[0].startswith("Tuner error: cannot resume: the search state "), errors
        assert "is unreadable (Expecting value" in errors[0] and "\n" not in errors[0]
        wait_for(port2, lambda status, jobs: not live_jobs(jobs), timeout=120)
        subprocess.run([NNICTL, "stop", exp_id], capture_output=True, timeout=120, check=True)
        assert state.read_text() == intact[:200]  # the refusing tuner wrote nothing over it

        # a state that reads but does not fit the search: refused by the tuner, told by our launcher
        state.write_text('{"version": 1, "driver": {"version": 1}}')
        code, out, err = launch_resume(config, exp_id)
        assert code != 0 and f"experiment {exp_id} ERROR" in out, out + err
        assert "NNI error: Tuner error: cannot resume: the search state " in err and "does not fit this search" in err
    finally:
        subprocess.run([NNICTL, "stop", exp_id], capture_output=True, timeout=120)


def test_search_resume_of_an_experiment_that_is_not_there_is_one_line(make_toy_config, capsys):
    from nas_core.cli import main

    config = config_for(make_toy_config)
    assert main(["search", str(config), "--resume", "nosuchexp", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --resume 'nosuchexp': no experiment of that id under ") and err.count("\n") == 1


class StoppedExperiments:
    """nnictl's manifest of experiments, listing one stopped experiment (no file read or written)."""

    def get_all_experiments(self):
        return {"exp1": {"status": "STOPPED", "pid": None}}


def stopped_experiment(tmp_path, monkeypatch, make_toy_config, *, class_args=None, jobs=0, saved_error=None):
    """A stopped experiment's directory as NNI leaves it (a database with ``jobs`` trial jobs); NNI's
    readers of its saved config and of nnictl's manifest are faked. Returns (config path, experiment dir)."""
    import sqlite3

    from nni.experiment import ExperimentConfig, launcher
    from nni.tools.nnictl import config_utils

    tuner = {"className": "nas_core.nni_adapter.tuner.StrategyTuner", "codeDirectory": str(REPO),
             "classArgs": {"strategy": "evolution", "strategy_args": STRATEGY_ARGS, "seed": 3, **(class_args or {})}}
    config = make_toy_config(tuner=tuner)
    exp_dir = tmp_path / "experiments" / "exp1"
    (exp_dir / "db").mkdir(parents=True)
    db = sqlite3.connect(exp_dir / "db" / "nni.sqlite")
    db.execute("CREATE TABLE TrialJobEvent (timestamp integer, trialJobId text, event text, data text, "
               "logPath text, sequenceId integer, message text)")
    db.executemany("INSERT INTO TrialJobEvent VALUES (0, ?, 'WAITING', '', '', ?, '')",
                   [(f"job{i}", i) for i in range(jobs)])
    db.commit()
    db.close()
    saved = ExperimentConfig.load(str(config))

    def stopped_config(exp_id, exp_dir=None):
        if saved_error is not None:
            raise saved_error
        return saved

    monkeypatch.setattr(launcher, "get_stopped_experiment_config", stopped_config)
    monkeypatch.setattr(config_utils, "Experiments", StoppedExperiments)
    return config, exp_dir


def resume_refusal(config, exp_id="exp1"):
    from nni.experiment import ExperimentConfig

    with pytest.raises(nni_experiment.ResumeRefused) as refused:
        nni_experiment.resumable_config(ExperimentConfig.load(str(config)), exp_id)
    assert "\n" not in str(refused.value)
    return str(refused.value)


def test_resume_reads_the_state_file_the_tuner_was_told(tmp_path, monkeypatch, make_toy_config):
    from nni.experiment import ExperimentConfig

    config, exp_dir = stopped_experiment(tmp_path, monkeypatch, make_toy_config, jobs=2,
                                         class_args={"state_file": str(tmp_path / "elsewhere.json")})
    (tmp_path / "elsewhere.json").write_text('{"version": 1, "driver": {}}')
    saved = nni_experiment.resumable_config(ExperimentConfig.load(str(config)), "exp1")
    assert state_path_of(exp_dir, saved.tuner) == tmp_path / "elsewhere.json"
    (tmp_path / "elsewhere.json").unlink()
    assert "the search state " + str(tmp_path / "elsewhere.json") + " is missing" in resume_refusal(config)


def test_a_relative_state_file_is_under_the_directory_nni_starts_the_tuner_in(tmp_path):
    tuner = {"className": "nas_core.nni_adapter.tuner:StrategyTuner", "classArgs": {"state_file": "s.json"}}
    assert state_path_of(tmp_path, tuner) == tmp_path / "log" / "s.json"
    assert state_path_of(tmp_path, {"className": "nni.algorithms.hpo.tpe_tuner.TpeTuner",
                                    "classArgs": {"state_file": "s.json"}}) == state_path_of(tmp_path)


def test_resume_of_an_experiment_that_never_submitted_a_trial_says_so(tmp_path, monkeypatch, make_toy_config):
    config, _ = stopped_experiment(tmp_path, monkeypatch, make_toy_config, jobs=0)
    message = resume_refusal(config)
    assert "never submitted a trial" in message and "start a new experiment" in message
    assert "would train architectures again" not in message


def test_resume_with_trials_and_no_state_is_refused_as_missing(tmp_path, monkeypatch, make_toy_config):
    config, _ = stopped_experiment(tmp_path, monkeypatch, make_toy_config, jobs=1)
    assert "is missing; without it the search would train architectures again" in resume_refusal(config)


@pytest.mark.parametrize("error", [__import__("sqlite3").OperationalError("database is locked"),
                                   FileNotFoundError(2, "No such file or directory", "/moved/cwd")])
def test_resume_whose_saved_config_cannot_be_read_is_one_line(tmp_path, monkeypatch, make_toy_config, error):
    config, _ = stopped_experiment(tmp_path, monkeypatch, make_toy_config, jobs=1, saved_error=error)
    assert resume_refusal(config).startswith("--resume 'exp1': cannot read the experiment under ")


def test_search_resume_of_an_over_long_id_is_one_line(make_toy_config, capsys):
    from nas_core.cli import main

    config = config_for(make_toy_config)
    assert main(["search", str(config), "--resume", "x" * 1000, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --resume 'xxx") and err.count("\n") == 1


def test_search_does_not_call_other_value_errors_a_resume_refusal(make_toy_config, monkeypatch):
    from nas_core.cli import main

    def broken(*args, **kw):
        raise ValueError("a bug elsewhere")

    monkeypatch.setattr(nni_experiment, "start", broken)
    with pytest.raises(ValueError, match="a bug elsewhere"):
        main(["search", str(config_for(make_toy_config)), "--no-progress"])


def test_resume_whose_saved_config_nni_cannot_rebuild_is_one_line(tmp_path, monkeypatch, make_toy_config):
    """NNI rebuilds the saved config with ExperimentConfig(**saved): a field it does not know (a config
    saved by another NNI version) raises AttributeError, which must be a one-line refusal too."""
    error = AttributeError("ExperimentConfig does not have field 'futureField'")
    config, _ = stopped_experiment(tmp_path, monkeypatch, make_toy_config, jobs=1, saved_error=error)
    assert resume_refusal(config).startswith("--resume 'exp1': cannot read its saved config (")


def test_under_nnictl_resume_the_tuner_tells_a_state_never_written_from_a_lost_one(tmp_path, monkeypatch, make_toy_config):
    """`nnictl resume` of an experiment that never submitted a trial: the tuner's refusal (the experiment's
    error) says so, as our launcher does, instead of calling the state lost."""
    from nas_core.nni_adapter.tuner import StrategyTuner

    for jobs, expected in [(0, "never submitted a trial"), (1, "is missing; without it the search would train")]:
        _, exp_dir = stopped_experiment(tmp_path / str(jobs), monkeypatch, make_toy_config, jobs=jobs)
        monkeypatch.setenv("NNI_CHECKPOINT_DIRECTORY", str(exp_dir / "checkpoint"))
        tuner = StrategyTuner(strategy="evolution", strategy_args=STRATEGY_ARGS, seed=3)
        tuner.load_checkpoint()
        assert expected in str(tuner._resume_error)
