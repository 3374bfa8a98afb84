"""The names NNI configs use for our code: the tuner class, the trial module, and the names under
which our strategies are registered as NNI builtin tuners (``nnictl algo list``).

A config may then say ``tuner: {name: NasEvolution, classArgs: {...}}``. Each such name is a
:class:`~nas_core.nni_adapter.tuner.StrategyTuner` whose default strategy is the registered
strategy whose class declares that name (:attr:`Strategy.nni_tuner_name`).
"""

from __future__ import annotations

from typing import Any

TUNER_CLASS = "nas_core.nni_adapter.tuner.StrategyTuner"
TRIAL_MODULE = "nas_core.trial"


def builtin_tuners() -> dict[str, str]:
    """NNI builtin tuner name -> registered strategy name, for every registered strategy that
    declares an ``nni_tuner_name`` (a plugin that cannot be imported offers none)."""
    from .registry import STRATEGIES, RegistryError

    tuners: dict[str, str] = {}
    for strategy in STRATEGIES.names():
        try:
            cls = STRATEGIES.resolve(strategy)
        except RegistryError:
            continue
        tuner = getattr(cls, "nni_tuner_name", None)
        if not tuner:
            continue
        if tuner in tuners:
            raise RegistryError(f"NNI tuner name {tuner!r} is declared by strategies {tuners[tuner]!r} and {strategy!r}")
        tuners[tuner] = strategy
    return tuners


def __getattr__(name: str) -> Any:
    """``BUILTIN_TUNERS``: :func:`builtin_tuners` computed when asked for (it imports the strategies)."""
    if name == "BUILTIN_TUNERS":
        return builtin_tuners()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
