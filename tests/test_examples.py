"""Every example: its search space matches its evaluator, and it runs a tiny budget for real."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from nas_core import SPACES
from nas_core.cli import main
from nas_core.nni_adapter import experiment as nni_experiment
from nas_core.nni_adapter import rest
from tests.conftest import REPO
from tests.fakedata import write_fake_cifar10, write_fake_imagefolder
from tests.test_nni_e2e import free_port, run_experiment

EXAMPLES = REPO / "examples"
NNICTL = str(Path(sys.executable).with_name("nnictl"))


def evaluator_args(example: str) -> dict:
    config = yaml.safe_load((EXAMPLES / example / "config.yml").read_text())
    args_file = config["trialCommand"].split("--args", 1)[1].split()[0]
    return yaml.safe_load((EXAMPLES / example / config.get("trialCodeDirectory", ".") / args_file).read_text())


@pytest.mark.parametrize("example", ["digits", "cifar10_vgg_small", "imagenet_resnet18", "custom_strategy"])
def test_checked_in_search_space_is_what_the_space_generates(example):
    config = yaml.safe_load((EXAMPLES / example / "config.yml").read_text())
    checked_in = json.loads((EXAMPLES / example / config["searchSpaceFile"]).read_text())
    backbone = evaluator_args(example).get("backbone", "vgg_small")
    assert checked_in == SPACES.build("binary_width", {"backbone": backbone}).to_nni(), (
        f"examples/{example}: regenerate with `python -m nas_core space-json binary_width "
        f"--args '{{\"backbone\": \"{backbone}\"}}' -o {config['searchSpaceFile']}`")


@pytest.mark.parametrize("example", ["digits", "custom_strategy"])
def test_embedded_data_examples_validate(example, capsys):
    assert main(["validate", str(EXAMPLES / example / "config.yml")]) == 0


@pytest.mark.parametrize("example, path", [("cifar10_vgg_small", "/path/to/cifar10"),
                                           ("imagenet_resnet18", "/path/to/imagenet")])
def test_paper_examples_name_the_data_directory_to_set(example, path, capsys):
    assert main(["validate", str(EXAMPLES / example / "config.yml")]) == 2
    assert f"data_dir '{path}' does not exist" in capsys.readouterr().err


def shrink(example: str, tmp_path: Path, evaluator_overrides: dict, strategy_args: dict, max_trials: int) -> Path:
    """A copy of an example with a tiny budget and CPU-only trials."""
    folder = tmp_path / example
    shutil.copytree(EXAMPLES / example, folder)
    if example == "custom_strategy":
        shutil.copytree(EXAMPLES / "digits", tmp_path / "digits")
    config = yaml.safe_load((folder / "config.yml").read_text())
    args_path = folder / config["trialCommand"].split("--args", 1)[1].split()[0]
    args = {**yaml.safe_load(args_path.read_text()), **evaluator_overrides}
    args_path.write_text(yaml.safe_dump(args))
    config.pop("trialGpuNumber", None)
    config["trainingService"] = {"platform": "local"}
    config["trialConcurrency"] = 2
    config["maxTrialNumber"] = max_trials
    config["experimentWorkingDirectory"] = str(tmp_path / "experiments")
    config["tuner"]["classArgs"]["strategy_args"] = strategy_args
    (folder / "config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder / "config.yml"


@pytest.mark.slow
def test_cifar10_example_runs_on_fake_data(tmp_path):
    fake = write_fake_cifar10(tmp_path / "cifar", train_per_batch=10, test_size=10)
    config = shrink("cifar10_vgg_small", tmp_path, {
        "data_dir": str(fake.root if hasattr(fake, "root") else tmp_path / "cifar"), "width_scale": 0.125,
        "epochs": 1, "supernet_epochs": 1, "batch_size": 8, "val_size": 10, "threads": 1,
        "cache_dir": str(tmp_path / "cache")}, {"population_size": 2, "generations": 1}, 2)
    assert main(["validate", str(config)]) == 0
    outcome, jobs = run_experiment(config)
    assert outcome.status == "DONE", outcome.errors
    assert len(jobs) == 2 and all(job["status"] == "SUCCEEDED" for job in jobs)
    assert len(list((tmp_path / "cache").glob("supernet-*.pt"))) == 1  # trained once for both trials


@pytest.mark.slow
def test_imagenet_example_runs_on_fake_data(tmp_path):
    root = write_fake_imagefolder(tmp_path / "imagenet", classes=("ant", "bee", "cat"), train_per_class=6,
                                  val_per_class=2, size=(40, 40))
    config = shrink("imagenet_resnet18", tmp_path, {
        "data_dir": str(root), "width_scale": 0.125, "image_size": 32, "subset_per_class": 2, "val_size": 3,
        "epochs": 1, "supernet_epochs": 1, "batch_size": 4, "num_workers": 0, "threads": 1,
        "cache_dir": str(tmp_path / "cache")}, {"population_size": 2, "generations": 1}, 2)
    assert main(["validate", str(config)]) == 0
    outcome, jobs = run_experiment(config)
    assert outcome.status == "DONE", outcome.errors
    assert len(jobs) == 2 and all(job["status"] == "SUCCEEDED" for job in jobs)


def nnictl_create(config: Path) -> tuple[str, int]:
    port = free_port()
    nni_experiment.bind_environment("127.0.0.1")
    out = subprocess.run([NNICTL, "create", "--config", str(config), "--port", str(port)], capture_output=True,
                         text=True, timeout=120, env=dict(os.environ))
    assert out.returncode == 0, out.stdout + out.stderr
    match = re.search(r"Experiment ID: (?:\x1b\[\d+m)?([A-Za-z0-9_-]+)", out.stdout + out.stderr)
    assert match, out.stdout + out.stderr
    exp_id = match.group(1)
    return exp_id, port


def wait_done(port: int, timeout: float = 300) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = rest.get(port, "check-status")["status"]
        if status in ("DONE", "ERROR", "STOPPED"):
            return status
        time.sleep(1)
    raise TimeoutError("experiment did not finish")


@pytest.mark.slow
@pytest.mark.parametrize("example", ["digits", "custom_strategy"])
def test_nnictl_create_finishes_done_and_report_writes_the_files(example, tmp_path):
    strategy_args = ({"population_size": 2, "generations": 2} if example == "digits"
                     else {"budget": 3, "start_temperature": 5.0, "cooling": 0.9})
    config = shrink(example, tmp_path, {"epochs": 1}, strategy_args, 6)
    exp_id, port = nnictl_create(config)
    try:
        status = wait_done(port)
        jobs = rest.get(port, "trial-jobs")
    finally:
        subprocess.run([NNICTL, "stop", exp_id], capture_output=True, timeout=120)
    assert status == "DONE"
    assert jobs and all(job["status"] == "SUCCEEDED" for job in jobs)
    out = tmp_path / "report"
    assert main(["report", str(tmp_path / "experiments" / exp_id), "--output", str(out)]) == 0
    assert {"best.json", "trials.csv", "pareto.png", "channels.png", "report.md"} <= {p.name for p in out.iterdir()}
