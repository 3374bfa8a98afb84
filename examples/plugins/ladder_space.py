"""A search-space plugin: one width per layer, with variation that moves along the width ladder.

The generic :class:`nas_core.SearchSpace` treats choices as unordered: its mutation may jump from
the narrowest width to the widest. Widths are ordered, so this space's mutation steps a layer to
a neighbouring width instead, and its crossover takes each layer from either parent (uniform
crossover). Everything else (validation, keys, NNI JSON) is the base class's.

Used by dotted path, no registration: ``space: "ladder_space:LadderSpace"`` with this folder
on ``sys.path`` (an NNI tuner's ``codeDirectory``).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from nas_core import SearchSpace
from nas_core.space import Architecture, Dimension, InvalidSpaceError


class LadderSpace(SearchSpace):
    """``layers`` dimensions ``layer0``... each choosing a width from the increasing ``widths``."""

    def __init__(self, *, layers: int = 4, widths: Sequence[int] = (16, 32, 64, 128)) -> None:
        if isinstance(layers, bool) or not isinstance(layers, int) or layers < 1:
            raise InvalidSpaceError(f"layers must be a positive integer, got {layers!r}")
        ladder = tuple(widths) if isinstance(widths, Sequence) and not isinstance(widths, str) else ()
        if len(ladder) < 2 or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in ladder):
            raise InvalidSpaceError(f"widths must be at least two positive integers, got {widths!r}")
        if list(ladder) != sorted(set(ladder)):
            raise InvalidSpaceError(f"widths must be strictly increasing, got {list(ladder)!r}")
        super().__init__([Dimension(f"layer{i}", ladder) for i in range(layers)])
        self.widths = ladder

    def mutate(self, arch: Mapping[str, Any], rng: random.Random, rate: float | None = None) -> Architecture:
        """Move each layer one rung up or down with probability ``rate`` (default 1/layers); at least one moves."""
        child = self.validate(arch)
        p = 1.0 / len(self.dimensions) if rate is None else rate
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"mutation rate must be in [0, 1], got {p!r}")
        moved = [name for name in self.names if rng.random() < p] or [self.names[rng.randrange(len(self.names))]]
        top = len(self.widths) - 1
        for name in moved:
            rung = self.widths.index(child[name])
            step = rng.choice((-1, 1)) if 0 < rung < top else (1 if rung == 0 else -1)
            child[name] = self.widths[rung + step]
        return child

    def crossover(self, a: Mapping[str, Any], b: Mapping[str, Any], rng: random.Random) -> Architecture:
        """Each layer's width from ``a`` or ``b`` with even odds."""
        first, second = self.validate(a), self.validate(b)
        return {name: first[name] if rng.random() < 0.5 else second[name] for name in self.names}
