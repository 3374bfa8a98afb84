"""bench/strategy_overhead.py: the measuring function B6 imports runs every strategy to its budget."""

from __future__ import annotations

import pytest

from bench.strategy_overhead import STRATEGY_NAMES, cell_space, measure


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_measure_scores_the_budget_and_reports_per_candidate_and_per_ask(name: str) -> None:
    row = measure(name, 40, seed=1)
    assert row["strategy"] == name and row["candidates"] == 40 and row["asks"] >= 40
    assert {"strategy_ms", "loop_ms", "strategy_ms_per_ask"} <= set(row)
    assert cell_space().size == 5 ** 6
