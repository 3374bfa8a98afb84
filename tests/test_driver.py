import json
import math
from typing import Any

import pytest

from nas_core import FINISHED, WAIT, SearchDriver, Strategy, StrategyError, TrialResult
from nas_core.driver import counted_records, pareto_front
from nas_core.evaluator import Metric
from nas_core.results import SearchResults
from tests.toy_plugins import toy_space


class Scripted(Strategy):
    """Answers from a script; records what it was told."""

    name = "scripted"

    def __init__(self, *, space, seed=0, script=()):
        super().__init__(space=space, seed=seed)
        self.script = list(script)
        self.position = 0
        self.told: list[tuple[int, dict, TrialResult]] = []

    def _ask(self, trial_id):
        if self.position >= len(self.script):
            return FINISHED
        answer = self.script[self.position]
        if answer is WAIT:
            if not self.told:
                return WAIT
            self.position += 1
            return self._ask(trial_id)
        self.position += 1
        return answer

    def _tell(self, trial_id, arch, result):
        self.told.append((trial_id, arch, result))

    def _state_dict(self) -> dict[str, Any]:
        return {"position": self.position}

    def _load_state_dict(self, state):
        self.position = state["position"]


A = {"layer0": 0, "layer1": 0, "layer2": 1}
B = {"layer0": 1, "layer1": 0, "layer2": 0}
C = {"layer0": 3, "layer1": 3, "layer2": 3}


def ok(fitness, **metrics):
    return TrialResult.succeeded({"accuracy": fitness, **metrics}, fitness)


def driver(*script):
    return SearchDriver(Scripted(space=toy_space(), script=script))


def test_dedup_reuses_stored_result_without_training_again():
    d = driver(A, A, B)
    assert d.ask("t1") == A
    d.tell("t1", ok(1.0))
    assert d.ask("t2") == B  # A again was answered from the store
    told = d.strategy.told
    assert [t[0] for t in told] == [0, 1]  # driver-owned candidate ids, never reused
    assert told[1][2] == ok(1.0)
    assert [r.source for r in d.records] == ["trained", "reused"]


def test_duplicate_of_an_in_flight_candidate_waits_for_its_result():
    d = driver(A, A, B)
    assert d.ask(1) == A
    assert d.ask(2) == B  # the second A follows the first instead of training again
    assert len(d.strategy.told) == 0
    d.tell(1, ok(2.0))
    assert [(t[0], t[2].fitness) for t in d.strategy.told] == [(0, 2.0), (1, 2.0)]


def test_failed_and_non_finite_results_are_never_best():
    d = driver(A, B, C)
    for tid in (1, 2, 3):
        d.ask(tid)
    d.tell(1, TrialResult.failed("diverged"))
    d.tell(2, ok(float("nan")))
    assert d.best() == []
    d.tell(3, ok(0.5))
    assert [r.arch for r in d.best()] == [C]
    nan_record = [r for r in d.records if r.arch == B][0]
    assert nan_record.result.status == "failed" and "not a finite number" in nan_record.result.reason
    assert not math.isnan(d.best()[0].result.fitness)


def test_failed_architecture_proposed_again_reuses_its_failure():
    d = driver(A, A)
    d.ask(1)
    d.tell(1, TrialResult.failed("boom"))
    assert d.ask(2) is FINISHED
    assert d.strategy.told[1][2].status == "failed"


def test_tell_not_asked_is_replayed_into_the_strategy():
    d = driver(B)
    assert d.complete(A, ok(3.0)) == "replayed"
    assert d.strategy.told[0][1] == A
    assert d.complete(A, ok(3.0)) == "duplicate"
    assert d.ask(1) == B


def test_complete_by_architecture_survives_swapped_trial_ids():
    d = driver(A, B)
    d.ask(1), d.ask(2)
    assert d.complete(B, ok(5.0)) == "trained"  # reported under whatever id: matched by architecture
    assert d.pending == {1: A}


def test_late_success_after_failure_upgrades_the_stored_result():
    d = driver(A)
    d.ask(1)
    d.fail(1, "trial ended without result")
    assert d.best() == []
    assert d.complete(A, ok(4.0)) == "upgraded"
    assert d.best()[0].result.fitness == 4.0
    assert len(d.strategy.told) == 1  # the strategy is told once
    assert d.best()[0].strategy_told == "failed"  # marked: the strategy's choices never saw this success
    from nas_core.driver import Record

    assert Record.from_json(json.loads(json.dumps(d.best()[0].to_json()))) == d.best()[0]


def test_wait_and_finished_are_passed_through():
    d = driver(A, WAIT, B)
    assert d.ask(1) == A
    assert d.ask(2) is WAIT
    d.tell(1, ok(1))
    assert d.ask(2) == B
    d.tell(2, ok(1))
    assert d.ask(3) is FINISHED
    assert d.finished


def test_state_round_trips_through_json_and_orphans_resolve_by_architecture():
    d = driver(A, B, C)
    d.ask(1), d.ask(2)
    d.tell(1, ok(1.0))
    state = json.loads(json.dumps(d.state_dict()))
    fresh = driver(A, B, C)
    fresh.load_state_dict(state)
    assert fresh.pending == {2: B}
    assert [r.to_json() for r in fresh.records] == [r.to_json() for r in d.records]
    fresh.forget_trial_ids()
    assert fresh.pending == {} and fresh.orphans == [B]
    assert fresh.complete(B, ok(2.0)) == "trained"
    assert fresh.ask(7) == C


def test_fail_orphans():
    d = driver(A, B)
    d.ask(1)
    d.forget_trial_ids()
    assert d.fail_orphans("lost at resume") == 1
    assert d.strategy.told[0][2].reason == "lost at resume"


def test_endless_duplicates_raise_a_clear_error():
    d = SearchDriver(Scripted(space=toy_space(), script=[A] * 50), max_consecutive_duplicates=10)
    d.ask(1)
    d.tell(1, ok(1))
    with pytest.raises(StrategyError, match="proposed 10 already-evaluated architectures in a row"):
        d.ask(2)


def test_unknown_trial_id_is_an_error():
    d = driver(A)
    with pytest.raises(StrategyError, match="no pending candidate"):
        d.tell(99, ok(1))


def test_pareto_front_keeps_non_dominated_records():
    d = driver()
    for arch, acc, flops in ((A, 90, 10), (B, 95, 20), (C, 85, 30)):
        d.complete(arch, TrialResult.succeeded({"accuracy": acc, "flops": flops}, acc))
    front = pareto_front(d.records, (Metric("accuracy", "maximize"), Metric("flops", "minimize")))
    assert [r.arch for r in front] == [A, B]
    # Directions come from the metrics: maximising both keeps only the ones best in either.
    both_up = pareto_front(d.records, (Metric("accuracy", "maximize"), Metric("flops", "maximize")))
    assert [r.arch for r in both_up] == [B, C]


def test_pareto_front_of_the_driver_uses_the_declared_pair_and_refuses_without_one():
    d = driver()
    for arch, score, cost in ((A, 90, 10), (B, 95, 20), (C, 85, 30)):
        d.complete(arch, TrialResult.succeeded({"score": score, "cost": cost}, score))
    with pytest.raises(ValueError, match="no Pareto metrics"):
        d.pareto_front()
    d.set_evaluator_description({"name": "e", "pareto_metrics": ["score", "cost"],
                                 "metrics": [{"name": "score", "direction": "maximize"},
                                             {"name": "cost", "direction": "minimize"}]})
    assert [r.arch for r in d.pareto_front()] == [A, B]
    assert d.state_dict()["evaluator"]["pareto_metrics"] == ["score", "cost"]


def test_malformed_evaluator_description_is_refused_naming_it():
    with pytest.raises(StrategyError, match="pareto_metrics names 'cost', which is not declared"):
        driver().set_evaluator_description({"metrics": [{"name": "score", "direction": "maximize"}],
                                            "pareto_metrics": ["score", "cost"]})
    with pytest.raises(StrategyError, match="direction"):
        driver().set_evaluator_description({"metrics": [{"name": "score", "direction": "up"}]})


def test_the_driver_and_saved_results_agree_on_which_record_counts():
    """Reused results never count; the first result counts; later only a success replaces a failure."""
    d = driver(A, A, B)
    assert d.ask(1) == A
    d.tell(1, TrialResult.failed("oom"))
    assert d.ask(2) == B  # A again was answered from the store (reused)
    d.tell(2, ok(2))
    d.complete(A, ok(3))  # a late success upgrades A's failure
    d.complete(B, ok(9))  # a second result for B does not count
    counted = {r.key: r for r in d.evaluated()}
    assert counted == counted_records(d.records)
    saved = SearchResults(source=None, space=None, records=list(d.records))  # type: ignore[arg-type]
    assert [(r.key, r.result) for r in saved.evaluated()] == [(r.key, r.result) for r in d.evaluated()]
    assert sorted(r.result.fitness for r in d.evaluated()) == [2, 3]
    assert any(r.source == "reused" for r in d.records)


def test_sequential_strategy_gets_one_candidate_at_a_time():
    class Sequential(Scripted):
        supports_parallel = False

    d = SearchDriver(Sequential(space=toy_space(), script=[A, B]))
    assert d.ask(1) == A
    assert d.ask(2) is WAIT
    d.tell(1, ok(1))
    assert d.ask(2) == B


def test_every_candidate_has_one_record_even_when_a_success_replaces_a_failure():
    d = driver(A, B)
    d.ask(1), d.ask(2)
    d.fail(1, "no result")
    d.tell(2, ok(1.0))
    assert d.complete(A, ok(4.0)) == "upgraded"
    assert d.complete(A, ok(4.0)) == "duplicate"
    assert [(r.candidate_id, r.result.ok) for r in d.records] == [(0, True), (1, True)]


def test_a_history_saved_with_a_candidate_twice_is_read_with_one_record_per_candidate():
    d = driver(A, B)
    d.ask(1)
    d.fail(1, "no result")
    state = d.state_dict()
    late = dict(state["records"][0], result=ok(4.0).to_json())
    state["records"].append(late)  # what recording appended before it was exactly-once
    again = driver(A, B)
    again.load_state_dict(state)
    assert [(r.candidate_id, r.result.fitness) for r in again.records] == [(0, 4.0)]
    assert again.best()[0].result.fitness == 4.0


def test_the_report_reads_such_a_history_with_one_record_per_candidate_too(tmp_path):
    from nas_core.results import load_results
    from nas_core.state_io import write_json_atomic

    d = driver(A, B)
    d.ask(1)
    d.fail(1, "no result")
    state = d.state_dict()
    state["records"].append(dict(state["records"][0], result=ok(4.0).to_json()))
    write_json_atomic(tmp_path / "state.json", {"driver": state})
    results = load_results(tmp_path / "state.json")
    assert [(r.candidate_id, r.result.fitness) for r in results.records] == [(0, 4.0)]


def test_a_second_record_is_refused_before_the_candidate_leaves_the_flight():
    """The "already has a record" guard must not leave the candidate neither in flight nor recorded."""
    d = driver(A, B)
    assert d.ask(1) == A
    d._recorded.add(0)  # a bookkeeping bug: candidate 0 recorded behind the driver's back
    with pytest.raises(StrategyError, match="candidate 0 already has a record"):
        d.complete(A, ok(1.0))
    assert d.pending == {1: A} and d.records == []
