"""Issue 13 point 3 and point 4's first bullet: every config or flag error is one line and exit
status 2 before NNI starts, checked with NNI's own config classes as well as ours; NNI's builtin
tuners either run or are refused naming the package they need."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from nas_core.cli import main
from tests.conftest import REPO


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


def _validate(path, capsys) -> tuple[int, str]:
    code = main(["validate", str(path)])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.err.strip() or captured.out.strip()


# --------------------------------------------------------------- NNI's config rules
@pytest.mark.parametrize("override, expected", [
    ({"maxExperimentDuration": "soon"}, "maxExperimentDuration='soon' must be a positive duration"),
    ({"maxTrialDuration": "-1h"}, "maxTrialDuration='-1h' must be a positive duration"),
    ({"maxTrialDuration": [1]}, "maxTrialDuration=[1] must be a positive duration"),
    ({"trialConcurency": 2}, "unknown key 'trialConcurency' (did you mean 'trialConcurrency'?)"),
    ({"trainingService": {"platform": "locl"}},
     "trainingService.platform='locl' is not an NNI training service (did you mean 'local'?)"),
    ({"trainingService": {"platform": "local", "useActivGpu": False}}, "trainingService: unknown key 'useActivGpu'"),
    ({"tuner": {"name": "NasEvolutoin"}}, "tuner.name 'NasEvolutoin' is not a tuner NNI knows (did you mean 'NasEvolution'?)"),
    ({"tuner": {"name": "TPE", "codeDirectory": "."}}, "tuner.codeDirectory is for className only"),
    ({"tuner": {"name": "TPE", "clasArgs": {}}}, "tuner: unknown key 'clasArgs' (did you mean 'classArgs'?)"),
    ({"tuner": {"name": "Medianstop"}}, "tuner.name 'Medianstop' is an NNI assessor, not a tuner"),
    ({"logLevel": "loud"}, "NNI refuses the config: its check `assert self.log_level in"),
    ({"trialGpuNumber": "one"}, "NNI refuses the config: ExperimentConfig: type of trial_gpu_number ('one')"),
])
def test_what_nni_would_refuse_is_one_line_before_nni_starts(make_toy_config, capsys, override, expected):
    path = make_toy_config(**override)
    assert main(["validate", str(path)]) == 2
    assert expected in _error(capsys)
    assert main(["search", str(path), "--no-progress"]) == 2  # refused before any NNI process starts
    assert expected in _error(capsys)


def test_registered_name_not_yet_registered_says_how(make_toy_config, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("NNI_CONFIG_DIR", str(tmp_path / "nni-config"))
    (tmp_path / "nni-config").mkdir()
    path = make_toy_config(tuner={"name": "NasEvolution"})
    assert main(["validate", str(path)]) == 2
    assert "tuner.name 'NasEvolution' is not registered with NNI yet: run `python -m nas_core register`" in _error(capsys)
    from nas_core.nni_adapter import registration

    registration.register_all()
    assert main(["validate", str(path)]) == 0


def test_tuner_class_args_prefix_is_printed_once(make_toy_config, capsys):
    tuner = {"className": "nas_core.nni_adapter.tuner.StrategyTuner", "codeDirectory": str(REPO),
             "classArgs": {"strategy": "evolutoin"}}
    assert main(["validate", str(make_toy_config(tuner=tuner))]) == 2
    err = _error(capsys)
    assert err.startswith("error: tuner.classArgs: unknown strategy 'evolutoin'") and err.count("tuner.classArgs") == 1
    tuner["classArgs"] = {"strategy": "evolution", "bogus": 1}
    assert main(["validate", str(make_toy_config(tuner=tuner))]) == 2
    err = _error(capsys)
    assert "unknown argument 'bogus'" in err and err.count("tuner.classArgs") == 1


def test_a_config_file_that_is_not_utf8_is_one_line(tmp_path, capsys):
    path = tmp_path / "config.yml"
    path.write_bytes(b"\xff\xfe trialConcurrency: 1\n")
    assert main(["validate", str(path)]) == 2
    assert "is not UTF-8 text" in _error(capsys)


def test_the_digits_example_still_validates(capsys):
    assert main(["validate", str(REPO / "examples/digits/config.yml")]) == 0


# ------------------------------------------------------------------ builtin tuners
def _builtin_tuners() -> list[str]:
    from nni.tools.package_utils import config_manager

    return [m.name for m in config_manager.get_all_algo_meta() if m.algo_type == "tuner" and m.is_builtin]


@pytest.mark.parametrize("name", _builtin_tuners())
def test_each_nni_builtin_tuner_is_accepted_only_if_it_can_be_imported(make_toy_config, capsys, name):
    import importlib

    from nni.tools.package_utils import config_manager

    module = config_manager.get_algo_meta(name).class_name.rsplit(".", 1)[0]
    try:
        importlib.import_module(module)
        missing = None
    except ModuleNotFoundError as err:
        missing = err.name
    code, said = _validate(make_toy_config(tuner={"name": name}), capsys)
    if missing is None:
        assert code == 0, said
    else:
        assert code == 2 and f"tuner {name!r} needs the package" in said and "pip install" in said, said


def test_a_tuner_whose_package_is_missing_is_refused_naming_it_and_the_extra(make_toy_config, capsys, monkeypatch):
    # what a clean install without the `tuners` group sees: hyperopt cannot be imported
    monkeypatch.setitem(sys.modules, "hyperopt", None)
    monkeypatch.delitem(sys.modules, "nni.algorithms.hpo.hyperopt_tuner", raising=False)
    for name in ("Anneal", "TPE_legacy"):
        code, said = _validate(make_toy_config(tuner={"name": name, "classArgs": {"optimize_mode": "maximize"}}), capsys)
        assert code == 2
        assert said == (f"error: tuner {name!r} needs the package 'hyperopt', which is not installed: "
                        "pip install 'binary-width-nas[tuners]'")


def test_the_tuners_group_lists_what_the_message_promises():
    import tomllib

    from nas_core.nni_adapter.config_check import EXTRA_PACKAGES

    group = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["tuners"]
    names = {entry.split(">")[0].split("=")[0].strip() for entry in group}
    assert set(EXTRA_PACKAGES.values()) <= names


@pytest.mark.slow
@pytest.mark.parametrize("name", ["Anneal", "TPE_legacy"])
def test_tuners_the_group_enables_run_on_our_space_and_trial(make_toy_config, name, capsys):
    from tests.test_nni_e2e import run_experiment

    config = make_toy_config(
        tuner={"name": name, "classArgs": {"optimize_mode": "maximize"}}, maxTrialNumber=3, trialConcurrency=1,
        searchSpaceFile=str(REPO / "examples/digits/search_space.json"),
        trialCommand="python3 -m nas_core.trial --evaluator binary_width --args '{\"epochs\": 1, \"threads\": 1}'")
    assert main(["validate", str(config)]) == 0
    outcome, jobs = run_experiment(config)
    assert outcome.status == "DONE", outcome.errors
    assert len(jobs) == 3 and all(job["status"] == "SUCCEEDED" for job in jobs)


# -------------------------------------------------------------- remote data directory
def _data_config(make_toy_config, tmp_path, platform: dict):
    key = tmp_path / "id_test"
    key.write_text("not used: nothing connects\n")
    args = json.dumps({"dataset": "cifar10", "data_dir": str(tmp_path / "no-such-cifar")})
    if platform.get("platform") == "remote":
        platform = {**platform, "machineList": [{"host": "127.0.0.1", "user": "nobody", "sshKeyFile": str(key)}]}
    return make_toy_config(
        searchSpaceFile=str(REPO / "examples/digits/search_space.json"), trainingService=platform,
        trialCommand=f"python3 -m nas_core.trial --evaluator binary_width --args '{args}'")


def test_remote_config_whose_data_is_missing_here_is_accepted_with_a_note(make_toy_config, tmp_path, capsys):
    path = _data_config(make_toy_config, tmp_path, {"platform": "remote"})
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "note: data not checked: the trials read it on the remote training service's machines" in out
    assert "no-such-cifar" in out


def test_local_config_whose_data_is_missing_is_refused(make_toy_config, tmp_path, capsys):
    path = _data_config(make_toy_config, tmp_path, {"platform": "local"})
    assert main(["validate", str(path)]) == 2
    assert "no-such-cifar' does not exist" in _error(capsys)


# -------------------------------------------------------------------------- flags
@pytest.mark.parametrize("argv, expected", [
    (["--port", "99999"], "--port must be an integer >= 1 and <= 65535, got 99999"),
    (["--port", "0"], "--port must be an integer >= 1 and <= 65535, got 0"),
    (["--timeout", "-5"], "--timeout must be a finite number > 0, got -5.0"),
    (["--timeout", "nan"], "--timeout must be a finite number > 0"),
    (["--top", "-1"], "--top must be an integer >= 0, got -1"),
])
def test_search_flags_are_checked_before_nni_starts(make_toy_config, capsys, argv, expected):
    assert main(["search", str(make_toy_config()), "--no-progress", *argv]) == 2
    assert expected in _error(capsys)


@pytest.mark.parametrize("argv, expected", [
    (["report", "x" * 1000], "(1000 characters) is neither a folder nor a known NNI experiment id"),
    (["report", ".", "--top", "-1"], "--top must be an integer >= 0, got -1"),
    (["paper-report", ".", "--lam", "-3"], "--lam must be a finite number >= 0, got -3.0"),
    (["paper-report", ".", "--width-scale", "-1"], "--width-scale must be a finite number > 0, got -1.0"),
    (["paper-report", ".", "--top", "-2"], "--top must be an integer >= 0, got -2"),
])
def test_report_flags_are_one_line(capsys, argv, expected):
    assert main(argv) == 2
    assert expected in _error(capsys)


def test_space_json_into_a_missing_folder_is_one_line(tmp_path, capsys):
    target = tmp_path / "missing" / "space.json"
    assert main(["space-json", "binary_width", "-o", str(target)]) == 2
    assert f"-o {str(target)!r}: cannot write it (No such file or directory)" in _error(capsys)


def test_trial_arch_that_is_not_an_object_is_one_line():
    out = subprocess.run([sys.executable, "-m", "nas_core.trial", "--evaluator", "tests.toy_plugins:ToyEvaluator",
                          "--arch", "[1,1]"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip() == "error: --arch '[1,1]' is not a JSON object (name -> value)"


def _arch_file(tmp_path):
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({f"conv{i}": 1 for i in range(1, 7)}))
    return path


def test_retrain_on_an_unknown_device_is_one_line(tmp_path, capsys):
    assert main(["retrain", str(_arch_file(tmp_path)), "--device", "tpu", "--no-progress",
                 "--output", str(tmp_path / "out")]) == 2
    assert "device='tpu' is not a torch device" in _error(capsys)


@pytest.mark.slow
def test_retrain_that_diverges_is_one_line(tmp_path, capsys):
    assert main(["retrain", str(_arch_file(tmp_path)), "--lr", "1e30", "--epochs", "1", "--no-progress",
                 "--output", str(tmp_path / "out")]) == 2
    err = _error(capsys)
    assert err.startswith("error: training diverged (training loss is nan") and "try a smaller --lr" in err


# ---------------------------------------------------------------- no success at all
def test_no_success_reason_names_the_most_common_reason(tmp_path):
    from nas_core import run_search
    from nas_core.cli import no_success_reason
    from nas_core.results import load_results
    from tests.toy_plugins import BatchStrategy, ToyEvaluator, toy_space

    state = tmp_path / "state.json"
    run_search(BatchStrategy(space=toy_space(dims=1, choices=1), batch=1, batches=1),
               ToyEvaluator(dims=1, choices=1, fail_when_sum=0), budget=2, state_file=state, progress=False)
    reason = no_success_reason(load_results(state))
    assert reason == "no candidate succeeded (1 failed); most common reason (1 of them): loss diverged (NaN) for sum 0"
    run_search(BatchStrategy(space=toy_space(), batch=2, batches=1), ToyEvaluator(), budget=2,
               state_file=tmp_path / "ok.json", progress=False)
    assert no_success_reason(load_results(tmp_path / "ok.json")) is None


@pytest.mark.slow
def test_search_where_every_candidate_fails_exits_1_saying_why(make_toy_config, tmp_path, capsys):
    config = make_toy_config(
        trial_args={"dims": 3, "choices": 1, "fail_when_sum": 0},
        searchSpaceFile="one.json", maxTrialNumber=2)
    (config.parent / "one.json").write_text(json.dumps({f"layer{i}": {"_type": "choice", "_value": [0]}
                                                       for i in range(3)}))
    code = main(["search", str(config), "--no-progress", "--port", "18231", "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1
    assert "error: no candidate succeeded" in err and "loss diverged (NaN) for sum 0" in err


def test_a_builtin_tuner_whose_module_breaks_on_import_is_one_line(make_toy_config, capsys, monkeypatch):
    """Not only a missing package: any import failure would kill NNI's dispatcher the same way."""
    import importlib

    real = importlib.import_module

    def broken(name, *args, **kwargs):
        if name.startswith("nni.algorithms.hpo"):
            raise AttributeError("module 'numpy' has no attribute 'float'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", broken)
    code, err = _validate(make_toy_config(tuner={"name": "TPE"}), capsys)
    assert code == 2 and "Traceback" not in err
    assert "tuner 'TPE' cannot be imported" in err and "AttributeError: module 'numpy' has no attribute 'float'" in err


def test_a_report_into_an_unwritable_folder_is_one_line(tmp_path, capsys):
    from nas_core import SearchDriver, TrialResult
    from tests.toy_plugins import BatchStrategy, toy_space

    driver = SearchDriver(BatchStrategy(space=toy_space(), batch=1, batches=1))
    arch = driver.ask(0)
    driver.tell(0, TrialResult.succeeded({"accuracy": 1.0}, 1.0))
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"driver": driver.state_dict(), "arch": arch}))
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["report", str(state), "--output", str(blocker / "out")]) == 2
    assert f"--output {str(blocker / 'out')!r}: cannot write the report there" in _error(capsys)
