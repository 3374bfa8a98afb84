import inspect

import pytest

from nas_core import FINISHED, Strategy
from nas_core.registry import (
    EVALUATORS, SPACES, STRATEGIES, PluginArgumentError, Registry, RegistryError, build_plugin,
)
from nas_core.testing import StrategyConformance
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


class InheritsTheBaseConstructor(Strategy):
    """A strategy with no constructor of its own: the framework's base constructor is all it has."""

    def _ask(self, trial_id):
        return FINISHED

    def _tell(self, trial_id, arch, result):
        pass

    def _state_dict(self):
        return {}

    def _load_state_dict(self, state):
        pass


class PositionalBatch(BatchStrategy):
    """A plugin breaking the keyword-only rule."""

    def __init__(self, space, seed=0, batch=3, batches=4):
        super().__init__(space=space, seed=seed, batch=batch, batches=batches)


def test_the_strategy_base_constructor_is_keyword_only():
    kinds = {p.name: p.kind for p in inspect.signature(Strategy.__init__).parameters.values() if p.name != "self"}
    assert kinds == {"space": inspect.Parameter.KEYWORD_ONLY, "seed": inspect.Parameter.KEYWORD_ONLY}
    with pytest.raises(TypeError, match="positional argument"):
        InheritsTheBaseConstructor(toy_space(), 0)  # type: ignore[misc]
    assert InheritsTheBaseConstructor(space=toy_space(), seed=3).seed == 3


def test_the_registry_hands_plugins_their_arguments_by_keyword():
    reg = Registry("strategy")
    reg.register("positional_only", lambda space, seed, /: None)
    with pytest.raises(PluginArgumentError, match="strategy 'positional_only': .*positional-only"):
        reg.build("positional_only", {}, space=toy_space(), seed=0)
    with pytest.raises(PluginArgumentError, match="unknown argument 'space'"):
        build_plugin(lambda space, /: None, {"space": 1}, label="strategy")


def test_the_conformance_suite_refuses_a_positional_constructor():
    suite = type("Suite", (StrategyConformance,), {"strategy_path": f"{__name__}:PositionalBatch"})()
    with pytest.raises(AssertionError, match="PositionalBatch argument 'space' must be keyword-only"):
        suite.test_declares_capabilities()


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


def test_an_evaluator_without_its_own_init_refuses_arguments() -> None:
    """Evaluator.__new__ takes *args, **kwargs (to keep them for describe()); that must not make a
    subclass without an __init__ of its own look as if it took any keyword."""
    from nas_core.evaluator import Evaluator
    from nas_core.registry import accepted_arguments

    class Fixed(Evaluator):
        def evaluate(self, arch, reporter=None):
            return {}

    class Keyworded(Evaluator):
        def __init__(self, *, epochs: int = 1) -> None:
            self.epochs = epochs

        def evaluate(self, arch, reporter=None):
            return {}

    assert accepted_arguments(Fixed) == ([], False)
    assert accepted_arguments(Keyworded) == (["epochs"], False)
    with pytest.raises(PluginArgumentError, match="unknown argument 'epochs_typo' \\(accepted: none\\)"):
        build_plugin(Fixed, {"epochs_typo": 5}, label="evaluator 'fixed'")
    with pytest.raises(PluginArgumentError, match="unknown argument 'self'"):
        build_plugin(Keyworded, {"self": 5}, label="evaluator 'kw'")


def test_a_number_argument_too_large_for_a_float_is_refused_by_name() -> None:
    from nas_core.arguments import check_number

    with pytest.raises(ValueError, match="^lr must be a finite number, got 1000"):
        check_number("lr", 10**400)
    assert check_number("lr", 3) == 3.0


def test_a_class_whose_own_new_takes_the_arguments_is_read_from_it() -> None:
    from typing import NamedTuple

    from nas_core.registry import accepted_arguments

    class Point(NamedTuple):
        x: int = 0
        y: int = 0

    assert accepted_arguments(Point) == (["x", "y"], False)
