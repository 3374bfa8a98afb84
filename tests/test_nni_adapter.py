"""Rules the NNI adapter holds once: trial-command parsing, "is this our tuner", the evaluator's
description travelling with results, and a space class whose own operators NNI would drop."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

import pytest

from nas_core.config import ConfigError, load_search_config
from nas_core.evaluator import Metric
from nas_core.nni_adapter.trial import own_operators, run_trial, space_class_name, trial_arguments
from nas_core.nni_adapter.tuner import StrategyTuner, is_strategy_tuner
from nas_core.space import SearchSpace
from tests.conftest import REPO
from tests.toy_plugins import ToyEvaluator, toy_space

STRATEGY = "tests.toy_plugins:BatchStrategy"
ARCH = {"layer0": 1, "layer1": 2, "layer2": 3}


class OwnMutationSpace(SearchSpace):
    """A space with its own mutation (always the highest choice), as a user's plugin might have."""

    def __init__(self) -> None:
        super().__init__(toy_space().dimensions)

    def mutate(self, arch: Mapping[str, Any], rng: random.Random, rate: float | None = None) -> dict[str, Any]:
        return {name: self.dimension(name).choices[-1] for name in self.names}


class OwnSpaceEvaluator(ToyEvaluator):
    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.space = OwnMutationSpace()


class DeclaringEvaluator(ToyEvaluator):
    """Declares a primary metric that is not what its fitness reads."""

    metrics = (Metric("loss", "minimize"), Metric("accuracy", "maximize"))

    def evaluate(self, arch, reporter=None):  # type: ignore[override]
        for epoch in range(2):
            if reporter is not None:
                reporter(epoch, {"accuracy": 10.0 * (epoch + 1), "loss": 1.0 / (epoch + 1)})
        return {"accuracy": 20.0, "loss": 0.5}


@pytest.mark.parametrize(("command", "expected"), [
    ("python3 -m nas_core.trial --evaluator toy --args '{\"a\": 1}'", ["--evaluator", "toy", "--args", '{"a": 1}']),
    ("/usr/bin/env python3 -u -m nas_core.trial --evaluator toy", ["--evaluator", "toy"]),
    ("python3 train.py --evaluator toy", None),
    ("python3 -m nas_core.trialx", None),
    ("python3 -m", None),
])
def test_trial_arguments_are_read_from_a_trial_command(command, expected):
    assert trial_arguments(command) == expected


def test_broken_quoting_in_a_trial_command_is_an_error():
    with pytest.raises(ValueError):
        trial_arguments("python3 -m nas_core.trial --args '{")


@pytest.mark.parametrize(("class_name", "name", "ours"), [
    ("nas_core.nni_adapter.tuner.StrategyTuner", None, True),
    ("nas_core.nni_adapter.tuner:StrategyTuner", None, True),
    (None, "NasEvolution", True),
    (None, "TPE", False),
    ("my.tuner.Tuner", None, False),
    (None, None, False),
])
def test_is_strategy_tuner(class_name, name, ours):
    assert is_strategy_tuner(class_name, name) is ours


def test_an_nni_trial_sends_the_evaluator_description_and_its_primary_metric_per_epoch():
    intermediate, final = [], []
    assert run_trial(DeclaringEvaluator(), {**ARCH, "_candidate": "c1"},
                     intermediate=intermediate.append, final=final.append) == 0
    assert [m["default"] for m in intermediate] == [1.0, 0.5]  # loss: the declared primary metric
    (result,) = final
    assert result["default"] == 20.0  # the fitness still reads accuracy
    assert result["evaluator"]["metrics"][0] == {"name": "loss", "direction": "minimize", "description": ""}
    assert "space" not in result  # a plain space needs nothing from the tuner


def test_a_failed_trial_sends_the_description_too():
    final = []
    run_trial(ToyEvaluator(prepare_error="no data"), dict(ARCH), intermediate=lambda m: None, final=final.append)
    assert final[0]["status"] == "failed" and final[0]["evaluator"]["name"] == "toy"


def test_a_space_with_its_own_operators_is_named_in_the_result():
    assert own_operators(toy_space()) == [] and own_operators(OwnMutationSpace()) == ["mutate"]
    final = []
    run_trial(OwnSpaceEvaluator(), dict(ARCH), intermediate=lambda m: None, final=final.append)
    assert final[0]["space"] == space_class_name(OwnMutationSpace()) == "tests.test_nni_adapter:OwnMutationSpace"


def make_tuner(tmp_path, **kw):
    tuner = StrategyTuner(strategy=STRATEGY, strategy_args={"batch": 2, "batches": 2}, seed=0,
                          state_file=str(tmp_path / "state.json"), missing_result_timeout=-1, **kw)
    tuner.update_search_space(toy_space().to_nni())
    return tuner


def final_of(evaluator, params):
    finals = []
    run_trial(evaluator, params, intermediate=lambda m: None, final=finals.append)
    return finals[0]


def test_the_tuner_keeps_the_evaluator_description_in_its_state_and_gives_it_to_the_driver(tmp_path):
    tuner = make_tuner(tmp_path)
    seen = []
    tuner._driver.set_evaluator_description = seen.append  # what core-report's driver provides
    params = tuner.generate_multiple_parameters([1, 2], st_callback=lambda *a: None)
    value = final_of(DeclaringEvaluator(), params[0])
    tuner.receive_trial_result(1, params[0], value)
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["evaluator"] == value["evaluator"] and seen == [value["evaluator"]]
    (record,) = tuner._driver.records
    assert record.result.ok and "evaluator" not in record.result.metrics


def test_the_tuner_refuses_a_space_whose_own_operators_it_would_drop(tmp_path, caplog):
    tuner = make_tuner(tmp_path)
    params = tuner.generate_multiple_parameters([1, 2], st_callback=lambda *a: None)
    tuner.receive_trial_result(1, params[0], final_of(OwnSpaceEvaluator(), params[0]))
    assert tuner._fatal is not None and "space: tests.test_nni_adapter:OwnMutationSpace" in tuner._fatal
    assert "\n" not in tuner._fatal
    assert tuner.generate_multiple_parameters([3], st_callback=lambda *a: None) == []


def test_the_tuner_told_the_space_class_uses_its_operators(tmp_path):
    tuner = make_tuner(tmp_path, space="tests.test_nni_adapter:OwnMutationSpace")
    assert type(tuner._driver.space) is OwnMutationSpace
    params = tuner.generate_multiple_parameters([1, 2], st_callback=lambda *a: None)
    tuner.receive_trial_result(1, params[0], final_of(OwnSpaceEvaluator(), params[0]))
    assert tuner._fatal is None


def test_the_launcher_refuses_such_a_space_unless_the_tuner_names_it(make_toy_config):
    evaluator = "tests.test_nni_adapter:OwnSpaceEvaluator"
    command = f"python3 -m nas_core.trial --evaluator {evaluator}"
    tuner = {"className": "nas_core.nni_adapter.tuner.StrategyTuner", "codeDirectory": str(REPO),
             "classArgs": {"strategy": STRATEGY, "strategy_args": {"batch": 2, "batches": 2}}}
    with pytest.raises(ConfigError, match=r"own mutate .*add space: 'tests.test_nni_adapter:OwnMutationSpace'"):
        load_search_config(make_toy_config(trialCommand=command, tuner=tuner))
    tuner["classArgs"]["space"] = "tests.test_nni_adapter:OwnMutationSpace"
    assert load_search_config(make_toy_config(trialCommand=command, tuner=tuner)).tuner_space is not None


def test_the_trial_command_starts_without_torch_nni_or_the_core():
    probe = ("import sys, nas_core.trial; "
             "heavy = [m for m in ('torch', 'nni', 'nas_core.driver') if m in sys.modules]; "
             "assert not heavy, heavy")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr


def test_the_thin_client_hands_its_trial_to_a_worker_without_loading_the_http_stack():
    """Under NNI each trial's client decides to use a worker; it runs once per trial, so it must not
    import trial_io's HTTP client (about 30 ms a trial on the default job)."""
    probe = ("import os, sys; from nas_core.nni_adapter import trial, worker_pool\n"
             "os.environ.update(NNI_PLATFORM='local', NNI_TRIAL_COMMAND_CHANNEL='http://127.0.0.1:9/x')\n"
             "def handed(argv):\n"
             "    print(sorted(m for m in ('http.client', 'urllib.request', 'nas_core.nni_adapter.trial_io')\n"
             "                 if m in sys.modules)); return 0\n"
             "worker_pool.run_in_worker = handed\n"
             "assert trial._run_in_worker(['--evaluator', 'x']) == 0\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", f"the client loaded {done.stdout.strip()}"
