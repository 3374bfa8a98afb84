"""B5 — the paper's claim on digits: searched widths beat uniform widening (Table 1 layout).

    python bench/b5_paper_claim.py                             # search 64 candidates, retrain 5 seeds × 40 epochs
    python bench/b5_paper_claim.py --budget 4 --population 2 --epochs 1 --retrain-epochs 1 --seeds 0 \\
        --uniform 1 4 --out /tmp/b5 --cache /tmp/b5/cache.json --retrain-dir /tmp/b5/retrain   # smoke

On the digits search with the digits-scaled VGG-small (width scale 1/8, 8×8 inputs):

1. search in process: ``run_search`` with the paper's ``evolution`` (population ``--population``)
   for ``--budget`` trained candidates, ``--epochs`` per candidate, the paper's fitness (λ = 4).
   Evaluations are memoised in ``--cache`` — by default B1's cache, so the same search run by
   B1 (``evolution``, same seed, population and budget) costs nothing here;
2. choose from the search (validation accuracy, search-time training): **Best fitness**;
   **Auto-A**, the most accurate Pareto-front member (accuracy vs FLOPs) with fewer FLOPs than
   Uniform-1×; **Auto-B**, the most accurate front member with FLOPs ≤ half of Uniform-4×;
3. retrain each chosen network and every Uniform-k× (``--uniform``, default 0.5 1 2 3 4) from
   scratch on train+val with ``evaluators.retrain.retrain`` (digits recipe, ``--retrain-epochs``)
   for every seed in ``--seeds``. The data split is the search's (``--evaluator-seed``) for every
   seed, so the seed varies only initialisation and batch order, and the test images are never
   ones the search trained or validated on. Test top-1 is reported as mean ± std over seeds in
   the paper's Table 1 layout (Models, FLOPs, Speedup over full precision, Memory, Top-1);
4. check the claim by the paper's criteria: Auto-A more accurate than Uniform-1× with fewer
   FLOPs; Auto-B more accurate than Uniform-4× with no more than half its FLOPs. Each is printed
   as holds / does not, with the difference of the means, the seeds on which the searched
   network won (paired by seed) and whether the difference exceeds the spread across seeds (the
   larger of the two rows' standard deviations). The looser "Auto-B within 0.5 points of
   Uniform-4×" of earlier versions is reported beside it, not as the verdict.

Retraining checkpoints go to ``--retrain-dir`` (default ``~/.cache/nas_core/bench/b5_retrain/<commit>``,
so that every row of a table is retrained by the code of one commit; a finished retraining is only
re-tested on a rerun). Outputs in ``--out``: ``b5_paper_claim.json``,
``.csv`` (one row per retraining), ``.md`` (the table) and ``.png`` (search Pareto front with the
chosen networks; retrained top-1 against FLOPs).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (RESULTS, WORK, MemoScorer, ResultCache, format_table, header, mean_std, progress_bar, pyplot,
                          save_figure, write_csv, write_json)
from evaluators.paper_report import NetworkSetting, format_count, table_unit
from nas_core import EVALUATORS, STRATEGIES, Record, run_search

STEM = "b5_paper_claim"
DIGITS_CLASSES, DIGITS_CHANNELS = 10, 1
"""The digits data set: 10 classes of 1-channel images (the network setting for computed costs)."""
REL_TOL = 1e-9


def most_accurate(records: Iterable[Record]) -> Record | None:
    """The record of highest search accuracy (ties: fewer FLOPs, then earlier)."""
    pool = [r for r in records if r.result.ok]
    if not pool:
        return None
    return min(pool, key=lambda r: (-r.result.metrics["accuracy"], r.result.metrics["flops"], r.candidate_id))


def choose(driver: Any, u1_flops: float, u4_flops: float) -> dict[str, Record | None]:
    """Best fitness, Auto-A (front, FLOPs < Uniform-1×) and Auto-B (front, FLOPs ≤ Uniform-4× / 2)."""
    front = driver.pareto_front()
    best = driver.best(1)
    return {
        "Best fitness": best[0] if best else None,
        "Auto-A": most_accurate(r for r in front if r.result.metrics["flops"] < u1_flops * (1 - REL_TOL)),
        "Auto-B": most_accurate(r for r in front if r.result.metrics["flops"] <= 0.5 * u4_flops * (1 + REL_TOL)),
    }


def arch_folder(root: Path, arch: dict[str, float], epochs: int, width_scale: float) -> Path:
    """One folder per architecture and retraining length (a checkpoint only resumes its own setting)."""
    key = ",".join(f"{k}={float(v):g}" for k, v in sorted(arch.items())) + f";epochs={epochs};scale={width_scale:g}"
    return root / hashlib.sha1(key.encode()).hexdigest()[:12]


def retrain_all(models: dict[str, dict[str, float]], args: argparse.Namespace, width_scale: float) -> dict[str, Any]:
    """Retrain every distinct architecture once per seed; test accuracies by model label."""
    import torch

    from evaluators.retrain import retrain

    torch.set_num_threads(args.threads)
    def folder_of(arch: dict[str, float]) -> Path:
        return arch_folder(args.retrain_dir, arch, args.retrain_epochs, width_scale)

    distinct: dict[Path, dict[str, float]] = {folder_of(a): a for a in models.values()}
    bar = progress_bar(len(distinct) * len(args.seeds), "B5 retraining", enabled=not args.no_progress, unit="net")
    done: dict[tuple[Path, int], dict[str, Any]] = {}
    try:
        for folder, arch in distinct.items():
            for seed in args.seeds:
                result = retrain(arch, backbone="vgg_small", dataset="digits", output_dir=folder / f"seed{seed}",
                                 width_scale=width_scale, seed=seed, split_seed=args.evaluator_seed,
                                 device=args.device, progress=False, overrides={"epochs": args.retrain_epochs})
                done[(folder, seed)] = {"seed": seed, "test_accuracy": result.test_accuracy,
                                        "seconds_this_run": result.metrics.get("seconds_this_run"),
                                        "output_dir": str(result.output_dir)}
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return {label: [done[(folder_of(arch), s)] for s in args.seeds]
            for label, arch in models.items()}


def compare(searched: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """Searched against baseline: difference of the means, seeds won (paired by seed), spread."""
    mine = {r["seed"]: r["test_accuracy"] for r in searched["runs"]}
    theirs = {r["seed"]: r["test_accuracy"] for r in base["runs"]}
    seeds = sorted(set(mine) & set(theirs))
    diff = searched["top1_mean"] - base["top1_mean"]
    spread = max(searched["top1_std"] or 0.0, base["top1_std"] or 0.0)
    return {"difference": diff, "spread": spread, "exceeds_spread": abs(diff) > spread,
            "seeds_won": sum(mine[s] > theirs[s] for s in seeds), "seeds_tied": sum(mine[s] == theirs[s] for s in seeds),
            "seeds": len(seeds)}


def claims(rows: dict[str, dict[str, Any]], u1: float, u4: float) -> dict[str, dict[str, Any]]:
    """The paper's two claims on the retrained means: Auto-A more accurate than Uniform-1× with fewer
    FLOPs; Auto-B more accurate than Uniform-4× with at most half its FLOPs."""
    out: dict[str, dict[str, Any]] = {}
    for label, base_label, flops_ok, flops_text in (
            ("Auto-A", "Uniform-1×", lambda f: f < u1 * (1 - REL_TOL), "fewer FLOPs than Uniform-1×"),
            ("Auto-B", "Uniform-4×", lambda f: f <= 0.5 * u4 * (1 + REL_TOL), "FLOPs ≤ Uniform-4× / 2")):
        searched, base = rows.get(label), rows.get(base_label)
        if base is None or searched is None:
            out[label] = {"holds": None, "why": (f"{base_label} not in --uniform" if base is None
                                                 else f"no front member has {flops_text}")}
            continue
        c = compare(searched, base)
        holds = flops_ok(searched["flops"]) and c["difference"] > 0
        ratio = searched["flops"] / base["flops"]
        why = (f"{label} {searched['top1_mean']:.2f}% at {ratio:.3f}× the FLOPs of {base_label} "
               f"{base['top1_mean']:.2f}%: difference {c['difference']:+.2f} points, "
               f"{'exceeds' if c['exceeds_spread'] else 'within'} the spread across seeds (± {c['spread']:.2f}); "
               f"better on {c['seeds_won']} of {c['seeds']} seeds")
        out[label] = {"holds": holds, "why": why, "flops_ratio": ratio, **c}
        if label == "Auto-B":
            out[label]["within_half_point"] = flops_ok(searched["flops"]) and c["difference"] >= -0.5
    return out


def table_rows(rows: dict[str, dict[str, Any]], fp: Any, unit: str, seeds: int) -> list[list[str]]:
    def top1(row: dict[str, Any]) -> str:
        if row.get("top1_mean") is None:
            return "—"
        return f"{row['top1_mean']:.2f} ± {row['top1_std']:.2f}" if seeds > 1 else f"{row['top1_mean']:.2f}"

    out = [["Full-Precision", format_count(fp.flops, unit), "—", format_count(fp.memory_bits, unit), "not trained"]]
    for label, row in rows.items():
        out.append([label, format_count(row["flops"], unit), f"{fp.flops / row['flops']:.1f}×",
                    format_count(row["memory_bits"], unit), top1(row)])
    return out


def markdown(header_row: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header_row) + " |", "|:---|" + "---:|" * (len(header_row) - 1)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def plot(driver: Any, chosen: dict[str, Record | None], rows: dict[str, dict[str, Any]], u1: float,
         path: Path, title: str) -> None:
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    ok = [r for r in driver.evaluated() if r.result.ok]
    left.scatter([r.result.metrics["flops"] / u1 for r in ok], [r.result.metrics["accuracy"] for r in ok],
                 s=12, color="0.6", label="searched candidates")
    front = driver.pareto_front()
    left.plot([r.result.metrics["flops"] / u1 for r in front], [r.result.metrics["accuracy"] for r in front],
              "-o", color="C0", markersize=4, label="Pareto front")
    for i, (label, record) in enumerate(chosen.items()):
        if record is not None:
            left.scatter([record.result.metrics["flops"] / u1], [record.result.metrics["accuracy"]], s=70,
                         facecolors="none", edgecolors=f"C{i + 1}", linewidths=1.8, label=label)
    left.set_xlabel("FLOPs / Uniform-1× FLOPs")
    left.set_ylabel("validation top-1 (%) after search-time training")
    left.set_title("search", fontsize=9)
    uniform = [(row["flops"] / u1, row["top1_mean"], row["top1_std"]) for label, row in rows.items()
               if label.startswith("Uniform")]
    if uniform:
        xs, ys, es = zip(*sorted(uniform))
        right.errorbar(xs, ys, yerr=es, fmt="-s", color="0.3", capsize=3, label="Uniform-k×")
    for i, label in enumerate(chosen):
        row = rows.get(label)
        if row is not None:
            right.errorbar([row["flops"] / u1], [row["top1_mean"]], yerr=[row["top1_std"]], fmt="o",
                           color=f"C{i + 1}", capsize=3, label=label)
    right.set_xlabel("FLOPs / Uniform-1× FLOPs")
    right.set_ylabel("test top-1 (%) after retraining, mean ± std")
    right.set_title("retrained", fontsize=9)
    from matplotlib.ticker import FuncFormatter, NullFormatter

    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=int, default=64, help="trained candidates in the search")
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=10, help="training epochs per search candidate")
    parser.add_argument("--search-seed", type=int, default=0, help="seed of the evolution")
    parser.add_argument("--evaluator-seed", type=int, default=0, help="seed of the search's data split and init")
    parser.add_argument("--subset-per-class", type=int, default=None, help="search on this many images per class")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4],
                        help="retraining seeds (initialisation and batch order; the data split is the search's)")
    parser.add_argument("--retrain-epochs", type=int, default=40, help="retraining epochs (digits recipe: 40)")
    parser.add_argument("--uniform", type=float, nargs="+", default=[0.5, 1.0, 2.0, 3.0, 4.0],
                        help="Uniform-k× baselines to retrain")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--cache", type=Path, default=RESULTS / "b1_cache.json", help="search evaluation cache")
    parser.add_argument("--retrain-dir", type=Path, default=None,
                        help="retraining checkpoints (default ~/.cache/nas_core/bench/b5_retrain/<commit>)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="output folder")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if min(args.budget, args.epochs, args.retrain_epochs) < 1 or args.population < 2:
        parser.error("--budget, --epochs and --retrain-epochs must be >= 1, --population >= 2")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    meta = header("B5 paper claim", "b5_paper_claim.py", argv, args)
    commit = meta["machine"].get("git_commit") or "unknown"
    if commit.endswith("-dirty") or commit == "unknown":
        print(f"warning: commit {commit}: a published table must come from a clean tree", file=sys.stderr)
    if args.retrain_dir is None:
        args.retrain_dir = WORK / "b5_retrain" / commit
    meta["args"]["retrain_dir"] = str(args.retrain_dir)
    evaluator_args: dict[str, Any] = {"epochs": args.epochs, "threads": args.threads, "seed": args.evaluator_seed}
    if args.subset_per_class is not None:
        evaluator_args["subset_per_class"] = args.subset_per_class
    evaluator = EVALUATORS.build("binary_width", evaluator_args)
    space = evaluator.search_space()
    memo = MemoScorer(evaluator, ResultCache(args.cache))
    strategy = STRATEGIES.build("evolution", {"population_size": args.population, "generations": 100_000},
                                space=space, seed=args.search_seed)
    driver = run_search(strategy, memo, budget=args.budget, progress=not args.no_progress)
    driver.set_evaluator_description(evaluator.describe())  # its Pareto pair for driver.pareto_front()
    setting = NetworkSetting("vgg_small", evaluator.width_scale, evaluator.image_size, DIGITS_CLASSES, DIGITS_CHANNELS)
    u1, u4 = setting.cost(setting.uniform(1.0)).flops, setting.cost(setting.uniform(4.0)).flops
    chosen = choose(driver, u1, u4)
    models: dict[str, dict[str, float]] = {f"Uniform-{k:g}×": setting.uniform(k) for k in sorted(args.uniform)}
    models.update({label: {k: float(v) for k, v in r.arch.items()} for label, r in chosen.items() if r is not None})
    retrained = retrain_all(models, args, evaluator.width_scale)
    rows: dict[str, dict[str, Any]] = {}
    for label, arch in models.items():
        cost = setting.cost(arch)
        mean, std = mean_std([r["test_accuracy"] for r in retrained[label]])
        record = chosen.get(label)
        rows[label] = {"arch": arch, "flops": cost.flops, "memory_bits": cost.memory_bits, "top1_mean": mean,
                       "top1_std": std, "runs": retrained[label],
                       "search_accuracy": record.result.metrics.get("accuracy") if record else None,
                       "search_fitness": record.result.fitness if record else None}
    fp = setting.cost(setting.uniform(1.0), full_precision=True)
    unit = table_unit(u1)
    head = ["Models", "FLOPs", "Speedup", "Memory", "Top-1 (%)"]
    body = table_rows(rows, fp, unit, len(args.seeds))
    verdicts = claims(rows, u1, u4)
    print(f"\nB5: digits, VGG-small × {evaluator.width_scale:g}; search {args.budget} candidates × {args.epochs} epochs "
          f"(trained {memo.trained} now); retrained {args.retrain_epochs} epochs, seeds {args.seeds}")
    print(format_table(head, body, "lrrrr"))
    for label in ("Auto-A", "Auto-B"):
        v = verdicts[label]
        state = {True: "HOLDS", False: "DOES NOT HOLD", None: "NOT CHECKED"}[v["holds"]]
        print(f"{label}: {state} — {v['why']}")
        if "within_half_point" in v:
            print(f"  (looser, not the paper's: Auto-B within 0.5 points of Uniform-4× at ≤ half its FLOPs: "
                  f"{'yes' if v['within_half_point'] else 'no'})")
    for label, record in chosen.items():
        if record is not None:
            print(f"  {label}: {record.arch}")
    args.out.mkdir(parents=True, exist_ok=True)
    table_md = markdown(head, body)
    (args.out / f"{STEM}.md").write_text(table_md + "\n", encoding="utf-8")
    search = [{"candidate": r.candidate_id, "arch": r.arch, "fitness": r.result.fitness,
               "accuracy": r.result.metrics.get("accuracy"), "flops": r.result.metrics.get("flops")}
              for r in driver.evaluated()]
    write_json(args.out / f"{STEM}.json", {
        **meta, "unit": unit, "uniform1_flops": u1, "uniform4_flops": u4, "full_precision_flops": fp.flops,
        "trained_this_run": memo.trained, "search": search,
        "front": [r.candidate_id for r in driver.pareto_front()],
        "chosen": {label: (None if r is None else {"candidate": r.candidate_id, "arch": r.arch}) for label, r in
                   chosen.items()},
        "models": rows, "table": table_md, "claims": verdicts,
    })
    write_csv(args.out / f"{STEM}.csv", [{"model": label, "seed": run["seed"], "test_accuracy": run["test_accuracy"],
                                          "flops": row["flops"], "memory_bits": row["memory_bits"], "arch": row["arch"]}
                                         for label, row in rows.items() for run in row["runs"]])
    plot(driver, chosen, rows, u1, args.out / f"{STEM}.png",
         f"B5 digits: search {args.budget} candidates, retrained {args.retrain_epochs} epochs × {len(args.seeds)} seeds")
    print(f"wrote {args.out / STEM}.json, .csv, .md, .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
