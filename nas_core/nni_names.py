"""The names NNI configs use for our code: the tuner class, the trial module, and the names under
which our strategies are registered as NNI builtin tuners (``nnictl algo list``).

A config may then say ``tuner: {name: NasEvolution, classArgs: {...}}``. Each name is a
:class:`~nas_core.nni_adapter.tuner.StrategyTuner` whose default strategy is the one listed.
"""

TUNER_CLASS = "nas_core.nni_adapter.tuner.StrategyTuner"
TRIAL_MODULE = "nas_core.trial"

BUILTIN_TUNERS: dict[str, str] = {
    "NasEvolution": "evolution",
    "NasRandom": "random",
    "NasRegularizedEvolution": "regularized_evolution",
    "NasNSGA2": "nsga2",
}
