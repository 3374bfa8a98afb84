"""Predicting how NNI will start a local experiment's trials, to warm their workers ahead."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from nas_core.nni_adapter.prestart import TrialLaunch, predict_trial_launch, prestart_trial_workers, spare_cores

COMMAND = """python3 -m nas_core.trial --evaluator binary_width --args '{"epochs": 2}'"""


@pytest.fixture()
def env(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    python = bin_dir / "python3"
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    return {"PATH": str(bin_dir), "HOME": "/home/u"}


def config(**changes):
    fields = {"training_service": SimpleNamespace(platform="local"), "trial_gpu_number": None,
              "trial_command": COMMAND, "trial_code_directory": "/code", "trial_concurrency": 2}
    return SimpleNamespace(**{**fields, **changes})


def test_a_plain_local_trial_command_is_predicted_with_nnis_experiment_variables(env):
    launch = predict_trial_launch(config(), "exp1", env)
    assert launch == TrialLaunch(
        executable=os.path.join(env["PATH"], "python3"),
        argv=["--evaluator", "binary_width", "--args", '{"epochs": 2}'], cwd="/code",
        env={**env, "NNI_PLATFORM": "local", "NNI_EXP_ID": "exp1", "NNI_CODE_DIR": "/code"})


@pytest.mark.parametrize("changes", [
    {"training_service": SimpleNamespace(platform="remote")},
    {"training_service": [SimpleNamespace(platform="local")]},
    {"trial_gpu_number": 1},                                            # trials given GPUs use no worker
    {"trial_command": "python3 train.py"},                              # not our trial
    {"trial_command": "$PY -m nas_core.trial --evaluator binary_width"},  # the shell would expand it
    {"trial_command": COMMAND + " --worker off"},
    {"trial_command": COMMAND + " --arch '{}'"},
    {"trial_command": "python3 -m nas_core.trial --evaluator 'unclosed"},
    {"trial_command": "python3 -m nas_core.trial"},                     # no --evaluator: the trial says so
    {"trial_command": "python9 -m nas_core.trial --evaluator binary_width"},  # not on PATH
])
def test_trials_that_will_not_use_a_worker_or_cannot_be_predicted_get_none(env, changes):
    assert predict_trial_launch(config(**changes), "exp1", env) is None


def test_trial_fields_written_under_the_training_service_are_read_there(env):
    """A canonical NNI config keeps trialCommand & co. in the training service; top level may be None."""
    service = SimpleNamespace(platform="local", trial_command=COMMAND, trial_code_directory="/svc",
                              trial_gpu_number=None)
    launch = predict_trial_launch(config(training_service=service, trial_command=None, trial_code_directory=None),
                                  "exp1", env)
    assert launch is not None and launch.cwd == "/svc" and launch.argv[:2] == ["--evaluator", "binary_width"]
    service.trial_gpu_number = 1
    assert predict_trial_launch(config(training_service=service), "exp1", env) is None


def test_zero_gpus_predicts_the_empty_cuda_visible_devices_nni_sets(env):
    launch = predict_trial_launch(config(trial_gpu_number=0), "exp1", env)
    assert launch is not None and launch.env["CUDA_VISIBLE_DEVICES"] == ""


def test_prestart_says_when_it_starts_nothing(env):
    message = prestart_trial_workers(config(trial_gpu_number=1), "exp1", env)
    assert message.startswith("trial workers: not started ahead")


def test_prestart_needs_a_core_that_nnis_start_up_leaves_idle(env):
    message = prestart_trial_workers(config(), "exp1", env, cores=0)
    assert message == "trial workers: not started ahead (no core to spare while NNI starts)"


def test_spare_cores_leave_one_to_nni():
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert spare_cores() == usable - 1
