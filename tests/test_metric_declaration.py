"""One reader of a saved metric declaration: the driver (at a search's start or resume) and the
results loader (at report time) accept and refuse exactly the same evaluator descriptions."""

import pytest

from nas_core import SearchDriver
from nas_core.evaluator import Metric, declaration_of
from nas_core.results import ResultsError, load_results
from nas_core.state_io import write_json_atomic
from nas_core.strategy import StrategyError
from strategies.random_search import RandomSearch
from tests.toy_plugins import toy_space

METRICS = [Metric("accuracy", "maximize").to_json(), Metric("flops", "minimize").to_json()]

ACCEPTED = [
    {"metrics": METRICS, "pareto_metrics": ["accuracy", "flops"]},
    {"metrics": METRICS, "pareto_metrics": None},
    {"metrics": METRICS},
    {"metrics": []},
]

REFUSED = [
    {"metrics": METRICS, "pareto_metrics": []},
    {"metrics": METRICS, "pareto_metrics": ["accuracy"]},
    {"metrics": METRICS, "pareto_metrics": ["accuracy", "accuracy"]},
    {"metrics": METRICS, "pareto_metrics": ["accuracy", "latency"]},
    {"metrics": METRICS, "pareto_metrics": "accuracy,flops"},
    {"metrics": [{"name": "accuracy", "direction": "upwards"}]},
    {"metrics": [{"direction": "maximize"}]},
]


def _driver_accepts(description):
    driver = SearchDriver(RandomSearch(space=toy_space(), seed=0))
    try:
        driver.set_evaluator_description(description)
    except StrategyError:
        return False
    return True


def _results_accept(description, tmp_path):
    state = SearchDriver(RandomSearch(space=toy_space(), seed=0)).state_dict()
    path = tmp_path / "state.json"
    write_json_atomic(path, {"driver": state, "evaluator": description})
    try:
        results = load_results(path)
        _ = results.metrics
    except ResultsError:
        return False
    return True


@pytest.mark.parametrize("description", ACCEPTED)
def test_a_well_formed_declaration_is_accepted_by_both_readers(description, tmp_path):
    metrics, pair = declaration_of(description)
    assert [m.name for m in metrics] == [m["name"] for m in description["metrics"]]
    assert pair == (None if description.get("pareto_metrics") is None else tuple(description["pareto_metrics"]))
    assert _driver_accepts(description)
    assert _results_accept(description, tmp_path)


@pytest.mark.parametrize("description", REFUSED)
def test_a_malformed_declaration_is_refused_by_both_readers(description, tmp_path):
    with pytest.raises(ValueError):
        declaration_of(description)
    assert not _driver_accepts(description)
    assert not _results_accept(description, tmp_path)


def test_numpy_scalars_are_metrics_and_bools_are_not() -> None:
    import numpy as np

    from nas_core.evaluator import CandidateFailed, check_metrics

    assert check_metrics({"params": np.int64(12), "acc": np.float32(0.5)}) == {"params": 12.0, "acc": 0.5}
    for bad in (True, np.bool_(True)):
        with pytest.raises(CandidateFailed, match="metric 'm' is not a number"):
            check_metrics({"m": bad})


def test_an_atomically_written_file_gets_the_umasks_mode_not_a_private_one(tmp_path) -> None:
    import os
    import stat

    path = tmp_path / "best.json"
    write_json_atomic(path, {"a": 1})
    old = os.umask(0o022)
    os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~old
