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


@pytest.mark.slow
def test_medianstop_on_digits_reaches_done_and_early_stops_are_recorded_as_such(make_toy_config, tmp_path):
    # concurrency 1: every trial after the first is judged against finished ones from its second epoch on
    config = make_toy_config(
        tuner={"className": "nas_core.nni_adapter.tuner.StrategyTuner", "codeDirectory": str(REPO),
               "classArgs": {"strategy": "evolution", "strategy_args": {"population_size": 4, "generations": 2},
                             "seed": 3}},
        assessor={"name": "Medianstop", "classArgs": {"optimize_mode": "maximize", "start_step": 2}},
        maxTrialNumber=8, trialConcurrency=1, searchSpaceFile=str(REPO / "examples/digits/search_space.json"),
        trialCommand="python3 -m nas_core.trial --evaluator binary_width --args '{\"epochs\": 12, \"threads\": 1}'")
    assert main(["validate", str(config)]) == 0
    outcome, jobs = run_experiment(config)
    assert outcome.status == "DONE", outcome.errors
    stopped_jobs = [job for job in jobs if job["status"] == "EARLY_STOPPED"]
    assert stopped_jobs, f"Medianstop stopped no trial: {[job['status'] for job in jobs]}"

    results = load_results(state_path_of(outcome.experiment_dir))
    stopped = [r for r in results.records if r.result.early_stopped]
    assert len(stopped) == len(stopped_jobs)
    for record in stopped:
        assert record.result.fitness is None and "accuracy" in record.result.metrics
        assert "stopped early by NNI" in str(record.result.reason)
    assert not any(r.result.status == "failed" for r in results.records), "an early stop was recorded as a failure"
    best = results.best(len(results.records))
    assert best and not {r.key for r in best} & {r.key for r in stopped}

    out = tmp_path / "report"
    assert main(["report", str(outcome.experiment_dir), "--output", str(out)]) == 0
    assert json.loads((out / "best.json").read_text())["architecture"] == best[0].arch
    statuses = [row["status"] for row in csv.DictReader((out / "trials.csv").open())]
    assert statuses.count("early_stopped") == len(stopped)
    assert "## Early-stopped candidates" in (out / "report.md").read_text()
