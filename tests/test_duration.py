"""Duration model and longest-first asking in generational strategies."""

from __future__ import annotations

import json
import random

import pytest

from nas_core import WAIT, TrialResult
from nas_core.duration import DurationModel
from nas_core.testing import tiny_space, toy_space
from strategies.evolution import Evolution
from strategies.nsga2 import NSGA2


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


def _tell_first_generation(strategy, size: int) -> None:
    """Ask generation 0 and tell every member a result with its made-up time."""
    for i, arch in enumerate([strategy.ask(i) for i in range(size)]):
        strategy.tell(i, arch, _result(arch, fitness=float(i)))


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


def test_model_json_round_trip_predicts_the_same_and_rejects_unknown_dimensions() -> None:
    space = toy_space()
    rng = random.Random(2)
    model = _observed(space, rng, 10)
    restored = DurationModel(space)
    restored.load_json(json.loads(json.dumps(model.to_json())))
    probe = space.sample(rng)
    assert restored.predict(probe) == pytest.approx(model.predict(probe))
    bad = model.to_json()
    bad["xty"] = bad["xty"][:-1]  # a state written for another space
    with pytest.raises(ValueError, match="features"):
        DurationModel(space).load_json(bad)
    with pytest.raises(ValueError, match="format"):
        DurationModel(space).load_json({**model.to_json(), "format": "ridge-v9"})


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


def test_a_state_of_the_earlier_per_value_model_restores_an_empty_model() -> None:
    space = toy_space()
    model = _observed(space, random.Random(7), 5)
    model.load_json({"total": 10.0, "count": 3, "seen": [], "values": {}})
    assert model.observations == 0 and model.predict(space.sample(random.Random(8))) is None


@pytest.mark.parametrize("make", [
    lambda space: Evolution(space=space, seed=0, population_size=8, generations=3),
    lambda space: NSGA2(space=space, seed=0, population_size=8, generations=3, objective_max="accuracy",
                        objective_min="flops"),
], ids=["evolution", "nsga2"])
def test_later_generations_are_asked_longest_first(make) -> None:
    space = toy_space()
    strategy = make(space)
    first = [strategy.ask(i) for i in range(8)]
    assert strategy.ask(8) is WAIT
    for i, arch in enumerate(first):
        strategy.tell(i, arch, _result(arch, fitness=float(i)))
    second = []
    trial_id = 8
    while len(second) < 8:
        answer = strategy.ask(trial_id)
        assert answer is not WAIT
        second.append(answer)
        trial_id += 1
    predicted = [strategy._durations.predict(a) for a in second]
    assert predicted == sorted(predicted, reverse=True)
    # Only the order changes: the same members as a strategy that learned no durations.
    plain = make(space)
    for i, arch in enumerate([plain.ask(i) for i in range(8)]):
        plain.tell(i, arch, TrialResult.succeeded({"accuracy": 90.0, "flops": 1.0}, float(i)))
    unordered = [plain.ask(8 + i) for i in range(8)]
    assert sorted(map(space.key, second)) == sorted(map(space.key, unordered))


def test_ordered_asking_survives_a_state_round_trip_mid_generation() -> None:
    space = toy_space()
    strategy = Evolution(space=space, seed=3, population_size=6, generations=3)
    _tell_first_generation(strategy, 6)
    asked = [strategy.ask(6), strategy.ask(7)]
    state = json.loads(json.dumps(strategy.state_dict()))
    rest = [strategy.ask(8 + i) for i in range(4)]
    resumed = Evolution(space=space, seed=3, population_size=6, generations=3)
    resumed.load_state_dict(state)
    assert [resumed.ask(8 + i) for i in range(4)] == rest
    predicted = [strategy._durations.predict(a) for a in asked + rest]
    assert predicted == sorted(predicted, reverse=True)


def test_a_state_from_before_ordered_asking_loads_in_member_order() -> None:
    space = toy_space()
    strategy = Evolution(space=space, seed=4, population_size=4, generations=2)
    strategy.ask(0)
    state = json.loads(json.dumps(strategy.state_dict()))
    del state["state"]["order"], state["state"]["durations"]
    resumed = Evolution(space=space, seed=4, population_size=4, generations=2)
    resumed.load_state_dict(state)
    assert [resumed.ask(1 + i) for i in range(3)] == [strategy.ask(1 + i) for i in range(3)]


def test_member_order_asks_as_bred_and_a_bad_order_is_refused_by_name() -> None:
    space = toy_space()
    ordered = Evolution(space=space, seed=5, population_size=6, generations=2)
    as_bred = Evolution(space=space, seed=5, population_size=6, generations=2, ask_order="member")
    for strategy in (ordered, as_bred):
        _tell_first_generation(strategy, 6)
    longest = [ordered.ask(6 + i) for i in range(6)]
    bred = [as_bred.ask(6 + i) for i in range(6)]
    assert bred == as_bred._members
    assert sorted(map(space.key, longest)) == sorted(map(space.key, bred))
    with pytest.raises(ValueError, match="ask_order.*'fastest'"):
        Evolution(space=space, ask_order="fastest")
    with pytest.raises(ValueError, match="ask_order"):
        NSGA2(space=space, ask_order="")


def test_an_architecture_told_again_counts_once_also_after_a_round_trip() -> None:
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
    restored = DurationModel(space)
    restored.load_json(json.loads(json.dumps(model.to_json())))
    restored.observe(wide, {"evaluator_seconds": 9.0})
    assert restored.observations == 2
