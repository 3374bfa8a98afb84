"""Test helpers shipped with nas_core: the strategy conformance suite and its toy problems.

Importing this package imports neither pytest nor anything outside the standard library.
"""

from .strategy_conformance import (
    TOY_OPTIMUM_FITNESS,
    StrategyConformance,
    analytic_fitness,
    analytic_optimum,
    analytic_score,
    failing_score,
    flaky_score,
    tiny_space,
    toy_space,
)

__all__ = [
    "StrategyConformance", "TOY_OPTIMUM_FITNESS", "analytic_fitness", "analytic_optimum", "analytic_score",
    "failing_score", "flaky_score", "tiny_space", "toy_space",
]
