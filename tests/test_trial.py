import json

from nas_core.nni_adapter import trial
from tests.toy_plugins import ClockedEvaluator, SteppedClock, ToyEvaluator

ARCH = {"layer0": 1, "layer1": 2, "layer2": 3}


def run(evaluator, params):
    inter, final = [], []
    status = trial.run_trial(evaluator, params, intermediate=inter.append, final=final.append)
    return status, inter, final


def test_success_reports_epochs_and_a_final_dict_with_default_and_echo():
    status, inter, final = run(ToyEvaluator(epochs=3), {**ARCH, "_candidate": "abc123"})
    assert status == 0
    assert [round(m["default"], 3) for m in inter] == [2.0, 4.0, 6.0]
    (result,) = final
    assert result["default"] == 6.0 and result["accuracy"] == 6.0 and result["flops"] == 37.0
    assert result["candidate"] == "abc123" and result["status"] == "succeeded"
    assert result["evaluator_seconds"] >= 0


def test_failed_candidate_reports_reason_and_exits_1():
    status, _, final = run(ToyEvaluator(fail_when_sum=6), dict(ARCH))
    assert status == 1
    assert final[0]["status"] == "failed" and "NaN" in final[0]["reason"]


def test_unexpected_exception_is_a_failed_candidate():
    class Broken(ToyEvaluator):
        def evaluate(self, arch, reporter=None):
            raise MemoryError("too wide")

    status, _, final = run(Broken(), dict(ARCH))
    assert status == 1 and final[0]["reason"] == "MemoryError: too wide"


def test_preparation_runs_before_the_timed_evaluation(monkeypatch):
    clock = SteppedClock()
    monkeypatch.setattr("nas_core.runner.time.perf_counter", clock)
    evaluator = ClockedEvaluator(clock, epochs=1)
    status, _, final = run(evaluator, dict(ARCH))
    assert status == 0 and evaluator.prepared == 1
    assert final[0]["evaluator_seconds"] == 1.0, "loading the data was timed as the candidate's compute"


def test_a_failed_preparation_is_a_failed_candidate_naming_the_stage():
    status, _, final = run(ToyEvaluator(prepare_error="no data in /data"), dict(ARCH))
    assert status == 1
    assert final[0]["status"] == "failed"
    assert final[0]["reason"] == "preparing the evaluator: RuntimeError: no data in /data"


def test_invalid_parameters_are_rejected_naming_the_value():
    status, _, final = run(ToyEvaluator(), {**ARCH, "layer1": 9})
    assert status == 2 and "layer1=9" in final[0]["reason"]


def test_main_runs_one_candidate_outside_nni(capsys):
    code = trial.main(["--evaluator", "tests.toy_plugins:ToyEvaluator", "--args", '{"epochs": 1}',
                       "--arch", json.dumps(ARCH)])
    assert code == 0
    assert '"default": 6.0' in capsys.readouterr().out


def test_main_bad_evaluator_arguments_one_line(capsys):
    code = trial.main(["--evaluator", "tests.toy_plugins:ToyEvaluator", "--args", '{"dimz": 1}', "--arch", "{}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "unknown argument 'dimz'" in err
