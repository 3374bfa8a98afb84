import json
import subprocess
import sys
from pathlib import Path

import pytest

from nas_core.cli import main
from tests.conftest import REPO


def run_cli(*argv):
    return subprocess.run([sys.executable, "-m", "nas_core", *argv], capture_output=True, text=True, cwd=REPO)


def test_help_on_every_command():
    for command in ([], ["search"], ["validate"], ["strategies"], ["spaces"], ["evaluators"], ["space-json"],
                    ["report"], ["register"], ["cost"], ["retrain"], ["paper-report"]):
        out = run_cli(*command, "--help")
        assert out.returncode == 0 and "usage:" in out.stdout


def test_strategies_lists_registered_names(capsys):
    assert main(["strategies", "--json"]) == 0
    assert {"evolution", "random", "regularized_evolution", "nsga2"} <= set(json.loads(capsys.readouterr().out))


def test_validate_accepts_a_good_config(make_toy_config, capsys):
    assert main(["validate", str(make_toy_config())]) == 0
    assert "OK (3 dimensions" in capsys.readouterr().out


BAD_TUNER = {"className": "nas_core.nni_adapter.tuner.StrategyTuner", "codeDirectory": str(REPO)}


@pytest.mark.parametrize("override, message", [
    ({"tuner": {**BAD_TUNER, "classArgs": {"strategy": "no_such_strategy"}}}, "unknown strategy 'no_such_strategy'"),
    ({"tuner": {**BAD_TUNER, "classArgs": {"strategy": "tests.toy_plugins:BatchStrategy",
                                           "strategy_args": {"bacth": 2}}}}, "unknown argument 'bacth'"),
    ({"tuner": {**BAD_TUNER, "classArgs": {"strategy": "tests.toy_plugins:BatchStrategy",
                                           "strategy_args": {"batch": 0}}}}, "batch must be >= 1, got 0"),
    ({"tuner": {**BAD_TUNER, "classArgs": {"seeed": 1}}}, "unknown argument 'seeed'"),
    ({"searchSpace": {"layer0": {"_type": "choice", "_value": []}}}, "dimension 'layer0': needs a non-empty list"),
    ({"trialConcurrency": 0}, "trialConcurrency=0"),
    ({"maxTrialNumber": -3}, "maxTrialNumber=-3"),
    ({"trialCommand": "python3 -m nas_core.trial --evaluator nope_eval"}, "unknown evaluator 'nope_eval'"),
    ({"trialCommand": "python3 -m nas_core.trial --evaluator tests.toy_plugins:ToyEvaluator --args '{\"dims\": 0}'"},
     "dims must be >= 1, got 0"),
    ({"trialCommand": "python3 -m nas_core.trial --evaluator tests.toy_plugins:ToyEvaluator --args '{\"dims\": 4}'"},
     "does not match evaluator"),
    ({"trialCommand": "python3 -m nas_core.trial --evaluator tests.toy_plugins:ToyEvaluator --args missing.yml"},
     "missing.yml: no such file"),
    ({"trialCommand": "python3 -m nas_core.trial"}, "--evaluator"),
])
def test_bad_values_stop_with_one_line_naming_them(make_toy_config, override, message, capsys):
    path = make_toy_config(**override)
    if "searchSpace" in override:
        import yaml
        data = yaml.safe_load(path.read_text())
        data.pop("searchSpaceFile")
        path.write_text(yaml.safe_dump(data))
    assert main(["search", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert message in err
    assert not (path.parent / "experiments").exists()  # stopped before any trial


def test_missing_config_file():
    out = run_cli("search", "/nonexistent/config.yml")
    assert out.returncode == 2 and "'/nonexistent/config.yml' does not exist" in out.stderr


def test_space_json_unknown_space():
    out = run_cli("space-json", "no_such_space")
    assert out.returncode == 2 and "unknown space 'no_such_space'" in out.stderr


def test_report_command_writes_the_files(tmp_path, capsys):
    from nas_core import run_search
    from tests.toy_plugins import BatchStrategy, ToyEvaluator, toy_space

    state = tmp_path / "state.json"
    run_search(BatchStrategy(space=toy_space(), batch=2, batches=2), ToyEvaluator(), budget=10, state_file=state,
               progress=False)
    assert main(["report", str(state), "--output", str(tmp_path / "out")]) == 0
    assert {p.name for p in (tmp_path / "out").iterdir()} >= {"best.json", "trials.csv", "report.md"}
    assert main(["report", "no-such-experiment"]) == 2
    assert "neither a folder nor a known NNI experiment id" in capsys.readouterr().err


def add_greet(sub, name):  # type: ignore[no-untyped-def]
    """A plugin command for the test below: fails with a plugin's own UserError for a bad name."""
    from nas_core.errors import UserError

    class GreetError(UserError):
        pass

    def run(args):  # type: ignore[no-untyped-def]
        if not args.who.isalpha():
            raise GreetError(f"--who {args.who!r}: letters only,\n  please")
        print(f"hello {args.who}")
        return 0

    p = sub.add_parser(name, help="say hello")
    p.add_argument("--who", default="world")
    p.set_defaults(func=run)


def test_plugin_commands_come_from_the_registry_and_their_user_errors_are_one_line(capsys):
    from nas_core.registry import COMMANDS

    COMMANDS.register("greet", "tests.test_cli:add_greet")
    try:
        assert main(["greet", "--who", "ada"]) == 0
        assert capsys.readouterr().out == "hello ada\n"
        assert main(["greet", "--who", "4da"]) == 2
        assert capsys.readouterr().err == "error: --who '4da': letters only, please\n"
    finally:
        COMMANDS.unregister("greet")
    assert {"cost", "retrain", "paper-report"} <= set(COMMANDS.names())


def test_a_plugin_command_that_cannot_load_is_left_out_with_a_warning(capsys):
    from nas_core.registry import COMMANDS

    COMMANDS.register("broken", "no_such_plugin.commands:add")
    try:
        assert main(["strategies", "--json"]) == 0
        assert "warning: plugin command 'broken' left out" in capsys.readouterr().err
    finally:
        COMMANDS.unregister("broken")


def test_nni_tuner_names_come_from_the_strategy_classes():
    from nas_core.nni_names import builtin_tuners
    from nas_core.registry import STRATEGIES

    tuners = builtin_tuners()
    assert {"NasEvolution": "evolution", "NasRandom": "random", "NasRegularizedEvolution": "regularized_evolution",
            "NasNSGA2": "nsga2"}.items() <= tuners.items()
    assert all(STRATEGIES.resolve(strategy).nni_tuner_name == name for name, strategy in tuners.items())


def test_register_and_unregister_tuner_names(tmp_path, monkeypatch):
    import subprocess

    monkeypatch.setenv("NNI_CONFIG_DIR", str(tmp_path))
    assert main(["register", "--quiet"]) == 0
    nnictl = str(Path(sys.executable).with_name("nnictl"))
    listed = subprocess.run([nnictl, "algo", "list"], capture_output=True, text=True).stdout
    assert all(name in listed for name in ("NasEvolution", "NasRandom", "NasRegularizedEvolution", "NasNSGA2"))
    assert main(["register", "--unregister", "--quiet"]) == 0
    listed = subprocess.run([nnictl, "algo", "list"], capture_output=True, text=True).stdout
    assert "NasEvolution" not in listed


def test_search_refuses_an_address_nni_cannot_use(make_toy_config, capsys):
    assert main(["search", str(make_toy_config()), "--host", "192.0.2.7"]) == 2
    assert "--host '192.0.2.7'" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0.9", "0.001", "nan", "fast"])
def test_search_refuses_a_manager_poll_interval_out_of_range(make_toy_config, capsys, value):
    assert main(["search", str(make_toy_config()), "--manager-poll", value]) == 2
    assert f"--manager-poll {value!r}" in capsys.readouterr().err


@pytest.mark.slow
def test_search_runs_to_done(make_toy_config, tmp_path, capsys):
    config = make_toy_config(maxTrialNumber=4)
    assert main(["search", str(config), "--port", "18080", "--no-progress", "--output", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "DONE: 4 succeeded" in out


def test_progress_counts_a_trial_a_resume_submitted_again_as_not_finished():
    from collections import Counter

    from nas_core.nni_adapter.experiment import finished_trials

    counts = Counter({"SUCCEEDED": 3, "FAILED": 1, "ADD_RESUMED": 2, "RUNNING": 1, "EARLY_STOPPED": 1})
    assert finished_trials(counts) == 5


@pytest.mark.parametrize("stop, stream, code", [(KeyboardInterrupt(), "out", 130),
                                                (TimeoutError("experiment x still RUNNING after 5 s"), "err", 1)])
def test_a_stopped_search_says_how_to_continue_it_with_either_command(make_toy_config, monkeypatch, capsys,
                                                                       stop, stream, code):
    from nas_core.cli import main
    from nas_core.nni_adapter import experiment as nni_experiment

    class Stopped:
        id = "exp9"
        stopped = False

        def stop(self):
            self.stopped = True

    exp = Stopped()
    config = make_toy_config()

    def interrupted(*args, **kw):
        raise stop

    monkeypatch.setattr(nni_experiment, "start", lambda *args, **kw: exp)
    monkeypatch.setattr(nni_experiment, "experiment_dir", lambda experiment: "somewhere")
    monkeypatch.setattr(nni_experiment, "wait", interrupted)
    assert main(["search", str(config), "--no-progress"]) == code and exp.stopped
    shown = getattr(capsys.readouterr(), stream)
    assert f"`python -m nas_core search {config} --resume exp9` or `nnictl resume exp9`" in shown


def test_an_arguments_file_that_is_not_utf8_is_one_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"epochs": 2}\xff')
    out = run_cli("space-json", "binary_width", "--args", str(bad))
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert f"{str(bad)!r} is not UTF-8 text (invalid start byte at byte 13)" in out.stderr


@pytest.mark.parametrize("path, message", [
    (".x.y", "'.x.y' is not a dotted path of the form 'package.module:Class'"),
    ("collections:OrderedDict", "space 'collections:OrderedDict' built a OrderedDict, not a SearchSpace"),
])
def test_space_json_of_something_that_is_no_space_is_one_line(path, message):
    out = run_cli("space-json", path)
    assert out.returncode == 2 and message in out.stderr and out.stderr.count("\n") == 1


def test_a_plugin_command_whose_module_raises_or_whose_add_fails_is_left_out(capsys, tmp_path, monkeypatch):
    from nas_core.registry import COMMANDS

    (tmp_path / "crashing_plugin.py").write_text(
        "raise RuntimeError('plugin import went wrong')\n", encoding="utf-8")
    (tmp_path / "bad_add_plugin.py").write_text(
        "def add(sub, name):\n    raise KeyError('no parser today')\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    COMMANDS.register("crashing", "crashing_plugin:add")
    COMMANDS.register("badadd", "bad_add_plugin:add")
    try:
        assert main(["strategies", "--json"]) == 0
        err = capsys.readouterr().err
        assert "plugin command 'crashing' left out: RuntimeError: plugin import went wrong" in err
        assert "plugin command 'badadd' left out: KeyError: 'no parser today'" in err
    finally:
        COMMANDS.unregister("crashing")
        COMMANDS.unregister("badadd")
