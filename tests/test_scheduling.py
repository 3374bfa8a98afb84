"""Longest-first scheduling: the duration model, and the driver's batch order on generational strategies."""

from __future__ import annotations

import json
import random

import pytest

from nas_core import WAIT, TrialResult, run_search
from nas_core.driver import SearchDriver
from nas_core.scheduling import DurationModel, LongestFirst, OrdersBatches
from nas_core.strategy import StrategyError
from nas_core.testing import analytic_fitness, tiny_space, toy_space
from strategies.evolution import Evolution
from strategies.nsga2 import NSGA2
from strategies.random_search import RandomSearch


def _seconds(arch: dict) -> float:
    """A made-up training time: additive in the layers' ratios, as wide layers cost more."""
    return 1.0 + sum(float(v) for v in arch.values())


def _result(arch: dict, fitness: float = 1.0) -> TrialResult:
    return TrialResult.succeeded({"accuracy": 90.0, "flops": 1.0, "evaluator_seconds": _seconds(arch)}, fitness)


def _observed(space, rng: random.Random, n: int) -> DurationModel:
    """A model that saw ``n`` random architectures with their made-up times."""
    model = DurationModel(space)
    for _ in range(n):
        arch = space.sample(rng)
        model.observe(arch, {"evaluator_seconds": _seconds(arch)})
    return model


def _ask_generation(driver: SearchDriver, first_id: int, size: int) -> list[dict]:
    """Ask ``size`` new candidates (the driver answers copies from its store on its own)."""
    asked = []
    for trial_id in range(first_id, first_id + size):
        answer = driver.ask(trial_id)
        assert answer is not WAIT
        asked.append(answer)
    return asked


def _tell_all(driver: SearchDriver, first_id: int, archs: list[dict]) -> None:
    for trial_id, arch in enumerate(archs, start=first_id):
        driver.tell(trial_id, _result(arch, fitness=float(trial_id)))


# --------------------------------------------------------------------------- the model
def test_model_predicts_nothing_before_a_duration_is_seen() -> None:
    space = toy_space()
    model = DurationModel(space)
    arch = space.sample(random.Random(0))
    assert model.predict(arch) is None
    model.observe(arch, {"accuracy": 90.0})  # no duration metric
    model.observe(arch, {"evaluator_seconds": float("nan")})
    model.observe(arch, {"evaluator_seconds": -1.0})
    assert model.observations == 0 and model.predict(arch) is None
    members = [space.sample(random.Random(i)) for i in range(5)]
    assert model.longest_first(members) == [0, 1, 2, 3, 4]


def test_model_ranks_unseen_architectures_by_their_additive_cost() -> None:
    space = toy_space()
    rng = random.Random(1)
    model = _observed(space, rng, 40)
    narrow = {name: 0.25 for name in space.names}
    wide = {name: 4 for name in space.names}
    middle = {name: 1 for name in space.names}
    assert model.predict(wide) > model.predict(middle) > model.predict(narrow)
    assert model.longest_first([narrow, wide, middle]) == [1, 2, 0]
    fresh = [space.sample(rng) for _ in range(30)]
    order = model.longest_first(fresh)
    true_order = sorted(range(30), key=lambda i: -_seconds(fresh[i]))
    # The predicted longest third and the true longest third mostly coincide.
    assert len(set(order[:10]) & set(true_order[:10])) >= 7


def test_model_recovers_an_exactly_linear_duration() -> None:
    """With many observations the ridge penalty fades and an additive time is predicted closely."""
    space = toy_space()
    model = _observed(space, random.Random(9), 400)
    probe = space.sample(random.Random(10))
    assert model.predict(probe) == pytest.approx(_seconds(probe), rel=0.02)


def test_a_model_fed_all_at_once_predicts_exactly_as_one_that_was_asked_along_the_way() -> None:
    """Refits are spaced out, but by the number of observations only: a rebuilt model matches."""
    space = toy_space()
    rng = random.Random(11)
    archs = [space.sample(rng) for _ in range(120)]
    probes = [space.sample(rng) for _ in range(5)]
    along, at_once = DurationModel(space), DurationModel(space)
    for arch in archs:
        along.observe(arch, {"evaluator_seconds": _seconds(arch)})
        along.predict(probes[0])  # a batch ordered after every result
    for arch in archs:
        at_once.observe(arch, {"evaluator_seconds": _seconds(arch)})
    assert [along.predict(p) for p in probes] == [at_once.predict(p) for p in probes]


def test_a_numeric_dimension_generalises_to_values_not_yet_seen() -> None:
    """Eight results that never used ratios 2 or 3 still rank those between 1 and 4."""
    space = toy_space()
    model = DurationModel(space)
    rng = random.Random(6)
    for _ in range(8):
        arch = {name: rng.choice((0.25, 0.5, 1, 4)) for name in space.names}
        model.observe(arch, {"evaluator_seconds": _seconds(arch)})
    by_ratio = [model.predict({name: ratio for name in space.names}) for ratio in (1, 2, 3, 4)]
    assert by_ratio == sorted(by_ratio)


def test_categorical_and_boolean_dimensions_get_one_effect_per_choice() -> None:
    space = tiny_space()  # op: conv/pool, width: 1/2/3, skip: True/False
    cost = {"conv": 3.0, "pool": 1.0}
    model = DurationModel(space)
    for op in ("conv", "pool"):
        for width in (1, 3):
            for skip in (True, False):
                model.observe({"op": op, "width": width, "skip": skip},
                              {"evaluator_seconds": cost[op] + width + (0.5 if skip else 0.0)})
    conv, pool = ({"op": op, "width": 2, "skip": False} for op in ("conv", "pool"))
    assert model.predict(conv) > model.predict(pool)
    assert model.predict({**conv, "skip": True}) > model.predict(conv)


def test_an_architecture_told_again_counts_once() -> None:
    space = toy_space()
    model = DurationModel(space)
    wide = {name: 4 for name in space.names}
    narrow = {name: 0.25 for name in space.names}
    model.observe(narrow, {"evaluator_seconds": 1.0})
    model.observe(wide, {"evaluator_seconds": 9.0})
    once = model.predict(wide)
    for _ in range(5):  # an elite re-proposed and answered from the store each generation
        model.observe(wide, {"evaluator_seconds": 9.0})
    assert model.observations == 2 and model.predict(wide) == once


# ------------------------------------------------------------------ the driver's batch order
MAKERS = {
    "evolution": lambda space, **kw: Evolution(space=space, seed=0, population_size=8, generations=3, **kw),
    "nsga2": lambda space, **kw: NSGA2(space=space, seed=0, population_size=8, generations=3,
                                       objective_max="accuracy", objective_min="flops", **kw),
}


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_the_driver_asks_later_generations_longest_first(name: str) -> None:
    space = toy_space()
    driver = SearchDriver(MAKERS[name](space))
    assert isinstance(driver.scheduler, LongestFirst) and driver.strategy.batch_order is driver.scheduler
    first = _ask_generation(driver, 0, 8)
    assert driver.ask(8) is WAIT
    _tell_all(driver, 0, first)
    second = [driver.strategy.ask(100 + i) for i in range(8)]  # the strategy's own asks: copies included
    predicted = [driver.scheduler.model.predict(a) for a in second]
    assert predicted == sorted(predicted, reverse=True)
    # Only the order changes: the same members as with the strategy's own order.
    plain = SearchDriver(MAKERS[name](space), batch_order="none")
    assert plain.scheduler is None and plain.strategy.batch_order is None
    _tell_all(plain, 0, _ask_generation(plain, 0, 8))
    as_bred = [plain.strategy.ask(100 + i) for i in range(8)]
    assert as_bred == plain.strategy._members
    assert sorted(map(space.key, second)) == sorted(map(space.key, as_bred))


def test_a_resumed_search_orders_exactly_as_an_uninterrupted_one(tmp_path) -> None:
    """The model is not in the strategy's state: a resumed driver rebuilds it from the records."""
    space = toy_space()

    def score(arch: dict) -> TrialResult:
        return _result(arch, fitness=analytic_fitness(space, arch))

    def make() -> Evolution:
        return Evolution(space=space, seed=1, population_size=8, generations=6)

    whole = run_search(make(), score, budget=30, concurrency=3, progress=False, batch_order="longest_first")
    state_file = tmp_path / "search.json"
    run_search(make(), score, budget=30, concurrency=3, progress=False, state_file=state_file, stop_after=13,
               batch_order="longest_first")
    saved = json.loads(state_file.read_text())["driver"]
    assert "durations" not in saved["strategy"]["state"] and saved["strategy"]["state"]["generation"] >= 1
    resumed = run_search(make(), score, budget=30, concurrency=3, progress=False, state_file=state_file,
                         batch_order="longest_first")
    assert [r.key for r in resumed.records] == [r.key for r in whole.records]
    assert resumed.scheduler.model.observations == whole.scheduler.model.observations > 8


def test_a_state_with_the_model_inside_the_strategy_still_loads() -> None:
    space = toy_space()
    strategy = MAKERS["evolution"](space)
    strategy.ask(0)
    state = json.loads(json.dumps(strategy.state_dict()))
    state["state"]["durations"] = {"format": "ridge-v1", "count": 1, "seen": [], "xtx": [], "xty": []}
    resumed = MAKERS["evolution"](space)
    resumed.load_state_dict(state)
    assert [resumed.ask(1 + i) for i in range(7)] == [strategy.ask(1 + i) for i in range(7)]


def test_a_state_from_before_ordered_asking_loads_in_member_order() -> None:
    space = toy_space()
    strategy = Evolution(space=space, seed=4, population_size=4, generations=2)
    strategy.ask(0)
    state = json.loads(json.dumps(strategy.state_dict()))
    del state["state"]["order"]
    resumed = Evolution(space=space, seed=4, population_size=4, generations=2)
    resumed.load_state_dict(state)
    assert [resumed.ask(1 + i) for i in range(3)] == [strategy.ask(1 + i) for i in range(3)]


def test_only_strategies_that_opt_in_are_ordered_and_a_bad_order_is_refused() -> None:
    space = toy_space()
    assert isinstance(MAKERS["nsga2"](space), OrdersBatches)
    random_search = RandomSearch(space=space)
    assert not isinstance(random_search, OrdersBatches)
    assert SearchDriver(random_search).scheduler is None
    with pytest.raises(ValueError, match="batch_order.*'fastest'"):
        SearchDriver(MAKERS["evolution"](space), batch_order="fastest")
    strategy = MAKERS["evolution"](space)
    strategy.batch_order = lambda members: [0] * len(members)
    with pytest.raises(StrategyError, match="permutation"):
        strategy.ask(0)


def test_upcoming_lists_the_members_not_yet_handed_out() -> None:
    space = toy_space()
    strategy = MAKERS["evolution"](space)
    assert strategy.upcoming == []
    strategy.ask(0)
    upcoming = strategy.upcoming
    assert len(upcoming) == 7 and [strategy.ask(1 + i) for i in range(7)] == upcoming
    assert strategy.upcoming == []


def test_the_tuner_refuses_a_bad_batch_order_by_name() -> None:
    from nas_core.nni_adapter.tuner import StrategyTuner, TunerConfigError

    with pytest.raises(TunerConfigError, match="batch_order='fastest'"):
        StrategyTuner(batch_order="fastest")


def test_an_in_process_search_is_repeatable_whatever_its_candidates_took() -> None:
    """run_search scores one candidate at a time, so by default it keeps the strategy's order: two
    runs of one seed train the same candidates even when the measured times differ run to run."""
    space = toy_space()

    def noisy_score(rng: random.Random):
        def score(arch: dict) -> TrialResult:
            metrics = {"accuracy": 90.0, "evaluator_seconds": rng.uniform(0.1, 10.0)}
            return TrialResult.succeeded(metrics, analytic_fitness(space, arch))
        return score

    def run(timing_seed: int, **kwargs) -> list[str]:
        strategy = Evolution(space=space, seed=3, population_size=8, generations=6)
        driver = run_search(strategy, noisy_score(random.Random(timing_seed)), budget=20, progress=False, **kwargs)
        return [r.key for r in driver.records]

    assert run(1) == run(2)
    # What the default avoids: ordering by measured times changes which candidates the budget reaches.
    assert any(run(1, batch_order="longest_first") != run(s, batch_order="longest_first") for s in range(2, 6))


def test_a_failure_upgraded_to_a_success_orders_as_a_resumed_search_would() -> None:
    """A result that upgrades an earlier failure replaces its record in place; the live model must
    learn from it as the model a resumed search rebuilds from all records does."""
    space = tiny_space()
    driver = SearchDriver(Evolution(space=space, seed=0, population_size=4, generations=3), batch_order="longest_first")
    archs = [driver.ask(t) for t in range(4)]
    driver.fail(0, "lost")
    for t in (1, 2, 3):
        driver.tell(t, TrialResult.succeeded({"evaluator_seconds": 10.0 * t}, 1.0))
    driver.scheduler.catch_up()
    assert driver.complete(archs[0], TrialResult.succeeded({"evaluator_seconds": 500.0}, 1.0)) == "upgraded"
    resumed = SearchDriver(Evolution(space=space, seed=0, population_size=4, generations=3), batch_order="longest_first")
    resumed.load_state_dict(json.loads(json.dumps(driver.state_dict())))
    driver.scheduler.catch_up()
    resumed.scheduler.catch_up()
    assert driver.scheduler.model.predict(archs[0]) == resumed.scheduler.model.predict(archs[0])
    assert driver.scheduler.model.observations == resumed.scheduler.model.observations == 4
