"""An evaluator plugin: scores a ladder-space network with a cheap analytic proxy instead of training.

A stand-in for real training, small enough to read in one go and to run in milliseconds, with
what a real evaluator has: declared metrics with directions, a separate objective, once-per-process
work in ``prepare``, per-epoch intermediate reports, a candidate that cannot be scored
(:class:`~nas_core.CandidateFailed`), and training noise that is reproducible because it is drawn
from the seed and the candidate, never from a generator shared between calls.

Used by dotted path, no registration: ``--evaluator proxy_evaluator:ProxyEvaluator`` in a trial
command run in this folder.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

from nas_core import CandidateFailed, Evaluator, Objective
from nas_core.evaluator import Metric, Metrics, Reporter, null_reporter
from nas_core.space import Architecture

from ladder_space import LadderSpace


class AccuracyPerCost(Objective):
    """``accuracy − lam · params / 10⁵``: accuracy, less a price per hundred thousand weights."""

    name = "accuracy_per_cost"

    def __init__(self, lam: float) -> None:
        self.lam = lam

    def fitness(self, metrics: Mapping[str, float]) -> float:
        return metrics["accuracy"] - self.lam * metrics["params"] / 1e5

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "lam": self.lam}


class ProxyEvaluator(Evaluator):
    """Accuracy grows with the log-widths and is capped by the narrowest layer; params count 3×3 convolutions."""

    name = "proxy"
    deterministic = True
    metrics = (
        Metric("accuracy", "maximize", "proxy validation accuracy (%)"),
        Metric("params", "minimize", "weights of the 3×3 convolutions"),
    )
    pareto_metrics = ("accuracy", "params")

    def __init__(self, *, layers: int = 4, widths: Sequence[int] = (16, 32, 64, 128), epochs: int = 3,
                 noise: float = 0.5, max_params: int | None = None, lam: float = 1.0, seed: int = 0) -> None:
        for name, value, low in (("epochs", epochs, 1), ("seed", seed, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        for name, value in (("noise", noise), ("lam", lam)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a non-negative number, got {value!r}")
        if max_params is not None and (isinstance(max_params, bool) or not isinstance(max_params, int) or max_params < 1):
            raise ValueError(f"max_params must be a positive integer or null, got {max_params!r}")
        self.space = LadderSpace(layers=layers, widths=widths)
        self.epochs, self.noise, self.max_params, self.seed = epochs, float(noise), max_params, seed
        self.objective = AccuracyPerCost(float(lam))
        self._capacity: dict[int, float] | None = None

    def search_space(self) -> LadderSpace:
        return self.space

    def prepare(self) -> None:
        """Build the per-width capacity table once (where a real evaluator loads its data set)."""
        if self._capacity is None:
            narrowest = self.space.widths[0]
            self._capacity = {w: 1.0 + math.log2(w / narrowest) for w in self.space.widths}

    def evaluate(self, arch: Architecture, reporter: Reporter = null_reporter) -> Metrics:
        widths = [int(w) for w in self.space.validate(arch).values()]
        self.prepare()  # a no-op once done: evaluate also works when nobody called prepare
        params = 9 * (3 * widths[0] + sum(a * b for a, b in zip(widths, widths[1:])))
        if self.max_params is not None and params > self.max_params:
            raise CandidateFailed(f"{params} weights do not fit the budget of {self.max_params}")
        assert self._capacity is not None
        capacity = sum(self._capacity[w] for w in widths) / len(widths)
        bottleneck = min(self._capacity[w] for w in widths)
        final = 100.0 - 60.0 / (capacity + bottleneck)
        rng = random.Random(f"{self.seed}:{self.space.key(arch)}")  # the candidate's own noise, same in any order
        for epoch in range(self.epochs):
            progress = (epoch + 1) / self.epochs
            reporter(epoch, {"accuracy": final * progress + rng.gauss(0.0, self.noise)})
        accuracy = min(100.0, final + rng.gauss(0.0, self.noise))
        return {"accuracy": accuracy, "params": float(params)}
