"""The space, evaluator and strategy suites catch what they claim to: each deliberately broken plugin fails its check.

Every broken plugin here is a correct one (the tests' toy space and evaluator) with one contract
point broken, reached by dotted path as a plugin author's would be. A suite that passed any of
them would be checking nothing.
"""

from __future__ import annotations

import math
import re
import random
import unittest
from collections.abc import Mapping
from typing import Any

import pytest

from nas_core.evaluator import CandidateFailed, Metric, Reporter, null_reporter
from nas_core.space import Architecture, Dimension, InvalidArchitectureError, SearchSpace
from nas_core.strategy import TrialResult
from nas_core.testing import EvaluatorConformance, SpaceConformance, StrategyConformance
from tests.plugin_example_strategy import HillClimber
from tests.toy_plugins import ToyEvaluator

WORDS = ("ant", "bee", "cat", "dog", "eel", "fox")


class WordSpace(SearchSpace):
    """A correct space: 6 dimensions of 6 words."""

    def __init__(self) -> None:
        super().__init__([Dimension(f"d{i}", WORDS) for i in range(6)])


class MutateReturnsParent(WordSpace):
    def mutate(self, arch: Mapping[str, Any], rng: random.Random, rate: float | None = None) -> Architecture:
        rng.random()
        return self.validate(arch)


class MutatesInPlace(WordSpace):
    def mutate(self, arch: Mapping[str, Any], rng: random.Random, rate: float | None = None) -> Architecture:
        child = super().mutate(arch, rng, rate)
        arch.update(child)  # type: ignore[attr-defined]
        return child


class GlobalRandom(WordSpace):
    def sample(self, rng: random.Random) -> Architecture:
        return {name: random.choice(WORDS) for name in self.names}


class HashOrder(WordSpace):
    def sample(self, rng: random.Random) -> Architecture:
        return {name: rng.choice(list(set(WORDS))) for name in self.names}


class CrossoverOutside(WordSpace):
    def crossover(self, a: Mapping[str, Any], b: Mapping[str, Any], rng: random.Random) -> Architecture:
        return {**super().crossover(a, b, rng), "d0": "gnu"}


class VagueValidate(WordSpace):
    def validate(self, arch: object) -> Architecture:
        try:
            return super().validate(arch)
        except InvalidArchitectureError:
            raise InvalidArchitectureError("invalid architecture") from None


class LossyNni(WordSpace):
    def to_nni(self) -> dict[str, dict[str, Any]]:
        return {name: entry for name, entry in list(super().to_nni().items())[:-1]}


@pytest.mark.parametrize("space, check, message", [
    (WordSpace, None, None),
    (MutateReturnsParent, "test_mutate_is_valid_changes_and_is_reproducible", "unchanged"),
    (MutatesInPlace, "test_mutate_is_valid_changes_and_is_reproducible", "changed its argument"),
    (GlobalRandom, "test_sample_is_valid_and_reproducible", "the same seed sampled differently"),
    (HashOrder, "test_variation_is_reproducible_in_a_fresh_process", "hash order"),
    (CrossoverOutside, "test_crossover_is_valid_and_reproducible", "outside the space"),
    (VagueValidate, "test_validate_canonicalises_and_names_the_problem", "does not name"),
    (LossyNni, "test_nni_json_round_trip", "from_nni(to_nni()) differs"),
])
def test_space_suite_catches_each_broken_space(space, check, message):
    suite = type("Suite", (SpaceConformance,), {"space_path": f"{__name__}:{space.__name__}"})()
    checks = [name for name in dir(SpaceConformance) if name.startswith("test_")]
    if check is None:  # the correct space passes everything
        for name in checks:
            getattr(suite, name)()
        return
    with pytest.raises(AssertionError, match=re.escape(message)):
        getattr(suite, check)()


class CountsCalls(ToyEvaluator):
    """Claims determinism, but each evaluation drifts with the number of earlier calls."""

    calls = 0

    def evaluate(self, arch: Architecture, reporter: Reporter = null_reporter) -> dict[str, float]:
        self.calls += 1
        result = super().evaluate(arch, reporter)
        return {**result, "accuracy": result["accuracy"] + 0.01 * self.calls}


class SharedNoise(ToyEvaluator):
    """Claims determinism, but draws noise from the global random module."""

    def evaluate(self, arch: Architecture, reporter: Reporter = null_reporter) -> dict[str, float]:
        result = super().evaluate(arch, reporter)
        return {**result, "accuracy": result["accuracy"] + random.gauss(0, 1)}


class NanInsteadOfFailing(ToyEvaluator):
    def evaluate(self, arch: Architecture, reporter: Reporter = null_reporter) -> dict[str, float]:
        try:
            return super().evaluate(arch, reporter)
        except CandidateFailed:
            return {"accuracy": math.nan, "flops": 1.0}


class KeyErrorInsteadOfFailing(ToyEvaluator):
    def evaluate(self, arch: Architecture, reporter: Reporter = null_reporter) -> dict[str, float]:
        try:
            return super().evaluate(arch, reporter)
        except CandidateFailed as err:
            raise KeyError(str(err)) from None


class UndeclaredReturn(ToyEvaluator):
    metrics = (*ToyEvaluator.metrics, Metric("latency", "minimize"))


class NoMetricsDeclared(ToyEvaluator):
    metrics = ()
    pareto_metrics = None


class ScoresAnything(ToyEvaluator):
    def evaluate(self, arch: Architecture, reporter: Reporter = null_reporter) -> dict[str, float]:
        return {"accuracy": float(len(arch)), "flops": 1.0}


class PrepareLeaksIntoResults(ToyEvaluator):
    def evaluate(self, arch: Architecture, reporter: Reporter = null_reporter) -> dict[str, float]:
        result = super().evaluate(arch, reporter)
        return {**result, "accuracy": result["accuracy"] + self.prepared}


class ReportsWithoutPrimary(ToyEvaluator):
    def evaluate(self, arch: Architecture, reporter: Reporter = null_reporter) -> dict[str, float]:
        return super().evaluate(arch, lambda step, metrics: reporter(step, {"progress": float(step)}))


class PositionalArguments(ToyEvaluator):
    def __init__(self, dims: int = 3, **kwargs: Any) -> None:
        super().__init__(dims=dims, **kwargs)


@pytest.mark.parametrize("evaluator, check, message", [
    (ToyEvaluator, None, None),
    (CountsCalls, "test_same_metrics_in_any_order", "order of evaluation changed"),
    (SharedNoise, "test_same_metrics_in_a_fresh_process", "scored differently"),
    (NanInsteadOfFailing, "test_failing_candidate_raises_candidate_failed", "was scored"),
    (KeyErrorInsteadOfFailing, "test_failing_candidate_raises_candidate_failed", "must raise CandidateFailed"),
    (UndeclaredReturn, "test_returns_every_declared_metric_finite", "declared metric 'latency' missing"),
    (NoMetricsDeclared, "test_declares_its_metrics", "declares nothing"),
    (ScoresAnything, "test_refuses_architectures_outside_its_space", "outside its space"),
    (PrepareLeaksIntoResults, "test_prepare_is_idempotent_and_optional", "results depend on prepare"),
    (ReportsWithoutPrimary, "test_intermediate_reports_are_finite", "lacks 'accuracy'"),
    (PositionalArguments, "test_is_an_evaluator_with_keyword_only_arguments", "must be keyword-only"),
])
def test_evaluator_suite_catches_each_broken_evaluator(evaluator, check, message):
    suite = type("Suite", (EvaluatorConformance,), {
        "evaluator_path": f"{__name__}:{evaluator.__name__}", "evaluator_args": {"fail_when_sum": 0},
        "candidates": 4, "failing_candidate": {"layer0": 0, "layer1": 0, "layer2": 0}})()
    if check is None:  # the correct evaluator passes everything
        for name in (name for name in dir(EvaluatorConformance) if name.startswith("test_")):
            getattr(suite, name)()
        return
    with pytest.raises(AssertionError, match=re.escape(message)):
        getattr(suite, check)()


class ClimbsFromEarlyStops(HillClimber):
    """Takes an early stop's partial accuracy for a fitness (without saying so): its best is never a
    success, so best() and the Pareto front stay clean, but its children come from early stops."""

    def _tell(self, trial_id: int, arch: Architecture, result: TrialResult) -> None:
        super()._tell(trial_id, arch, result)
        partial = result.metrics.get("accuracy") if result.early_stopped else None
        if partial is not None and (self._best is None or partial > self._best[1]):
            self._best = (arch, partial)


class DocumentedClimbsFromEarlyStops(StrategyConformance):
    strategy_path = f"{__name__}:ClimbsFromEarlyStops"
    uses_early_stops = True


def test_strategy_suite_catches_a_strategy_led_by_early_stops():
    suite = type("Suite", (StrategyConformance,), {"strategy_path": f"{__name__}:ClimbsFromEarlyStops"})()
    suite.test_early_stopped_never_win_and_resume()  # best and front filter early stops: this cannot tell
    with pytest.raises(AssertionError, match="differs when early stops are told as failures"):
        suite.test_early_stops_are_told_like_failures()
    honest = type("Suite", (StrategyConformance,), {"strategy_path": "tests.plugin_example_strategy:HillClimber"})()
    honest.test_early_stops_are_told_like_failures()
    with pytest.raises(unittest.SkipTest, match="uses_early_stops"):
        DocumentedClimbsFromEarlyStops().test_early_stops_are_told_like_failures()
