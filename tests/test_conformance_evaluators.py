"""The evaluator conformance suite over every registered evaluator, plus the test plugins' evaluators.

Evaluators train things, so each registered one needs a cheap configuration here: an entry in
:data:`CHEAP_CONFIGS` (its arguments, and whether the suite is slow with them). A registered
evaluator without an entry fails ``test_every_registered_evaluator_has_a_cheap_configuration``
by name, rather than being skipped or run at full cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from nas_core.registry import EVALUATORS
from nas_core.testing import EvaluatorConformance


@dataclass(frozen=True)
class Cheap:
    """How to run the suite on one registered evaluator."""

    args: dict[str, Any] = field(default_factory=dict)
    slow: bool = False
    """True when the suite takes more than a few seconds with these arguments (imports torch, trains)."""


CHEAP_CONFIGS: dict[str, Cheap] = {
    # digits, one epoch on 5 images per class, 50 validation images: ~0.2 s per candidate after torch's import
    "binary_width": Cheap({"dataset": "digits", "epochs": 1, "subset_per_class": 5, "val_size": 50,
                           "batch_size": 32, "threads": 1}, slow=True),
    # table lookups: the defaults are cheap (the table loads once per process, ~0.5 s)
    "nasbench201": Cheap(),
}


def _conformance_class(name: str, cheap: Cheap) -> type[EvaluatorConformance]:
    attributes: dict[str, Any] = {"evaluator_path": name, "evaluator_args": cheap.args, "__module__": __name__}
    if cheap.slow:
        attributes["pytestmark"] = [pytest.mark.slow]
    return type(f"TestEvaluatorConformance_{name}", (EvaluatorConformance,), attributes)


for _name in EVALUATORS.names():
    if _name in CHEAP_CONFIGS:
        globals()[f"TestEvaluatorConformance_{_name}"] = _conformance_class(_name, CHEAP_CONFIGS[_name])


@pytest.mark.parametrize("name", EVALUATORS.names())
def test_every_registered_evaluator_has_a_cheap_configuration(name: str) -> None:
    assert name in CHEAP_CONFIGS, (
        f"evaluator {name!r} is registered but has no entry in CHEAP_CONFIGS of {__name__}: add one with "
        "arguments that score a candidate in well under a second, so the conformance suite runs on it"
    )


class TestEvaluatorConformanceToy(EvaluatorConformance):
    """The tests' own analytic evaluator, reached by dotted path; sum 0 is its unscoreable candidate."""

    evaluator_path = "tests.toy_plugins:ToyEvaluator"
    evaluator_args = {"fail_when_sum": 0}
    candidates = 4
    failing_candidate = {"layer0": 0, "layer1": 0, "layer2": 0}
