import json
import shlex
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent


def toy_config(tmp_path: Path, *, trial_args: dict | None = None, tuner: dict | None = None, **top) -> Path:
    """An NNI config for the toy plugins, written under ``tmp_path``; keyword overrides top-level keys."""
    (tmp_path / "space.json").write_text(json.dumps({
        f"layer{i}": {"_type": "choice", "_value": [0, 1, 2, 3]} for i in range(3)}))
    args = json.dumps(trial_args if trial_args is not None else {"sleep": 0.2})
    config = {
        "experimentName": "toy",
        "searchSpaceFile": "space.json",
        "trialCommand": f"python3 -m nas_core.trial --evaluator tests.toy_plugins:ToyEvaluator --args {shlex.quote(args)}",
        "trialCodeDirectory": str(REPO),
        "trialConcurrency": 2,
        "maxTrialNumber": 6,
        "experimentWorkingDirectory": str(tmp_path / "experiments"),
        "tuner": tuner or {
            "className": "nas_core.nni_adapter.tuner.StrategyTuner",
            "codeDirectory": str(REPO),
            "classArgs": {"strategy": "tests.toy_plugins:BatchStrategy",
                          "strategy_args": {"batch": 2, "batches": 2}, "seed": 0},
        },
        "trainingService": {"platform": "local"},
    }
    config.update(top)
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture
def make_toy_config(tmp_path):
    return lambda **kw: toy_config(tmp_path, **kw)
