"""Cheap plugins for tests: an analytic evaluator and a batch strategy with a barrier."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from nas_core import FINISHED, WAIT, CandidateFailed, Evaluator, MetricObjective, SearchSpace, Strategy, TrialResult
from nas_core.evaluator import Metric, Reporter, null_reporter
from nas_core.space import Architecture, Dimension


def toy_space(dims: int = 3, choices: int = 4) -> SearchSpace:
    return SearchSpace([Dimension(f"layer{i}", tuple(range(choices))) for i in range(dims)])


class ToyEvaluator(Evaluator):
    """Score = sum of choices (higher is better); flops grow with the choices too."""

    name = "toy"
    deterministic = True
    metrics = (Metric("accuracy", "maximize"), Metric("flops", "minimize"))
    pareto_metrics = ("accuracy", "flops")

    def __init__(self, *, dims: int = 3, choices: int = 4, sleep: float = 0.0, epochs: int = 3,
                 fail_when_sum: int | None = None, log_warning: str = "", prepare_seconds: float = 0.0,
                 prepare_error: str = "") -> None:
        if dims < 1:
            raise ValueError(f"dims must be >= 1, got {dims}")
        self.space = toy_space(dims, choices)
        self.sleep = sleep
        self.log_warning = log_warning
        self.prepare_seconds, self.prepare_error, self.prepared = prepare_seconds, prepare_error, 0
        self.epochs = epochs
        self.fail_when_sum = fail_when_sum
        self.objective = MetricObjective("accuracy")

    def search_space(self) -> SearchSpace:
        return self.space

    def prepare(self) -> None:
        if self.prepare_error:
            raise RuntimeError(self.prepare_error)
        if not self.prepared:  # once-per-process work, as loading a data set
            time.sleep(self.prepare_seconds)
        self.prepared += 1

    def evaluate(self, arch: Architecture, reporter: Reporter = null_reporter) -> dict[str, float]:
        total = sum(int(v) for v in self.space.validate(arch).values())
        if self.log_warning:
            logging.getLogger("toy").warning("%s %s", self.log_warning, total)
        if self.fail_when_sum is not None and total == self.fail_when_sum:
            raise CandidateFailed(f"loss diverged (NaN) for sum {total}")
        for epoch in range(self.epochs):
            if self.sleep:
                time.sleep(self.sleep / self.epochs)
            reporter(epoch, {"accuracy": float(total) * (epoch + 1) / self.epochs})
        return {"accuracy": float(total), "flops": float(total * total + 1)}


class BatchStrategy(Strategy):
    """Proposes the space in index order, ``batch`` at a time, waiting for each whole batch."""

    name = "batch"
    may_wait = True
    reaches_optimum = False

    def __init__(self, *, space: SearchSpace, seed: int = 0, batch: int = 3, batches: int = 4) -> None:
        super().__init__(space=space, seed=seed)
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch!r}")
        self.batch = batch
        self.batches = batches
        self.asked: list[int] = []
        self.told: set[int] = set()
        self.next_index = 0

    def _ask(self, trial_id: int) -> Any:
        if len(self.asked) >= self.batch * self.batches:
            return FINISHED
        if len(self.asked) % self.batch == 0 and any(t not in self.told for t in self.asked):
            return WAIT
        self.asked.append(trial_id)
        arch = self.space.decode(self._digits(self.next_index))
        self.next_index += 1
        return arch

    def _digits(self, index: int) -> list[int]:
        out = []
        for dim in reversed(self.space.dimensions):
            out.append(index % len(dim.choices))
            index //= len(dim.choices)
        return list(reversed(out))

    def _tell(self, trial_id: int, arch: Architecture, result: TrialResult) -> None:
        self.told.add(trial_id)

    def _state_dict(self) -> dict[str, Any]:
        return {"asked": self.asked, "told": sorted(self.told), "next_index": self.next_index}

    def _load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.asked = list(state["asked"])
        self.told = set(state["told"])
        self.next_index = int(state["next_index"])


class ProcessReportingEvaluator(ToyEvaluator):
    """The toy evaluator, also reporting which process evaluated (to see resident workers at work)."""

    name = "toy_pid"

    def evaluate(self, arch: Architecture, reporter: Reporter = null_reporter) -> dict[str, float]:
        import os

        return {**super().evaluate(arch, reporter), "pid": float(os.getpid())}


class SteppedClock:
    """A stand-in for ``time.perf_counter`` that moves only when told: timing assertions then test
    *what* was timed, never how long the machine took."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class ClockedEvaluator(ToyEvaluator):
    """Its preparation moves the clock by 100 s and each evaluation by 1 s."""

    def __init__(self, clock: SteppedClock, **kwargs) -> None:
        super().__init__(**kwargs)
        self.clock = clock

    def prepare(self) -> None:
        super().prepare()
        self.clock.advance(100.0)

    def evaluate(self, arch, reporter=null_reporter):
        self.clock.advance(1.0)
        return super().evaluate(arch, reporter)
