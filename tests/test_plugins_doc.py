"""docs/plugins.md is real: its examples pass their conformance suites, its search runs, its NNI config validates.

The ``# tests/test_my_*.py`` blocks of the page are executed here as they are written, so the test
classes a reader copies are the ones that run; every ``# examples/plugins/...`` excerpt must still be
in its file, word for word.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from nas_core.cli import main
from nas_core.space import SearchSpace
from nas_core.testing import EvaluatorConformance, SpaceConformance, StrategyConformance
from tests.conftest import REPO

DOC = REPO / "docs" / "plugins.md"
PLUGINS = REPO / "examples" / "plugins"
SUITES = (EvaluatorConformance, SpaceConformance, StrategyConformance)


def blocks(language: str) -> list[tuple[str, str]]:
    """(first-line comment, body) of every fenced block of ``language`` on the page."""
    found = re.findall(rf"```{language}\n# (\S+)\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    return [(label, body) for label, body in found]


@pytest.fixture(scope="module", autouse=True)
def plugins_on_path():
    """The examples folder on sys.path, as NNI puts a tuner's codeDirectory (and the suites' fresh processes inherit)."""
    sys.path.insert(0, str(PLUGINS))
    yield
    sys.path.remove(str(PLUGINS))
    for name in ("ladder_space", "proxy_evaluator", "neighbour_search"):
        sys.modules.pop(name, None)


def _doc_test_classes() -> dict[str, type]:
    """The Test classes the page's ``tests/test_my_*.py`` blocks define, each a subclass of a suite."""
    classes: dict[str, type] = {}
    for label, body in blocks("python"):
        if not label.startswith("tests/"):
            continue
        namespace: dict[str, object] = {"__name__": __name__}
        exec(compile(body, f"docs/plugins.md:{label}", "exec"), namespace)  # noqa: S102 - our own documentation
        for name, value in namespace.items():
            if name.startswith("Test") and isinstance(value, type) and issubclass(value, SUITES):
                classes[name] = value
    return classes


DOC_TESTS = _doc_test_classes()
globals().update(DOC_TESTS)


def test_the_page_has_a_suite_for_each_kind_of_plugin():
    covered = {suite for cls in DOC_TESTS.values() for suite in SUITES if issubclass(cls, suite)}
    assert covered == set(SUITES), f"docs/plugins.md tests only {sorted(s.__name__ for s in covered)}"


@pytest.mark.parametrize("label, body", [b for b in blocks("python") if b[0].startswith("examples/")],
                         ids=lambda value: value if isinstance(value, str) and "\n" not in value else None)
def test_excerpts_are_still_in_their_files(label, body):
    text = (REPO / label).read_text(encoding="utf-8")
    assert body in text, f"docs/plugins.md quotes {label}, which no longer contains:\n{body}"


def test_the_in_process_search_finds_the_best_of_the_space():
    """The page's run_search example, run as printed, finds the exhaustive optimum and prints what the page says."""
    (script,) = [body for label, body in blocks("python") if label == "search.py"]
    done = subprocess.run([sys.executable, "-c", script], cwd=PLUGINS, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    from proxy_evaluator import ProxyEvaluator

    evaluator = ProxyEvaluator(layers=4, seed=0)
    space = evaluator.search_space()
    fitness = {space.key(a): evaluator.objective.fitness(evaluator.evaluate(a))
               for a in (space.decode(list(ix)) for ix in itertools.product(range(4), repeat=4))}
    optimum = max(fitness, key=fitness.get)
    printed = done.stdout.strip()
    arch_text, _, value = printed.rpartition(" ")
    assert space.key(json.loads(arch_text.replace("'", '"'))) == optimum, f"{printed} is not the optimum {optimum}"
    assert float(value) == round(fitness[optimum], 2)
    (shown,) = re.findall(r"```text\n(.*?)\n```", DOC.read_text(encoding="utf-8"), re.S)
    assert shown == printed, f"docs/plugins.md shows {shown!r}; the example prints {printed!r}"


@pytest.mark.slow
def test_the_nni_config_uses_the_three_plugins_by_dotted_path_and_validates(capsys):
    config = yaml.safe_load((PLUGINS / "config.yml").read_text())
    (shown,) = [yaml.safe_load(body) for body in re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)]
    for key, value in shown.items():
        if key == "tuner":
            assert value["classArgs"].items() <= config["tuner"]["classArgs"].items()
            assert value["className"] == config["tuner"]["className"]
        else:
            assert config[key] == value, f"docs/plugins.md shows {key}: {value!r}, config.yml has {config[key]!r}"
    assert main(["validate", str(PLUGINS / "config.yml")]) == 0
    assert "strategy neighbour_search:NeighbourSearch, evaluator proxy_evaluator:ProxyEvaluator" in capsys.readouterr().out
    from ladder_space import LadderSpace

    checked_in = json.loads((PLUGINS / "search_space.json").read_text())
    space = LadderSpace(**config["tuner"]["classArgs"]["space_args"])
    assert SearchSpace.from_nni(checked_in) == space, "regenerate search_space.json with nas_core space-json"


@pytest.mark.slow
def test_the_nni_config_runs_under_nni(tmp_path):
    """The example's config, with a smaller budget, runs to DONE under NNI: every plugin imported by dotted path."""
    from nas_core.results import load_results
    from tests.test_nni_e2e import run_experiment

    folder = tmp_path / "plugins"
    shutil.copytree(PLUGINS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    config = yaml.safe_load((folder / "config.yml").read_text())
    config.update(maxTrialNumber=6, experimentWorkingDirectory=str(tmp_path / "experiments"))
    (folder / "config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    outcome, jobs = run_experiment(folder / "config.yml")
    assert outcome.status == "DONE", outcome.errors
    assert len(jobs) == 6 and all(job["status"] == "SUCCEEDED" for job in jobs)
    records = load_results(outcome.experiment_dir).records
    assert len(records) == 6 and all(r.result.ok and {"accuracy", "params"} <= set(r.result.metrics) for r in records)
