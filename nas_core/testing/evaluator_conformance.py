"""A conformance suite for evaluators, shipped with the package (the twin of the strategy suite).

A plugin author subclasses :class:`EvaluatorConformance` in a test module, under a name starting
with ``Test`` so that pytest collects its ``test_*`` methods, and says how to build the evaluator
in a configuration cheap enough to score a handful of candidates in seconds::

    from nas_core.testing import EvaluatorConformance

    class TestMyEvaluator(EvaluatorConformance):
        evaluator_path = "my_package.my_module:MyEvaluator"   # or a registered name
        evaluator_args = {"epochs": 1, "subset": 50}          # the cheap configuration

``make_evaluator()`` builds it from those two attributes; override it for anything fancier, but
keep ``evaluator_path``/``evaluator_args`` building the same evaluator, because one check
rebuilds it in a fresh Python process from them.

The checks are those of the contract written on :class:`nas_core.evaluator.Evaluator`. Whether
metrics must be reproducible is read from the evaluator's ``deterministic`` flag, never guessed:
the checks that need it are skipped with that reason when it is False. An evaluator without a
search space must be given one (override ``make_space``). The suite uses only the standard
library and nas_core; each check evaluates :attr:`EvaluatorConformance.candidates` architectures
a few times, so its cost is a few times that of the cheap configuration.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import random
import subprocess
import sys
import unittest
from collections.abc import Mapping
from typing import Any, ClassVar

from ..evaluator import (
    CandidateFailed, Evaluator, Metric, Metrics, Objective, Reporter, check_metric_declaration, null_reporter,
)
from ..registry import EVALUATORS
from ..runner import evaluator_score, run_search
from ..space import Architecture, InvalidArchitectureError, SearchSpace
from ..strategy import FINISHED, Ask, Strategy, TrialResult


def build_evaluator(path: str, args: Mapping[str, Any]) -> Evaluator:
    """An evaluator from a registered name or dotted path, as a trial's command line would build it."""
    evaluator = EVALUATORS.build(path, dict(args))
    if not isinstance(evaluator, Evaluator):
        raise TypeError(f"{path!r} built a {type(evaluator).__name__}, not a nas_core Evaluator")
    return evaluator


def declared_metrics(evaluator: Evaluator, metrics: Mapping[str, float]) -> dict[str, float]:
    """The declared metrics out of an evaluation's result (undeclared diagnostics dropped)."""
    return {m.name: metrics[m.name] for m in evaluator.metrics if m.name in metrics}


def _fresh_process_main() -> None:
    """Entry point of the fresh-process check: spec on stdin, declared metrics per candidate on stdout."""
    spec = json.load(sys.stdin)
    evaluator = build_evaluator(spec["evaluator"], spec["args"])
    json.dump([declared_metrics(evaluator, evaluator.evaluate(arch)) for arch in spec["candidates"]], sys.stdout)


_CHILD = (
    "import json, sys; sys.path[:0] = json.loads(sys.argv[1]); "
    "from nas_core.testing.evaluator_conformance import _fresh_process_main; _fresh_process_main()"
)


class _Sequence(Strategy):
    """Proposes a fixed list of architectures, then FINISHED (drives run_search over chosen candidates)."""

    name = "conformance_sequence"
    reaches_optimum = False

    def __init__(self, *, space: SearchSpace, seed: int = 0, archs: list[Architecture]) -> None:
        super().__init__(space=space, seed=seed)
        self.archs = list(archs)
        self.next = 0

    def _ask(self, trial_id: int) -> Ask:
        if self.next >= len(self.archs):
            return FINISHED
        self.next += 1
        return self.archs[self.next - 1]

    def _tell(self, trial_id: int, arch: Architecture, result: TrialResult) -> None:
        pass

    def _state_dict(self) -> dict[str, Any]:
        return {"next": self.next}

    def _load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.next = int(state["next"])


class EvaluatorConformance:
    """Checks every evaluator must pass. Subclass as ``Test...`` and set ``evaluator_path``.

    Class attributes a subclass may set:

    * ``evaluator_path`` -- registered name or ``"package.module:Class"`` of the evaluator;
    * ``evaluator_args`` -- its arguments: a configuration cheap enough for a unit test;
    * ``candidates`` -- how many architectures each check scores (sampled from the space with a
      fixed seed, distinct; override :meth:`make_candidates` to choose them);
    * ``failing_candidate`` -- an architecture of the space this configuration cannot score, if
      one is known: the suite then checks that it fails through :class:`CandidateFailed` only.
    """

    evaluator_path: ClassVar[str | None] = None
    evaluator_args: ClassVar[Mapping[str, Any]] = {}
    candidates: ClassVar[int] = 3
    failing_candidate: ClassVar[Architecture | None] = None

    # ------------------------------------------------------------------ to provide
    def make_evaluator(self) -> Evaluator:
        """A new evaluator; by default built from ``evaluator_path`` and ``evaluator_args``."""
        if self.evaluator_path is None:
            raise NotImplementedError(f"{type(self).__name__}: set evaluator_path or override make_evaluator")
        return build_evaluator(self.evaluator_path, self.evaluator_args)

    def make_space(self, evaluator: Evaluator) -> SearchSpace:
        """The space candidates come from: the evaluator's own; override when it has none."""
        space = evaluator.search_space()
        if space is None:
            raise NotImplementedError(
                f"{type(evaluator).__name__}.search_space() is None: override make_space to give the suite one"
            )
        return space

    def make_candidates(self, space: SearchSpace) -> list[Architecture]:
        """``candidates`` distinct architectures of ``space`` (fewer if the space is smaller)."""
        rng = random.Random(0)
        wanted = min(self.candidates, space.size)
        found: dict[str, Architecture] = {}
        for _ in range(100 * wanted):
            arch = space.sample(rng)
            found.setdefault(space.key(arch), arch)
            if len(found) == wanted:
                break
        return list(found.values())

    # ------------------------------------------------------------------- helpers
    def _setup(self) -> tuple[Evaluator, SearchSpace, list[Architecture]]:
        evaluator = self.make_evaluator()
        space = self.make_space(evaluator)
        return evaluator, space, self.make_candidates(space)

    def _evaluate(self, evaluator: Evaluator, arch: Architecture,
                  reporter: Reporter = null_reporter) -> Metrics | CandidateFailed:
        """Metrics of ``arch``, or the CandidateFailed it raised; any other exception fails the check."""
        try:
            result = evaluator.evaluate(arch, reporter)
        except CandidateFailed as err:
            return err
        except Exception as err:
            raise AssertionError(
                f"evaluate({arch!r}) raised {type(err).__name__}: {err}; a candidate that cannot be scored "
                "must raise CandidateFailed"
            ) from err
        assert isinstance(result, Mapping), f"evaluate returned {type(result).__name__}, not a mapping of metrics"
        return dict(result)

    def _scored(self, evaluator: Evaluator, archs: list[Architecture]) -> list[dict[str, float] | str]:
        """Declared metrics per architecture, or ``"failed: reason"``."""
        out: list[dict[str, float] | str] = []
        for arch in archs:
            result = self._evaluate(evaluator, arch)
            out.append(f"failed: {result}" if isinstance(result, CandidateFailed) else declared_metrics(evaluator, result))
        return out

    def _require_deterministic(self, evaluator: Evaluator) -> None:
        if not type(evaluator).deterministic:
            raise unittest.SkipTest(f"{type(evaluator).__name__}.deterministic is False: its metrics may vary")

    # -------------------------------------------------------------------- checks
    def test_is_an_evaluator_with_keyword_only_arguments(self) -> None:
        """An Evaluator with a name, an Objective, a boolean ``deterministic``, a JSON description, built from keywords."""
        evaluator = self.make_evaluator()
        assert isinstance(evaluator, Evaluator), f"make_evaluator returned {type(evaluator).__name__}"
        assert isinstance(type(evaluator).name, str) and type(evaluator).name
        assert isinstance(evaluator.objective, Objective), (
            f"{type(evaluator).__name__}.objective is {getattr(evaluator, 'objective', None)!r}, not an Objective"
        )
        json.dumps(evaluator.objective.describe(), allow_nan=False)
        description = evaluator.describe()
        assert json.loads(json.dumps(description, allow_nan=False)) == description, "describe() is not plain JSON"
        assert description.get("metrics") == [m.to_json() for m in evaluator.metrics], (
            "describe() lost the metric declaration (a subclass may add keys but should keep the base's)"
        )
        assert isinstance(type(evaluator).deterministic, bool)
        space = evaluator.search_space()
        assert space is None or isinstance(space, SearchSpace)
        if self.evaluator_path is not None:
            factory = EVALUATORS.resolve(self.evaluator_path)
            for parameter in inspect.signature(factory).parameters.values():
                assert parameter.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.VAR_KEYWORD), (
                    f"{self.evaluator_path}: argument {parameter.name!r} must be keyword-only"
                )

    def test_declares_its_metrics(self) -> None:
        """At least one Metric (the first is primary), no duplicates, Pareto pair among them."""
        evaluator = self.make_evaluator()
        metrics = list(evaluator.metrics)
        assert metrics, f"{type(evaluator).__name__}.metrics declares nothing; declare Metric(name, direction)s"
        for metric in metrics:
            assert isinstance(metric, Metric), f"{metric!r} is not a nas_core.evaluator.Metric"
            assert metric.direction in ("maximize", "minimize")
        check_metric_declaration(metrics, evaluator.pareto_metrics)

    def test_returns_every_declared_metric_finite(self) -> None:
        """Every candidate gets all declared metrics as finite numbers and a finite fitness, or fails by CandidateFailed."""
        evaluator, space, archs = self._setup()
        evaluator.prepare()
        scored = 0
        for arch in archs:
            result = self._evaluate(evaluator, arch)
            if isinstance(result, CandidateFailed):
                assert str(result), f"CandidateFailed for {arch!r} gives no reason"
                continue
            scored += 1
            for metric in evaluator.metrics:
                assert metric.name in result, f"declared metric {metric.name!r} missing from {sorted(result)}"
            for name, value in result.items():
                assert not isinstance(value, bool) and isinstance(value, (int, float)), f"metric {name!r} = {value!r}"
                assert math.isfinite(value), f"metric {name!r} is {value!r}: raise CandidateFailed instead"
            fitness = evaluator.objective.fitness(result)
            assert isinstance(fitness, (int, float)) and math.isfinite(fitness), f"fitness {fitness!r} for {arch!r}"
        assert scored, f"none of {len(archs)} candidates could be scored in this configuration"

    def test_intermediate_reports_are_finite(self) -> None:
        """What the reporter receives: increasing integer steps, finite numbers, the primary metric each time."""
        evaluator, _, archs = self._setup()
        reports: list[tuple[int, dict[str, float]]] = []

        def reporter(step: int, metrics: Mapping[str, float]) -> None:
            reports.append((step, dict(metrics)))

        self._evaluate(evaluator, archs[0], reporter)
        steps = [step for step, _ in reports]
        assert all(isinstance(s, int) and not isinstance(s, bool) for s in steps), f"steps {steps!r}"
        assert steps == sorted(steps) and len(set(steps)) == len(steps), f"steps not increasing: {steps!r}"
        primary = evaluator.metrics[0].name if evaluator.metrics else None
        for step, metrics in reports:
            assert primary is None or primary in metrics, f"step {step}: the report {metrics!r} lacks {primary!r}"
            for name, value in metrics.items():
                assert isinstance(value, (int, float)) and math.isfinite(value), f"step {step}: {name}={value!r}"

    def test_refuses_architectures_outside_its_space(self) -> None:
        """An architecture outside the space raises InvalidArchitectureError naming the dimension; nothing scored."""
        evaluator = self.make_evaluator()
        space = evaluator.search_space()
        if space is None:
            raise unittest.SkipTest(f"{type(evaluator).__name__} has no search space of its own")
        arch = self.make_candidates(space)[0]
        name = space.names[0]
        for bad in ({k: v for k, v in arch.items() if k != name}, {**arch, name: "not-a-choice"}):
            try:
                result = evaluator.evaluate(bad)
            except InvalidArchitectureError as err:
                assert name in str(err), f"the error {str(err)!r} does not name dimension {name!r}"
            except Exception as err:
                raise AssertionError(
                    f"evaluate({bad!r}) raised {type(err).__name__}: {err}; expected InvalidArchitectureError "
                    "(validate with search_space().validate first)"
                ) from err
            else:
                raise AssertionError(f"evaluate scored {bad!r}, outside its space: {result!r}")

    def test_failing_candidate_raises_candidate_failed(self) -> None:
        """The known unscoreable candidate fails through CandidateFailed, and a search records it as failed."""
        if self.failing_candidate is None:
            raise unittest.SkipTest("no failing_candidate given for this configuration")
        evaluator, space, _ = self._setup()
        arch = space.validate(self.failing_candidate)
        outcome = self._evaluate(evaluator, arch)
        assert isinstance(outcome, CandidateFailed), f"failing_candidate {arch!r} was scored: {outcome!r}"
        result = evaluator_score(evaluator)(arch)
        assert not result.ok and result.fitness is None and str(outcome) in (result.reason or "")

    def test_prepare_is_idempotent_and_optional(self) -> None:
        """prepare twice is harmless; evaluate works without it; with ``deterministic``, results are the same."""
        evaluator, _, archs = self._setup()
        unprepared = self._scored(evaluator, archs)
        assert any(isinstance(r, dict) for r in unprepared), "nothing could be scored without prepare()"
        prepared = self.make_evaluator()
        prepared.prepare()
        prepared.prepare()
        twice = self._scored(prepared, archs)
        prepared.prepare()
        again = self._scored(prepared, archs)
        if type(evaluator).deterministic:
            assert unprepared == twice == again, (
                f"results depend on prepare(): without {unprepared!r}, after two {twice!r}, after three {again!r}"
            )

    def test_same_metrics_in_any_order(self) -> None:
        """No dependence on earlier calls: forward, backward and repeated evaluations agree."""
        evaluator, _, archs = self._setup()
        self._require_deterministic(evaluator)
        forward = self._scored(evaluator, archs)
        backward = self._scored(self.make_evaluator(), list(reversed(archs)))[::-1]
        assert forward == backward, f"the order of evaluation changed the metrics: {forward!r} vs {backward!r}"
        repeated = self._scored(evaluator, archs)
        assert repeated == forward, f"evaluating again in the same instance changed the metrics: {repeated!r}"

    def test_same_metrics_in_a_fresh_process(self) -> None:
        """With ``deterministic``, a fresh interpreter (another hash seed) gives the same declared metrics."""
        evaluator, _, archs = self._setup()
        self._require_deterministic(evaluator)
        expected = json.loads(json.dumps(self._scored(evaluator, archs)))
        if any(isinstance(r, str) for r in expected):
            archs = [a for a, r in zip(archs, expected) if isinstance(r, dict)]
            expected = [r for r in expected if isinstance(r, dict)]
        path = self.evaluator_path or f"{type(evaluator).__module__}:{type(evaluator).__qualname__}"
        env = dict(os.environ)
        env["PYTHONHASHSEED"] = "1" if os.environ.get("PYTHONHASHSEED") != "1" else "2"
        sys_path = [p or os.getcwd() for p in sys.path]
        child = subprocess.run(
            [sys.executable, "-c", _CHILD, json.dumps(sys_path)],
            input=json.dumps({"evaluator": path, "args": dict(self.evaluator_args), "candidates": archs}),
            capture_output=True, text=True, env=env, timeout=300, check=False,
        )
        assert child.returncode == 0, f"the fresh process failed with {path!r}:\n{child.stderr[-3000:]}"
        assert json.loads(child.stdout) == expected, (
            f"a fresh process (PYTHONHASHSEED={env['PYTHONHASHSEED']}) scored differently: the evaluator depends "
            "on process state, or make_evaluator does not build what evaluator_path/evaluator_args build"
        )

    def test_runs_a_search_in_process(self) -> None:
        """run_search over the candidates records each as scored (with fitness) or failed (with a reason)."""
        evaluator, space, archs = self._setup()
        driver = run_search(_Sequence(space=space, archs=archs), evaluator, budget=len(archs) + 1, progress=False)
        assert driver.strategy_finished and len(driver.records) == len(archs)
        for record in driver.records:
            if record.result.ok:
                assert record.result.fitness is not None and math.isfinite(record.result.fitness)
                missing = [m.name for m in evaluator.metrics if m.name not in record.result.metrics]
                assert not missing, f"recorded result lacks declared metrics {missing}"
            else:
                assert record.result.reason, "a failed record without a reason"
        assert driver.best(), "no candidate was scored"
