"""Test helpers shipped with nas_core: a conformance suite per plugin kind, and toy problems.

A plugin author subclasses :class:`StrategyConformance`, :class:`EvaluatorConformance` or
:class:`SpaceConformance` in a ``Test...`` class and says how to build the plugin; pytest then
runs the contract's checks on it. Importing this package imports neither pytest nor anything
outside the standard library.
"""

from .evaluator_conformance import EvaluatorConformance
from .space_conformance import SpaceConformance
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
    "EvaluatorConformance", "SpaceConformance", "StrategyConformance", "TOY_OPTIMUM_FITNESS", "analytic_fitness",
    "analytic_optimum", "analytic_score", "failing_score", "flaky_score", "tiny_space", "toy_space",
]
