"""B6: search strategies measured against ground truth, on NAS-Bench-201's tables.

Every query is a table lookup of one training seed (``evaluators.nasbench201``), so a search of
200 candidates takes seconds and the quality of a strategy is measured, not guessed: the regret
after N candidates is the best mean validation accuracy of the table minus the mean (over the
table's training seeds) of the incumbent, the candidate of best *observed* accuracy so far.

Strategies (``--strategies``, default all):

* ours, through ``run_search``: ``local_search``, ``evolution`` (population 10),
  ``regularized_evolution`` (population 20, sample 5), ``nsga2`` (val_acc against latency, the
  evaluator's declared pair; population 20, children pre-screened 4 to 1), ``random``;
* Optuna's samplers through our ``optuna`` strategy: ``optuna_tpe``, ``optuna_gp``,
  ``optuna_cmaes``, ``optuna_nsga2`` (population 20), ``optuna_random`` (defaults otherwise);
* NNI's own tuners, driven in process as NNI's dispatcher drives them (one trial at a time,
  ``generate_multiple_parameters`` then ``receive_trial_result``/``trial_end``): ``nni_tpe``,
  ``nni_evolution`` (population 20), ``nni_random``, ``nni_anneal``. NNI has no dedup: an
  architecture proposed twice is a second trial and counts against the budget.

N counts distinct architectures evaluated for ours and Optuna's (the driver answers repeats
from its store), trials for NNI's. ``--overhead`` also measures each strategy's own time per
ask+tell (scoring excluded) over candidates 900-1,000 of one search. ``--pareto`` adds the
multi-objective check: hypervolume of val_acc against latency after 200 candidates on CIFAR-10
(``--pareto-strategies``: ``nsga2`` with population 6, sized for the budget, children pre-screened
4 to 1; ``nsga2_plain``, the same without pre-screening nor duplicate avoidance (round 2's setting);
at population 20; Optuna's NSGA-II at 20 and 6, NSGA-III at 20, multi-objective TPE).

    python bench/b6_ground_truth.py                       # the full benchmark (tens of minutes)
    python bench/b6_ground_truth.py --seeds 2 --budgets 10 20 --strategies local_search optuna_tpe
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import random
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import drive_nni_tuner, header, pyplot, save_figure, write_csv, write_json  # noqa: E402
from nas_core.registry import STRATEGIES  # noqa: E402
from nas_core.runner import evaluator_score, run_search  # noqa: E402
from nas_core.strategy import TrialResult  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "b6_ground_truth"

OURS: dict[str, tuple[str, dict[str, Any]]] = {
    "local_search": ("local_search", {}),
    "evolution": ("evolution", {"population_size": 10, "generations": 20}),
    "regularized_evolution": ("regularized_evolution", {"population_size": 20, "sample_size": 5}),
    "nsga2": ("nsga2", {"population_size": 20, "generations": 10, "objective_max": "val_acc",
                        "objective_min": "latency", "prescreen": 4}),
    "random": ("random", {}),
}
OPTUNA: dict[str, tuple[str, dict[str, Any]]] = {
    "optuna_tpe": ("optuna", {"sampler": "TPESampler"}),
    "optuna_gp": ("optuna", {"sampler": "GPSampler"}),
    "optuna_cmaes": ("optuna", {"sampler": "CmaEsSampler"}),
    "optuna_nsga2": ("optuna", {"sampler": "NSGAIISampler", "sampler_args": {"population_size": 20}}),
    "optuna_random": ("optuna", {"sampler": "RandomSampler"}),
}
NNI: dict[str, tuple[str, dict[str, Any]]] = {
    "nni_tpe": ("TPE", {}),
    "nni_evolution": ("Evolution", {"population_size": 20}),
    "nni_random": ("Random", {}),
    "nni_anneal": ("Anneal", {}),
}
ALL = (*OURS, *OPTUNA, *NNI)
PARETO: dict[str, dict[str, Any]] = {
    # nsga2's population sized for the budget of 200: 6 (about 33 generations) was the best of 4-40 on
    # seeds 0-49, and children pre-screened 4 to 1 by its model the best of 1-16 on seeds 0-99
    # (docs/benchmarks.md, B6); the former settings and Optuna's NSGA-II at 6 are kept to compare.
    "nsga2": {"population_size": 6, "generations": 10, "objective_max": "val_acc", "objective_min": "latency",
              "prescreen": 4},
    "nsga2_plain": {"population_size": 6, "generations": 10, "objective_max": "val_acc", "objective_min": "latency",
                    "unseen_children": False},
    "nsga2_pop20": {"population_size": 20, "generations": 10, "objective_max": "val_acc", "objective_min": "latency"},
    "optuna_nsga2": {"sampler": "NSGAIISampler", "sampler_args": {"population_size": 20}, "objectives": "pareto"},
    "optuna_nsga2_pop6": {"sampler": "NSGAIISampler", "sampler_args": {"population_size": 6}, "objectives": "pareto"},
    "optuna_nsga3": {"sampler": "NSGAIIISampler", "sampler_args": {"population_size": 20}, "objectives": "pareto"},
    "optuna_tpe": {"sampler": "TPESampler", "objectives": "pareto"},
}


def _strategy(name: str, seed: int, budget: int, space: Any, *, pareto: bool = False) -> Any:
    if pareto:
        registered = "nsga2" if name.startswith("nsga2") else "optuna"
        args = dict(PARETO[name])
        if registered == "nsga2":
            args["generations"] = budget  # never the limit: the run ends at N architectures evaluated
    else:
        registered, args = {**OURS, **OPTUNA}[name]
        args = json.loads(json.dumps(args))
        if "generations" in args:  # never the limit: the run ends at N architectures evaluated
            args["generations"] = budget
    strategy = STRATEGIES.build(registered, args, space=space, seed=seed)
    declare = getattr(strategy, "declare_metrics", None)
    if declare is not None:
        from evaluators.nasbench201 import NasBench201Evaluator

        declare(NasBench201Evaluator.metrics, NasBench201Evaluator.pareto_metrics)
    return strategy


def _evaluated(name: str, dataset: str, seed: int, budget: int, *, pareto: bool = False) -> list[dict[str, Any]]:
    """The candidates one search evaluated, in order: row key and observed metrics (None if failed)."""
    from evaluators.nasbench201 import NasBench201Evaluator, row_key

    evaluator = NasBench201Evaluator(dataset=dataset, seed=seed)
    space = evaluator.search_space()
    if name in NNI:
        return _run_nni(name, seed, budget, evaluator)
    driver = run_search(_strategy(name, seed, budget, space, pareto=pareto), evaluator, budget=budget, progress=False)
    return [
        {"row": row_key(space, r.arch), "metrics": dict(r.result.metrics) if r.result.ok else None}
        for r in driver.records if r.source == "trained"
    ]


def _run_nni(name: str, seed: int, budget: int, evaluator: Any) -> list[dict[str, Any]]:
    from nni.tools.package_utils.tuner_factory import create_builtin_class_instance

    from bench.b1_sample_efficiency import seeded_nni
    from evaluators.nasbench201 import row_key
    from nas_core.nni_adapter.experiment import quiet_nni_logging

    quiet_nni_logging()
    builtin, extra = NNI[name]
    args: dict[str, Any] = {"optimize_mode": "maximize", **extra}
    if builtin in ("TPE", "Random"):  # Anneal (hyperopt) and Evolution draw from generators seeded below
        args["seed"] = seed
    space = evaluator.search_space()
    score = evaluator_score(evaluator)
    tuner = create_builtin_class_instance(builtin, args, "tuners")
    with seeded_nni(seed):  # seeds random and numpy's global generators, and Evolution's own
        tuner.update_search_space(space.to_nni())
    out: list[dict[str, Any]] = []

    def run_trial(params: Any) -> dict[str, float] | None:
        arch = space.validate(params)
        result = score(arch)
        out.append({"row": row_key(space, arch), "metrics": dict(result.metrics) if result.ok else None})
        return {"default": result.fitness, **result.metrics} if result.ok else None

    drive_nni_tuner(tuner, budget, run_trial)
    return out


def regrets(evaluated: Sequence[dict[str, Any]], means: dict[str, float], budgets: Sequence[int]) -> dict[int, float]:
    """Regret of the incumbent (best observed val_acc) after each budget (the last one if the run stopped short)."""
    top = max(means.values())
    out: dict[int, float] = {}
    best_seen, incumbent = -math.inf, None
    for n, candidate in enumerate(evaluated, start=1):
        metrics = candidate["metrics"]
        if metrics is not None and metrics["val_acc"] > best_seen:
            best_seen, incumbent = metrics["val_acc"], candidate["row"]
        if n in budgets and incumbent is not None:
            out[n] = top - means[incumbent]
    for b in budgets:
        if b not in out and incumbent is not None and len(evaluated) < b:
            out[b] = top - means[incumbent]
    return out


def hypervolume(points: Sequence[tuple[float, float]], reference: tuple[float, float]) -> float:
    """Area dominated by (accuracy ↑, latency ↓) points, bounded by ``reference`` (worst accuracy, worst latency)."""
    ref_acc, ref_lat = reference
    usable = sorted((lat, acc) for acc, lat in points if acc > ref_acc and lat < ref_lat)
    area, best_acc = 0.0, ref_acc
    for i, (lat, acc) in enumerate(usable):  # sweep latency upwards; area of each new accuracy level
        next_lat = usable[i + 1][0] if i + 1 < len(usable) else ref_lat
        best_acc = max(best_acc, acc)
        area += (next_lat - lat) * (best_acc - ref_acc)
    return area


def _job(job: tuple[str, str, int, int, bool]) -> dict[str, Any]:
    name, dataset, seed, budget, pareto = job
    started = time.perf_counter()
    evaluated = _evaluated(name, dataset, seed, budget, pareto=pareto)
    return {"strategy": name, "dataset": dataset, "seed": seed, "pareto": pareto, "evaluated": evaluated,
            "seconds": time.perf_counter() - started}


def overhead(name: str, candidates: int = 1000, window: int = 100) -> float:
    """Mean milliseconds per ask+tell of strategy ``name`` over candidates ``candidates-window``..``candidates``."""
    from evaluators.nasbench201 import NasBench201Evaluator

    evaluator = NasBench201Evaluator(dataset="cifar10", seed=0)
    strategy = _strategy(name, 0, candidates, evaluator.search_space())
    timings: list[tuple[int, float]] = []
    ask, tell = strategy.ask, strategy.tell
    counter = {"told": 0}

    def timed_ask(trial_id: int) -> Any:
        started = time.perf_counter()
        answer = ask(trial_id)
        timings.append((counter["told"], time.perf_counter() - started))
        return answer

    def timed_tell(trial_id: int, arch: Any, result: TrialResult) -> None:
        started = time.perf_counter()
        tell(trial_id, arch, result)
        counter["told"] += 1
        timings.append((counter["told"], time.perf_counter() - started))

    strategy.ask, strategy.tell = timed_ask, timed_tell  # type: ignore[method-assign]
    run_search(strategy, evaluator, budget=candidates, progress=False)
    total = sum(seconds for told, seconds in timings if candidates - window < told <= candidates)
    return 1000.0 * total / window


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["cifar10", "cifar100"])
    parser.add_argument("--strategies", nargs="+", default=list(ALL), choices=ALL)
    parser.add_argument("--seeds", type=int, default=50, help="seeds per strategy (first-seed onwards)")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="first seed (e.g. 50: seeds not used while choosing a strategy's defaults)")
    parser.add_argument("--fewer-seeds", nargs="*", default=[], metavar="NAME=K",
                        help="fewer seeds for slow strategies, e.g. optuna_gp=10")
    parser.add_argument("--budgets", nargs="+", type=int, default=[25, 50, 100, 200])
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--overhead", nargs="*", default=None, metavar="NAME",
                        help="also measure ms per ask+tell at 1,000 candidates for these (default: ours)")
    parser.add_argument("--pareto-seeds", type=int, default=0, help="seeds of the multi-objective check (0: skip)")
    parser.add_argument("--pareto-strategies", nargs="+", default=list(PARETO), choices=list(PARETO),
                        help="strategies of the multi-objective check (default all)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--combine", nargs="+", type=Path, metavar="DIR",
                        help="run nothing: merge the results of earlier runs (their --out folders) into one "
                             "table (b6_table.md), CSV and plot in --out")
    args = parser.parse_args(argv)
    if args.combine:
        return combine(args.combine, args.out)
    if args.seeds < 1 or args.first_seed < 0 or args.jobs < 1 or any(b < 1 for b in args.budgets):
        parser.error("--seeds, --jobs and every budget must be positive integers")
    fewer: dict[str, int] = {}
    for item in args.fewer_seeds:
        name, _, count = item.partition("=")
        if name not in ALL or not count.isdigit() or int(count) < 1:
            parser.error(f"--fewer-seeds {item!r}: expected NAME=K with NAME a strategy and K >= 1")
        fewer[name] = int(count)

    from evaluators.nasbench201 import table_means

    budget = max(args.budgets)
    jobs = [(name, dataset, seed, budget, False)
            for name in args.strategies for dataset in args.datasets for seed in range(args.first_seed, args.first_seed + fewer.get(name, args.seeds))]
    jobs += [(name, "cifar10", seed, 200, True) for name in args.pareto_strategies
             for seed in range(args.first_seed, args.first_seed + args.pareto_seeds)]
    with multiprocessing.Pool(args.jobs) as pool:
        runs = pool.map(_job, jobs, chunksize=1)

    rows, table = [], {}
    for dataset in args.datasets:
        means = table_means(dataset)
        for name in args.strategies:
            mine = [r for r in runs if r["strategy"] == name and r["dataset"] == dataset and not r["pareto"]]
            per_seed = [regrets(r["evaluated"], means, args.budgets) for r in mine]
            for b in args.budgets:
                values = [p[b] for p in per_seed if b in p]
                mean = statistics.fmean(values)
                sem = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
                rows.append({"dataset": dataset, "strategy": name, "budget": b, "seeds": len(values),
                             "mean_regret": mean, "sem": sem,
                             "seconds_per_run": statistics.fmean(r["seconds"] for r in mine)})
                table[(dataset, name, b)] = (mean, sem, len(values))

    pareto_rows = []
    if args.pareto_seeds:
        acc, lat = table_means("cifar10", "val_acc"), table_means("cifar10", "latency")
        reference = (min(acc.values()), max(lat.values()))
        for name in args.pareto_strategies:
            volumes = []
            for r in (r for r in runs if r["pareto"] and r["strategy"] == name):
                points = [(acc[c["row"]], lat[c["row"]]) for c in r["evaluated"] if c["metrics"] is not None]
                volumes.append(hypervolume(points, reference))
            pareto_rows.append({"strategy": name, "seeds": len(volumes), "hypervolume": statistics.fmean(volumes),
                                "sem": statistics.stdev(volumes) / math.sqrt(len(volumes)) if len(volumes) > 1 else 0.0})

    overheads = {}
    if args.overhead is not None:
        for name in args.overhead or list(OURS):
            overheads[name] = overhead(name)

    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "b6_ground_truth.csv", rows)
    write_json(args.out / "b6_ground_truth.json", {
        **header("b6_ground_truth", __file__, argv, args), "rows": rows, "pareto": pareto_rows,
        "pareto_reference": "cifar10 table: worst mean val_acc, worst latency", "overhead_ms": overheads,
        "runs": [{k: v for k, v in r.items() if k != "evaluated"} for r in runs],
    })
    _plot(args, table, args.out / "b6_ground_truth.png")
    for dataset in args.datasets:
        print(f"\n{dataset}: mean regret ± s.e. (seeds)")
        print("strategy".ljust(24) + "".join(f"N={b}".rjust(22) for b in args.budgets))
        for name in args.strategies:
            cells = [table.get((dataset, name, b)) for b in args.budgets]
            print(name.ljust(24) + "".join(
                (f"{c[0]:.3f} ± {c[1]:.3f} ({c[2]})" if c else "-").rjust(22) for c in cells))
    for row in pareto_rows:
        print(f"hypervolume {row['strategy']}: {row['hypervolume']:.6f} ± {row['sem']:.6f} ({row['seeds']} seeds)")
    for name, ms in overheads.items():
        print(f"overhead {name}: {ms:.3f} ms per ask+tell at 1,000 candidates")
    return 0


def combine(folders: Sequence[Path], out: Path) -> int:
    """One markdown table, CSV and plot from the JSON of several runs (strategies in the order found)."""
    rows: list[dict[str, Any]] = []
    for folder in folders:
        data = json.loads((folder / "b6_ground_truth.json").read_text())
        rows += [dict(r, run=str(folder.name), commit=data.get("machine", {}).get("commit")) for r in data["rows"]]
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    strategies = list(dict.fromkeys(r["strategy"] for r in rows))
    budgets = sorted({r["budget"] for r in rows})
    table = {(r["dataset"], r["strategy"], r["budget"]): (r["mean_regret"], r["sem"], r["seeds"]) for r in rows}
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "b6_ground_truth.csv", rows)
    lines = [f"| strategy | {' | '.join(f'{d} N={b}' for d in datasets for b in budgets)} |",
             "|---|" + "---:|" * (len(datasets) * len(budgets))]
    for name in strategies:
        cells = [table.get((d, name, b)) for d in datasets for b in budgets]
        lines.append(f"| {name} | " + " | ".join(f"{c[0]:.3f} ± {c[1]:.3f} ({c[2]})" if c else "–" for c in cells) + " |")
    (out / "b6_table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    _plot(argparse.Namespace(datasets=datasets, strategies=strategies, budgets=budgets), table,
          out / "b6_ground_truth.png")
    return 0


def _plot(args: argparse.Namespace, table: dict[tuple[str, str, int], tuple[float, float, int]], path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(args.datasets), figsize=(6 * len(args.datasets), 4.5), squeeze=False)
    colours = plt.get_cmap("tab20").colors
    for ax, dataset in zip(axes[0], args.datasets):
        for index, name in enumerate(args.strategies):
            points = [(b, *table[(dataset, name, b)][:2]) for b in args.budgets if (dataset, name, b) in table]
            if not points:
                continue
            style = "-" if name in OURS else ("--" if name in OPTUNA else ":")
            xs, ys, es = zip(*points)
            ax.errorbar(xs, ys, yerr=es, linestyle=style, marker="o", markersize=3, capsize=2, label=name,
                        color=colours[index % len(colours)])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("candidates evaluated (N)")
        ax.set_ylabel("mean regret (validation accuracy, points)")
        ax.set_title(f"NAS-Bench-201 {dataset}")
        ax.grid(True, which="both", alpha=0.3)
    handles: dict[str, Any] = {}
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    axes[0][-1].legend(handles.values(), handles.keys(), fontsize=7, loc="upper right")
    save_figure(fig, path)


if __name__ == "__main__":
    random.seed(0)
    raise SystemExit(main())
