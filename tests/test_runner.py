import json

import pytest

from nas_core import StrategyError, run_search
from nas_core.runner import describe_evaluator, evaluator_score
from tests.toy_plugins import BatchStrategy, ClockedEvaluator, SteppedClock, ToyEvaluator, toy_space


def strategy(**kw):
    return BatchStrategy(space=toy_space(), seed=0, **kw)


def test_runs_until_the_strategy_finishes_and_reports_best():
    driver = run_search(strategy(batch=3, batches=2), ToyEvaluator(), budget=100, concurrency=3, progress=False)
    assert driver.finished
    assert len([r for r in driver.records if r.source == "trained"]) == 6
    assert driver.best()[0].result.fitness == max(r.result.fitness for r in driver.records)


def test_budget_counts_trained_candidates():
    driver = run_search(strategy(batch=2, batches=10), ToyEvaluator(), budget=5, concurrency=2, progress=False)
    assert sum(r.source == "trained" for r in driver.records) == 5


def test_failures_are_recorded_not_raised():
    driver = run_search(strategy(batch=3, batches=1), ToyEvaluator(fail_when_sum=1), budget=10, progress=False)
    failed = [r for r in driver.records if not r.result.ok]
    assert len(failed) == 1 and "NaN" in failed[0].result.reason
    assert all(r.result.ok for r in driver.best(5))


def test_wait_with_nothing_in_flight_is_a_strategy_error():
    # batch=3 but only one candidate may be in flight: the strategy waits for results that cannot come
    class Stuck(BatchStrategy):
        def _ask(self, trial_id):
            from nas_core import WAIT
            return WAIT

    with pytest.raises(StrategyError, match="WAIT with no candidate in flight"):
        run_search(Stuck(space=toy_space()), ToyEvaluator(), budget=3, progress=False)


def test_stop_and_resume_gives_the_uninterrupted_run(tmp_path):
    full = run_search(strategy(batch=3, batches=3), ToyEvaluator(), budget=50, concurrency=2, progress=False)
    state = tmp_path / "state.json"
    first = run_search(strategy(batch=3, batches=3), ToyEvaluator(), budget=50, concurrency=2, progress=False,
                       state_file=state, stop_after=4)
    assert len(first.records) == 4
    json.loads(state.read_text())
    resumed = run_search(strategy(batch=3, batches=3), ToyEvaluator(), budget=50, concurrency=2, progress=False,
                         state_file=state)

    def strip(driver):
        return [(r.candidate_id, r.arch, r.result.fitness, r.source) for r in driver.records]

    assert strip(resumed) == strip(full)


@pytest.mark.parametrize("kw, message", [({"budget": 0}, "budget"), ({"budget": 3, "concurrency": 0}, "concurrency")])
def test_bad_arguments(kw, message):
    with pytest.raises(ValueError, match=message):
        run_search(strategy(), ToyEvaluator(), progress=False, **kw)


def test_evaluator_score_turns_exceptions_into_failures():
    class Broken(ToyEvaluator):
        def evaluate(self, arch, reporter=None):
            raise RuntimeError("CUDA out of memory")

    result = evaluator_score(Broken())({"layer0": 0, "layer1": 0, "layer2": 0})
    assert result.status == "failed" and result.reason == "RuntimeError: CUDA out of memory"


def test_evaluator_score_prepares_outside_the_timing_and_reports_a_failed_preparation(monkeypatch):
    arch = {"layer0": 0, "layer1": 1, "layer2": 0}
    clock = SteppedClock()
    monkeypatch.setattr("nas_core.runner.time.perf_counter", clock)
    evaluator = ClockedEvaluator(clock, epochs=1)
    result = evaluator_score(evaluator)(arch)
    assert result.ok and evaluator.prepared == 1 and result.metrics["evaluator_seconds"] == 1.0
    failed = evaluator_score(ToyEvaluator(prepare_error="no data"))(arch)
    assert failed.status == "failed" and failed.reason == "preparing the evaluator: RuntimeError: no data"


def test_the_runner_and_an_nni_trial_score_a_candidate_the_same_way():
    from nas_core.nni_adapter.trial import run_trial

    arch = {"layer0": 0, "layer1": 1, "layer2": 0}
    for evaluator in (ToyEvaluator(epochs=2), ToyEvaluator(prepare_error="no data"), ToyEvaluator(fail_when_sum=1)):
        in_process = evaluator_score(evaluator)(arch)
        finals = []
        run_trial(evaluator, arch, intermediate=lambda m: None, final=finals.append)
        (final,) = finals
        assert final["status"] == in_process.status and final.get("reason") == in_process.reason
        if in_process.ok:
            assert final["default"] == in_process.fitness
            assert {k: final[k] for k in in_process.metrics if k != "evaluator_seconds"} == \
                {k: v for k, v in in_process.metrics.items() if k != "evaluator_seconds"}


def test_the_state_file_records_the_evaluator_description(tmp_path):
    evaluator = ToyEvaluator(epochs=1)
    state = tmp_path / "state.json"
    run_search(strategy(), evaluator, budget=2, state_file=state, progress=False)
    saved = json.loads(state.read_text())
    assert saved["evaluator"] == describe_evaluator(evaluator)
    assert saved["evaluator"]["metrics"] == [m.to_json() for m in evaluator.metrics]
