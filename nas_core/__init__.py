"""nas_core: the interfaces of a neural-architecture-search framework with pluggable strategies.

The core imports neither torch nor NNI: spaces, evaluators and strategies are plugins
(packages ``spaces``, ``evaluators``, ``strategies`` or any dotted path), and NNI is reached
only through :mod:`nas_core.nni_adapter`.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "driver": ("Record", "SearchDriver", "pareto_front"),
    "evaluator": ("CandidateFailed", "Evaluator", "MetricObjective", "Metrics", "Objective", "Reporter",
                  "null_reporter"),
    "registry": ("EVALUATORS", "SPACES", "STRATEGIES", "PluginArgumentError", "Registry", "RegistryError"),
    "runner": ("run_search",),
    "space": ("Architecture", "Dimension", "InvalidArchitectureError", "InvalidSpaceError", "SearchSpace"),
    "strategy": ("FINISHED", "WAIT", "Strategy", "StrategyError", "TrialResult"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

if TYPE_CHECKING:
    from .driver import Record, SearchDriver, pareto_front
    from .evaluator import CandidateFailed, Evaluator, MetricObjective, Metrics, Objective, Reporter, null_reporter
    from .registry import EVALUATORS, SPACES, STRATEGIES, PluginArgumentError, Registry, RegistryError
    from .runner import run_search
    from .space import Architecture, Dimension, InvalidArchitectureError, InvalidSpaceError, SearchSpace
    from .strategy import FINISHED, WAIT, Strategy, StrategyError, TrialResult


def __getattr__(name: str) -> Any:
    """The public names are loaded on first use, so that ``python -m nas_core.trial``'s thin client
    (:mod:`nas_core.nni_adapter.worker_pool`) starts without importing the whole core: the one
    piece of NNI machinery outside the adapter, kept because it pays (docs/benchmarks.md, B2)."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MODULE_OF))


__all__ = [
    "Architecture", "CandidateFailed", "Dimension", "EVALUATORS", "Evaluator", "FINISHED",
    "InvalidArchitectureError", "InvalidSpaceError", "MetricObjective", "Metrics", "Objective",
    "PluginArgumentError", "Record", "Registry", "RegistryError", "Reporter", "SPACES", "STRATEGIES",
    "SearchDriver", "SearchSpace", "Strategy", "StrategyError", "TrialResult", "WAIT", "null_reporter",
    "pareto_front", "run_search",
]

__version__ = "0.1.0"
