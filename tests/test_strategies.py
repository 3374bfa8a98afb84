"""Strategies: the conformance suite over every registered strategy and a dotted-path plugin,
plus unit tests of each algorithm's own rules (barrier, roulette, elitism, aging, Pareto sort)."""

from __future__ import annotations

import json
import math
import random
import zlib

import pytest

from nas_core import FINISHED, WAIT, SearchSpace, Strategy, StrategyError, TrialResult, run_search
from nas_core.registry import STRATEGIES
from nas_core.space import Dimension
from nas_core.evaluator import Metric
from nas_core.testing import StrategyConformance, analytic_fitness, analytic_score, tiny_space, toy_space
from strategies.evolution import Evolution, roulette_index
from strategies.generational import GenerationalStrategy, usable_fitness
from strategies.nsga2 import NSGA2, crowding_distance, non_dominated_sort, rank_and_crowding, select_survivors
from strategies.random_search import RandomSearch, architecture_at, architecture_index
from strategies.regularized_evolution import RegularizedEvolution
from tests.plugin_example_strategy import HillClimber

BUILTIN = {"evolution", "random", "regularized_evolution", "nsga2"}
PLUGIN_PATH = "tests.plugin_example_strategy:HillClimber"


# ----------------------------------------------------------------- conformance suite
def _conformance_class(name: str) -> type[StrategyConformance]:
    """One ``Test...`` subclass of the suite per registered strategy, with its default arguments."""
    return type(f"TestConformance_{name}", (StrategyConformance,), {"strategy_path": name, "__module__": __name__})


for _name in STRATEGIES.names():
    globals()[f"TestConformance_{_name}"] = _conformance_class(_name)


class TestConformanceEvolutionSmallPopulation(StrategyConformance):
    """Many generation barriers inside the suite's short runs."""

    strategy_path = "evolution"
    strategy_args = {"population_size": 8, "generations": 100}


class TestConformanceNSGA2SmallPopulation(StrategyConformance):
    """Failures, early stops and resumes across many generation barriers, children pre-screened."""

    strategy_path = "nsga2"
    strategy_args = {"population_size": 8, "generations": 100, "prescreen": 2}


class MutatingGenerations(GenerationalStrategy):
    """A generational strategy of a plugin author's own: each generation mutates the best so far."""

    name = "mutating_generations"

    def __init__(self, *, space: SearchSpace, seed: int = 0, population_size: int = 6, generations: int = 200) -> None:
        super().__init__(space=space, seed=seed, population_size=population_size, generations=generations)
        self._best: tuple[float, dict] | None = None

    def _first_generation(self) -> list[dict]:
        return [self.space.sample(self.rng) for _ in range(self.population_size)]

    def _breed(self, evaluated: list) -> list[dict]:
        for arch, result in evaluated:
            fitness = usable_fitness(result)
            if fitness is not None and (self._best is None or fitness > self._best[0]):
                self._best = (fitness, dict(arch))
        if self._best is None:
            return self._first_generation()
        return [self.space.mutate(self._best[1], self.rng) for _ in range(self.population_size)]

    def _extra_state(self) -> dict:
        return {"best": None if self._best is None else list(self._best)}

    def _load_extra_state(self, state) -> None:
        best = state["best"]
        self._best = None if best is None else (float(best[0]), self.space.validate(best[1]))


class TestConformanceGenerationalPlugin(StrategyConformance):
    """The shared generational machinery (strategies/generational.py) serves a strategy written outside."""

    strategy_path = "tests.test_strategies:MutatingGenerations"


class TestConformanceHillClimberPlugin(StrategyConformance):
    """A strategy that lives in a test module and is reached only through its dotted path."""

    strategy_path = PLUGIN_PATH


def test_every_builtin_strategy_is_registered_under_its_own_name() -> None:
    assert BUILTIN <= set(STRATEGIES.names())
    for name in BUILTIN:
        cls = STRATEGIES.resolve(name)
        assert issubclass(cls, Strategy) and cls.name == name


def test_plugin_resolves_by_dotted_path_without_registration() -> None:
    assert HillClimber.name not in STRATEGIES.names()
    assert STRATEGIES.resolve(PLUGIN_PATH) is HillClimber


@pytest.mark.parametrize("cls", [RandomSearch, Evolution, RegularizedEvolution, NSGA2])
def test_constructors_are_keyword_only(cls: type[Strategy]) -> None:
    with pytest.raises(TypeError):
        cls(toy_space())  # type: ignore[misc]


# ------------------------------------------------------------------------ helpers
def _ask_all(strategy: Strategy, first_id: int, n: int) -> list:
    return [strategy.ask(first_id + i) for i in range(n)]


def _run_direct(strategy: Strategy, score, limit: int = 10_000) -> list:
    """Ask and tell one candidate at a time (no driver); every answer until FINISHED."""
    answers = []
    for trial_id in range(limit):
        answer = strategy.ask(trial_id)
        answers.append(answer)
        if answer is FINISHED:
            return answers
        assert answer is not WAIT
        strategy.tell(trial_id, answer, score(answer))
    raise AssertionError("never finished")


def _keys(space: SearchSpace, archs: list) -> list[str]:
    return [space.key(a) for a in archs]


# ---------------------------------------------------------------------- evolution
def test_evolution_barrier_waits_until_the_whole_generation_is_told() -> None:
    space = toy_space()
    score = analytic_score(space)
    strategy = Evolution(space=space, seed=0, population_size=4, generations=3)
    members = _ask_all(strategy, 0, 4)
    assert all(isinstance(m, dict) for m in members)
    assert strategy.ask(4) is WAIT
    for trial_id in (2, 0, 3):
        strategy.tell(trial_id, members[trial_id], score(members[trial_id]))
        assert strategy.ask(4) is WAIT
    strategy.tell(1, members[1], score(members[1]))
    assert isinstance(strategy.ask(4), dict) and strategy.generation == 1


def test_evolution_finishes_after_its_generations() -> None:
    space = toy_space()
    strategy = Evolution(space=space, seed=1, population_size=4, generations=3)
    answers = _run_direct(strategy, analytic_score(space))
    assert len(answers) == 4 * 3 + 1 and answers[-1] is FINISHED
    assert strategy.ask(99) is FINISHED and strategy.generation == 3


def test_evolution_first_generation_starts_with_the_initial_architectures() -> None:
    space = toy_space()
    uniform = [{name: ratio for name in space.names} for ratio in (4, 1)]
    strategy = Evolution(space=space, seed=0, population_size=5, initial_architectures=uniform)
    assert _ask_all(strategy, 0, 2) == uniform


def test_evolution_initial_architectures_are_validated() -> None:
    space = toy_space()
    good = {name: 1 for name in space.names}
    with pytest.raises(ValueError, match=r"initial_architectures\[1\].*layer3"):
        Evolution(space=space, initial_architectures=[good, dict(good, layer3=5)])
    with pytest.raises(ValueError, match="initial_architectures has 3 entries"):
        Evolution(space=space, population_size=2, elitism=1, initial_architectures=[good] * 3)


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("population_size", 0), ("population_size", 2.5), ("population_size", True), ("generations", 0),
        ("copy_prob", -0.1), ("crossover_prob", 1.5), ("mutation_prob", "0.1"), ("mutation_rate", 2.0),
        ("elitism", -1), ("elitism", 32), ("initial_architectures", "uniform"),
    ],
)
def test_evolution_rejects_bad_arguments_by_name(argument: str, value: object) -> None:
    with pytest.raises(ValueError) as info:
        Evolution(space=toy_space(), **{argument: value})
    assert argument in str(info.value) and repr(value) in str(info.value)


def test_evolution_operator_probabilities_must_sum_to_one() -> None:
    with pytest.raises(ValueError) as info:
        Evolution(space=toy_space(), copy_prob=0.2, crossover_prob=0.7, mutation_prob=0.2)
    assert all(name in str(info.value) for name in ("copy_prob", "crossover_prob", "mutation_prob"))
    Evolution(space=toy_space(), copy_prob=0.0, crossover_prob=0.0, mutation_prob=1.0)  # any split summing to 1


def test_roulette_never_picks_failed_or_zero_weight_while_others_are_positive() -> None:
    rng = random.Random(0)
    fitnesses = [None, 0.0, 2.0, None, 1.0, -3.0, math.nan]
    counts = [0] * len(fitnesses)
    for _ in range(3000):
        counts[roulette_index(fitnesses, rng)] += 1
    assert counts[0] == counts[1] == counts[3] == counts[5] == counts[6] == 0
    assert 1.7 < counts[2] / counts[4] < 2.3  # proportional to fitness 2 : 1


def test_roulette_is_uniform_among_successes_when_all_weigh_zero() -> None:
    rng = random.Random(1)
    picks = [roulette_index([0.0, None, 0.0], rng) for _ in range(400)]
    assert set(picks) == {0, 2} and 150 < picks.count(0) < 250
    with pytest.raises(ValueError):
        roulette_index([None, None], rng)


def _finish_generation(strategy: Evolution, first_id: int, results: list[TrialResult]) -> list[dict]:
    members = _ask_all(strategy, first_id, len(results))
    for i, (arch, result) in enumerate(zip(members, results)):
        strategy.tell(first_id + i, arch, result)
    return members


def test_evolution_selection_skips_failed_and_zero_fitness_parents() -> None:
    space = toy_space()
    strategy = Evolution(space=space, seed=2, population_size=4, copy_prob=1.0, crossover_prob=0.0,
                         mutation_prob=0.0, elitism=0)
    ok = TrialResult.succeeded
    gen0 = _finish_generation(strategy, 0, [ok({}, 0.0), TrialResult.failed("x"), ok({}, 0.5), ok({}, 0.0)])
    assert len(set(_keys(space, gen0))) == 4
    gen1 = _ask_all(strategy, 4, 4)
    assert gen1 == [gen0[2]] * 4


def test_evolution_with_no_successful_parent_breeds_random_children() -> None:
    space = toy_space()
    strategy = Evolution(space=space, seed=3, population_size=4)
    gen0 = _finish_generation(strategy, 0, [TrialResult.failed("x")] * 4)
    gen1 = _ask_all(strategy, 4, 4)
    assert all(isinstance(a, dict) for a in gen1) and not set(_keys(space, gen1)) & set(_keys(space, gen0))


def test_evolution_elitism_carries_the_best_success_forward() -> None:
    space = toy_space()
    score = analytic_score(space)
    strategy = Evolution(space=space, seed=4, population_size=6, copy_prob=0.0, crossover_prob=0.0,
                         mutation_prob=1.0, elitism=1)
    members = _ask_all(strategy, 0, 6)
    results = [score(a) for a in members]
    best = max(range(6), key=lambda i: results[i].fitness)
    top = max(range(6), key=lambda i: results[i].fitness if i != best else -1.0)
    results[best] = TrialResult.failed("the fittest-looking one crashed")  # never an elite
    for i, (arch, result) in enumerate(zip(members, results)):
        strategy.tell(i, arch, result)
    next_generation = _ask_all(strategy, 6, 6)
    assert next_generation[0] == members[top]
    best_per_generation = []
    trial_id = 12
    generation = next_generation
    for _ in range(5):
        fitnesses = [analytic_fitness(space, a) for a in generation]
        best_per_generation.append(max(fitnesses))
        for i, arch in enumerate(generation):
            strategy.tell(trial_id - len(generation) + i, arch, score(arch))
        generation = _ask_all(strategy, trial_id, 6)
        trial_id += 6
    assert best_per_generation == sorted(best_per_generation)


def test_evolution_replayed_results_become_parents_of_the_next_generation() -> None:
    space = toy_space()
    strategy = Evolution(space=space, seed=5, population_size=2, copy_prob=1.0, crossover_prob=0.0,
                         mutation_prob=0.0, elitism=0)
    members = _ask_all(strategy, 0, 2)
    replayed = {name: 2 for name in space.names}
    strategy.tell(99, replayed, TrialResult.succeeded({}, 0.3))  # never asked
    assert strategy.ask(2) is WAIT
    for i, arch in enumerate(members):
        strategy.tell(i, arch, TrialResult.failed("x"))
    assert _ask_all(strategy, 2, 2) == [replayed, replayed]


# -------------------------------------------------------------------- random search
def test_random_search_exhausts_a_small_space_exactly_without_repeats() -> None:
    space = tiny_space()
    strategy = RandomSearch(space=space, seed=0)
    asked = _ask_all(strategy, 0, space.size)  # no tells: in flight counts as seen
    assert len(set(_keys(space, asked))) == space.size
    assert strategy.ask(space.size) is FINISHED


def test_random_search_told_architectures_are_not_proposed_again() -> None:
    space = SearchSpace([Dimension(f"d{i}", (0, 1, 2)) for i in range(3)])  # 27, crosses the enumeration switch
    strategy = RandomSearch(space=space, seed=1)
    for index in range(0, 27, 2):
        strategy.tell(1000 + index, architecture_at(space, index), TrialResult.failed("replayed"))
    asked = _ask_all(strategy, 0, 13)
    assert sorted(architecture_index(space, a) for a in asked) == list(range(1, 27, 2))
    assert strategy.ask(13) is FINISHED


def test_random_search_never_repeats_in_a_large_space() -> None:
    space = toy_space()
    asked = _ask_all(RandomSearch(space=space, seed=2), 0, 500)
    assert len(set(_keys(space, asked))) == 500


def test_architecture_index_round_trips() -> None:
    space = tiny_space()
    assert [architecture_index(space, architecture_at(space, i)) for i in range(space.size)] == list(range(12))
    with pytest.raises(ValueError):
        architecture_at(space, space.size)


# ------------------------------------------------------------ regularized evolution
def test_regularized_evolution_oldest_dies_and_failed_children_are_not_added() -> None:
    space = toy_space()
    strategy = RegularizedEvolution(space=space, seed=0, population_size=3, sample_size=2)
    initial = _ask_all(strategy, 0, 3)
    for i, arch in enumerate(initial):
        strategy.tell(i, arch, TrialResult.succeeded({}, 0.9 - 0.1 * i))  # the oldest is the fittest
    child = strategy.ask(3)
    strategy.tell(3, child, TrialResult.succeeded({}, 0.1))
    assert [arch for arch, _ in strategy.population] == [initial[1], initial[2], child]
    failed_child = strategy.ask(4)
    strategy.tell(4, failed_child, TrialResult.failed("x"))
    assert [arch for arch, _ in strategy.population] == [initial[1], initial[2], child]


def test_regularized_evolution_never_waits_with_everything_outstanding() -> None:
    space = toy_space()
    answers = _ask_all(RegularizedEvolution(space=space, seed=1, population_size=4, sample_size=2), 0, 12)
    assert all(isinstance(a, dict) for a in answers)


def test_regularized_evolution_mutates_the_winner_of_the_sample() -> None:
    space = toy_space()
    strategy = RegularizedEvolution(space=space, seed=2, population_size=2, sample_size=2)
    weak, strong = _ask_all(strategy, 0, 2)
    strategy.tell(0, weak, TrialResult.succeeded({}, 0.1))
    strategy.tell(1, strong, TrialResult.succeeded({}, 0.9))

    def distance(a: dict, b: dict) -> int:
        return sum(a[k] != b[k] for k in a)

    children = _ask_all(strategy, 2, 200)
    near_strong = sum(distance(c, strong) < distance(c, weak) for c in children)
    assert 130 < near_strong < 170  # the sample of 2 (with replacement) contains the strong one 3 times in 4


def test_regularized_evolution_max_candidates_and_argument_checks() -> None:
    space = toy_space()
    strategy = RegularizedEvolution(space=space, seed=3, max_candidates=5)
    assert all(isinstance(a, dict) for a in _ask_all(strategy, 0, 5))
    assert strategy.ask(5) is FINISHED
    with pytest.raises(ValueError, match="sample_size.*9"):
        RegularizedEvolution(space=space, population_size=8, sample_size=9)
    with pytest.raises(ValueError, match="max_candidates.*0"):
        RegularizedEvolution(space=space, max_candidates=0)


# ------------------------------------------------------------------------- NSGA-II
# Hand-made points, both objectives minimised: A, B, C are non-dominated; D is dominated by A,
# E by B; F by B and E (rank 2); None (failed) ranks last.
POINTS = [(1.0, 5.0), (2.0, 3.0), (3.0, 1.0), (2.0, 5.0), (3.0, 4.0), (4.0, 4.5), None]


def test_non_dominated_sort_on_hand_made_points() -> None:
    assert non_dominated_sort(POINTS) == [0, 0, 0, 1, 1, 2, 3]
    assert non_dominated_sort([None, None]) == [0, 0]


def test_crowding_distance_on_hand_made_points() -> None:
    assert crowding_distance(POINTS[:3]) == [math.inf, 2.0, math.inf]
    distance = crowding_distance([(1.0, 4.0), (2.0, 3.0), (3.0, 2.0), (5.0, 1.0)])
    assert distance[0] == distance[3] == math.inf
    assert distance[1] == pytest.approx(2 / 4 + 2 / 3) and distance[2] == pytest.approx(3 / 4 + 2 / 3)
    ranks, crowding = rank_and_crowding(POINTS)
    assert ranks[-1] == 3 and crowding[-1] == 0.0


def test_select_survivors_fills_by_front_then_crowding() -> None:
    assert select_survivors(POINTS, 3) == [0, 1, 2]
    # front 1 = D, E: two points, both extremes (inf), the tie is kept in index order
    assert select_survivors(POINTS, 4) == [0, 1, 2, 3]
    assert select_survivors(POINTS, 7) == list(range(7))


ACC_FLOPS = (Metric("accuracy", "maximize"), Metric("flops", "minimize"))


def _declared_nsga2(**kwargs: object) -> NSGA2:
    strategy = NSGA2(space=kwargs.pop("space", toy_space()), **kwargs)  # type: ignore[arg-type]
    strategy.declare_metrics(ACC_FLOPS, ("accuracy", "flops"))
    return strategy


def test_nsga2_points_rank_failures_and_missing_metrics_last() -> None:
    strategy = _declared_nsga2()
    assert strategy.point(TrialResult.succeeded({"accuracy": 0.9, "flops": 2.0}, 0.0)) == (-0.9, 2.0)
    assert strategy.point(TrialResult.succeeded({"accuracy": 0.9}, 0.9)) is None
    assert strategy.point(TrialResult.failed("x", {"accuracy": 0.9, "flops": 2.0})) is None


def test_nsga2_barrier_and_generations() -> None:
    space = toy_space()
    score = analytic_score(space)
    strategy = _declared_nsga2(space=space, seed=0, population_size=4, generations=2)
    members = _ask_all(strategy, 0, 4)
    assert strategy.ask(4) is WAIT
    for i, arch in enumerate(members):
        strategy.tell(i, arch, score(arch))
    children = _ask_all(strategy, 4, 4)
    assert all(isinstance(c, dict) for c in children) and strategy.ask(8) is WAIT
    for i, arch in enumerate(children):
        strategy.tell(4 + i, arch, score(arch))
    assert strategy.ask(8) is FINISHED


def test_nsga2_front_is_mutually_non_dominated() -> None:
    space = toy_space()
    strategy = _declared_nsga2(space=space, seed=1, population_size=8, generations=20)
    driver = run_search(strategy, analytic_score(space), budget=120, progress=False)
    front = strategy.front()
    points = [(-m["accuracy"], m["flops"]) for _, m in front]
    assert front and non_dominated_sort(points) == [0] * len(points)
    driver_points = [(-r.result.metrics["accuracy"], r.result.metrics["flops"]) for r in driver.pareto_front(ACC_FLOPS)]
    assert driver_points and non_dominated_sort(driver_points) == [0] * len(driver_points)


def test_nsga2_children_repeat_no_architecture_evaluated_or_handed_out() -> None:
    space = tiny_space()  # 12 architectures: 3 generations of 4 cover them, unless a child repeats one
    strategy = _declared_nsga2(space=space, seed=3, population_size=4, generations=3)
    driver = run_search(strategy, analytic_score(space), budget=100, progress=False)
    asked = [space.key(r.arch) for r in driver.records]
    assert len(asked) == len(set(asked)) == space.size


def test_nsga2_prescreen_keeps_the_children_nsga2_would_keep_on_the_model_predictions() -> None:
    space = SearchSpace([Dimension("op", ("a", "b", "c")), Dimension("width", (1, 2))])
    strategy = _declared_nsga2(space=space, seed=0, population_size=1, prescreen=2)
    strategy._history = [((1, 0), (-0.9, 1.0)), ((1, 1), (-0.8, 2.0)), ((0, 0), (-0.5, 3.0)), ((2, 1), (-0.4, 4.0))]
    good, bad = {"op": "b", "width": 2}, {"op": "a", "width": 2}  # "b" is better than "a" in both objectives
    assert strategy._screen([bad, good], parent_points=[None], keep=1, known=frozenset()) == [good]
    assert strategy._screen([good, bad], parent_points=[None], keep=1, known=frozenset()) == [good]


def _nsga2_after_mostly_failures(failing: set[int], prescreen: int = 1) -> tuple[NSGA2, list, list[bool]]:
    """An NSGA-II of population 8 whose generation 0 fails at the given member indices (half as early
    stops with tempting metrics), then asked generation 1; also whether each tournament winner succeeded."""
    space = toy_space()
    score = analytic_score(space)
    strategy = _declared_nsga2(space=space, seed=0, population_size=8, generations=3, prescreen=prescreen)
    winners_ok: list[bool] = []
    tournament = strategy._tournament

    def spy(ranks: list[int], crowding: list[float]) -> int:
        winner = tournament(ranks, crowding)
        winners_ok.append(strategy._parents[winner][1].ok)
        return winner

    strategy._tournament = spy  # type: ignore[method-assign]
    generation0 = _ask_all(strategy, 0, 8)
    for i, arch in enumerate(generation0):
        if i not in failing:
            strategy.tell(i, arch, score(arch))
        elif i % 2:
            strategy.tell(i, arch, TrialResult.stopped_early("assessor", {"accuracy": 1.0, "flops": 0.0}, epochs=1))
        else:
            strategy.tell(i, arch, TrialResult.failed("crash", {"accuracy": 1.0, "flops": 0.0}))
    generation1 = _ask_all(strategy, 8, 8)
    return strategy, generation0 + generation1, winners_ok


@pytest.mark.parametrize("prescreen", [1, 3])
def test_nsga2_failures_are_never_survivors_nor_parents(prescreen: int) -> None:
    """Six of eight failed: the two successes are the only parents (no failure fills the pool nor wins a
    tournament); the six places the failures would have held go to fresh architectures."""
    strategy, asked, winners_ok = _nsga2_after_mostly_failures({2, 3, 4, 5, 6, 7}, prescreen)
    parents = strategy.state_dict()["state"]["extra"]["parents"]
    assert [arch for arch, _ in parents] == asked[:2]
    assert all(TrialResult.from_json(result).ok for _, result in parents)
    assert winners_ok and all(winners_ok)
    keys = _keys(strategy.space, asked)
    assert len(set(keys)) == 16 and all(isinstance(a, dict) for a in asked)


def test_nsga2_after_a_generation_of_failures_samples_afresh() -> None:
    strategy, asked, winners_ok = _nsga2_after_mostly_failures(set(range(8)))
    assert strategy.state_dict()["state"]["extra"]["parents"] == [] and winners_ok == []
    assert len(set(_keys(strategy.space, asked))) == 16


def test_nsga2_resumes_exactly_when_fresh_architectures_fill_the_places_of_failures(tmp_path) -> None:
    space = toy_space()
    score = analytic_score(space)

    def mostly_failing(arch: dict) -> TrialResult:  # about three in four fail, a fixed function of the key
        return score(arch) if zlib.crc32(space.key(arch).encode()) % 4 == 0 else TrialResult.failed("crash")

    def records(**kwargs: object) -> list:
        strategy = _declared_nsga2(space=space, seed=5, population_size=8, generations=6, prescreen=2)
        driver = run_search(strategy, mostly_failing, budget=48, concurrency=3, progress=False, **kwargs)
        return [r.to_json() for r in driver.records]

    expected = records()
    assert sum(r["result"]["status"] == "failed" for r in expected) > 24
    for stop_after in (8, 13, 9, None):  # the end of generation 0, then inside generations 1 to 4
        resumed = records(state_file=tmp_path / "state.json", stop_after=stop_after)
    assert resumed == expected


def test_nsga2_prescreening_keeps_every_evaluated_architecture_seen() -> None:
    """In a 9-architecture space the children often repeat evaluated ones (breeding gives up on
    avoiding it); screening such a child out must not make its evaluated architecture unseen again."""
    space = SearchSpace([Dimension("a", (0, 1, 2)), Dimension("b", (0, 1, 2))])
    strategy = _declared_nsga2(space=space, seed=0, population_size=4, generations=4, prescreen=3)
    evaluated: set[tuple[int, ...]] = set()
    for arch in _run_direct(strategy, _two_objectives)[:-1]:
        evaluated.add(space.encode(arch))
    assert evaluated <= {tuple(e) for e in strategy.state_dict()["state"]["extra"]["seen"]}


def _two_objectives(arch: dict) -> TrialResult:
    return TrialResult.succeeded({"accuracy": arch["a"] + arch["b"], "flops": arch["a"] ** 2 + arch["b"]}, 0.0)


@pytest.mark.parametrize(
    ("argument", "value"),
    [("population_size", 0), ("generations", -1), ("crossover_prob", 1.2), ("mutation_rate", -0.5),
     ("objective_max", ""), ("objective_min", 3), ("prescreen", 0), ("unseen_children", "yes")],
)
def test_nsga2_rejects_bad_arguments_by_name(argument: str, value: object) -> None:
    with pytest.raises(ValueError) as info:
        NSGA2(space=toy_space(), **{argument: value})
    assert argument in str(info.value) and repr(value) in str(info.value)
    with pytest.raises(ValueError, match="must differ"):
        NSGA2(space=toy_space(), objective_max="flops", objective_min="flops")
    with pytest.raises(ValueError, match="objective_min given alone"):
        NSGA2(space=toy_space(), objective_min="flops")


def _one_generation(strategy: NSGA2, score, size: int) -> None:  # type: ignore[no-untyped-def]
    for i, arch in enumerate(_ask_all(strategy, 0, size)):
        strategy.tell(i, arch, score(arch))


def test_nsga2_takes_the_declared_pareto_pair_with_its_directions() -> None:
    """Any two declared metrics, in their declared directions: here both maximised."""
    strategy = NSGA2(space=toy_space(), population_size=4)
    strategy.declare_metrics((Metric("score", "maximize"), Metric("speed", "maximize"), Metric("x", "minimize")),
                             ("score", "speed"))
    assert strategy.objectives == (("score", "maximize"), ("speed", "maximize"))
    assert strategy.point(TrialResult.succeeded({"score": 2.0, "speed": 3.0}, 0.0)) == (-2.0, -3.0)


def test_nsga2_explicit_objective_must_be_declared_and_in_its_direction() -> None:
    strategy = NSGA2(space=toy_space(), objective_max="acc", objective_min="flops")
    with pytest.raises(StrategyError, match="objective_max 'acc' is not a metric the evaluator declares"):
        strategy.declare_metrics(ACC_FLOPS, ("accuracy", "flops"))
    swapped = NSGA2(space=toy_space(), objective_max="flops", objective_min="accuracy")
    with pytest.raises(StrategyError, match="objective_max 'flops' asks to maximize"):
        swapped.declare_metrics(ACC_FLOPS, None)
    explicit = NSGA2(space=toy_space(), objective_max="accuracy", objective_min="flops")
    explicit.declare_metrics(ACC_FLOPS, None)  # explicit objectives need no declared pair
    assert explicit.objectives == (("accuracy", "maximize"), ("flops", "minimize"))


def test_nsga2_without_objectives_stops_at_its_first_barrier_never_random() -> None:
    space = toy_space()
    undeclared = NSGA2(space=space, population_size=4, generations=2)
    _one_generation(undeclared, analytic_score(space), 4)
    with pytest.raises(StrategyError, match="no objectives"):
        undeclared.ask(4)
    no_pair = NSGA2(space=space)
    with pytest.raises(StrategyError, match="declares no pareto_metrics"):
        no_pair.declare_metrics(ACC_FLOPS, None)


def test_nsga2_refuses_results_that_lack_both_objectives() -> None:
    space = toy_space()
    strategy = NSGA2(space=space, population_size=4, generations=2)
    strategy.declare_metrics((Metric("score", "maximize"), Metric("cost", "minimize")), ("score", "cost"))
    _one_generation(strategy, analytic_score(space), 4)  # reports accuracy and flops instead
    with pytest.raises(StrategyError, match="no successful result has the objectives 'score' and 'cost'"):
        strategy.ask(4)


def test_the_driver_declares_the_evaluator_metrics_to_nsga2_and_restores_them() -> None:
    import json

    from nas_core import SearchDriver

    space = toy_space()
    description = {"name": "toy", "metrics": [m.to_json() for m in ACC_FLOPS], "pareto_metrics": ["accuracy", "flops"]}
    driver = SearchDriver(NSGA2(space=space, population_size=4, generations=3))
    driver.set_evaluator_description(description)
    assert driver.strategy.objectives == (("accuracy", "maximize"), ("flops", "minimize"))
    restored = SearchDriver(NSGA2(space=space, population_size=4, generations=3))
    restored.load_state_dict(json.loads(json.dumps(driver.state_dict())))
    assert restored.strategy.objectives == (("accuracy", "maximize"), ("flops", "minimize"))
    assert restored.evaluator_description == description


def test_window_scaling_gives_roulette_selection_pressure():
    import random as _random

    from strategies.evolution import roulette_index, window_scaled

    fitnesses = [84.0, 85.0, 92.0, None]
    assert window_scaled(fitnesses) == [0.0, 1.0, 8.0, None]
    rng = _random.Random(0)
    picks = [roulette_index(window_scaled(fitnesses), rng) for _ in range(900)]
    assert picks.count(0) == 0 and picks.count(3) == 0
    assert picks.count(2) > 6 * picks.count(1)  # 8 : 1 in expectation; raw fitness would be ~1.08 : 1
    from nas_core import STRATEGIES
    from tests.toy_plugins import toy_space

    with pytest.raises(Exception, match="fitness_scaling"):
        STRATEGIES.build("evolution", {"fitness_scaling": "sigma"}, space=toy_space(), seed=0)


def test_early_stopped_result_has_no_fitness_and_round_trips() -> None:
    result = TrialResult.stopped_early("stopped by Medianstop after 2 epochs", {"accuracy": 41.5, "loss": math.nan})
    assert result.status == "early_stopped" and result.early_stopped and not result.ok
    assert result.fitness is None and result.metrics == {"accuracy": 41.5}
    assert TrialResult.from_json(json.loads(json.dumps(result.to_json()))) == result
    with pytest.raises(ValueError, match="early_stopped result has no fitness"):
        TrialResult("early_stopped", {}, 1.0, "x")
    assert not TrialResult.failed("x").early_stopped


def test_an_early_stop_keeps_how_many_epochs_it_reported_through_a_save() -> None:
    result = TrialResult.stopped_early("stopped by Medianstop", {"accuracy": 41.5}, epochs=2)
    assert result.epochs == 2
    assert TrialResult.from_json(json.loads(json.dumps(result.to_json()))) == result
    assert "epochs" not in TrialResult.stopped_early("stopped").to_json()  # unknown: states stay as they were
    assert TrialResult.from_json({"status": "early_stopped", "reason": "x"}).epochs is None  # a state from before
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="only an early stop counts its epochs"):
            TrialResult.stopped_early("x", epochs=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="for a failed result"):
        TrialResult("failed", {}, None, "x", 3)
