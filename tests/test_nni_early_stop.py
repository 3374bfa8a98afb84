"""Trials NNI ends without success: early stops (assessor, maxTrialDuration) are told apart from failures using the
manager's record of the job, and reach the strategy as ``early_stopped`` with their last per-epoch metrics."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nas_core.nni_adapter import rest, trial_outcome
from nas_core.nni_adapter.tuner import StrategyTuner, result_from_value
from tests.toy_plugins import toy_space

STRATEGY = "tests.toy_plugins:BatchStrategy"


def job(job_id: str, status: str, parameter_id: int, params: dict[str, Any]) -> dict[str, Any]:
    form = {"parameter_id": parameter_id, "parameter_source": "algorithm", "parameters": params, "parameter_index": 0}
    return {"trialJobId": job_id, "status": status, "hyperParameters": [json.dumps(form)]}


def row(parameter_id: int, kind: str, sequence: int, value: Any) -> dict[str, Any]:
    return {"parameterId": str(parameter_id), "type": kind, "sequence": sequence, "data": json.dumps(json.dumps(value))}


def test_outcome_of_an_early_stop_is_its_last_epoch():
    early = job("J1", "EARLY_STOPPED", 1, {"a": 1})
    rows = [row(1, "PERIODICAL", 1, {"default": 0.6, "accuracy": 0.6, "loss": 0.9}),
            row(1, "PERIODICAL", 0, {"default": 0.3, "accuracy": 0.3, "loss": 1.5})]
    trained, result = trial_outcome.unsuccessful_outcome(early, rows, result_from_value)
    assert trained == 1 and result is not None and result.status == "early_stopped"
    assert result.metrics == {"accuracy": 0.6, "loss": 0.9} and result.fitness is None
    assert result.reason == "stopped early by NNI (its assessor, or maxTrialDuration) after 2 per-epoch results"


def test_outcome_follows_the_parameter_id_the_job_really_trained():
    swapped = job("J1", "EARLY_STOPPED", 1, {"a": 1})
    trained, result = trial_outcome.unsuccessful_outcome(swapped, [row(2, "PERIODICAL", 0, 0.25)], result_from_value)
    assert trained == 2 and result is not None and result.metrics == {"default": 0.25}


def test_outcome_of_failures_and_of_a_job_still_running():
    failed = job("J1", "FAILED", 1, {"a": 1})
    _, bare = trial_outcome.unsuccessful_outcome(failed, [], result_from_value)
    assert bare is not None and bare.status == "failed" and bare.reason == "trial ended FAILED without a final result"
    told = [row(1, "FINAL", 0, {"default": 0, "status": "failed", "reason": "loss diverged"})]
    _, own = trial_outcome.unsuccessful_outcome(failed, told, result_from_value)
    assert own is not None and own.reason == "loss diverged"
    _, cancelled = trial_outcome.unsuccessful_outcome(job("J2", "USER_CANCELED", 2, {}), [], result_from_value)
    assert cancelled is not None and "USER_CANCELED" in str(cancelled.reason)
    assert trial_outcome.unsuccessful_outcome(job("J3", "RUNNING", 3, {}), [], result_from_value)[1] is None


def test_a_job_the_assessor_killed_is_an_early_stop_though_nni_lists_it_cancelled():
    """NNI 3.0's local service marks an assessor's stop EARLY_STOPPED only if the trial ends after its kill returns."""
    cancelled = job("J1", "USER_CANCELED", 1, {"a": 1})
    rows = [row(1, "PERIODICAL", 0, {"default": 0.2, "accuracy": 0.2})]
    _, result = trial_outcome.unsuccessful_outcome(cancelled, rows, result_from_value, killed_by_assessor=True)
    assert result is not None and result.early_stopped and result.metrics == {"accuracy": 0.2}
    assert result.reason == "stopped early by NNI's assessor after 1 per-epoch result"
    _, by_user = trial_outcome.unsuccessful_outcome(cancelled, rows, result_from_value)
    assert by_user is not None and by_user.status == "failed" and "USER_CANCELED" in str(by_user.reason)


class FakeManager:
    """The two REST calls the tuner makes, answered from a list of jobs and their metric rows."""

    def __init__(self) -> None:
        self.jobs: list[dict[str, Any]] = []
        self.rows: dict[str, list[dict[str, Any]]] = {}

    def get(self, port: int, api: str, **kw: Any) -> Any:
        if api == "trial-jobs":
            return self.jobs
        if api.startswith("metric-data/"):
            return self.rows.get(api.split("/", 1)[1], [])
        raise AssertionError(api)


@pytest.fixture
def tuner(tmp_path, monkeypatch):
    manager = FakeManager()
    monkeypatch.setenv("NNI_TUNER_COMMAND_CHANNEL", "ws://localhost:4567/tuner")
    monkeypatch.setattr(rest, "get", manager.get)
    made = StrategyTuner(strategy=STRATEGY, strategy_args={"batch": 2, "batches": 2}, seed=0,
                         state_file=str(tmp_path / "state.json"), missing_result_timeout=-1)
    made.update_search_space(toy_space().to_nni())
    made.manager = manager  # type: ignore[attr-defined]
    return made


def final(params: dict[str, Any], fitness: float) -> dict[str, Any]:
    return {"default": fitness, "accuracy": fitness, "candidate": params["_candidate"], "status": "succeeded"}


def test_an_early_stopped_trial_is_recorded_as_such_and_the_barrier_moves_on(tuner):
    filled: list[tuple[int, dict[str, Any]]] = []
    a, b = tuner.generate_multiple_parameters([1, 2, 3], st_callback=lambda pid, p: filled.append((pid, p)))
    tuner.manager.jobs = [job("Ja", "EARLY_STOPPED", 1, a), job("Jb", "RUNNING", 2, b)]
    tuner.manager.rows["Ja"] = [row(1, "PERIODICAL", 0, {"default": 9.0, "accuracy": 9.0})]
    tuner.trial_end(1, False)
    (stopped,) = tuner._driver.records
    assert stopped.result.status == "early_stopped" and stopped.result.metrics == {"accuracy": 9.0}
    assert stopped.arch == {k: v for k, v in a.items() if k != "_candidate"}
    tuner.receive_trial_result(2, b, final(b, 1.0))
    assert [pid for pid, _ in filled] == [3]  # the generation barrier counted the early stop as told
    assert [r.result.fitness for r in tuner._driver.best(5)] == [1.0]  # never best, though 9.0 looked better
    saved = json.loads(open(tuner._state_path).read())["driver"]["records"]
    assert [r["result"]["status"] for r in saved] == ["early_stopped", "succeeded"]


def test_a_swapped_early_stop_settles_the_candidate_it_trained_not_the_one_nni_listed(tuner):
    a, b = tuner.generate_multiple_parameters([1, 2], st_callback=lambda *x: None)
    # NNI listed job Ja with parameter id 1, but Ja trained parameter id 2's candidate (b)
    tuner.manager.jobs = [job("Ja", "EARLY_STOPPED", 1, a), job("Jb", "RUNNING", 2, b)]
    tuner.manager.rows["Ja"] = [row(2, "PERIODICAL", 0, {"default": 0.5, "accuracy": 0.5})]
    tuner.trial_end(1, False)
    (stopped,) = tuner._driver.records
    assert stopped.arch == {k: v for k, v in b.items() if k != "_candidate"}
    assert set(tuner._driver.pending) == {1}  # a's trial (job Jb) is still training it


def test_without_the_manager_an_unsuccessful_end_is_a_failure_that_says_so(tuner, monkeypatch):
    def down(*args: Any, **kw: Any) -> Any:
        raise OSError("connection refused")

    monkeypatch.setattr(rest, "get", down)
    monkeypatch.setattr("nas_core.nni_adapter.tuner.time.sleep", lambda s: None)
    tuner.generate_multiple_parameters([1, 2], st_callback=lambda *x: None)
    tuner.trial_end(1, False)
    (failed,) = tuner._driver.records
    assert failed.result.status == "failed" and "could not tell which" in str(failed.result.reason)


def test_a_last_epoch_resent_by_nni_as_final_is_an_early_stop(tuner, monkeypatch):
    a, b = tuner.generate_multiple_parameters([1, 2], st_callback=lambda *x: None)
    monkeypatch.setenv("NNI_INCLUDE_INTERMEDIATE_RESULTS", "true")
    tuner.receive_trial_result(1, a, {"default": 7.0, "accuracy": 7.0})  # a per-epoch dict: no status
    tuner.receive_trial_result(2, b, final(b, 1.0))
    first, second = tuner._driver.records
    assert first.result.early_stopped and first.result.metrics == {"accuracy": 7.0}
    assert second.result.ok


# ------------------------------------------------------------------ NO_MORE_TRIAL at a barrier
def dispatcher_with(tuner):
    """NNI's own dispatcher class around ``tuner``, its channel replaced by a list of what it sends."""
    from nni.runtime.msg_dispatcher import MsgDispatcher

    dispatcher = MsgDispatcher.__new__(MsgDispatcher)
    dispatcher.tuner, dispatcher.assessor = tuner, None
    sent: list[tuple[str, Any]] = []
    dispatcher.send = lambda command, data: sent.append((command.value, data))
    return dispatcher, sent


def barrier_tuner(tmp_path, batches: int) -> StrategyTuner:
    tuner = StrategyTuner(strategy=STRATEGY, strategy_args={"batch": 2, "batches": batches}, seed=0,
                          state_file=str(tmp_path / "state.json"), missing_result_timeout=-1)
    tuner.update_search_space(toy_space().to_nni())
    return tuner


def tell_all(tuner, sent, fitness: float) -> None:
    for _, data in sent:
        packed = json.loads(data)
        tuner.receive_trial_result(packed["parameter_id"], packed["parameters"], final(packed["parameters"], fitness))


def test_a_barrier_does_not_tell_nni_there_are_no_more_trials(tmp_path):
    tuner = barrier_tuner(tmp_path, batches=3)
    dispatcher, sent = dispatcher_with(tuner)
    dispatcher.handle_request_trial_jobs(3)  # the batch has 2: the third id waits at the barrier
    assert [command for command, _ in sent] == ["TR", "TR"]  # two new trials, no NO_MORE_TRIAL_JOBS
    told, sent[:] = list(sent), []
    tell_all(tuner, told, 1.0)
    assert [command for command, _ in sent] == ["TR"]  # the held id is filled through st_callback
    dispatcher.handle_request_trial_jobs(2)  # the last candidate of batch 2, then the barrier again
    assert [command for command, _ in sent] == ["TR", "TR"]


def test_the_assessors_kills_are_noted_and_still_sent(tmp_path, monkeypatch):
    from nni.runtime.tuner_command_channel import CommandType

    tuner = barrier_tuner(tmp_path, batches=2)
    dispatcher, sent = dispatcher_with(tuner)
    dispatcher.handle_request_trial_jobs(2)
    a, b = (json.loads(data) for _, data in sent)
    dispatcher.send(CommandType.KillTrialJob, json.dumps("Ja"))  # what the dispatcher sends on a Bad verdict
    assert sent[-1] == ("KI", '"Ja"') and tuner._assessor_killed == {"Ja"}
    manager = FakeManager()
    manager.jobs = [job("Ja", "USER_CANCELED", a["parameter_id"], a["parameters"])]
    manager.rows["Ja"] = [row(a["parameter_id"], "PERIODICAL", 0, {"default": 3.0, "accuracy": 3.0})]
    monkeypatch.setenv("NNI_TUNER_COMMAND_CHANNEL", "ws://localhost:4567/tuner")
    monkeypatch.setattr(rest, "get", manager.get)
    tuner.trial_end(a["parameter_id"], False)
    (record,) = tuner._driver.records
    assert record.result.early_stopped and record.result.reason == "stopped early by NNI's assessor after 1 per-epoch result"


def test_a_finished_strategy_still_tells_nni_there_are_no_more_trials(tmp_path):
    tuner = barrier_tuner(tmp_path, batches=1)
    dispatcher, sent = dispatcher_with(tuner)
    dispatcher.handle_request_trial_jobs(2)
    told, sent[:] = list(sent), []
    tell_all(tuner, told, 1.0)
    dispatcher.handle_request_trial_jobs(1)
    assert [command for command, _ in sent] == ["NO"]


def test_after_a_resume_the_latest_job_of_a_reused_parameter_id_is_the_one_that_ended():
    old = {**job("J1", "SUCCEEDED", 1, {"a": 1}), "sequenceId": 0}
    new = {**job("J9", "EARLY_STOPPED", 1, {"a": 2}), "sequenceId": 8}
    running = {**job("J10", "RUNNING", 1, {"a": 3}), "sequenceId": 9}
    assert trial_outcome.job_of_parameter([new, old, running], 1) is new
    assert trial_outcome.job_of_parameter([old], 1) is old and trial_outcome.job_of_parameter([old], 2) is None
