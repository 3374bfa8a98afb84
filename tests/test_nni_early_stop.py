"""Trials NNI ends without success: early stops (assessor, maxTrialDuration) are told apart from failures using the
manager's record of the job, and reach the strategy as ``early_stopped`` with their last per-epoch metrics."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nas_core.nni_adapter import rest, trial_outcome
from nas_core.nni_adapter.tuner import StrategyTuner
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
    ended = trial_outcome.outcome(early, rows)
    assert ended is not None and ended.trained == 1 and ended.result.status == "early_stopped"
    assert ended.result.metrics == {"accuracy": 0.6, "loss": 0.9} and ended.result.fitness is None
    assert ended.result.reason == "stopped early by NNI (its assessor, or maxTrialDuration) after 2 per-epoch results"


def test_outcome_follows_the_parameter_id_the_job_really_trained():
    swapped = job("J1", "EARLY_STOPPED", 1, {"a": 1})
    ended = trial_outcome.outcome(swapped, [row(2, "PERIODICAL", 0, 0.25)])
    assert ended is not None and ended.trained == 2 and ended.result.metrics == {"default": 0.25}


def test_outcome_of_failures_and_of_a_job_still_running():
    failed = job("J1", "FAILED", 1, {"a": 1})
    bare = trial_outcome.outcome(failed, [])
    assert bare is not None and bare.trained is None
    assert bare.result.status == "failed" and bare.result.reason == "trial ended FAILED without a final result"
    told = [row(1, "FINAL", 0, {"default": 0, "status": "failed", "reason": "loss diverged"})]
    own = trial_outcome.outcome(failed, told)
    assert own is not None and own.result.reason == "loss diverged"
    cancelled = trial_outcome.outcome(job("J2", "USER_CANCELED", 2, {}), [])
    assert cancelled is not None and "USER_CANCELED" in str(cancelled.result.reason)
    assert trial_outcome.outcome(job("J3", "RUNNING", 3, {}), []) is None
    assert trial_outcome.outcome(job("J4", "ADD_RESUMED", 3, {}), []) is None


def test_a_final_result_reported_before_the_stop_decides():
    """The tuner receives a final result before the trial's end: the stop that followed changes nothing, here too."""
    late = job("J1", "EARLY_STOPPED", 1, {"a": 1})
    rows = [row(1, "PERIODICAL", 0, 0.3), row(1, "FINAL", 0, {"default": 0.8, "accuracy": 0.8, "status": "succeeded"})]
    ended = trial_outcome.outcome(late, rows, killed_by_assessor=True)
    assert ended is not None and ended.result.ok and ended.result.fitness == 0.8


def test_a_job_the_assessor_killed_is_an_early_stop_though_nni_lists_it_cancelled():
    """NNI 3.0's local service marks an assessor's stop EARLY_STOPPED only if the trial ends after its kill returns."""
    cancelled = job("J1", "USER_CANCELED", 1, {"a": 1})
    rows = [row(1, "PERIODICAL", 0, {"default": 0.2, "accuracy": 0.2})]
    ended = trial_outcome.outcome(cancelled, rows, killed_by_assessor=True)
    assert ended is not None and ended.result.early_stopped and ended.result.metrics == {"accuracy": 0.2}
    assert ended.result.reason == "stopped early by NNI's assessor after 1 per-epoch result"
    by_user = trial_outcome.outcome(cancelled, rows)
    assert by_user is not None and by_user.result.status == "failed" and "USER_CANCELED" in str(by_user.result.reason)


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


class Nni:
    """NNI's own dispatcher around a tuner (its channel replaced by a list of what it sends), so the
    dispatcher hooks are installed as in a real experiment, and a fake manager behind the REST calls."""

    def __init__(self, tuner: StrategyTuner, manager: FakeManager) -> None:
        from nni.runtime.msg_dispatcher import MsgDispatcher

        self.tuner, self.manager = tuner, manager
        self.dispatcher = MsgDispatcher.__new__(MsgDispatcher)
        self.dispatcher.tuner, self.dispatcher.assessor = tuner, None
        self.dispatcher.recovered_max_param_id, self.dispatcher.recovered_trial_params = -1, {}
        self.sent: list[tuple[str, Any]] = []
        self.dispatcher.send = lambda command, data: self.sent.append((command.value, data))

    def ask(self, ids: list[int]) -> list[dict[str, Any]]:
        return self.tuner.generate_multiple_parameters(ids, st_callback=self.dispatcher.send_trial_callback)

    def filled(self) -> list[int]:
        """Parameter ids the tuner filled later through st_callback."""
        return [json.loads(data)["parameter_id"] for command, data in self.sent if command == "TR"]

    def end(self, parameter_id: int, job_id: str, event: str = "EARLY_STOPPED") -> None:
        """The manager's TRIAL_END for ``job_id``, listed with ``parameter_id``, as the dispatcher handles it."""
        self.dispatcher.handle_trial_end({"trial_job_id": job_id, "event": event,
                                          "hyper_params": json.dumps({"parameter_id": parameter_id})})


@pytest.fixture
def nni(tmp_path, monkeypatch):
    manager = FakeManager()
    monkeypatch.setenv("NNI_TUNER_COMMAND_CHANNEL", "ws://localhost:4567/tuner")
    monkeypatch.setattr(rest, "get", manager.get)
    made = StrategyTuner(strategy=STRATEGY, strategy_args={"batch": 2, "batches": 2}, seed=0,
                         state_file=str(tmp_path / "state.json"), missing_result_timeout=-1)
    made.update_search_space(toy_space().to_nni())
    return Nni(made, manager)


def final(params: dict[str, Any], fitness: float) -> dict[str, Any]:
    return {"default": fitness, "accuracy": fitness, "candidate": params["_candidate"], "status": "succeeded"}


def arch(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k != "_candidate"}


def test_an_early_stopped_trial_is_recorded_as_such_and_the_barrier_moves_on(nni):
    tuner = nni.tuner
    a, b = nni.ask([1, 2, 3])
    nni.manager.jobs = [{**job("Ja", "EARLY_STOPPED", 1, a), "sequenceId": 4}, job("Jb", "RUNNING", 2, b)]
    nni.manager.rows["Ja"] = [row(1, "PERIODICAL", 0, {"default": 9.0, "accuracy": 9.0})]
    nni.end(1, "Ja")
    (stopped,) = tuner._driver.records
    assert stopped.result.status == "early_stopped" and stopped.result.metrics == {"accuracy": 9.0}
    assert stopped.arch == arch(a)
    assert (stopped.external_id, stopped.external_number) == ("Ja", 4)  # the job and Trial No. NNI shows
    tuner.receive_trial_result(2, b, final(b, 1.0))
    assert nni.filled() == [3]  # the generation barrier counted the early stop as told
    assert [r.result.fitness for r in tuner._driver.best(5)] == [1.0]  # never best, though 9.0 looked better
    saved = json.loads(open(tuner._state_path).read())["driver"]["records"]
    assert [r["result"]["status"] for r in saved] == ["early_stopped", "succeeded"]


def test_a_swapped_early_stop_settles_the_candidate_it_trained_not_the_one_nni_listed(nni):
    a, b = nni.ask([1, 2])
    # NNI listed job Ja with parameter id 1, but Ja trained parameter id 2's candidate (b)
    nni.manager.jobs = [job("Ja", "EARLY_STOPPED", 1, a), job("Jb", "RUNNING", 2, b)]
    nni.manager.rows["Ja"] = [row(2, "PERIODICAL", 0, {"default": 0.5, "accuracy": 0.5})]
    nni.end(1, "Ja")
    (stopped,) = nni.tuner._driver.records
    assert stopped.arch == arch(b)
    assert set(nni.tuner._driver.pending) == {1}  # a's trial (job Jb) is still training it


def test_both_jobs_of_a_swap_ending_unsuccessfully_settle_both_candidates_and_free_the_barrier(nni):
    a, b = nni.ask([1, 2, 3])
    nni.manager.jobs = [job("Ja", "EARLY_STOPPED", 1, a), job("Jb", "RUNNING", 2, b)]
    nni.manager.rows["Ja"] = [row(2, "PERIODICAL", 0, {"default": 0.5, "accuracy": 0.5})]
    nni.end(1, "Ja")  # Ja trained b
    nni.manager.jobs = [job("Ja", "EARLY_STOPPED", 1, a), job("Jb", "FAILED", 2, b)]
    nni.manager.rows["Jb"] = [row(1, "PERIODICAL", 0, {"default": 0.4, "accuracy": 0.4})]
    nni.end(2, "Jb", "FAILED")  # Jb trained a; parameter id 2 is no longer pending
    by_arch = {json.dumps(r.arch, sort_keys=True): r.result.status for r in nni.tuner._driver.records}
    assert by_arch == {json.dumps(arch(b), sort_keys=True): "early_stopped", json.dumps(arch(a), sort_keys=True): "failed"}
    assert set(nni.tuner._driver.pending) == {3} and nni.filled() == [3]  # the barrier released


def test_a_swapped_job_stopped_after_the_other_succeeded_is_still_recorded(nni):
    a, b = nni.ask([1, 2, 3])
    # Jy, listed with id 2, trained a and succeeded first; Jx, listed with id 1, trained b and is then stopped
    nni.tuner.receive_trial_result(2, b, final(a, 1.0))
    nni.end(2, "Jy", "SUCCEEDED")
    nni.manager.jobs = [job("Jx", "EARLY_STOPPED", 1, a), job("Jy", "SUCCEEDED", 2, b)]
    nni.manager.rows["Jx"] = [row(2, "PERIODICAL", 0, {"default": 0.5, "accuracy": 0.5})]
    nni.end(1, "Jx")
    statuses = {json.dumps(r.arch, sort_keys=True): r.result.status for r in nni.tuner._driver.records}
    assert statuses == {json.dumps(arch(a), sort_keys=True): "succeeded",
                        json.dumps(arch(b), sort_keys=True): "early_stopped"}
    assert set(nni.tuner._driver.pending) == {3} and nni.filled() == [3]  # the barrier released


def test_with_the_manager_gone_after_a_swap_the_other_job_fails_the_candidate_it_trained(nni, monkeypatch):
    a, b = nni.ask([1, 2, 3])
    nni.manager.jobs = [job("Ja", "EARLY_STOPPED", 1, a), job("Jb", "RUNNING", 2, b)]
    nni.manager.rows["Ja"] = [row(2, "PERIODICAL", 0, {"default": 0.5, "accuracy": 0.5})]
    nni.end(1, "Ja")

    def down(*args: Any, **kw: Any) -> Any:
        raise OSError("connection refused")

    monkeypatch.setattr(rest, "get", down)
    monkeypatch.setattr("nas_core.nni_adapter.tuner.time.sleep", lambda s: None)
    nni.end(2, "Jb", "FAILED")
    assert set(nni.tuner._driver.pending) == {3} and nni.filled() == [3]  # the barrier released
    assert "could not tell which" in str(nni.tuner._driver.records[-1].result.reason)


def test_the_job_that_ended_is_the_one_the_dispatcher_named_not_a_guess_by_parameter_id(nni):
    """After a resume NNI hands out parameter ids and Trial Nos. again: an old job shares the new one's id 1, and
    has the larger Trial No."""
    a, b = nni.ask([1, 2])
    old = {**job("Jold", "FAILED", 1, {"depth": 9}), "sequenceId": 7}
    new = {**job("Jnew", "EARLY_STOPPED", 1, a), "sequenceId": 1}
    nni.manager.jobs = [old, new, job("Jb", "RUNNING", 2, b)]
    nni.manager.rows["Jnew"] = [row(1, "PERIODICAL", 0, {"default": 0.5, "accuracy": 0.5})]
    nni.end(1, "Jnew")
    (record,) = nni.tuner._driver.records
    assert record.arch == arch(a) and record.result.early_stopped


def test_without_the_manager_an_unsuccessful_end_is_a_failure_that_says_so(nni, monkeypatch):
    def down(*args: Any, **kw: Any) -> Any:
        raise OSError("connection refused")

    monkeypatch.setattr(rest, "get", down)
    monkeypatch.setattr("nas_core.nni_adapter.tuner.time.sleep", lambda s: None)
    nni.ask([1, 2])
    nni.end(1, "Ja")
    (failed,) = nni.tuner._driver.records
    assert failed.result.status == "failed" and "could not tell which" in str(failed.result.reason)


def test_a_manager_that_does_not_answer_holds_the_assessor_thread_at_most_five_seconds(nni, monkeypatch):
    """Every call times out (as against a hung manager); the clock is simulated, so nothing really waits."""
    clock = [0.0]

    def hung(port: int, api: str, timeout: float = 20.0, **kw: Any) -> Any:
        clock[0] += timeout
        raise TimeoutError("timed out")

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    monkeypatch.setattr(rest, "get", hung)
    monkeypatch.setattr("nas_core.nni_adapter.tuner.time.sleep", sleep)
    monkeypatch.setattr("nas_core.nni_adapter.tuner.time.monotonic", lambda: clock[0])
    nni.ask([1, 2])
    nni.end(1, "Ja")
    assert clock[0] <= 5.0
    (failed,) = nni.tuner._driver.records
    assert "could not tell which" in str(failed.result.reason)


def test_a_last_epoch_resent_by_nni_as_final_is_an_early_stop(nni, monkeypatch):
    a, b = nni.ask([1, 2])
    monkeypatch.setenv("NNI_INCLUDE_INTERMEDIATE_RESULTS", "true")
    nni.tuner.receive_trial_result(1, a, {"default": 7.0, "accuracy": 7.0})  # a per-epoch dict: no status
    nni.tuner.receive_trial_result(2, b, final(b, 1.0))
    first, second = nni.tuner._driver.records
    assert first.result.early_stopped and first.result.metrics == {"accuracy": 7.0}
    assert "re-sent by NNI" in str(first.result.reason)
    assert second.result.ok


def test_an_orphan_whose_rerun_was_stopped_early_after_a_resume_is_an_early_stop(tmp_path):
    first = StrategyTuner(strategy=STRATEGY, strategy_args={"batch": 2, "batches": 2}, seed=0,
                          state_file=str(tmp_path / "state.json"), missing_result_timeout=-1)
    first.update_search_space(toy_space().to_nni())
    a, b = first.generate_multiple_parameters([1, 2], st_callback=lambda *x: None)
    first.receive_trial_result(1, a, final(a, 1.0))
    again = StrategyTuner(strategy=STRATEGY, strategy_args={"batch": 2, "batches": 2}, seed=0,
                          state_file=str(tmp_path / "state.json"), missing_result_timeout=-1)
    again.load_checkpoint()
    again.update_search_space(toy_space().to_nni())
    stopped = job("Jb", "EARLY_STOPPED", 2, b)
    rows = {"Jb": [row(2, "PERIODICAL", 0, {"default": 0.3, "accuracy": 0.3})]}
    assert again.check_orphans([stopped], rows) is False
    record = again._driver.records[-1]
    assert record.arch == arch(b) and record.result.early_stopped and record.result.metrics == {"accuracy": 0.3}


def test_a_tuner_that_cannot_hook_the_dispatcher_says_so_once(nni, caplog):
    caplog.set_level("WARNING", logger="nas_core.tuner")
    nni.tuner.generate_multiple_parameters([1], st_callback=lambda *x: None)  # not a dispatcher's bound method
    nni.tuner.generate_multiple_parameters([2], st_callback=lambda *x: None)
    warnings = [r for r in caplog.records if "cannot hook NNI's dispatcher" in r.getMessage()]
    assert len(warnings) == 1


# ------------------------------------------------------------------ NO_MORE_TRIAL at a barrier
def dispatcher_with(tuner):
    """NNI's own dispatcher class around ``tuner``, its channel replaced by a list of what it sends."""
    from nni.runtime.msg_dispatcher import MsgDispatcher

    dispatcher = MsgDispatcher.__new__(MsgDispatcher)
    dispatcher.tuner, dispatcher.assessor = tuner, None
    dispatcher.recovered_max_param_id, dispatcher.recovered_trial_params = -1, {}
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
    dispatcher.handle_trial_end({"trial_job_id": "Ja", "event": "USER_CANCELED",
                                 "hyper_params": json.dumps({"parameter_id": a["parameter_id"]})})
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


def test_a_job_that_trained_a_set_already_trained_has_its_own_candidate_proposed_again(nni):
    """Job Ja, listed with a, could not read its own set and trained b, which job Jb (listed with b)
    trained and reported first: nobody trained a, which must not stay in flight (the barrier would
    never release); it is proposed again."""
    a, b = nni.ask([1, 2, 3])
    nni.tuner.receive_trial_result(2, b, {**final(b, 1.0), "trial_job": "Jb", "trial_number": 1})
    nni.dispatcher.handle_trial_end({"trial_job_id": "Jb", "event": "SUCCEEDED",
                                     "hyper_params": json.dumps({"parameter_id": 2})})
    nni.manager.jobs = [job("Ja", "EARLY_STOPPED", 1, a), job("Jb", "SUCCEEDED", 2, b)]
    nni.manager.rows["Ja"] = [row(2, "PERIODICAL", 0, {"default": 0.5, "accuracy": 0.5})]
    nni.end(1, "Ja")
    assert 1 not in nni.tuner._driver.pending
    assert nni.filled() == [3]  # the barrier's held id got a candidate...
    handed = [json.loads(data)["parameters"] for command, data in nni.sent if command == "TR"]
    assert arch(handed[0]) == arch(a)  # ...a, proposed again
    assert [r.result.status for r in nni.tuner._driver.records] == ["succeeded"]


def test_while_the_job_holding_the_set_runs_the_listed_candidate_is_checked_later_then_proposed_again(nni, monkeypatch):
    """The same fall-back, the other order: Ja ends first while Jb runs (Jb might be training a, a swap).
    The check waits for Jb; Jb trained b after all (its success replaces Ja's early stop of b), so a
    was never trained and is proposed again rather than failed."""
    checks: list[tuple[Any, ...]] = []
    monkeypatch.setattr(nni.tuner, "_start_missing_timer", lambda *args, **kw: checks.append((args, kw)))
    nni.tuner._missing_result_timeout = 0.0
    a, b = nni.ask([1, 2, 3])
    nni.manager.jobs = [job("Ja", "EARLY_STOPPED", 1, a), job("Jb", "RUNNING", 2, b)]
    nni.manager.rows["Ja"] = [row(2, "PERIODICAL", 0, {"default": 0.5, "accuracy": 0.5})]
    nni.end(1, "Ja")
    assert set(nni.tuner._driver.pending) == {1} and len(checks) == 1  # a waits for Jb
    nni.tuner.receive_trial_result(2, b, {**final(b, 1.0), "trial_job": "Jb", "trial_number": 1})
    nni.manager.jobs = [job("Ja", "EARLY_STOPPED", 1, a), job("Jb", "SUCCEEDED", 2, b)]
    (args, kw) = checks[0]
    nni.tuner._check_missing(*args, **kw)
    assert 1 not in nni.tuner._driver.pending and nni.filled() == [3]
    assert [r.result.status for r in nni.tuner._driver.records] == ["succeeded"]  # b's success, once
    assert nni.tuner._duplicates == 0  # the second result of b is accounted for by a's re-proposal


def test_a_job_that_succeeded_with_another_trials_set_has_its_own_candidate_proposed_again(nni):
    """Ja, listed with a, fell back, trained b and succeeded first; Jb, listed with b, then failed. Ja's
    result says it trained b, so a was never trained: it is proposed again, not failed as a trial that
    'reported no final result'."""
    a, b = nni.ask([1, 2, 3])
    value = {**final(b, 1.0), "trial_job": "Ja", "trial_number": 0}
    nni.tuner.receive_trial_result(1, a, value)
    nni.manager.jobs = [{**job("Ja", "SUCCEEDED", 1, a), "finalMetricData": [{"data": json.dumps(json.dumps(value))}]},
                        job("Jb", "FAILED", 2, b)]
    nni.manager.rows["Jb"] = [row(2, "PERIODICAL", 0, {"default": 0.4, "accuracy": 0.4})]
    nni.end(2, "Jb", "FAILED")
    nni.tuner._check_missing(1, "Ja")  # what Ja's successful end starts, run now
    assert 1 not in nni.tuner._driver.pending and nni.filled() == [3]
    handed = [json.loads(data)["parameters"] for command, data in nni.sent if command == "TR"]
    assert arch(handed[0]) == arch(a)
    assert [r.result.status for r in nni.tuner._driver.records] == ["succeeded"]


def test_a_broken_reply_from_the_manager_is_an_oserror_the_callers_handle(monkeypatch):
    import http.client

    def broken(*args: Any, **kw: Any) -> Any:
        raise http.client.IncompleteRead(b"{\"trialJobId\"")

    monkeypatch.setattr(rest, "urlopen", broken)
    with pytest.raises(OSError, match="broken reply"):
        rest.request("http://127.0.0.1:9/api/v1/nni", "GET", "trial-jobs")


def test_nothing_the_manager_lookup_raises_reaches_nnis_dispatcher(nni, monkeypatch):
    """A hook that raises kills NNI's dispatcher silently; an unexpected error while asking the manager
    how a job ended is logged and the candidate fails saying the cause is unknown."""
    def boom(*args: Any, **kw: Any) -> Any:
        raise RuntimeError("unexpected")

    monkeypatch.setattr(nni.tuner, "_manager_outcome", boom)
    a, b = nni.ask([1, 2])
    nni.end(1, "Ja")  # must not raise
    (failed,) = nni.tuner._driver.records
    assert failed.arch == arch(a) and "could not tell which" in str(failed.result.reason)
