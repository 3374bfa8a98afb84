"""NNI's assessors with our tuner: a real experiment on the digits example with Medianstop, whose early-stopped
trials must be recorded as early-stopped (last per-epoch metrics, never best), and the report shows them apart."""

from __future__ import annotations

import csv
import json

import pytest

from nas_core.cli import main
from nas_core.nni_adapter.tuner import state_path_of
from nas_core.results import load_results
from tests.conftest import REPO
from tests.test_nni_e2e import run_experiment


@pytest.mark.parametrize("assessor, expected", [
    ({"name": "Medianstop", "classArgs": {"start_step": 2}}, None),
    ({"name": "Curvefitting", "classArgs": {"epoch_num": 10, "start_step": 3}}, None),
    ({"name": "Mediastop"}, "assessor.name 'Mediastop' is not an assessor NNI knows (did you mean 'Medianstop'?)"),
    ({"name": "TPE"}, "assessor.name 'TPE' is an NNI tuner"),
    ({"name": "Medianstop", "classArgs": {"start_stp": 2}}, "assessor 'Medianstop': classArgs {\"start_stp\": 2} refused"),
    ({"name": "Curvefitting", "classArgs": {"start_step": 2}}, "Missing key: 'epoch_num'"),
])
def test_validate_checks_the_assessor_with_nnis_own_validator(make_toy_config, capsys, assessor, expected):
    code = main(["validate", str(make_toy_config(assessor=assessor))])
    err = capsys.readouterr().err
    if expected is None:
        assert code == 0, err
    else:
        assert code == 2 and expected in err and len(err.strip().splitlines()) == 1, err


def check_records_and_report(outcome, jobs, out) -> list:
    """The search state and the report agree with NNI's job list on which trials were stopped early."""
    # NNI 3.0's local training service lists many assessor stops as USER_CANCELED; nothing else cancels here
    stopped_jobs = [job for job in jobs if job["status"] in ("EARLY_STOPPED", "USER_CANCELED")]
    results = load_results(state_path_of(outcome.experiment_dir))
    trained = [r for r in results.records if r.source == "trained"]
    assert len(trained) == len(jobs)
    stopped = [r for r in trained if r.result.early_stopped]
    assert len(stopped) == len(stopped_jobs)
    for record in stopped:
        assert record.result.fitness is None and record.result.metrics
        assert str(record.result.reason).startswith("stopped early by NNI's assessor after ")
    assert not any(r.result.status == "failed" for r in results.records), "an early stop was recorded as a failure"
    best = results.best(len(results.records))
    assert best and not {r.key for r in best} & {r.key for r in stopped}

    assert main(["report", str(outcome.experiment_dir), "--output", str(out)]) == 0
    assert json.loads((out / "best.json").read_text())["architecture"] == best[0].arch
    statuses = [row["status"] for row in csv.DictReader((out / "trials.csv").open())]
    assert statuses.count("early_stopped") == len(stopped)
    assert ("## Early-stopped candidates" in (out / "report.md").read_text()) == bool(stopped)
    return stopped


@pytest.mark.slow
def test_medianstop_stops_the_poor_toy_candidates_and_they_are_recorded_as_early_stopped(make_toy_config, tmp_path):
    # Random search with seed 0 proposes candidates of sums 6, 8, 7, 4, 3, 3; the toy evaluator's per-epoch accuracy
    # is sum * (epoch + 1) / epochs, so from its second epoch Medianstop stops every candidate whose sum is under
    # 3/4 of the median of the finished ones: the last three. One trial at a time, so the order is fixed.
    config = make_toy_config(
        tuner={"className": "nas_core.nni_adapter.tuner.StrategyTuner", "codeDirectory": str(REPO),
               "classArgs": {"strategy": "random", "seed": 0}},
        assessor={"name": "Medianstop", "classArgs": {"optimize_mode": "maximize", "start_step": 1}},
        maxTrialNumber=6, trialConcurrency=1, trial_args={"epochs": 10, "sleep": 6.0})
    assert main(["validate", str(config)]) == 0
    outcome, jobs = run_experiment(config)
    assert outcome.status == "DONE", outcome.errors
    statuses = [job["status"] for job in sorted(jobs, key=lambda j: j["sequenceId"])]
    assert statuses[:3] == ["SUCCEEDED"] * 3 and set(statuses[3:]) <= {"EARLY_STOPPED", "USER_CANCELED"}, statuses
    stopped = check_records_and_report(outcome, jobs, tmp_path / "report")
    assert sorted(sum(r.arch.values()) for r in stopped) == [3, 3, 4]


@pytest.mark.slow
def test_medianstop_on_digits_reaches_done_with_consistent_records(make_toy_config, tmp_path):
    """The digits example's space and evaluator under Medianstop: DONE, and whatever it stopped is early-stopped."""
    config = make_toy_config(
        tuner={"className": "nas_core.nni_adapter.tuner.StrategyTuner", "codeDirectory": str(REPO),
               "classArgs": {"strategy": "evolution", "strategy_args": {"population_size": 4, "generations": 2},
                             "seed": 3}},
        assessor={"name": "Medianstop", "classArgs": {"optimize_mode": "maximize", "start_step": 2}},
        maxTrialNumber=8, trialConcurrency=2, searchSpaceFile=str(REPO / "examples/digits/search_space.json"),
        trialCommand="python3 -m nas_core.trial --evaluator binary_width --args '{\"epochs\": 8, \"threads\": 1}'")
    assert main(["validate", str(config)]) == 0
    outcome, jobs = run_experiment(config)
    assert outcome.status == "DONE", outcome.errors
    check_records_and_report(outcome, jobs, tmp_path / "report")


@pytest.mark.slow
def test_curvefitting_reaches_done_with_consistent_records(make_toy_config, tmp_path):
    config = make_toy_config(
        tuner={"className": "nas_core.nni_adapter.tuner.StrategyTuner", "codeDirectory": str(REPO),
               "classArgs": {"strategy": "random", "seed": 0}},
        assessor={"name": "Curvefitting", "classArgs": {"epoch_num": 10, "start_step": 3}},
        maxTrialNumber=5, trialConcurrency=1, trial_args={"epochs": 10, "sleep": 4.0})
    outcome, jobs = run_experiment(config)
    assert outcome.status == "DONE", outcome.errors
    check_records_and_report(outcome, jobs, tmp_path / "report")
