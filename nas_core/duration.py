"""How long a candidate will take to evaluate, learned from the search's own results.

A strategy that hands out a batch of candidates and then waits for all of them (a generation
barrier) loses slot time whenever the batch's last trial runs alone. Asking the longest
candidates first (longest-processing-time order) leaves short ones for the end, so the slots
finish close together. This model supplies the "longest": additive in the dimensions' values,
each value's effect the mean duration of the candidates that had it, shrunk toward the overall
mean when it was seen only a few times. On the digits search it ranks a generation's training
times well enough to recover almost all of what exact durations would (benchmark B2).

Durations come from the ``evaluator_seconds`` metric that both runners add to every result.
Each architecture counts once: a search that re-proposes its elites is told their stored result
again and again, and counting every copy would tilt the model toward them (measured: it lost
most of the gain). The model is JSON state (sums, counts and short digests of the architectures
seen), so a resumed search orders exactly as before.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from .space import Architecture, SearchSpace

DURATION_METRIC = "evaluator_seconds"
SHRINKAGE = 2.0
"""Pseudo-count of the overall mean in each value's mean: a value seen once moves the estimate a third of the way."""


class DurationModel:
    """Predicted evaluation seconds of an architecture of ``space`` (None until one is observed)."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self._total = 0.0
        self._count = 0
        self._sums: dict[str, dict[str, list[float]]] = {name: {} for name in space.names}  # value key -> [sum, n]
        self._seen: set[str] = set()

    @staticmethod
    def _value_key(value: object) -> str:
        return json.dumps(value, sort_keys=True)

    def observe(self, arch: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
        """Learn from one result's metrics; repeats of an architecture, and results without a
        finite positive duration, are ignored."""
        seconds = metrics.get(DURATION_METRIC)
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds <= 0:
            return
        digest = hashlib.sha256(self.space.key(arch).encode()).hexdigest()[:16]
        if digest in self._seen:
            return
        self._seen.add(digest)
        self._total += seconds
        self._count += 1
        for name in self.space.names:
            entry = self._sums[name].setdefault(self._value_key(arch[name]), [0.0, 0])
            entry[0] += seconds
            entry[1] += 1

    @property
    def observations(self) -> int:
        return self._count

    def predict(self, arch: Mapping[str, Any]) -> float | None:
        if self._count == 0:
            return None
        mean = self._total / self._count
        estimate = mean
        for name in self.space.names:
            total, count = self._sums[name].get(self._value_key(arch[name]), (0.0, 0))
            estimate += (total + SHRINKAGE * mean) / (count + SHRINKAGE) - mean
        return estimate

    def longest_first(self, members: Sequence[Architecture]) -> list[int]:
        """Indices of ``members``, longest predicted first; their own order while nothing is observed."""
        if self._count == 0:
            return list(range(len(members)))
        predicted = [self.predict(arch) for arch in members]
        return sorted(range(len(members)), key=lambda i: -(predicted[i] or 0.0))  # stable: ties keep member order

    def to_json(self) -> dict[str, Any]:
        return {"total": self._total, "count": self._count, "seen": sorted(self._seen),
                "values": {name: {key: list(entry) for key, entry in values.items()} for name, values in self._sums.items()}}

    def load_json(self, data: Mapping[str, Any]) -> None:
        """Restore :meth:`to_json`'s output; raises ValueError/KeyError/TypeError on malformed data."""
        total, count = float(data["total"]), int(data["count"])
        values = data["values"]
        sums: dict[str, dict[str, list[float]]] = {name: {} for name in self.space.names}
        for name, entries in values.items():
            if name not in sums:
                raise ValueError(f"duration model names unknown dimension {name!r}")
            sums[name] = {str(key): [float(entry[0]), int(entry[1])] for key, entry in entries.items()}
        seen = {str(digest) for digest in data.get("seen", [])}
        self._total, self._count, self._sums, self._seen = total, count, sums, seen
