"""The NNI tuner adapter, driven directly (no NNI manager): slots, persistence, resume, no raising."""

import json

import pytest

from nas_core.nni_adapter import rest
from nas_core.nni_adapter.tuner import StrategyTuner, TunerConfigError, candidate_hash
from tests.toy_plugins import toy_space

STRATEGY = "tests.toy_plugins:BatchStrategy"


def make(tmp_path, **kw):
    kw.setdefault("strategy_args", {"batch": 2, "batches": 2})
    tuner = StrategyTuner(strategy=STRATEGY, seed=0, state_file=str(tmp_path / "state.json"),
                          missing_result_timeout=-1, **kw)
    tuner.update_search_space(toy_space().to_nni())
    return tuner


def result(params, fitness):
    return {"default": fitness, "accuracy": fitness, "candidate": params["_candidate"], "status": "succeeded"}


def test_wait_keeps_slots_and_fills_them_through_st_callback(tmp_path):
    tuner = make(tmp_path)
    filled = []
    params = tuner.generate_multiple_parameters([1, 2, 3], st_callback=lambda pid, p: filled.append((pid, p)))
    assert len(params) == 2 and filled == []  # the third id waits at the batch barrier
    tuner.receive_trial_result(1, params[0], result(params[0], 1.0))
    assert filled == []
    tuner.receive_trial_result(2, params[1], result(params[1], 2.0))
    assert [pid for pid, _ in filled] == [3]
    assert filled[0][1]["_candidate"] == candidate_hash(toy_space().key(
        {k: v for k, v in filled[0][1].items() if k != "_candidate"}))


def test_state_is_persisted_after_every_result_and_resume_continues(tmp_path):
    tuner = make(tmp_path)
    params = tuner.generate_multiple_parameters([1, 2], st_callback=lambda *a: None)
    tuner.receive_trial_result(1, params[0], result(params[0], 1.0))
    state = json.loads((tmp_path / "state.json").read_text())
    assert len(state["driver"]["records"]) == 1
    # resume: a new tuner process loads the state; the running trial's result arrives via import_data
    again = StrategyTuner(strategy=STRATEGY, strategy_args={"batch": 2, "batches": 2}, seed=0,
                          state_file=str(tmp_path / "state.json"), missing_result_timeout=-1)
    again.load_checkpoint()
    again.update_search_space(toy_space().to_nni())
    again.import_data([{"parameter": params[0], "value": result(params[0], 1.0)},  # already known: not doubled
                       {"parameter": params[1], "value": result(params[1], 2.0)}])
    records = again._driver.records
    assert [r.result.fitness for r in records] == [1.0, 2.0]
    nxt = again.generate_multiple_parameters([10, 11], st_callback=lambda *a: None)
    assert len(nxt) == 2 and nxt[0] != params[0]


def test_failed_trial_end_fails_the_pending_candidate(tmp_path):
    tuner = make(tmp_path)
    params = tuner.generate_multiple_parameters([1, 2], st_callback=lambda *a: None)
    tuner.trial_end(1, False)
    tuner.trial_end(2, True)  # success without metric yet: nothing happens
    records = tuner._driver.records
    assert len(records) == 1 and records[0].result.status == "failed"
    tuner.receive_trial_result(2, params[1], {"default": 0, "status": "failed", "reason": "NaN loss",
                                              "candidate": params[1]["_candidate"]})
    assert tuner._driver.records[-1].result.reason == "NaN loss"


def test_an_unsettled_unsuccessful_end_keeps_the_job_id_on_its_record(tmp_path, monkeypatch):
    """Without the manager's record the failure still goes through the one recording path."""
    monkeypatch.delenv("NNI_TUNER_COMMAND_CHANNEL", raising=False)
    tuner = make(tmp_path)
    tuner.generate_multiple_parameters([1, 2], st_callback=lambda *a: None)
    tuner._ending.job_id = "job5"  # as dispatcher_hooks sets it around NNI's handle_trial_end
    tuner.trial_end(1, False)
    (record,) = tuner._driver.records
    assert record.result.status == "failed" and record.external_id == "job5"


def test_swapped_parameters_are_matched_by_the_echoed_candidate(tmp_path):
    tuner = make(tmp_path)
    a, b = tuner.generate_multiple_parameters([1, 2], st_callback=lambda *x: None)
    # trial with parameter id 1 actually trained b and echoes b's candidate
    tuner.receive_trial_result(1, a, result(b, 5.0))
    (record,) = tuner._driver.records
    assert record.arch == {k: v for k, v in b.items() if k != "_candidate"}


def test_hooks_never_raise(tmp_path):
    tuner = make(tmp_path)
    tuner.receive_trial_result(1, {"bogus": 1}, "not a result")
    tuner.trial_end(12345, False)
    tuner.import_data([{"parameter": {"x": 1}, "value": 3}])
    assert tuner.generate_multiple_parameters([1], st_callback=lambda *a: None)


def test_bad_space_is_reported_not_raised(tmp_path):
    tuner = StrategyTuner(strategy=STRATEGY, state_file=str(tmp_path / "s.json"))
    tuner.update_search_space({"x": {"_type": "uniform", "_value": [0, 1]}})
    assert tuner._fatal and "'uniform' is not supported" in tuner._fatal
    assert tuner.generate_multiple_parameters([1], st_callback=lambda *a: None) == []


@pytest.mark.parametrize("kw, message", [
    ({"strategy_args": {"nope": 1}}, "unknown argument 'nope'"),
    ({"seed": "x"}, "seed='x'"),
    ({"optimize_mode": "minimize"}, "optimize_mode='minimize'"),
    ({"strategy_args": {"seed": 1}}, "'seed' is set by the framework"),
    ({"strategy_args": [1]}, "arguments must be a mapping"),
])
def test_bad_class_args_stop_before_any_trial(kw, message):
    with pytest.raises(TunerConfigError, match=message):
        StrategyTuner(strategy=STRATEGY, **kw)


def test_finished_strategy_requests_the_end(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setenv("NNI_TUNER_COMMAND_CHANNEL", "ws://localhost:4567/pre/tuner")
    monkeypatch.setattr(rest, "cap_trial_number", lambda root, sent, field: calls.append((root, len(sent))))
    tuner = make(tmp_path)
    for round_ in range(2):
        params = tuner.generate_multiple_parameters([10 * round_, 10 * round_ + 1], st_callback=lambda *a: None)
        for i, p in enumerate(params):
            tuner.receive_trial_result(10 * round_ + i, p, result(p, 1.0))
    assert tuner.generate_multiple_parameters([99], st_callback=lambda *a: None) == []
    import time
    time.sleep(0.1)
    assert calls == [("http://127.0.0.1:4567/pre/api/v1/nni", 4)]


def test_rest_helpers():
    assert rest.tuner_api_root("ws://localhost:8080/tuner") == "http://127.0.0.1:8080/api/v1/nni"
    assert rest.tuner_api_root("ws://localhost:9000/prefix/tuner") == "http://127.0.0.1:9000/prefix/api/v1/nni"
    assert rest.tuner_api_root("") is None
    jobs = [{"hyperParameters": [json.dumps({"parameter_id": 1, "parameters": {"a": 1, "_candidate": "h1"}})]},
            {"hyperParameters": ["garbage"]}]
    assert rest.submitted_keys(jobs, "_candidate") == {"h1"}


def test_orphan_whose_rerun_failed_is_failed_so_no_barrier_waits_forever(tmp_path):
    tuner = make(tmp_path)
    a, b = tuner.generate_multiple_parameters([1, 2], st_callback=lambda *x: None)
    tuner.receive_trial_result(1, a, result(a, 1.0))
    again = StrategyTuner(strategy=STRATEGY, strategy_args={"batch": 2, "batches": 2}, seed=0,
                          state_file=str(tmp_path / "state.json"), missing_result_timeout=-1)
    again.load_checkpoint()
    again.update_search_space(toy_space().to_nni())
    assert len(again._driver.orphans) == 1
    filled = []
    assert again.generate_multiple_parameters([5], st_callback=lambda pid, p: filled.append(pid)) == []  # barrier
    running = [{"status": "RUNNING", "hyperParameters": [json.dumps({"parameters": b})]}]
    assert again.check_orphans(running) is True
    failed = [{"status": "FAILED", "hyperParameters": [json.dumps({"parameters": b})]}]
    assert again.check_orphans(failed) is False
    assert again._driver.records[-1].result.reason == "trial ended FAILED without a final result"
    assert filled == [5]  # the kept slot got the next batch's candidate


def test_orphan_whose_job_succeeded_unheard_takes_the_result_from_the_manager(tmp_path):
    tuner = make(tmp_path)
    a, b = tuner.generate_multiple_parameters([1, 2], st_callback=lambda *x: None)
    again = StrategyTuner(strategy=STRATEGY, strategy_args={"batch": 2, "batches": 2}, seed=0,
                          state_file=str(tmp_path / "state.json"), missing_result_timeout=-1)
    again.load_checkpoint()
    again.update_search_space(toy_space().to_nni())
    metric = json.dumps(json.dumps(result(b, 7.0)))  # NNI stores the reported dict JSON-encoded twice
    jobs = [{"status": "SUCCEEDED", "hyperParameters": [json.dumps({"parameters": b})],
             "finalMetricData": [{"data": metric}]}]
    assert again.check_orphans(jobs) is True  # a's job is unknown: still in flight
    assert [r.result.fitness for r in again._driver.records] == [7.0]


def resumed(tmp_path):
    again = StrategyTuner(strategy=STRATEGY, strategy_args={"batch": 2, "batches": 2}, seed=0,
                          state_file=str(tmp_path / "state.json"), missing_result_timeout=-1)
    again.load_checkpoint()
    again.update_search_space(toy_space().to_nni())
    return again


def test_orphan_that_never_became_a_trial_is_proposed_again(tmp_path):
    tuner = make(tmp_path)
    a, b = tuner.generate_multiple_parameters([1, 2], st_callback=lambda *x: None)
    tuner.receive_trial_result(1, a, result(a, 1.0))
    again = resumed(tmp_path)
    filled = []
    assert again.generate_multiple_parameters([7], st_callback=lambda pid, p: filled.append((pid, p))) == []
    only_a = [{"status": "SUCCEEDED", "hyperParameters": [json.dumps({"parameters": a})]}]
    assert again.check_orphans(only_a) is False  # b was never submitted: handed out again
    assert filled == [(7, b)]
    again.receive_trial_result(7, b, result(b, 2.0))
    assert [r.result.fitness for r in again._driver.records] == [1.0, 2.0]


def test_the_orphan_watcher_survives_an_unexpected_error(tmp_path, monkeypatch):
    tuner = make(tmp_path)
    tuner.generate_multiple_parameters([1, 2], st_callback=lambda *x: None)
    again = resumed(tmp_path)
    manager_with(monkeypatch, [])
    calls = []

    def check(jobs, rows=None):
        calls.append(jobs)
        if len(calls) == 1:
            raise RuntimeError("a bug in one look")
        return False  # settled: the watch ends

    monkeypatch.setattr(again, "check_orphans", check)
    thread = again._watch_orphans(interval=0)
    thread.join(timeout=30)
    assert not thread.is_alive() and len(calls) == 2


def test_a_stale_tuner_never_overwrites_the_resumed_state(tmp_path):
    old = make(tmp_path)
    params = old.generate_multiple_parameters([1, 2], st_callback=lambda *x: None)
    new = resumed(tmp_path)
    new.receive_trial_result(1, params[0], result(params[0], 1.0))
    written = (tmp_path / "state.json").read_text()
    old.receive_trial_result(2, params[1], result(params[1], 2.0))  # the old manager's tuner, still alive
    old._on_exit()
    assert (tmp_path / "state.json").read_text() == written


def test_result_is_used_when_nni_lost_the_parameters_of_a_partly_answered_request(tmp_path):
    """NNI 3.0 answers a partly filled request with NO_MORE_TRIAL packed under the request's first
    id, which replaces the parameters it remembers for that id with ''."""
    tuner = make(tmp_path)
    a, b = tuner.generate_multiple_parameters([1, 2], st_callback=lambda *x: None)
    tuner.receive_trial_result(1, "", result(a, 1.0))
    no_echo = {k: v for k, v in result(b, 2.0).items() if k != "candidate"}
    tuner.receive_trial_result(2, "", no_echo)
    assert [r.result.fitness for r in tuner._driver.records] == [1.0, 2.0]
    assert [r.arch for r in tuner._driver.records] == [
        {k: v for k, v in p.items() if k != "_candidate"} for p in (a, b)]


def test_the_tuner_has_no_default_strategy():
    """The core names no plugin: a config must say which strategy to run."""
    from nas_core.nni_adapter.tuner import StrategyTuner, TunerConfigError

    with pytest.raises(TunerConfigError, match="classArgs.strategy is missing"):
        StrategyTuner()


def test_one_result_arriving_through_every_path_is_recorded_once(tmp_path, caplog):
    """The trial's own report, the manager's trial list (orphan watcher) and import_data at resume
    can all carry the same result: the candidate gets one record, the later arrivals a log line."""
    tuner = make(tmp_path)
    a, b = tuner.generate_multiple_parameters([1, 2], st_callback=lambda *x: None)
    tuner.receive_trial_result(1, a, result(a, 1.0))
    again = resumed(tmp_path)  # b is an orphan now
    metric = json.dumps(json.dumps(result(b, 2.0)))
    jobs = [{"status": "SUCCEEDED", "hyperParameters": [json.dumps({"parameter_id": 2, "parameters": b})],
             "finalMetricData": [{"data": metric}]}]
    with caplog.at_level("INFO", logger="nas_core.tuner"):
        assert again.check_orphans(jobs) is False
        again.import_data([{"parameter": a, "value": result(a, 1.0)}, {"parameter": b, "value": result(b, 2.0)}])
        again.receive_trial_result(2, b, result(b, 2.0))  # a re-run of the lost trial reporting again
    ids = [r.candidate_id for r in again._driver.records]
    assert sorted(ids) == [0, 1] and [r.result.fitness for r in again._driver.records] == [1.0, 2.0]
    assert sum("already settled; this result is ignored" in m for m in caplog.messages) == 3
    state = json.loads((tmp_path / "state.json").read_text())
    assert [r["candidate_id"] for r in state["driver"]["records"]] == [0, 1]


def test_a_late_success_after_a_failure_keeps_one_record_per_candidate(tmp_path):
    tuner = make(tmp_path)
    a, b = tuner.generate_multiple_parameters([1, 2], st_callback=lambda *x: None)
    tuner.trial_end(1, False)
    tuner.receive_trial_result(1, a, result(a, 3.0))  # its result arrives after all
    tuner.receive_trial_result(1, a, result(a, 3.0))
    records = tuner._driver.records
    assert [r.candidate_id for r in records] == [0]
    assert records[0].result.ok and records[0].result.fitness == 3.0


def manager_with(monkeypatch, jobs):
    monkeypatch.setenv("NNI_TUNER_COMMAND_CHANNEL", "ws://localhost:1234/tuner")
    monkeypatch.setattr(rest, "get", lambda port, api, **kw: jobs if api == "trial-jobs" else None)


def test_missing_result_is_taken_from_the_manager_rather_than_failed(tmp_path, monkeypatch):
    """A trial's end overtook its result by more than the timeout (a loaded machine): the manager
    holds the result, so the candidate succeeds, and the late report is a no-op."""
    tuner = make(tmp_path)
    a, b = tuner.generate_multiple_parameters([1, 2], st_callback=lambda *x: None)
    metric = json.dumps(json.dumps(result(a, 5.0)))
    manager_with(monkeypatch, [{"status": "SUCCEEDED", "finalMetricData": [{"data": metric}],
                                "hyperParameters": [json.dumps({"parameter_id": 1, "parameters": a})]}])
    tuner._check_missing(1)
    tuner.receive_trial_result(1, a, result(a, 5.0))
    assert [(r.candidate_id, r.result.fitness) for r in tuner._driver.records] == [(0, 5.0)]


def test_missing_result_fails_the_candidate_when_the_manager_has_none(tmp_path, monkeypatch):
    tuner = make(tmp_path)
    a, b = tuner.generate_multiple_parameters([1, 2], st_callback=lambda *x: None)
    manager_with(monkeypatch, [{"status": "SUCCEEDED",
                                "hyperParameters": [json.dumps({"parameter_id": 1, "parameters": a})]}])
    tuner._check_missing(1)
    assert [r.result.reason for r in tuner._driver.records] == ["trial succeeded but reported no final result"]


def first_run_job(params, value, parameter_id=0, job_id="old0"):
    return {"status": "SUCCEEDED", "trialJobId": job_id, "sequenceId": 0,
            "hyperParameters": [json.dumps({"parameter_id": parameter_id, "parameters": params})],
            "finalMetricData": [{"data": json.dumps(json.dumps(value))}]}


def test_missing_result_after_a_resume_ignores_a_first_run_job_of_the_same_parameter_id(tmp_path, monkeypatch):
    """A resume hands parameter ids out again: the first run's job 0 holds a stored result for
    another candidate, which must not stand in for the pending one (left in flight for good)."""
    tuner = make(tmp_path)
    a, b = tuner.generate_multiple_parameters([0, 1], st_callback=lambda *x: None)
    tuner.receive_trial_result(0, a, result(a, 1.0))
    tuner.receive_trial_result(1, b, result(b, 2.0))
    again = resumed(tmp_path)
    c, d = again.generate_multiple_parameters([0, 1], st_callback=lambda *x: None)
    new = {"status": "SUCCEEDED", "trialJobId": "new0", "sequenceId": 2,
           "hyperParameters": [json.dumps({"parameter_id": 0, "parameters": c})]}
    manager_with(monkeypatch, [first_run_job(a, result(a, 1.0)), new])
    again._check_missing(0, "new0")
    assert 0 not in again._driver.pending
    assert again._driver.records[-1].result.reason == "trial succeeded but reported no final result"
    assert (again._driver.records[-1].external_id, again._driver.records[-1].external_number) == ("new0", 2)
    assert again._driver.records[-1].arch == again._driver.space.validate(
        {k: v for k, v in c.items() if k != "_candidate"})


def test_missing_result_is_read_from_the_job_that_ended(tmp_path, monkeypatch):
    tuner = make(tmp_path)
    a, b = tuner.generate_multiple_parameters([0, 1], st_callback=lambda *x: None)
    manager_with(monkeypatch, [first_run_job(a, {"default": 9.0, "accuracy": 9.0, "status": "succeeded"},
                                             job_id="j0")])
    tuner._check_missing(0, "j0")
    assert [(r.result.fitness, r.external_id) for r in tuner._driver.records] == [(9.0, "j0")]


def test_missing_result_waits_for_the_running_swap_partner(tmp_path, monkeypatch):
    """Job of id 0 trained b (a swap) and b is settled; a is being trained by the job handed b."""
    tuner = make(tmp_path)
    a, b = tuner.generate_multiple_parameters([0, 1], st_callback=lambda *x: None)
    tuner.receive_trial_result(0, a, result(b, 2.0))
    running = {"status": "RUNNING", "trialJobId": "j1",
               "hyperParameters": [json.dumps({"parameter_id": 1, "parameters": b})]}
    manager_with(monkeypatch, [first_run_job(a, result(b, 2.0), job_id="j0"), running])
    timers = []
    monkeypatch.setattr(tuner, "_start_missing_timer", lambda *args: timers.append(args))
    tuner._check_missing(0, "j0")
    assert 0 in tuner._driver.pending and timers == [(0, "j0", 2, None)]


def test_final_value_for_prefers_a_success_to_a_reported_failure(tmp_path):
    params = {"layer0": 0, "_candidate": "abc"}
    failed = first_run_job(params, {"status": "failed", "reason": "NaN", "candidate": "abc"})
    ok = first_run_job(params, {"default": 1.0, "status": "succeeded", "candidate": "abc"})
    other = first_run_job(params, {"default": 7.0, "status": "succeeded", "candidate": "xyz"})
    assert rest.final_value_for([other, failed, ok], "_candidate", "abc")["default"] == 1.0
    assert rest.final_value_for([other, failed], "_candidate", "abc")["status"] == "failed"
    assert rest.final_value_for([other], "_candidate", "abc") is None


def test_missing_result_check_gives_up_asking_an_unreachable_manager(tmp_path, monkeypatch):
    """REST errors re-arm the check a bounded number of times, never faster than a minimum delay."""
    from nas_core.nni_adapter import tuner as tuner_module

    tuner = make(tmp_path)
    tuner._missing_result_timeout = 0.0
    a, b = tuner.generate_multiple_parameters([0, 1], st_callback=lambda *x: None)
    monkeypatch.setenv("NNI_TUNER_COMMAND_CHANNEL", "ws://localhost:1234/tuner")

    def down(*args, **kw):
        raise OSError("connection refused")

    monkeypatch.setattr(rest, "get", down)
    delays = []

    class FakeTimer:
        def __init__(self, delay, function, args):
            delays.append(delay)
            self.call = lambda: function(*args)
            self.daemon = False

        def start(self):
            self.call()

    monkeypatch.setattr(tuner_module.threading, "Timer", FakeTimer)
    tuner._start_missing_timer(0)
    assert len(delays) == tuner_module.MISSING_RESULT_ATTEMPTS
    assert delays[0] == 0.0 and min(delays[1:]) >= tuner_module.MISSING_RESULT_MIN_DELAY
    assert tuner._driver.records[-1].result.reason == "trial succeeded but reported no final result"


def test_resume_without_a_search_state_is_refused_in_one_line(tmp_path):
    tuner = StrategyTuner(strategy=STRATEGY, strategy_args={"batch": 2, "batches": 2}, seed=0,
                          state_file=str(tmp_path / "state.json"), missing_result_timeout=-1)
    tuner.load_checkpoint()
    tuner.update_search_space(toy_space().to_nni())
    assert tuner._fatal.startswith("cannot resume: the search state ") and "is missing" in tuner._fatal
    assert "\n" not in tuner._fatal
    a = {"layer0": 0, "layer1": 0, "layer2": 0}
    tuner.import_data([{"parameter": a, "value": {"default": 1.0}}])
    assert tuner.generate_multiple_parameters([1, 2], st_callback=lambda *x: None) == []
    tuner._on_exit()
    assert not (tmp_path / "state.json").exists()  # nothing rebuilt, nothing written


@pytest.mark.parametrize("content, reason", [
    ('{"version": 1, "driver": {"rec', "unreadable"),
    ("[1, 2]", "unreadable (it is not a search state written by this tuner)"),
    ('{"version": 1, "driver": {"version": 1}}', "does not fit this search"),
])
def test_resume_from_a_damaged_search_state_is_refused_and_leaves_the_file(tmp_path, content, reason):
    (tmp_path / "state.json").write_text(content)
    tuner = StrategyTuner(strategy=STRATEGY, strategy_args={"batch": 2, "batches": 2}, seed=0,
                          state_file=str(tmp_path / "state.json"), missing_result_timeout=-1)
    tuner.load_checkpoint()
    tuner.update_search_space(toy_space().to_nni())
    assert tuner._fatal.startswith("cannot resume: the search state ") and reason in tuner._fatal
    assert "\n" not in tuner._fatal
    assert tuner.generate_multiple_parameters([1], st_callback=lambda *x: None) == []
    tuner._on_exit()
    assert (tmp_path / "state.json").read_text() == content


def test_an_orphan_is_settled_by_the_result_the_manager_holds_not_by_a_job_status(tmp_path):
    """After a resume a candidate can have an ended job and a live re-run, or a job whose status says
    failed though it reported: the stored result decides, and a live job is waited for."""
    tuner = make(tmp_path)
    a, b = tuner.generate_multiple_parameters([1, 2], st_callback=lambda *x: None)
    again = resumed(tmp_path)
    job = lambda params, status, **extra: {"status": status, **extra,  # noqa: E731
                                           "hyperParameters": [json.dumps({"parameters": params})]}
    # a: an old job cancelled while its re-run still runs; b: failed on exit after reporting
    metric = json.dumps(json.dumps(result(b, 6.0)))
    jobs = [job(a, "USER_CANCELED"), job(a, "RUNNING"), job(b, "FAILED", finalMetricData=[{"data": metric}])]
    assert again.check_orphans(jobs) is True
    assert [(r.arch, r.result.fitness) for r in again._driver.records] == [(again._driver.space.validate(
        {k: v for k, v in b.items() if k != "_candidate"}), 6.0)]
    again.import_data([{"parameter": a, "value": result(a, 1.0)}])  # the re-run's result
    assert again.check_orphans([job(a, "USER_CANCELED"), job(a, "SUCCEEDED")]) is False
    assert sorted(r.result.fitness for r in again._driver.records) == [1.0, 6.0]
    assert all(r.result.ok for r in again._driver.records)


def fake_manager(monkeypatch, statuses, looks):
    statuses, looks, deleted = iter(statuses), iter(looks), []

    def get(port, api, **kw):
        deleted.append(("GET", api))
        return {"status": next(statuses)} if api == "check-status" else next(looks)

    monkeypatch.setattr(rest, "get", get)
    monkeypatch.setattr(rest, "request", lambda port, method, api, *a, **kw: deleted.append((method, api)))
    return deleted


def test_cancel_unfinished_cancels_running_trials_until_every_job_has_ended(monkeypatch):
    """After a fatal tuner error NNI stops following its trials; a re-submitted one may start later."""
    deleted = fake_manager(monkeypatch, ["RUNNING"] + ["ERROR"] * 3, [
        [{"trialJobId": "a", "status": "RUNNING"}, {"trialJobId": "b", "status": "ADD_RESUMED"}],
        [{"trialJobId": "a", "status": "USER_CANCELED"}, {"trialJobId": "b", "status": "RUNNING"}],
        [{"trialJobId": "a", "status": "USER_CANCELED"}, {"trialJobId": "b", "status": "USER_CANCELED"}],
    ])
    assert rest.cancel_unfinished(1234, delay=0) == 2
    assert [call for call in deleted if call[0] == "DELETE"] == [("DELETE", "trial-jobs/a"), ("DELETE", "trial-jobs/b")]


def test_cancel_unfinished_leaves_a_healthy_experiment_alone(monkeypatch):
    """The error never reached the manager (NNI's report_error swallows send failures)."""
    deleted = fake_manager(monkeypatch, ["RUNNING"] * 100, [[{"trialJobId": "a", "status": "RUNNING"}]] * 100)
    assert rest.cancel_unfinished(1234, delay=0) == 0
    assert deleted == [("GET", "check-status")] * 3  # waited `grace` looks for an ERROR, listed nothing


def test_cancel_unfinished_stops_when_only_resubmitted_trials_remain(monkeypatch):
    looks = [[{"trialJobId": "b", "status": "ADD_RESUMED"}]] * 100
    statuses = ["ERROR"] * 100
    deleted = fake_manager(monkeypatch, statuses, looks)
    assert rest.cancel_unfinished(1234, delay=0, grace=3) == 0
    assert deleted.count(("GET", "trial-jobs")) == 4  # not the full 60 looks

