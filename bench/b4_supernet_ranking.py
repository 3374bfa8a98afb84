"""B4 — does short training with supernet initialisation rank candidates like full training?

    python bench/b4_supernet_ranking.py                          # 20 architectures, 30 / 10 / 2 epochs
    python bench/b4_supernet_ranking.py --archs 3 --full-epochs 2 --epochs 1 --short-epochs 1 \\
        --supernet-epochs 1 --out /tmp/b4 --cache /tmp/b4/cache.json      # smoke

``--archs`` architectures sampled uniformly (seeded, distinct) from the paper's space on the
digits search, each scored by the paper's fitness after three trainings on the search split:

(a) ``--full-epochs`` (30) from scratch — the reference ranking;
(b) ``--epochs`` N (10, the paper's candidate budget) from scratch;
(c) ``--short-epochs`` (N/5) starting from the supernet: the uniformly-widest network trained
    once for ``--supernet-epochs`` (30) on the same split, each candidate taking its first
    channels (the paper's "Initialization"). Its one-off cost is reported separately.
    ``--supernet-training sandwich`` trains that network by the sandwich rule instead (each
    step: the widest, the narrowest and two random first-channel sub-networks), so that every
    slice a candidate inherits was trained as a network of its own.

Reported: Kendall τ (``scipy.stats.kendalltau``, τ-b) of (b) and (c) against (a), on fitness and
on accuracy alone (the FLOPs term is exact and shared by all three, so accuracy shows the
proxy's own quality), and the training time of each setting (sum over architectures of the
``train_seconds`` each evaluation measured). The three trainings of an architecture run one
after the other, so machine load hits the settings alike. Target for the doc: (c) τ ≥ 0.6 with
at least 5× less training than (b).

Evaluations are memoised in ``--cache`` (a JSON file of its own by default, so B4's times come
from B4's runs); the supernet is cached by the evaluator (``--supernet-cache``, default the
project's ``~/.cache/nas_core/supernets``) and its training time read from the file it writes
beside it. Outputs in ``--out``: ``b4_supernet_ranking.json``, ``.csv`` (one row per
architecture) and ``.png`` (fitness of (b) and (c) against (a)).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (RESULTS, MemoScorer, ResultCache, format_table, header, progress_bar, pyplot, save_figure,
                          stopwatch, write_csv, write_json)
from nas_core import EVALUATORS
from nas_core.space import SearchSpace

STEM = "b4_supernet_ranking"
SETTINGS = ("full", "short", "supernet")
LABELS = {"full": "(a) full, from scratch", "short": "(b) N epochs, from scratch",
          "supernet": "(c) N/5 epochs, supernet init"}


def sample_architectures(space: SearchSpace, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` distinct architectures drawn uniformly with a seeded generator."""
    rng = random.Random(seed)
    archs: dict[str, dict[str, Any]] = {}
    while len(archs) < min(n, space.size):
        arch = space.sample(rng)
        archs.setdefault(space.key(arch), arch)
    return list(archs.values())


def build_evaluators(args: argparse.Namespace) -> dict[str, Any]:
    common: dict[str, Any] = {"threads": args.threads, "seed": args.evaluator_seed}
    if args.subset_per_class is not None:
        common["subset_per_class"] = args.subset_per_class
    supernet = {"epochs": args.short_epochs, "supernet": True, "supernet_epochs": args.supernet_epochs,
                "supernet_training": args.supernet_training}
    if args.supernet_cache is not None:
        supernet["cache_dir"] = str(args.supernet_cache)
    return {
        "full": EVALUATORS.build("binary_width", {**common, "epochs": args.full_epochs}),
        "short": EVALUATORS.build("binary_width", {**common, "epochs": args.epochs}),
        "supernet": EVALUATORS.build("binary_width", {**common, **supernet}),
    }


def supernet_cost(evaluator: Any, cache_dir: Path | None) -> dict[str, Any]:
    """Train (or load) the supernet; its training seconds, measured now or read from its cache file."""
    from evaluators.supernet import DEFAULT_CACHE

    directory = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE
    before = {p.name for p in directory.glob("supernet-*.json")} if directory.is_dir() else set()
    with stopwatch() as elapsed:
        evaluator.prepare()
    after = {p.name for p in directory.glob("supernet-*.json")}
    cost: dict[str, Any] = {"epochs": evaluator.supernet_epochs, "prepare_seconds": elapsed["seconds"],
                            "trained_now": bool(after - before), "train_seconds": None, "cache_dir": str(directory)}
    for name in sorted(after - before) or sorted(after):
        info = json.loads((directory / name).read_text(encoding="utf-8"))
        setting = info.get("setting", {})
        if (setting.get("kind") == "supernet" and setting.get("train", {}).get("epochs") == evaluator.supernet_epochs
                and setting.get("seed") == evaluator.seed and setting.get("dataset") == evaluator.dataset
                and setting.get("width_scale") == evaluator.width_scale
                and setting.get("subset_per_class") == evaluator.subset_per_class
                and setting.get("supernet_training", "widest") == evaluator.supernet_training):
            cost["train_seconds"] = info.get("metrics", {}).get("train_seconds")
            cost["accuracy"] = info.get("metrics", {}).get("accuracy")
            break
    if cost["train_seconds"] is None and cost["trained_now"]:
        cost["train_seconds"] = elapsed["seconds"]
    return cost


def kendall(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall's τ-b, or None when it is undefined (fewer than 2 values, or one side constant)."""
    import math

    from scipy.stats import kendalltau

    if len(x) < 2:
        return None
    tau = kendalltau(x, y).statistic
    return None if tau is None or not math.isfinite(tau) else float(tau)


def analyse(rows: list[dict[str, Any]], supernet: dict[str, Any]) -> dict[str, Any]:
    seconds = {s: sum(r[f"{s}_train_seconds"] or 0.0 for r in rows) for s in SETTINGS}
    out: dict[str, Any] = {"train_seconds": seconds, "supernet_train_seconds": supernet.get("train_seconds")}
    for s in ("short", "supernet"):
        out[f"tau_fitness_{s}"] = kendall([r["full_fitness"] for r in rows], [r[f"{s}_fitness"] for r in rows])
        out[f"tau_accuracy_{s}"] = kendall([r["full_accuracy"] for r in rows], [r[f"{s}_accuracy"] for r in rows])
    out["speedup_vs_short"] = seconds["short"] / seconds["supernet"] if seconds["supernet"] > 0 else None
    once = supernet.get("train_seconds") or 0.0
    out["speedup_vs_short_with_supernet"] = (seconds["short"] / (seconds["supernet"] + once)
                                             if seconds["supernet"] + once > 0 else None)
    tau = out["tau_fitness_supernet"]
    out["target_met"] = bool(tau is not None and tau >= 0.6 and (out["speedup_vs_short"] or 0) >= 5)
    return out


def table_text(summary: dict[str, Any], epochs: dict[str, int]) -> str:
    def f(value: float | None, spec: str) -> str:
        return "—" if value is None else format(value, spec)

    secs = summary["train_seconds"]
    rows = []
    for s in SETTINGS:
        tau_f = "reference" if s == "full" else f(summary[f"tau_fitness_{s}"], ".3f")
        tau_a = "reference" if s == "full" else f(summary[f"tau_accuracy_{s}"], ".3f")
        ratio = f(secs["short"] / secs[s], ".2f") + "×" if secs[s] > 0 else "—"
        rows.append([LABELS[s], str(epochs[s]), tau_f, tau_a, f"{secs[s]:.1f}", ratio])
    return format_table(["setting", "epochs", "τ fitness", "τ accuracy", "train s (sum)", "less than (b)"], rows)


def plot(rows: list[dict[str, Any]], summary: dict[str, Any], path: Path, title: str) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 4), sharex=True)
    full = [r["full_fitness"] for r in rows]
    for ax, s, color in ((axes[0], "short", "C0"), (axes[1], "supernet", "C3")):
        ax.scatter(full, [r[f"{s}_fitness"] for r in rows], color=color, s=22)
        tau = summary[f"tau_fitness_{s}"]
        ax.set_title(f"{LABELS[s]}\nKendall τ = {'—' if tau is None else f'{tau:.3f}'}", fontsize=9)
        ax.set_xlabel("fitness after (a) full training")
        ax.set_ylabel("fitness of the proxy")
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", type=int, default=20, help="architectures sampled from the space")
    parser.add_argument("--arch-seed", type=int, default=0, help="seed of the sampling")
    parser.add_argument("--full-epochs", type=int, default=30, help="(a) epochs from scratch")
    parser.add_argument("--epochs", type=int, default=10, help="(b) N epochs from scratch")
    parser.add_argument("--short-epochs", type=int, default=None, help="(c) epochs from the supernet (default N/5)")
    parser.add_argument("--supernet-epochs", type=int, default=30, help="training of the supernet (once)")
    parser.add_argument("--subset-per-class", type=int, default=None, help="search subset: images per class")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--evaluator-seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=RESULTS / "b4_cache.json")
    parser.add_argument("--supernet-training", choices=("widest", "sandwich"), default="widest",
                        help="widest: the paper's supernet (only the widest network trained); sandwich: every "
                             "step also trains the narrowest and two random sub-networks")
    parser.add_argument("--supernet-cache", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS, help="output folder")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.short_epochs is None:
        args.short_epochs = max(1, args.epochs // 5)
    if min(args.archs, args.full_epochs, args.epochs, args.short_epochs, args.supernet_epochs) < 1:
        parser.error("counts of architectures and epochs must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    meta = header("B4 supernet ranking", "b4_supernet_ranking.py", argv, args)
    evaluators = build_evaluators(args)
    space = evaluators["full"].search_space()
    archs = sample_architectures(space, args.archs, args.arch_seed)
    supernet = supernet_cost(evaluators["supernet"], args.supernet_cache)
    cache = ResultCache(args.cache)
    scorers = {s: MemoScorer(evaluators[s], cache) for s in SETTINGS}
    bar = progress_bar(len(archs) * len(SETTINGS), "B4 trainings", enabled=not args.no_progress, unit="train")
    rows: list[dict[str, Any]] = []
    try:
        for i, arch in enumerate(archs):
            row: dict[str, Any] = {"index": i, "arch": arch}
            for s in SETTINGS:  # the three trainings of one architecture back to back
                result = scorers[s](arch)
                row[f"{s}_fitness"] = result.fitness if result.ok else None
                row[f"{s}_accuracy"] = result.metrics.get("accuracy")
                row[f"{s}_train_seconds"] = result.metrics.get("train_seconds")
                row[f"{s}_cached"] = scorers[s].calls[-1].cached
                row.setdefault("flops_norm", result.metrics.get("flops_norm"))
                if bar is not None:
                    bar.update(1)
            rows.append(row)
    finally:
        if bar is not None:
            bar.close()
    ok = [r for r in rows if all(r[f"{s}_fitness"] is not None for s in SETTINGS)]
    summary = analyse(ok, supernet)
    summary["failed_architectures"] = len(rows) - len(ok)
    epochs = {"full": args.full_epochs, "short": args.epochs, "supernet": args.short_epochs}
    text = table_text(summary, epochs)
    print(f"\nB4: ranking of {len(ok)} sampled architectures against (a) {args.full_epochs} epochs from scratch")
    print(text)
    once = supernet.get("train_seconds")
    print(f"supernet: {args.supernet_epochs} epochs once, "
          + ("training time unknown" if once is None else f"{once:.1f} s")
          + ("" if supernet["trained_now"] else " (trained by an earlier run, read from its cache file)"))
    speed = summary["speedup_vs_short"]
    print(f"(c) trains {'—' if speed is None else f'{speed:.2f}×'} less than (b)"
          + ("" if summary["speedup_vs_short_with_supernet"] is None
             else f" ({summary['speedup_vs_short_with_supernet']:.2f}× counting the supernet once)")
          + f"; target τ ≥ 0.6 at ≥ 5× less: {'met' if summary['target_met'] else 'not met'}")
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / f"{STEM}.json", {**meta, "epochs": epochs, "supernet": supernet, "summary": summary,
                                           "table": text, "architectures": rows})
    write_csv(args.out / f"{STEM}.csv", rows)
    plot(ok, summary, args.out / f"{STEM}.png",
         f"B4: {len(ok)} architectures; (a) {args.full_epochs}, (b) {args.epochs}, (c) {args.short_epochs} epochs "
         f"+ supernet ({args.supernet_training}) {args.supernet_epochs} epochs once")
    print(f"wrote {args.out / STEM}.json, .csv, .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
