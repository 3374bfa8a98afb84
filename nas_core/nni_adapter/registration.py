"""Registering our strategies as NNI builtin tuner names (``nnictl algo list`` shows them).

Each name (a strategy class's ``nni_tuner_name``, see :func:`nas_core.nni_names.builtin_tuners`)
maps to :class:`~nas_core.nni_adapter.tuner.StrategyTuner` with a default ``strategy`` class
argument, so a config can say ``tuner: {name: NasEvolution, classArgs: {...}}``.
NNI keeps the list in ``registered_algorithms.yml`` in its config directory
(``$NNI_CONFIG_DIR``, or ``<sys.prefix>/nni`` inside a virtual environment).
"""

from __future__ import annotations

from ..nni_names import TUNER_CLASS, builtin_tuners


def register_all() -> list[str]:
    """Register (or refresh) every strategy's NNI tuner name; returns the names."""
    import nni
    from nni.tools.package_utils.common import AlgoMeta
    from nni.tools.package_utils.config_manager import register_algo_meta

    tuners = builtin_tuners()
    for name, strategy in tuners.items():
        register_algo_meta(AlgoMeta(
            name=name, alias=None, class_name=TUNER_CLASS, accept_class_args=True,
            class_args={"strategy": strategy}, validator_class_name=None, algo_type="tuner",
            is_advisor=False, is_builtin=False, nni_version=nni.__version__,
        ))
    return list(tuners)


def unregister_all() -> list[str]:
    """Remove our names from NNI's registry; returns the names that were registered."""
    from nni.tools.package_utils.config_manager import get_algo_meta, unregister_algo_meta

    removed = []
    for name in builtin_tuners():
        if get_algo_meta(name) is not None:
            unregister_algo_meta(name)
            removed.append(name)
    return removed


def registered() -> dict[str, bool]:
    from nni.tools.package_utils.config_manager import get_algo_meta

    return {name: get_algo_meta(name) is not None for name in builtin_tuners()}
