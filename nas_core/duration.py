"""How long a candidate will take to evaluate, learned from the search's own results.

A strategy that hands out a batch of candidates and then waits for all of them (a generation
barrier) loses slot time whenever the batch's last trial runs alone. Asking the longest
candidates first (longest-processing-time order) leaves short ones for the end, so the slots
finish close together. This model supplies the "longest": a ridge regression of the measured
seconds on the architecture, where a dimension whose choices are all numbers (a width ratio,
a kernel size) is one standardised numeric feature and any other dimension is one indicator
per choice. With the few results of a first generation, a numeric dimension's single slope
generalises to values not yet seen, where a mean per value could not: replayed on the digits
search's own trial times it recovered almost all of what exact durations would, against about
half for per-value means (benchmark B2).

Durations come from the ``evaluator_seconds`` metric that both runners add to every result.
Each architecture counts once: a search that re-proposes its elites is told their stored result
again and again, and counting every copy would tilt the model toward them. The model is JSON
state (the regression's sufficient statistics and short digests of the architectures seen), so
a resumed search orders exactly as before. Its size grows with the square of the number of
features (7 for the paper's VGG-small space); a space with hundreds of categorical choices
would make the state large and each refit (once per generation, in pure Python) take seconds.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

from .space import Architecture, Dimension, SearchSpace

DURATION_METRIC = "evaluator_seconds"
RIDGE = 1.0
"""Penalty on every coefficient but the intercept, in units of observations: with a handful of
results the prediction stays near their mean, and each feature's effect grows as evidence does."""
FORMAT = "ridge-v1"


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _Encoder:
    """One dimension's features: a standardised number, or one indicator per choice."""

    def __init__(self, dim: Dimension) -> None:
        self.dim = dim
        self.numeric = len(dim.choices) > 1 and all(_is_number(c) for c in dim.choices)
        if self.numeric:
            low, high = min(float(c) for c in dim.choices), max(float(c) for c in dim.choices)
            self.center, self.half_range = (low + high) / 2, (high - low) / 2
        self.width = 1 if self.numeric else len(dim.choices)

    def features(self, value: object) -> list[float]:
        if self.numeric:
            return [(float(value) - self.center) / self.half_range]  # type: ignore[arg-type]
        row = [0.0] * self.width
        row[self.dim.index(value)] = 1.0
        return row


def _solve(matrix: list[list[float]], vector: list[float]) -> list[float]:
    """Solve a small symmetric positive definite system (Gaussian elimination, partial pivoting)."""
    n = len(vector)
    rows = [list(matrix[i]) + [vector[i]] for i in range(n)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(rows[r][col]))
        rows[col], rows[pivot] = rows[pivot], rows[col]
        if abs(rows[col][col]) < 1e-12:
            continue  # a direction no observation and no penalty constrains: leave it at 0
        for r in range(n):
            if r != col and rows[r][col] != 0.0:
                factor = rows[r][col] / rows[col][col]
                rows[r] = [a - factor * b for a, b in zip(rows[r], rows[col])]
    return [rows[i][n] / rows[i][i] if abs(rows[i][i]) >= 1e-12 else 0.0 for i in range(n)]


class DurationModel:
    """Predicted evaluation seconds of an architecture of ``space`` (None until one is observed)."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self._encoders = [_Encoder(dim) for dim in space.dimensions]
        self._size = 1 + sum(e.width for e in self._encoders)  # the intercept first
        self._reset()

    def _reset(self) -> None:
        self._xtx = [[0.0] * self._size for _ in range(self._size)]
        self._xty = [0.0] * self._size
        self._count = 0
        self._seen: set[str] = set()
        self._weights: list[float] | None = None

    def _features(self, arch: Mapping[str, Any]) -> list[float]:
        row = [1.0]
        for encoder in self._encoders:
            row += encoder.features(arch[encoder.dim.name])
        return row

    def observe(self, arch: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
        """Learn from one result's metrics; repeats of an architecture, and results without a
        finite positive duration, are ignored."""
        seconds = metrics.get(DURATION_METRIC)
        if not _is_number(seconds) or not math.isfinite(seconds) or seconds <= 0:  # type: ignore[arg-type]
            return
        digest = hashlib.sha256(self.space.key(arch).encode()).hexdigest()[:16]
        if digest in self._seen:
            return
        self._seen.add(digest)
        x = self._features(arch)
        for i, xi in enumerate(x):
            if xi == 0.0:
                continue
            self._xty[i] += xi * float(seconds)  # type: ignore[arg-type]
            row = self._xtx[i]
            for j, xj in enumerate(x):
                row[j] += xi * xj
        self._count += 1
        self._weights = None

    @property
    def observations(self) -> int:
        return self._count

    def _fitted(self) -> list[float]:
        if self._weights is None:
            penalised = [list(row) for row in self._xtx]
            for i in range(1, self._size):
                penalised[i][i] += RIDGE
            self._weights = _solve(penalised, self._xty)
        return self._weights

    def predict(self, arch: Mapping[str, Any]) -> float | None:
        if self._count == 0:
            return None
        return math.fsum(w * x for w, x in zip(self._fitted(), self._features(arch)))

    def longest_first(self, members: Sequence[Architecture]) -> list[int]:
        """Indices of ``members``, longest predicted first; their own order while nothing is observed."""
        if self._count == 0:
            return list(range(len(members)))
        predicted = [self.predict(arch) for arch in members]
        return sorted(range(len(members)), key=lambda i: -(predicted[i] or 0.0))  # stable: ties keep member order

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "count": self._count, "seen": sorted(self._seen),
                "xtx": [list(row) for row in self._xtx], "xty": list(self._xty)}

    def load_json(self, data: Mapping[str, Any]) -> None:
        """Restore :meth:`to_json`'s output. State written by the earlier per-value model (no
        ``format``) restores an empty model: only the asking order of later generations differs.
        Raises ValueError/KeyError/TypeError on malformed data."""
        if "format" not in data:
            self._reset()
            return
        if data["format"] != FORMAT:
            raise ValueError(f"unknown duration model format {data['format']!r}")
        xtx = [[float(v) for v in row] for row in data["xtx"]]
        xty = [float(v) for v in data["xty"]]
        if len(xty) != self._size or len(xtx) != self._size or any(len(row) != self._size for row in xtx):
            raise ValueError(f"duration model has {len(xty)} features; this space needs {self._size}")
        self._reset()
        self._xtx, self._xty = xtx, xty
        self._count = int(data["count"])
        self._seen = {str(digest) for digest in data.get("seen", [])}
