"""A conformance suite for search strategies, shipped with the package (after Optuna's sampler suite).

A plugin author subclasses :class:`StrategyConformance` in a test module, under a name starting
with ``Test`` so that pytest collects its ``test_*`` methods, and says how to build the strategy::

    from nas_core.testing import StrategyConformance

    class TestMyStrategy(StrategyConformance):
        strategy_path = "my_package.my_module:MyStrategy"   # or a registered name
        strategy_args = {"population_size": 8}              # optional

``make_strategy(space, seed)`` builds it from those two attributes; override it for anything
fancier, but keep ``strategy_path``/``strategy_args`` building the same strategy, because one
check rebuilds it in a fresh Python process from them.

Capabilities are read from the strategy's class attributes (``supports_parallel``, ``may_wait``,
``reaches_optimum``), never guessed: a check that needs a capability the strategy declares it
lacks is skipped with that reason. The suite uses only the standard library and nas_core; a skip
is ``unittest.SkipTest``, which pytest reports as a skip. Every check takes well under a second
or two, on the toy spaces and instant analytic scores defined here (usable by plugin tests too).
"""

from __future__ import annotations

import inspect
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import unittest
import zlib
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from ..driver import SearchDriver
from ..evaluator import Metric
from ..registry import STRATEGIES
from ..runner import fill_in_flight, run_search
from ..space import Architecture, Dimension, SearchSpace
from ..strategy import FINISHED, WAIT, Ask, Strategy, StrategyError, TrialResult

Score = Callable[[Architecture], TrialResult]

TOY_CHOICES: tuple[float, ...] = (0.25, 0.5, 1, 2, 3, 4)
"""Six numeric choices (unevenly spaced, as width ratios often are) for every toy dimension."""

TOY_OPTIMUM_FITNESS = 1.0
"""Fitness of the unique best architecture of any space under :func:`analytic_score`."""

FAILURE_THRESHOLD = 0.75
""":func:`flaky_score` fails every architecture at least this fit (so failures tempt a strategy)."""


# ------------------------------------------------------------------------- toy problems
def toy_space() -> SearchSpace:
    """8 layers x 6 expansion ratios: 1,679,616 architectures."""
    return SearchSpace([Dimension(f"layer{i}", TOY_CHOICES) for i in range(8)])


def tiny_space() -> SearchSpace:
    """12 architectures of mixed choice types, small enough to be exhausted."""
    return SearchSpace(
        [Dimension("op", ("conv", "pool")), Dimension("width", (1, 2, 3)), Dimension("skip", (True, False))]
    )


def _gene_score(dim: int, choice: int, n: int) -> float:
    """A per-dimension score in [0, 1]: a permutation of n evenly spaced levels, best at one choice."""
    if n == 1:
        return 1.0
    return ((5 * dim + 2 - choice) % n) / (n - 1)


def analytic_fitness(space: SearchSpace, arch: Mapping[str, Any]) -> float:
    """Mean per-dimension score; separable, with a unique maximum of exactly 1.0."""
    indices = space.encode(arch)
    return math.fsum(
        _gene_score(d, c, len(dim.choices)) for d, (dim, c) in enumerate(zip(space.dimensions, indices))
    ) / len(indices)


def analytic_optimum(space: SearchSpace) -> Architecture:
    """The unique architecture with fitness :data:`TOY_OPTIMUM_FITNESS`."""
    return space.decode([(5 * d + 3) % len(dim.choices) for d, dim in enumerate(space.dimensions)])


def analytic_flops(space: SearchSpace, arch: Mapping[str, Any]) -> float:
    """A cost in [0, 1] growing with each choice's position (wider layers cost more)."""
    indices = space.encode(arch)
    return math.fsum(c / max(len(dim.choices) - 1, 1) for dim, c in zip(space.dimensions, indices)) / len(indices)


def analytic_score(space: SearchSpace) -> Score:
    """Instant scoring: metrics ``accuracy`` (= fitness) and ``flops``, fitness :func:`analytic_fitness`."""

    def score(arch: Architecture) -> TrialResult:
        fitness = analytic_fitness(space, arch)
        return TrialResult.succeeded({"accuracy": fitness, "flops": analytic_flops(space, arch)}, fitness)

    return score


ANALYTIC_METRICS: tuple[Metric, ...] = (Metric("accuracy", "maximize"), Metric("flops", "minimize"))
"""The metrics :func:`analytic_score` returns, declared to every strategy the suite builds (Pareto
pair: both, in this order), as a runner declares an evaluator's."""


def flaky_score(space: SearchSpace) -> Score:
    """Like :func:`analytic_score`, but crashes, NaN metrics, infinite fitness and missing metrics.

    Which architecture fails is a fixed function of its key; every architecture at least
    :data:`FAILURE_THRESHOLD` fit fails, so a strategy that keeps failures as parents or as its
    best would be drawn towards them.
    """
    good = analytic_score(space)

    def score(arch: Architecture) -> TrialResult:
        fitness = analytic_fitness(space, arch)
        flops = analytic_flops(space, arch)
        kind = zlib.crc32(space.key(arch).encode("utf-8")) % 10
        if fitness >= FAILURE_THRESHOLD:
            return TrialResult.failed("simulated: diverged")
        if kind == 0:
            return TrialResult.failed("simulated: out of memory")
        if kind == 1:
            return TrialResult.succeeded({"accuracy": math.nan, "flops": flops}, fitness)
        if kind == 2:
            return TrialResult.succeeded({"accuracy": fitness, "flops": flops}, math.inf)
        if kind == 3:
            return TrialResult.succeeded({"accuracy": fitness}, fitness)  # no flops metric
        return good(arch)

    return score


def early_stopping_score(space: SearchSpace) -> Score:
    """Like :func:`analytic_score`, but every architecture at least :data:`FAILURE_THRESHOLD` fit,
    and one in ten of the others, is early-stopped (as an NNI assessor does) with tempting partial
    metrics: perfect accuracy at zero cost. A strategy that took them for successes would keep them."""
    good = analytic_score(space)

    def score(arch: Architecture) -> TrialResult:
        fitness = analytic_fitness(space, arch)
        if fitness >= FAILURE_THRESHOLD or zlib.crc32(space.key(arch).encode("utf-8")) % 10 == 0:
            return TrialResult.stopped_early("simulated: stopped by an assessor after 2 epochs",
                                             {"accuracy": 1.0, "flops": 0.0}, epochs=2)
        return good(arch)

    return score


def failing_score(arch: Architecture) -> TrialResult:
    """Every candidate fails."""
    return TrialResult.failed("simulated: everything fails")


_SPACES: dict[str, Callable[[], SearchSpace]] = {"toy": toy_space, "tiny": tiny_space}
_SCORES: dict[str, Callable[[SearchSpace], Score]] = {"analytic": analytic_score, "flaky": flaky_score,
                                                      "early": early_stopping_score}


def record_run(
    strategy: Strategy, score: Score, *, budget: int, concurrency: int, **kwargs: Any
) -> list[dict[str, Any]]:
    """``run_search`` without progress bar; the full record sequence as JSON."""
    driver = run_search(strategy, score, budget=budget, concurrency=concurrency, progress=False, **kwargs)
    return [record.to_json() for record in driver.records]


def build_strategy(path: str, args: Mapping[str, Any], space: SearchSpace, seed: int) -> Strategy:
    """A strategy from a registered name or dotted path, as a user's configuration would build it."""
    strategy = STRATEGIES.build(path, dict(args), space=space, seed=seed)
    if not isinstance(strategy, Strategy):
        raise TypeError(f"{path!r} built a {type(strategy).__name__}, not a nas_core Strategy")
    strategy.declare_metrics(ANALYTIC_METRICS, (ANALYTIC_METRICS[0].name, ANALYTIC_METRICS[1].name))
    return strategy


def _fresh_process_main() -> None:
    """Entry point of the fresh-process determinism check: spec on stdin, records on stdout."""
    spec = json.load(sys.stdin)
    space = _SPACES[spec["space"]]()
    strategy = build_strategy(spec["strategy"], spec["args"], space, spec["seed"])
    records = record_run(
        strategy, _SCORES[spec["score"]](space), budget=spec["budget"], concurrency=spec["concurrency"]
    )
    json.dump(records, sys.stdout)


_CHILD = (
    "import json, sys; sys.path[:0] = json.loads(sys.argv[1]); "
    "from nas_core.testing.strategy_conformance import _fresh_process_main; _fresh_process_main()"
)


def _spy(strategy: Strategy) -> list[Ask]:
    """Record every answer of ``strategy.ask`` (the driver asks through this instance attribute)."""
    answers: list[Ask] = []
    original = strategy.ask

    def ask(trial_id: int) -> Ask:
        answer = original(trial_id)
        answers.append(answer)
        return answer

    strategy.ask = ask  # type: ignore[method-assign]
    return answers


class _Script:
    """Drives a bare strategy (no driver, no dedup) with a fixed pattern of asks and tells."""

    def __init__(self, strategy: Strategy, score: Score, concurrency: int) -> None:
        self.strategy = strategy
        self.score = score
        self.concurrency = concurrency
        self.in_flight: deque[tuple[int, Architecture]] = deque()
        self.next_id = 0
        self.log: list[Any] = []

    def step(self) -> bool:
        """Fill the in-flight slots, then tell the oldest; False once nothing is left to tell."""
        while len(self.in_flight) < self.concurrency:
            answer = self.strategy.ask(self.next_id)
            self.log.append(repr(answer) if answer is WAIT or answer is FINISHED else answer)
            if answer is WAIT or answer is FINISHED:
                break
            self.in_flight.append((self.next_id, answer))  # type: ignore[arg-type]
            self.next_id += 1
        if not self.in_flight:
            return False
        trial_id, arch = self.in_flight.popleft()
        self.strategy.tell(trial_id, arch, self.score(arch))
        self.log.append(["told", trial_id])
        return True

    def follow(self, strategy: Strategy) -> _Script:
        """A script continuing this one's in-flight candidates with another (restored) strategy."""
        other = _Script(strategy, self.score, self.concurrency)
        other.in_flight = deque(self.in_flight)
        other.next_id = self.next_id
        return other


class StrategyConformance:
    """Checks every strategy must pass. Subclass as ``Test...`` and set ``strategy_path``.

    Class attributes a subclass may set:

    * ``strategy_path`` -- registered name or ``"package.module:Class"`` of the strategy;
    * ``strategy_args`` -- constructor arguments besides ``space`` and ``seed``;
    * ``quality_budget``/``quality_fraction``/``quality_seed`` -- the stated quality check:
      with that seed, within that many trained candidates on :func:`toy_space`, the best fitness
      reaches that fraction of the known optimum (one fixed run, no retries);
    * ``uses_early_stops`` -- True for a strategy that documents using early stops' partial metrics
      (docs/strategies.md); every other strategy must tell an early stop exactly like a failure.
    """

    strategy_path: ClassVar[str | None] = None
    strategy_args: ClassVar[Mapping[str, Any]] = {}
    quality_budget: ClassVar[int] = 300
    quality_fraction: ClassVar[float] = 0.9
    quality_seed: ClassVar[int] = 0
    uses_early_stops: ClassVar[bool] = False

    # ------------------------------------------------------------------ to provide
    def make_strategy(self, space: SearchSpace, seed: int) -> Strategy:
        """A new strategy on ``space`` with ``seed``; by default built from ``strategy_path``."""
        if self.strategy_path is None:
            raise NotImplementedError(f"{type(self).__name__}: set strategy_path or override make_strategy")
        return build_strategy(self.strategy_path, self.strategy_args, space, seed)

    # ------------------------------------------------------------------- helpers
    def _strategy_class(self) -> type[Strategy]:
        return type(self.make_strategy(tiny_space(), 0))

    def _concurrency(self) -> int:
        """Trials in flight for the checks: several, unless the strategy declares it is sequential."""
        return 3 if self._strategy_class().supports_parallel else 1

    def _require(self, flag: str, why: str) -> None:
        cls = self._strategy_class()
        if not getattr(cls, flag):
            raise unittest.SkipTest(f"{cls.__name__}.{flag} is False: {why}")

    def _check_answers(self, space: SearchSpace, answers: list[Ask]) -> None:
        cls = self._strategy_class()
        for i, answer in enumerate(answers):
            if answer is WAIT:
                assert cls.may_wait, f"ask #{i} answered WAIT but {cls.__name__}.may_wait is False"
            elif answer is not FINISHED:
                reason = space.check(answer)
                assert reason is None, f"ask #{i} proposed an invalid architecture {answer!r}: {reason}"

    # -------------------------------------------------------------------- checks
    def test_declares_capabilities(self) -> None:
        """The strategy is a Strategy with boolean capability flags and a keyword-only constructor."""
        strategy = self.make_strategy(toy_space(), 0)
        assert isinstance(strategy, Strategy), f"make_strategy returned {type(strategy).__name__}"
        for flag in ("supports_parallel", "may_wait", "reaches_optimum"):
            value = getattr(type(strategy), flag)
            assert isinstance(value, bool), f"{type(strategy).__name__}.{flag} must be a bool, got {value!r}"
        assert strategy.space == toy_space() and strategy.seed == 0
        for parameter in inspect.signature(type(strategy)).parameters.values():
            assert parameter.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.VAR_KEYWORD), (
                f"{type(strategy).__name__} argument {parameter.name!r} must be keyword-only"
            )

    def test_asks_are_valid_architectures(self) -> None:
        """Every answer is WAIT (only if declared), FINISHED, or an architecture of the space."""
        for space in (toy_space(), tiny_space()):
            strategy = self.make_strategy(space, 1)
            answers = _spy(strategy)
            budget = min(40, space.size)  # exhausting the space is test_runner_honours_wait_and_finished's job
            run_search(strategy, flaky_score(space), budget=budget, concurrency=self._concurrency(), progress=False)
            assert answers, "the strategy was never asked"
            self._check_answers(space, answers)

    def test_several_asks_in_flight(self) -> None:
        """Several asks before any tell, results told out of order, then a concurrent run."""
        self._require("supports_parallel", "at most one candidate may be in flight")
        space = toy_space()
        score = analytic_score(space)
        strategy = self.make_strategy(space, 2)
        answers = [strategy.ask(i) for i in range(5)]
        assert isinstance(answers[0], dict), f"first ask must propose an architecture, got {answers[0]!r}"
        self._check_answers(space, answers)
        asked = [(i, a) for i, a in enumerate(answers) if isinstance(a, dict)]
        for trial_id, arch in reversed(asked):
            strategy.tell(trial_id, arch, score(arch))
        after = strategy.ask(len(answers))
        assert after is not WAIT, "answered WAIT although every asked candidate has been told"
        self._check_answers(space, [after])
        driver = run_search(self.make_strategy(space, 2), score, budget=60, concurrency=4, progress=False)
        assert driver.records, "a concurrent run produced no result"

    def test_runner_honours_wait_and_finished(self) -> None:
        """On an exhaustible space the run ends with FINISHED and never trains a duplicate; WAIT only if declared."""
        space = tiny_space()
        strategy = self.make_strategy(space, 3)
        answers = _spy(strategy)
        try:
            driver = run_search(strategy, analytic_score(space), budget=10 * space.size,
                                concurrency=self._concurrency(), progress=False)
        except StrategyError as err:
            raise AssertionError(
                f"the strategy must answer FINISHED once it can propose nothing new (space of {space.size}): {err}"
            ) from None
        self._check_answers(space, answers)
        assert driver.strategy_finished, "the run stopped without the strategy answering FINISHED"
        trained = [r.key for r in driver.records if r.source == "trained"]
        assert len(trained) == len(set(trained)) <= space.size

    def test_same_seed_same_asks_in_fresh_process(self) -> None:
        """Same seed, same record sequence: twice in this process and once in a fresh interpreter."""
        spec = {"space": "toy", "score": "flaky", "seed": 7, "budget": 40, "concurrency": self._concurrency()}
        space = toy_space()
        first, second = (
            record_run(self.make_strategy(space, 7), flaky_score(space), budget=40, concurrency=self._concurrency())
            for _ in range(2)
        )
        assert first == second, "two runs with the same seed differ within one process"
        made = self.make_strategy(space, 7)
        path = self.strategy_path or f"{type(made).__module__}:{type(made).__qualname__}"
        spec.update(strategy=path, args=dict(self.strategy_args))
        env = dict(os.environ)
        env["PYTHONHASHSEED"] = "1" if os.environ.get("PYTHONHASHSEED") != "1" else "2"
        sys_path = [p or os.getcwd() for p in sys.path]
        child = subprocess.run(
            [sys.executable, "-c", _CHILD, json.dumps(sys_path)],
            input=json.dumps(spec), capture_output=True, text=True, env=env, timeout=60, check=False,
        )
        assert child.returncode == 0, f"the fresh process failed building {path!r}:\n{child.stderr[-3000:]}"
        fresh = json.loads(child.stdout)
        assert fresh == first, (
            f"a fresh process (PYTHONHASHSEED={env['PYTHONHASHSEED']}) built {path!r} with {self.strategy_args!r} "
            "and asked differently: the strategy depends on process state (hash order, globals), or "
            "make_strategy does not build what strategy_path/strategy_args build"
        )

    def test_different_seed_different_asks(self) -> None:
        space = toy_space()
        runs = [
            record_run(self.make_strategy(space, seed), analytic_score(space), budget=20, concurrency=1)
            for seed in (0, 1)
        ]
        assert [r["arch"] for r in runs[0]] != [r["arch"] for r in runs[1]], "seeds 0 and 1 asked the same"

    def test_failures_never_crash_nor_win(self) -> None:
        """Crashes, NaN metrics, infinite fitness and missing metrics are survived and never best."""
        space = toy_space()
        score = flaky_score(space)
        strategy = self.make_strategy(space, 4)
        driver = run_search(strategy, score, budget=80, concurrency=self._concurrency(), progress=False)
        failed = {r.key for r in driver.records if not r.result.ok}
        assert failed, "the flaky scorer should have failed some candidates"
        best = driver.best(5)
        assert best, "no successful candidate at all"
        for record in best:
            assert record.result.ok and record.key not in failed
            assert record.result.fitness is not None and record.result.fitness < FAILURE_THRESHOLD
        json.dumps(strategy.state_dict(), allow_nan=False)
        hopeless = run_search(self.make_strategy(space, 4), failing_score, budget=30,
                              concurrency=self._concurrency(), progress=False)
        assert hopeless.best() == [] and hopeless.records, "with every candidate failing there is no best"

    def test_early_stopped_never_win_and_resume(self) -> None:
        """Early-stopped results (status ``early_stopped``, partial metrics, no fitness) are survived,
        never best nor on the front, kept in a JSON state, and a resumed run matches the uninterrupted one."""
        space = toy_space()
        score = early_stopping_score(space)
        concurrency = self._concurrency()
        driver = run_search(self.make_strategy(space, 4), score, budget=80, concurrency=concurrency, progress=False)
        stopped = {r.key for r in driver.records if r.result.early_stopped}
        assert stopped, "the scorer should have early-stopped some candidates"
        chosen = driver.best(5) + driver.pareto_front(ANALYTIC_METRICS)
        assert chosen, "no successful candidate at all"
        for record in chosen:
            assert record.result.ok and record.key not in stopped, f"early-stopped {record.arch} was chosen"
        json.dumps(driver.strategy.state_dict(), allow_nan=False)
        expected = record_run(self.make_strategy(space, 4), score, budget=40, concurrency=concurrency)
        with tempfile.TemporaryDirectory() as tmp:
            state_file = Path(tmp) / "state.json"
            for stop_after in (13, None):
                records = record_run(self.make_strategy(space, 4), score, budget=40, concurrency=concurrency,
                                     state_file=state_file, stop_after=stop_after)
        assert records == expected, "a run resumed after early-stopped results differs from the uninterrupted one"

    def test_early_stops_are_told_like_failures(self) -> None:
        """An early stop is never a parent nor steers the search: a run in which every early stop is
        a failure instead (same reason, same partial metrics) asks exactly the same, in the same order.

        ``driver.best`` and the front filter early stops themselves, so only the asks show whether
        the strategy used one. Skipped for a strategy that opts in (``uses_early_stops``)."""
        if self.uses_early_stops:
            raise unittest.SkipTest(f"{type(self).__name__}.uses_early_stops: the strategy documents using early stops")
        space = toy_space()
        early = early_stopping_score(space)

        def as_failure(arch: Architecture) -> TrialResult:
            result = early(arch)
            return TrialResult.failed(str(result.reason), result.metrics) if result.early_stopped else result

        asks = []
        for score in (early, as_failure):
            strategy = self.make_strategy(space, 4)
            answers = _spy(strategy)
            driver = run_search(strategy, score, budget=80, concurrency=self._concurrency(), progress=False)
            asks.append(answers)
        assert any(not r.result.ok for r in driver.records), "the scorer should have stopped some candidates"
        first = next((i for i, (a, b) in enumerate(zip(*asks)) if a != b), min(map(len, asks)))
        assert asks[0] == asks[1], (
            f"ask #{first} differs when early stops are told as failures: an early stop steered the search "
            "(treat it as not ok, or set uses_early_stops and document it)")

    def test_tell_not_asked_is_accepted(self) -> None:
        """Results for ids never asked (history replay) before and during a run are accepted."""
        space = toy_space()
        score = flaky_score(space)
        strategy = self.make_strategy(space, 5)
        history = random.Random(1234)
        driver = SearchDriver(strategy)
        for _ in range(10):
            arch = space.sample(history)
            driver.complete(arch, score(arch))
        arch = space.sample(history)
        strategy.tell(10**6, arch, score(arch))  # an id far from any the driver will hand out
        answers = _spy(strategy)
        queue: deque[tuple[int, Architecture]] = deque()
        results = next_trial = 0
        while results < 40:
            next_trial = fill_in_flight(driver, queue, self._concurrency(), next_trial)
            if not queue:
                assert driver.strategy_finished, "WAIT with no candidate in flight after a replay"
                break
            trial_id, arch = queue.popleft()
            driver.tell(trial_id, score(arch))
            results += 1
            if results % 7 == 0:  # replay an unseen architecture while others are in flight
                busy = {space.key(a) for a in driver.pending.values()} | {r.key for r in driver.evaluated()}
                replay = space.sample(history)
                if space.key(replay) not in busy:
                    assert driver.complete(replay, score(replay)) == "replayed"
        self._check_answers(space, answers)
        json.dumps(strategy.state_dict(), allow_nan=False)

    def test_state_dict_is_plain_json(self) -> None:
        """The state is JSON (no NaN/inf, no tuples) before, during and after a run."""
        space = tiny_space()
        strategy = self.make_strategy(space, 6)
        states = [strategy.state_dict()]
        script = _Script(strategy, analytic_score(space), self._concurrency())
        script.step()
        states.append(strategy.state_dict())
        for _ in range(5000):  # at most; a strategy without FINISHED on this tiny space stops here
            if not script.step():
                break
        states.append(strategy.state_dict())
        for state in states:
            text = json.dumps(state, allow_nan=False)
            assert json.loads(text) == state, "state_dict changes through json.dumps/json.loads (tuples? int keys?)"

    def test_state_restores_mid_flight(self) -> None:
        """A fresh instance loading the JSON state asks exactly what the original asks next."""
        space = toy_space()
        concurrency = self._concurrency()
        original = _Script(self.make_strategy(space, 8), analytic_score(space), concurrency)
        for _ in range(11):
            original.step()
        state = json.loads(json.dumps(original.strategy.state_dict(), allow_nan=False))
        fresh = self.make_strategy(space, 8)
        fresh.load_state_dict(state)
        restored = original.follow(fresh)
        original.log.clear()
        for _ in range(45):
            a, b = original.step(), restored.step()
            assert a == b
        assert original.log == restored.log, "the restored strategy continued differently"

    def test_resume_matches_uninterrupted(self) -> None:
        """Stopping after k results and resuming in fresh instances gives the uninterrupted records."""
        space = toy_space()
        concurrencies = (1, 3) if self._strategy_class().supports_parallel else (1,)
        for concurrency in concurrencies:
            expected = record_run(self.make_strategy(space, 9), flaky_score(space), budget=60, concurrency=concurrency)
            with tempfile.TemporaryDirectory() as tmp:
                state_file = Path(tmp) / "state.json"
                for stop_after in (11, 9, 15, None):  # the third leg crosses a 32-wide generation
                    records = record_run(
                        self.make_strategy(space, 9), flaky_score(space), budget=60, concurrency=concurrency,
                        state_file=state_file, stop_after=stop_after,
                    )
            assert records == expected, f"resumed run differs from the uninterrupted one (concurrency {concurrency})"

    def test_reaches_optimum(self) -> None:
        """With the stated seed and budget the best fitness reaches the stated fraction of the optimum."""
        self._require("reaches_optimum", "the strategy does not claim to optimise")
        space = toy_space()
        assert analytic_fitness(space, analytic_optimum(space)) == TOY_OPTIMUM_FITNESS
        driver = run_search(self.make_strategy(space, self.quality_seed), analytic_score(space),
                            budget=self.quality_budget, concurrency=1, progress=False)
        best = driver.best()
        reached = best[0].result.fitness if best else None
        target = self.quality_fraction * TOY_OPTIMUM_FITNESS
        assert reached is not None and reached >= target, (
            f"best fitness {reached} after {self.quality_budget} candidates (seed {self.quality_seed}) "
            f"is below {self.quality_fraction} of the optimum {TOY_OPTIMUM_FITNESS}"
        )
