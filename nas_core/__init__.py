"""nas_core: the interfaces of a neural-architecture-search framework with pluggable strategies.

The core imports neither torch nor NNI: spaces, evaluators and strategies are plugins
(packages ``spaces``, ``evaluators``, ``strategies`` or any dotted path), and NNI is reached
only through :mod:`nas_core.nni_adapter`.
"""

from .driver import Record, SearchDriver, pareto_front
from .evaluator import CandidateFailed, Evaluator, MetricObjective, Metrics, Objective, Reporter, null_reporter
from .registry import EVALUATORS, SPACES, STRATEGIES, PluginArgumentError, Registry, RegistryError
from .runner import run_search
from .space import Architecture, Dimension, InvalidArchitectureError, InvalidSpaceError, SearchSpace
from .strategy import FINISHED, WAIT, Strategy, StrategyError, TrialResult

__all__ = [
    "Architecture", "CandidateFailed", "Dimension", "EVALUATORS", "Evaluator", "FINISHED",
    "InvalidArchitectureError", "InvalidSpaceError", "MetricObjective", "Metrics", "Objective",
    "PluginArgumentError", "Record", "Registry", "RegistryError", "Reporter", "SPACES", "STRATEGIES",
    "SearchDriver", "SearchSpace", "Strategy", "StrategyError", "TrialResult", "WAIT", "null_reporter",
    "pareto_front", "run_search",
]

__version__ = "0.1.0"
