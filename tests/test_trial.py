import json

import pytest

from nas_core.nni_adapter import trial
from tests.fake_nni_channel import FakeTrialChannel
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


def test_the_final_result_echoes_the_trials_own_job_and_number_as_result_fields():
    final = []
    status = trial.run_trial(ToyEvaluator(epochs=1), {**ARCH, "_candidate": "abc"}, intermediate=lambda m: None,
                             final=final.append, identity={"trial_job": "Ab1", "trial_number": 3})
    assert status == 0
    assert final[0]["trial_job"] == "Ab1" and final[0]["trial_number"] == 3
    assert {"trial_job", "trial_number"} <= set(trial.RESULT_FIELDS), "they must not be taken for metrics"
    assert trial.external_trial(final[0]) == {"external_id": "Ab1", "external_number": 3}
    assert trial.external_trial({"default": 1.0}) == {} and trial.external_trial(0.5) == {}


@pytest.fixture()
def nni_trial_env(monkeypatch):
    """This process as NNI trial t7 (Trial No. 7, parameter set 7) on a fake trial channel."""
    fake = FakeTrialChannel()
    for key, value in fake.add_trial("t7", 7, {**ARCH, "_candidate": "c7"}).items():
        monkeypatch.setenv(key, value)
    yield fake
    fake.close()


def test_a_trial_whose_evaluator_cannot_be_built_reports_a_failed_result_naming_why(nni_trial_env, capsys):
    code = trial.main(["--evaluator", "tests.toy_plugins:ToyEvaluator", "--args", '{"dimz": 1}', "--worker", "off"])
    assert code == 2 and "unknown argument 'dimz'" in capsys.readouterr().err
    (final,) = nni_trial_env.finals("t7")
    assert final["parameter_id"] == 7
    value = final["value"]
    assert value["status"] == "failed" and "unknown argument 'dimz'" in value["reason"]
    assert value["candidate"] == "c7" and value["trial_number"] == 7 and value["trial_job"] == "t7"


def test_a_plugin_that_crashes_while_building_is_reported_failed_too(nni_trial_env, monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("plugin bug")

    monkeypatch.setattr("nas_core.spec.build_evaluator", broken)
    code = trial.main(["--evaluator", "tests.toy_plugins:ToyEvaluator", "--worker", "off"])
    assert code == 1
    (final,) = nni_trial_env.finals("t7")
    assert final["value"]["status"] == "failed"
    assert final["value"]["reason"].endswith("ZeroDivisionError: plugin bug")
