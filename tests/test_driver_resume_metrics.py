"""A strategy that takes its objectives from the evaluator's declaration resumes: the driver declares
the saved metrics before the strategy reloads its state."""

from nas_core import SearchDriver, TrialResult
from nas_core.evaluator import Metric
from nas_core.registry import STRATEGIES
from tests.toy_plugins import toy_space

DESCRIPTION = {
    "name": "toy",
    "metrics": [Metric("accuracy", "maximize").to_json(), Metric("flops", "minimize").to_json()],
    "pareto_metrics": ["accuracy", "flops"],
}


def _driver():
    strategy = STRATEGIES.build("optuna", {"sampler": "NSGAIISampler", "objectives": "pareto"},
                                space=toy_space(), seed=0)
    driver = SearchDriver(strategy)
    driver.set_evaluator_description(DESCRIPTION)
    return driver


def test_a_pareto_objective_strategy_resumes_from_its_saved_state():
    driver = _driver()
    for trial in range(3):
        arch = driver.ask(trial)
        total = sum(arch.values())
        driver.tell(trial, TrialResult.succeeded({"accuracy": total, "flops": 10 - total}, total))
    driver.ask(3)  # one in flight at the save, too
    state = driver.state_dict()

    resumed = SearchDriver(STRATEGIES.build("optuna", {"sampler": "NSGAIISampler", "objectives": "pareto"},
                                            space=toy_space(), seed=0))
    resumed.load_state_dict(state)
    assert resumed.pareto_metrics == ("accuracy", "flops")
    assert [r.arch for r in resumed.records] == [r.arch for r in driver.records]
    assert resumed.ask(4) == driver.ask(4)  # the same next proposal as the uninterrupted search
