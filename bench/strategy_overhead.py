"""A strategy's own time per candidate: ask + tell through the in-process driver, scoring excluded.

Issue 14's target is at most 2 ms per ask+tell at 1,000 candidates for every strategy of ours.
:func:`measure` runs one search in process with an instant scorer on a space shaped like
NAS-Bench-201 (6 dimensions x 5 categorical choices), as the in-process runner does (the driver
with its default batch ordering), and reports two figures per candidate trained:

* ``strategy_ms``: time inside the strategy's ``ask`` and ``tell`` (plus the batch-ordering
  policy the driver attaches, which runs inside ``ask`` when a generation is formed);
* ``loop_ms``: the whole ask/tell loop (driver dedup and history included), scoring excluded.

Results carry a made-up ``evaluator_seconds`` so that longest-first ordering has something to
learn. Times are CPU time of this process (``time.process_time``), so that other processes on a
shared machine inflate them less than wall time. Run ``python bench/strategy_overhead.py [--n 1000] [strategy ...]``; benchmark B6 imports
:func:`measure`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nas_core.driver import SearchDriver
from nas_core.evaluator import Metric
from nas_core.registry import STRATEGIES
from nas_core.space import Architecture, Dimension, SearchSpace
from nas_core.strategy import FINISHED, WAIT, TrialResult
from nas_core.testing import analytic_fitness

OPERATIONS = ("none", "skip_connect", "conv_1x1", "conv_3x3", "avg_pool_3x3")
STRATEGY_NAMES = ("random", "evolution", "regularized_evolution", "nsga2", "local_search")
BUDGET_ARGS: dict[str, dict[str, Any]] = {
    "evolution": {"population_size": 10, "generations": 1_000_000},
    "nsga2": {"generations": 1_000_000, "prescreen": 4},
}
"""Arguments used when none are given: generations enough to reach the budget (the defaults,
K x G = 1,600 asks, end before 1,000 new candidates), evolution at issue 14's population 10,
nsga2 with its children pre-screened as in B6 (the model adds to each generation's breeding)."""


def cell_space() -> SearchSpace:
    """6 edges x 5 operations (15,625 architectures), the shape of NAS-Bench-201's cell."""
    return SearchSpace([Dimension(f"edge{i}", OPERATIONS) for i in range(6)])


METRICS = (Metric("accuracy", "maximize"), Metric("flops", "minimize"))
"""What :func:`instant_score` reports, declared to the driver as an evaluator would be
(``evaluator_seconds`` is added by the runners, not declared, as in a real search)."""


def instant_score(space: SearchSpace, arch: Architecture) -> TrialResult:
    """An analytic fitness, a cost metric and a duration that grows with each choice's position."""
    indices = space.encode(arch)
    fitness = analytic_fitness(space, arch)
    cost = float(sum(indices))
    return TrialResult.succeeded({"accuracy": fitness, "flops": cost, "evaluator_seconds": 1.0 + 0.1 * cost},
                                 fitness)


class _Timed:
    """Accumulates the seconds spent in one bound method."""

    def __init__(self, method: Any) -> None:
        self.method = method
        self.seconds = 0.0

    def __call__(self, *args: Any) -> Any:
        started = time.process_time()
        try:
            return self.method(*args)
        finally:
            self.seconds += time.process_time() - started


def measure(strategy_name: str, n: int = 1000, *, strategy_args: Mapping[str, Any] | None = None,
            seed: int = 0, space: SearchSpace | None = None) -> dict[str, Any]:
    """Search until ``n`` candidates were scored (or the strategy finished); milliseconds per candidate."""
    space = space or cell_space()
    args = BUDGET_ARGS.get(strategy_name, {}) if strategy_args is None else strategy_args
    strategy = STRATEGIES.build(strategy_name, dict(args), space=space, seed=seed)
    driver = SearchDriver(strategy)
    driver.set_evaluator_description({"name": "instant", "metrics": [m.to_json() for m in METRICS],
                                      "pareto_metrics": ["accuracy", "flops"]})
    ask, tell = _Timed(strategy.ask), _Timed(strategy.tell)
    strategy.ask, strategy.tell = ask, tell  # type: ignore[method-assign]
    scored = 0
    scoring = 0.0
    started = time.process_time()
    while scored < n:
        answer = driver.ask(scored)
        if answer is FINISHED or answer is WAIT:
            break  # concurrency 1: WAIT with nothing in flight cannot happen for a conforming strategy
        before = time.process_time()
        result = instant_score(space, answer)  # type: ignore[arg-type]
        scoring += time.process_time() - before
        driver.tell(scored, result)
        scored += 1
    loop = time.process_time() - started - scoring
    per = 1000.0 / max(scored, 1)
    asks = len(driver.records)
    return {"strategy": strategy_name, "args": dict(args), "seed": seed, "candidates": scored, "asks": asks,
            "strategy_ms": (ask.seconds + tell.seconds) * per, "loop_ms": loop * per,
            "strategy_ms_per_ask": (ask.seconds + tell.seconds) * 1000.0 / max(asks, 1)}


def main(argv: Sequence[str] | None = None) -> int:
    from bench.common import RESULTS, header, write_json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("strategies", nargs="*", default=list(STRATEGY_NAMES))
    parser.add_argument("--n", type=int, default=1000, help="candidates scored per strategy (default 1000)")
    parser.add_argument("--seeds", type=int, default=3, help="runs per strategy, seeds 0..N-1 (default 3)")
    parser.add_argument("--out", type=Path, default=RESULTS / "strategy_overhead.json")
    args = parser.parse_args(argv)
    rows = [measure(name, args.n, seed=seed) for name in args.strategies for seed in range(args.seeds)]
    print(f"{'strategy':<24}{'seed':>5}{'candidates':>11}{'asks':>8}{'ms/candidate':>14}{'loop ms':>9}{'ms/ask':>8}")
    for row in rows:
        print(f"{row['strategy']:<24}{row['seed']:>5}{row['candidates']:>11}{row['asks']:>8}"
              f"{row['strategy_ms']:>14.3f}{row['loop_ms']:>9.3f}{row['strategy_ms_per_ask']:>8.4f}")
    write_json(args.out, {**header("strategy_overhead", "strategy_overhead.py", argv, args), "rows": rows})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
