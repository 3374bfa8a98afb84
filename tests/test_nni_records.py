"""Records rebuilt from an NNI experiment's own trial database (db/nni.sqlite), for experiments run with NNI's
own tuners: a small database in NNI 3.0's schema, built here, read without any NNI process."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from nas_core.cli import main
from nas_core.nni_adapter.nni_records import load_nni_results
from nas_core.results import ResultsError

# NNI 3.0's tables (nni_node/core/sqlDatabase.js), as an experiment's db/nni.sqlite holds them.
SCHEMA = """
CREATE TABLE TrialJobEvent (timestamp integer, trialJobId text, event text, data text, logPath text,
    sequenceId integer, message text, environmentId text);
CREATE TABLE MetricData (timestamp integer, trialJobId text, parameterId text, type text, sequence integer, data text);
CREATE TABLE ExperimentProfile (params text, id text, execDuration integer, startTime integer, endTime integer,
    logDir text, nextSequenceId integer, revision integer);
"""
SPACE = {"depth": {"_type": "choice", "_value": [1, 2, 3]}, "act": {"_type": "choice", "_value": ["relu", "tanh"]}}
EVALUATOR = {"name": "toy", "class": "tests.toy_plugins:ToyEvaluator", "args": {},
             "metrics": [{"name": "accuracy", "direction": "maximize", "description": ""}],
             "pareto_metrics": None, "objective": {"name": "metric", "metric": "accuracy"}}


class Db:
    """Writes rows the way NNI's manager does (metric data is the JSON of the JSON string the trial sent)."""

    def __init__(self, folder: Path, optimize_mode: str = "maximize") -> None:
        (folder / "db").mkdir(parents=True)
        self.path = folder / "db" / "nni.sqlite"
        self.db = sqlite3.connect(self.path)
        self.db.executescript(SCHEMA)
        self.clock = 1_000
        params = {"searchSpace": SPACE, "trialConcurrency": 2,
                  "tuner": {"name": "TPE", "classArgs": {"optimize_mode": optimize_mode}}}
        self.db.execute("INSERT INTO ExperimentProfile VALUES (?, 'exp1', 0, 0, NULL, '/x', 0, 1)", (json.dumps(params),))

    def event(self, job: str, event: str, sequence: int, parameter_id: int | None = None,
              parameters: dict[str, Any] | None = None) -> None:
        data = None if parameters is None else json.dumps(
            {"parameter_id": parameter_id, "parameter_source": "algorithm", "parameters": parameters,
             "parameter_index": 0})
        self.clock += 1
        self.db.execute("INSERT INTO TrialJobEvent VALUES (?, ?, ?, ?, ?, ?, NULL, 'local-env')",
                        (self.clock, job, event, data, f"/x/trials/{job}", sequence))

    def metric(self, job: str, parameter_id: int, kind: str, sequence: int, value: Any) -> None:
        self.clock += 1
        self.db.execute("INSERT INTO MetricData VALUES (?, ?, ?, ?, ?, ?)",
                        (self.clock, job, str(parameter_id), kind, sequence, json.dumps(json.dumps(value))))

    def close(self) -> None:
        self.db.commit()
        self.db.close()


def build_experiment(folder: Path, optimize_mode: str = "maximize") -> Path:
    db = Db(folder, optimize_mode)
    archs = {0: {"depth": 1, "act": "relu"}, 1: {"depth": 2, "act": "relu"}, 2: {"depth": 3, "act": "relu"},
             3: {"depth": 1, "act": "tanh"}, 4: {"depth": 2, "act": "tanh"}, 5: {"depth": 3, "act": "tanh"}}
    for pid, job in enumerate(["jobA", "jobB", "jobC", "jobD", "jobE", "jobF"]):
        db.event(job, "WAITING", pid, pid, {**archs[pid], "_candidate": f"c{pid}"})
        db.event(job, "RUNNING", pid)
    # A: succeeded, echoes its candidate and the evaluator's description.
    db.metric("jobA", 0, "PERIODICAL", 0, {"default": 0.4, "accuracy": 0.4})
    db.metric("jobA", 0, "FINAL", 0, {"default": 0.7, "accuracy": 0.7, "candidate": "c0", "evaluator": EVALUATOR})
    db.event("jobA", "SUCCEEDED", 0)
    # B: killed by an assessor after two epochs; its partial accuracy would beat everything.
    db.metric("jobB", 1, "PERIODICAL", 0, {"default": 0.5, "accuracy": 0.5})
    db.metric("jobB", 1, "PERIODICAL", 1, {"default": 0.99, "accuracy": 0.99})
    db.event("jobB", "EARLY_STOPPED", 1)
    # C: crashed without a result.
    db.event("jobC", "FAILED", 2)
    # D: NNI's local service handed job D the parameters of id 4: its results carry parameter id 4.
    db.metric("jobD", 4, "FINAL", 0, 0.6)  # a bare number, as a plain NNI trial reports
    db.event("jobD", "SUCCEEDED", 3)
    # E: still running; F: reported a failure itself.
    db.metric("jobF", 5, "FINAL", 0, {"default": 0.0, "status": "failed", "reason": "loss diverged", "candidate": "c5"})
    db.event("jobF", "FAILED", 5)
    db.close()
    return folder


def test_records_come_from_the_trial_database(tmp_path):
    results = load_nni_results(build_experiment(tmp_path / "exp1"))
    assert results.space is not None and results.space.names == ("depth", "act")
    assert results.evaluator == EVALUATOR
    by_job = {r.trial_id: r for r in results.records}
    assert sorted(by_job) == ["jobA", "jobB", "jobC", "jobD", "jobF"]  # jobE has not ended
    a, b, c, d, f = (by_job[j] for j in ("jobA", "jobB", "jobC", "jobD", "jobF"))
    assert (a.candidate_id, a.arch, a.result.status, a.result.fitness) == (0, {"depth": 1, "act": "relu"}, "succeeded", 0.7)
    assert a.result.metrics == {"accuracy": 0.7}
    assert b.result.status == "early_stopped" and b.result.metrics == {"accuracy": 0.99} and b.result.fitness is None
    assert "after 2 per-epoch results" in str(b.result.reason)
    assert c.result.status == "failed" and "ended FAILED without a final result" in str(c.result.reason)
    assert "/x/trials/jobC/trial.log" in str(c.result.reason)
    assert d.arch == {"depth": 2, "act": "tanh"} and d.result.fitness == 0.6  # what it trained, not its own form
    assert f.result.status == "failed" and f.result.reason == "loss diverged"
    assert [r.trial_id for r in results.best(5)] == ["jobA", "jobD"]  # the early stop is never best
    assert any("1 trial not ended" in note for note in results.notes)


def test_a_cancelled_trial_of_an_experiment_with_an_assessor_is_an_early_stop_that_says_it_may_be_a_user(tmp_path):
    folder = tmp_path / "exp1"
    db = Db(folder)
    db.db.execute("UPDATE ExperimentProfile SET params = ?", (json.dumps(
        {"searchSpace": SPACE, "tuner": {"name": "TPE"}, "assessor": {"name": "Medianstop"}}),))
    db.event("jobA", "RUNNING", 0, 0, {"depth": 1, "act": "relu"})
    db.metric("jobA", 0, "PERIODICAL", 0, {"default": 0.3, "accuracy": 0.3})
    db.event("jobA", "USER_CANCELED", 0)
    db.close()
    (record,) = load_nni_results(folder).records
    assert record.result.early_stopped and record.result.metrics == {"accuracy": 0.3}
    assert "its assessor Medianstop or by a user" in str(record.result.reason)


def test_a_minimising_tuner_gives_the_negated_default_as_fitness(tmp_path):
    results = load_nni_results(build_experiment(tmp_path / "exp1", optimize_mode="minimize"))
    assert [r.trial_id for r in results.best(5)] == ["jobD", "jobA"]
    assert results.best(1)[0].result.fitness == -0.6
    assert any("fitness here is its negative" in note for note in results.notes)


def test_report_command_falls_back_to_the_trial_database(tmp_path, capsys):
    folder = build_experiment(tmp_path / "exp1")
    out = tmp_path / "out"
    assert main(["report", str(folder), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "5 architectures evaluated (2 failed, 1 early-stopped)" in printed
    assert json.loads((out / "best.json").read_text())["trial_id"] == "jobA"
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert {row["trial_id"]: row["status"] for row in rows} == {
        "jobA": "succeeded", "jobB": "early_stopped", "jobC": "failed", "jobD": "succeeded", "jobF": "failed"}
    assert all(row["trial_job"] == row["trial_id"] and row["trial_number"] == row["candidate_id"] for row in rows)
    md = (out / "report.md").read_text()
    assert "## Early-stopped candidates" in md and "records rebuilt from NNI's trial database" in md


def test_no_database_and_a_broken_one_are_one_line(tmp_path, capsys):
    with pytest.raises(ResultsError, match="no NNI trial database"):
        load_nni_results(tmp_path)
    assert main(["report", str(tmp_path)]) == 2
    assert "no search state found" in capsys.readouterr().err
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "nni.sqlite").write_bytes(b"not a database at all" * 10)
    with pytest.raises(ResultsError, match="not a readable NNI trial database"):
        load_nni_results(tmp_path)


def test_a_search_state_of_ours_wins_over_the_trial_database(tmp_path):
    """`search` and `report` read our tuner's state when there is one, NNI's database only when there is none."""
    from nas_core.cli import load_any_results
    from nas_core.driver import Record
    from nas_core.state_io import write_json_atomic
    from nas_core.strategy import TrialResult

    folder = build_experiment(tmp_path / "exp1")
    state = folder / "checkpoint" / "nas_search_state.json"
    assert load_any_results(folder, state).source == folder / "db" / "nni.sqlite"
    arch = {"depth": 3, "act": "tanh"}
    ours = Record(0, 1, arch, json.dumps(arch), TrialResult.succeeded({"accuracy": 0.9}, 0.9), "trained")
    write_json_atomic(state, {"driver": {"records": [ours.to_json()]}})
    assert load_any_results(folder, state).source == state
    assert load_any_results(folder).records == [ours]


def test_a_corrupt_search_state_is_an_error_naming_it_not_a_fall_back_to_the_trial_database(tmp_path, capsys):
    from nas_core.cli import load_any_results

    folder = build_experiment(tmp_path / "exp1")
    state = folder / "checkpoint" / "nas_search_state.json"
    state.parent.mkdir(parents=True)
    state.write_text('{"driver": {"records": [')  # cut short, as by a full disk
    for given in (None, state):
        with pytest.raises(ResultsError, match="not a readable search state") as caught:
            load_any_results(folder, given)
        assert str(state) in str(caught.value)
    assert main(["report", str(folder), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert str(state) in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_after_a_resume_an_old_trial_keeps_its_own_architecture_and_every_candidate_number_is_unique(tmp_path):
    """A resume starts NNI's parameter ids and Trial Nos. again: job N (after it) reuses job A's
    parameter id 1 and Trial No. 1; A's result still belongs to what A trained."""
    db = Db(tmp_path)
    db.event("jobA", "WAITING", 1, 1, {"depth": 1, "act": "relu"})
    db.event("jobA", "RUNNING", 1)
    db.metric("jobA", 1, "FINAL", 0, 0.9)
    db.event("jobA", "SUCCEEDED", 1)
    db.event("jobN", "WAITING", 1, 1, {"depth": 3, "act": "tanh"})
    db.event("jobN", "RUNNING", 1)
    db.metric("jobN", 1, "FINAL", 0, 0.1)
    db.event("jobN", "SUCCEEDED", 1)
    db.event("", "IMPORT_DATA", None)  # what `nnictl experiment import` stores: no trial
    db.close()
    results = load_nni_results(tmp_path)
    by_job = {r.trial_id: r for r in results.records}
    assert sorted(by_job) == ["jobA", "jobN"]
    assert by_job["jobA"].arch == {"depth": 1, "act": "relu"} and by_job["jobA"].result.fitness == 0.9
    assert by_job["jobN"].arch == {"depth": 3, "act": "tanh"} and by_job["jobN"].result.fitness == 0.1
    assert results.best(1)[0].arch == {"depth": 1, "act": "relu"}
    assert (by_job["jobA"].candidate_id, by_job["jobN"].candidate_id) == (1, 2)
    assert (by_job["jobA"].external_number, by_job["jobN"].external_number) == (1, 1)  # the Trial Nos. NNI shows
    assert any("numbered after the largest" in note for note in results.notes)


def test_a_swap_is_looked_up_only_among_the_jobs_of_the_run_it_ran_in(tmp_path):
    """Before the stop, jobs B and C trained each other's parameters while R ran; the resume re-submits R (whose
    parameter id 1 is the largest it re-submits) and numbers new jobs Q and N from id 2 and Trial No. 1 again;
    R and Q then train each other's parameters."""
    db = Db(tmp_path)
    db.event("jobR", "WAITING", 0, 1, {"depth": 1, "act": "tanh"})
    db.event("jobB", "WAITING", 1, 2, {"depth": 1, "act": "relu"})
    db.event("jobC", "WAITING", 2, 3, {"depth": 2, "act": "relu"})
    db.metric("jobB", 3, "FINAL", 0, 0.5)
    db.event("jobB", "SUCCEEDED", 1)
    db.metric("jobC", 2, "FINAL", 0, 0.4)
    db.event("jobC", "SUCCEEDED", 2)
    db.event("jobR", "ADD_RESUMED", None)
    db.event("jobQ", "WAITING", 1, 2, {"depth": 3, "act": "tanh"})
    db.event("jobN", "WAITING", 2, 3, {"depth": 3, "act": "relu"})
    db.metric("jobR", 2, "FINAL", 0, 0.3)
    db.event("jobR", "SUCCEEDED", 0)
    db.metric("jobQ", 1, "FINAL", 0, 0.2)
    db.event("jobQ", "SUCCEEDED", 1)
    db.metric("jobN", 3, "FINAL", 0, 0.1)
    db.event("jobN", "SUCCEEDED", 2)
    db.close()
    records = load_nni_results(tmp_path).records
    assert {r.trial_id: r.arch for r in records} == {
        "jobB": {"depth": 2, "act": "relu"}, "jobC": {"depth": 1, "act": "relu"}, "jobR": {"depth": 3, "act": "tanh"},
        "jobQ": {"depth": 1, "act": "tanh"}, "jobN": {"depth": 3, "act": "relu"}}
    assert sorted(r.candidate_id for r in records) == [0, 1, 2, 3, 4]


def test_events_are_replayed_as_nni_replays_them(tmp_path):
    """USER_TO_CANCEL is USER_CANCELED, ADD_CUSTOMIZED (no job id) is no trial, ADD_HYPERPARAMETER keeps the status."""
    db = Db(tmp_path)
    db.event("", "ADD_CUSTOMIZED", None, 9, {"depth": 2, "act": "tanh"})
    db.event("jobA", "WAITING", 0, 0, {"depth": 1, "act": "relu"})
    db.event("jobA", "RUNNING", 0)
    db.event("jobA", "USER_TO_CANCEL", None)
    db.event("jobB", "WAITING", 1, 1, {"depth": 2, "act": "relu"})
    db.event("jobB", "RUNNING", 1)
    db.metric("jobB", 1, "FINAL", 0, 0.5)
    db.event("jobB", "SUCCEEDED", 1)
    db.event("jobB", "ADD_HYPERPARAMETER", None, 7, {"depth": 3, "act": "relu"})
    db.close()
    results = load_nni_results(tmp_path)
    by_job = {r.trial_id: r for r in results.records}
    assert sorted(by_job) == ["jobA", "jobB"]
    assert by_job["jobA"].result.status == "failed" and "USER_CANCELED" in str(by_job["jobA"].result.reason)
    assert by_job["jobB"].result.ok and by_job["jobB"].arch == {"depth": 2, "act": "relu"}
    assert not any("not ended" in note for note in results.notes)


@pytest.mark.parametrize("status, metrics, assessor", [
    ("EARLY_STOPPED", [("PERIODICAL", 0.3), ("FINAL", {"default": 0.8, "accuracy": 0.8})], None),
    ("EARLY_STOPPED", [("PERIODICAL", 0.3), ("PERIODICAL", 0.4)], None),
    ("USER_CANCELED", [("PERIODICAL", 0.3)], "Medianstop"),
    ("USER_CANCELED", [("PERIODICAL", 0.3)], None),
    ("FAILED", [("FINAL", {"default": 0.0, "status": "failed", "reason": "loss diverged"})], None),
    ("SYS_CANCELED", [], None),
    ("SUCCEEDED", [], None),
    ("SUCCEEDED", [("FINAL", 0.6)], None),
])
def test_the_trial_database_and_the_tuner_read_a_job_the_same_way(tmp_path, status, metrics, assessor):
    """`report` on NNI's database and the tuner asking the manager give one job one result."""
    from nas_core.nni_adapter import trial_outcome

    db = Db(tmp_path)
    if assessor:
        db.db.execute("UPDATE ExperimentProfile SET params = ?", (json.dumps(
            {"searchSpace": SPACE, "tuner": {"name": "TPE"}, "assessor": {"name": assessor}}),))
    db.event("jobA", "WAITING", 0, 0, {"depth": 1, "act": "relu"})
    db.event("jobA", "RUNNING", 0)
    rows = []
    for sequence, (kind, value) in enumerate(metrics):
        db.metric("jobA", 0, kind, sequence, value)
        rows.append({"parameterId": "0", "type": kind, "sequence": sequence, "data": json.dumps(json.dumps(value))})
    db.event("jobA", status, 0)
    db.close()
    (record,) = load_nni_results(tmp_path).records
    job = {"trialJobId": "jobA", "status": status, "logPath": "/x/trials/jobA", "hyperParameters": [
        json.dumps({"parameter_id": 0, "parameters": {"depth": 1, "act": "relu"}, "parameter_index": 0})]}
    ended = trial_outcome.outcome(job, rows, assessor=assessor)
    assert ended is not None and record.result == ended.result


def test_non_numeric_values_in_a_final_result_are_left_out_and_the_notes_say_which(tmp_path):
    db = Db(tmp_path)
    db.event("jobA", "WAITING", 0, 0, {"depth": 1, "act": "relu"})
    db.metric("jobA", 0, "FINAL", 0, {"default": 0.7, "loss": 0.2, "model_path": "/ckpt/a.pt", "note": None})
    db.event("jobA", "SUCCEEDED", 0)
    db.close()
    results = load_nni_results(tmp_path)
    (record,) = results.records
    assert record.result.ok and record.result.fitness == 0.7 and record.result.metrics == {"loss": 0.2}
    assert any("left out of the metrics: model_path, note" in note for note in results.notes)


def test_report_reads_the_state_file_the_tuner_was_told_not_the_trial_database(tmp_path, capsys):
    """An experiment whose tuner had classArgs.state_file: `report` finds that state (relative paths are
    under the experiment's log folder, where NNI starts the tuner) instead of falling back to NNI's view."""
    from nas_core.driver import Record
    from nas_core.state_io import write_json_atomic
    from nas_core.strategy import TrialResult

    folder = build_experiment(tmp_path / "exp1")
    db = sqlite3.connect(folder / "db" / "nni.sqlite")
    params = {"searchSpace": SPACE, "trialConcurrency": 2,
              "tuner": {"className": "nas_core.nni_adapter.tuner:StrategyTuner",
                        "classArgs": {"strategy": "random", "state_file": "mine.json"}}}
    db.execute("INSERT INTO ExperimentProfile VALUES (?, 'exp1', 0, 0, NULL, '/x', 0, 2)", (json.dumps(params),))
    db.commit()
    db.close()
    arch = {"depth": 3, "act": "tanh"}
    ours = Record(0, 1, arch, json.dumps(arch), TrialResult.succeeded({"accuracy": 0.93}, 0.93), "trained")
    write_json_atomic(folder / "log" / "mine.json", {"driver": {"records": [ours.to_json()]}})
    assert main(["report", str(folder), "--output", str(tmp_path / "out")]) == 0
    assert f"results read from: {folder / 'log' / 'mine.json'}" in capsys.readouterr().out
    assert "0.93" in (tmp_path / "out" / "best.json").read_text()
