"""Median best fitness of strategies on the digits search at equal budgets (in process, no NNI).

    python bench/compare_strategies.py --budget 20 --seeds 0 1 2 --out bench/results/compare_strategies.json

The paper's space and fitness (VGG-small at width scale 1/8, 10 epochs, λ = 4). Each strategy
gets the same number of trained candidates; a result is the best fitness found.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from nas_core import EVALUATORS, STRATEGIES, run_search

STRATEGY_ARGS = {
    "evolution": {"population_size": 8, "generations": 1000},
    "regularized_evolution": {"population_size": 8, "sample_size": 4},
    "random": {},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGY_ARGS))
    parser.add_argument("--out", default="bench/results/compare_strategies.json")
    args = parser.parse_args()
    evaluator = EVALUATORS.build("binary_width", {"epochs": args.epochs, "threads": 2})
    rows = []
    for name in args.strategies:
        for seed in args.seeds:
            started = time.perf_counter()
            strategy = STRATEGIES.build(name, STRATEGY_ARGS.get(name, {}), space=evaluator.search_space(), seed=seed)
            driver = run_search(strategy, evaluator, budget=args.budget, progress=False)
            best = driver.best()[0]
            rows.append({"strategy": name, "seed": seed, "best_fitness": best.result.fitness,
                         "best_arch": best.arch, "seconds": time.perf_counter() - started})
            print(json.dumps(rows[-1]), flush=True)
    table = {}
    for name in args.strategies:
        values = [r["best_fitness"] for r in rows if r["strategy"] == name]
        table[name] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
    print(f"\nbudget {args.budget} trained candidates, seeds {args.seeds}")
    print(f"{'strategy':<24}{'median':>8}{'min':>8}{'max':>8}")
    for name, stats in table.items():
        print(f"{name:<24}{stats['median']:>8.2f}{stats['min']:>8.2f}{stats['max']:>8.2f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"budget": args.budget, "seeds": args.seeds, "epochs": args.epochs,
                               "rows": rows, "summary": table}, indent=1))


if __name__ == "__main__":
    main()
