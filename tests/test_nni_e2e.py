"""One real NNI experiment end to end: nnictl's manager, our tuner, our trial command."""

import socket

import pytest

from nas_core.nni_adapter import experiment as nni_experiment
from nas_core.nni_adapter import rest
from nas_core.nni_adapter.tuner import state_path_of
from nas_core.results import load_results


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_experiment_reaches_done_with_every_trial_succeeded(make_toy_config):
    # 2 batches of 2 at concurrency 2 cross the barrier once; the strategy finishes before
    # maxTrialNumber (6), so the tuner lowers the budget and NNI must still reach DONE
    config = make_toy_config(tuner=None, maxTrialNumber=6)
    port = free_port()
    exp = nni_experiment.start(config, port=port, host="127.0.0.1")
    try:
        outcome = nni_experiment.wait(exp, poll=1.0, progress=False, timeout=240)
        jobs = rest.get(port, "trial-jobs")
        exported = rest.get(port, "export-data")
    finally:
        exp.stop()
    assert outcome.status == "DONE", outcome.errors
    assert len(jobs) == 4 and all(job["status"] == "SUCCEEDED" for job in jobs)
    assert len(exported) == 4
    results = load_results(state_path_of(outcome.experiment_dir))
    assert [r.source for r in results.records] == ["trained"] * 4
    assert results.best()[0].result.fitness == max(r.result.fitness for r in results.records)
