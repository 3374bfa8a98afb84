import pytest

from nas_core.registry import EVALUATORS, SPACES, STRATEGIES, PluginArgumentError, Registry, RegistryError
from tests.toy_plugins import BatchStrategy, ToyEvaluator, toy_space


def test_register_list_resolve_and_refuse_duplicates():
    reg = Registry("widget")
    reg.register("batch", BatchStrategy)
    reg.register("lazy", "tests.toy_plugins:ToyEvaluator")
    assert reg.names() == ["batch", "lazy"]
    assert reg.resolve("lazy") is ToyEvaluator
    with pytest.raises(RegistryError, match="'batch' is already registered"):
        reg.register("batch", ToyEvaluator)
    with pytest.raises(RegistryError, match="unknown widget 'nope'; registered: batch, lazy"):
        reg.resolve("nope")


def test_dotted_paths_resolve_without_registration():
    reg = Registry("widget")
    assert reg.resolve("tests.toy_plugins:BatchStrategy") is BatchStrategy
    assert reg.resolve("tests.toy_plugins.BatchStrategy") is BatchStrategy
    with pytest.raises(RegistryError, match="cannot import module 'no_such_pkg.mod'"):
        reg.resolve("no_such_pkg.mod:Thing")
    with pytest.raises(RegistryError, match="has no attribute 'Nope'"):
        reg.resolve("tests.toy_plugins:Nope")


def test_build_names_unknown_and_invalid_arguments():
    reg = Registry("strategy")
    reg.register("batch", BatchStrategy)
    space = toy_space()
    built = reg.build("batch", {"batch": 2}, space=space, seed=1)
    assert isinstance(built, BatchStrategy) and built.batch == 2
    with pytest.raises(PluginArgumentError, match="unknown argument 'bacth' \\(accepted: batch, batches\\)"):
        reg.build("batch", {"bacth": 2}, space=space, seed=1)
    with pytest.raises(PluginArgumentError, match="batch must be >= 1, got 0"):
        reg.build("batch", {"batch": 0}, space=space, seed=1)
    with pytest.raises(PluginArgumentError, match="'seed' is set by the framework"):
        reg.build("batch", {"seed": 3}, space=space, seed=1)


def test_builtin_registries_list_names():
    assert {"evolution", "random", "regularized_evolution", "nsga2"} <= set(STRATEGIES.names())
    assert isinstance(SPACES.names(), list)
    assert isinstance(EVALUATORS.names(), list)


def test_strategy_constructor_is_keyword_only():
    with pytest.raises(TypeError):
        BatchStrategy(toy_space())  # type: ignore[misc]


def test_the_package_loads_its_public_names_on_first_use_only():
    import subprocess
    import sys

    probe = ("import sys, nas_core.trial; "
             "heavy = [m for m in ('nas_core.driver', 'nas_core.registry', 'torch', 'nni') if m in sys.modules]; "
             "assert not heavy, heavy; "
             "import nas_core; assert 'run_search' in dir(nas_core) and nas_core.WAIT is not None")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    import nas_core

    with pytest.raises(AttributeError, match="no_such_name"):
        nas_core.no_such_name  # noqa: B018
