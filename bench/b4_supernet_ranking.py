"""B4 — does short training with supernet initialisation rank candidates like full training?

    python bench/b4_supernet_ranking.py --threads 1               # 20 architectures, 30 / 10 / 2 epochs
    python bench/b4_supernet_ranking.py --archs 3 --full-epochs 2 --epochs 1 --short-epochs 1 \\
        --supernet-epochs 1 --subset-per-class 10 --out /tmp/b4                        # smoke

``--archs`` architectures sampled uniformly (seeded, distinct) from the paper's space on the
digits search, each scored by the paper's fitness (λ = 4) after every one of these, all trained
and timed in this run (nothing is read from a cache):

(a) ``full``: ``--full-epochs`` (30) from scratch — the reference ranking;
(b) ``short``: ``--epochs`` N (10, the paper's candidate budget) from scratch;
(c) ``widest``: ``--short-epochs`` (N/5) from the paper's supernet (the uniformly-widest network
    trained alone for ``--supernet-epochs``; each candidate takes its first channels), batch-norm
    statistics re-estimated for the candidate's widths (``supernet_bn: reestimate``);
(c′) ``widest_inherit``: the same, keeping the supernet's sliced statistics (``inherit``);
(d) ``sandwich``: ``--short-epochs`` from a sandwich-trained supernet (each step trains the widest,
    the narrowest and two random first-channel sub-networks), statistics re-estimated;
(e) ``sandwich_untrained``: the sandwich supernet's slice with re-estimated statistics and no
    training at all (forward passes only), scored as it is.

The settings of one architecture run back to back, so machine load hits them alike. Both
supernets are trained at the start, in a fresh folder, and timed.

Reported: Kendall τ-b of every setting against (a), on fitness and on accuracy alone, each with a
95 % bootstrap interval over the architectures (``--bootstrap`` resamples); the seconds per
candidate (mean over the architectures of what each evaluation measured: slicing, batch-norm
re-estimation and training); and, for the supernet settings, the cost per candidate with the
supernet's training spread over this run's candidates and over ``--amortise`` candidates (default
1,600: the paper's search, 32 individuals × 50 generations). Speed-ups are (b)'s seconds per
candidate divided by the setting's. Target: τ (fitness) ≥ 0.6 with at least 5× less cost per
candidate than (b), the supernet amortised over ``--amortise`` candidates.

Outputs in ``--out``: ``b4_supernet_ranking.json``, ``.csv`` (one row per architecture) and
``.png`` (fitness of every proxy against (a)).
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (RESULTS, format_table, header, progress_bar, pyplot, save_figure, stopwatch, write_csv,
                          write_json)
from nas_core import EVALUATORS
from nas_core.runner import evaluator_score
from nas_core.space import SearchSpace

STEM = "b4_supernet_ranking"
SETTINGS = ("full", "short", "widest", "widest_inherit", "sandwich", "sandwich_untrained")
PROXIES = SETTINGS[1:]
SUPERNET_OF = {"widest": "widest", "widest_inherit": "widest", "sandwich": "sandwich", "sandwich_untrained": "sandwich"}
LABELS = {
    "full": "(a) full, from scratch",
    "short": "(b) N epochs, from scratch",
    "widest": "(c) N/5 epochs, paper's supernet, BN re-estimated",
    "widest_inherit": "(c′) N/5 epochs, paper's supernet, BN inherited",
    "sandwich": "(d) N/5 epochs, sandwich supernet, BN re-estimated",
    "sandwich_untrained": "(e) no training, sandwich supernet, BN re-estimated",
}
TAU_TARGET, SPEEDUP_TARGET = 0.6, 5.0


def sample_architectures(space: SearchSpace, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` distinct architectures drawn uniformly with a seeded generator."""
    rng = random.Random(seed)
    archs: dict[str, dict[str, Any]] = {}
    while len(archs) < min(n, space.size):
        arch = space.sample(rng)
        archs.setdefault(space.key(arch), arch)
    return list(archs.values())


def build_evaluators(args: argparse.Namespace, supernet_dir: Path) -> dict[str, Any]:
    common: dict[str, Any] = {"threads": args.threads, "seed": args.evaluator_seed}
    if args.subset_per_class is not None:
        common["subset_per_class"] = args.subset_per_class
    supernet = {**common, "epochs": args.short_epochs, "supernet": True, "supernet_epochs": args.supernet_epochs,
                "cache_dir": str(supernet_dir)}
    return {
        "full": EVALUATORS.build("binary_width", {**common, "epochs": args.full_epochs}),
        "short": EVALUATORS.build("binary_width", {**common, "epochs": args.epochs}),
        "widest": EVALUATORS.build("binary_width", supernet),
        "widest_inherit": EVALUATORS.build("binary_width", {**supernet, "supernet_bn": "inherit"}),
        "sandwich": EVALUATORS.build("binary_width", {**supernet, "supernet_training": "sandwich"}),
        # (e) uses the sandwich evaluator's supernet and objective; it is not trained
    }


def train_supernets(evaluators: dict[str, Any], supernet_dir: Path) -> dict[str, dict[str, Any]]:
    """Train both supernets now, in the fresh folder; their training seconds as the evaluator measured
    them (its file beside each supernet) and the wall time of the whole preparation."""
    import json

    out: dict[str, dict[str, Any]] = {}
    for kind in ("widest", "sandwich"):
        evaluator = evaluators[kind]
        before = set(supernet_dir.glob("supernet-*.json"))
        with stopwatch() as elapsed:
            evaluator.prepare()  # data, reference FLOPs and the supernet, trained now
        written = sorted(set(supernet_dir.glob("supernet-*.json")) - before)
        if len(written) != 1:
            raise RuntimeError(f"expected the {kind} supernet to be trained in this run, found {len(written)} new files")
        info = json.loads(written[0].read_text(encoding="utf-8"))
        out[kind] = {"epochs": evaluator.supernet_epochs, "train_seconds": info["metrics"]["train_seconds"],
                     "prepare_seconds": elapsed["seconds"], "accuracy_widest": info["metrics"].get("accuracy")}
    evaluators["widest_inherit"].prepare()  # the same supernet, read from the file just written
    return out


def untrained_score(evaluator: Any, arch: dict[str, Any]) -> dict[str, Any]:
    """(e): the sliced network with re-estimated batch norm, scored without training."""
    import torch

    from evaluators.training import accuracy, pick_device

    if evaluator.threads is not None:
        torch.set_num_threads(evaluator.threads)
    started = time.perf_counter()
    model = evaluator.initial_network(arch)
    acc = accuracy(model, evaluator._loaders()[1], pick_device(evaluator.device_name))
    seconds = time.perf_counter() - started
    cost = evaluator._cost({k: float(v) for k, v in arch.items()})
    metrics = {"accuracy": acc, "flops_norm": cost.flops / evaluator._reference_flops}
    return {"fitness": evaluator.objective.fitness(metrics), "accuracy": acc, "seconds": seconds,
            "flops_norm": metrics["flops_norm"]}


def kendall(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall's τ-b, or None when it is undefined (fewer than 2 values, or one side constant)."""
    from scipy.stats import kendalltau

    if len(x) < 2:
        return None
    tau = kendalltau(x, y).statistic
    return None if tau is None or not math.isfinite(tau) else float(tau)


def bootstrap_tau(x: Sequence[float], y: Sequence[float], resamples: int, seed: int) -> list[float | None]:
    """A 95 % percentile interval of τ over architectures resampled with replacement."""
    rng = random.Random(seed)
    n = len(x)
    taus = []
    for _ in range(resamples):
        pick = [rng.randrange(n) for _ in range(n)]
        tau = kendall([x[i] for i in pick], [y[i] for i in pick])
        if tau is not None:
            taus.append(tau)
    if not taus:
        return [None, None]
    taus.sort()
    return [taus[int(0.025 * (len(taus) - 1))], taus[int(math.ceil(0.975 * (len(taus) - 1)))]]


def analyse(rows: list[dict[str, Any]], supernets: dict[str, dict[str, Any]], amortise: int,
            resamples: int) -> dict[str, Any]:
    n = len(rows)
    per_candidate = {s: sum(r[f"{s}_seconds"] for r in rows) / n for s in SETTINGS}
    out: dict[str, Any] = {"architectures": n, "amortise_over": amortise, "seconds_per_candidate": per_candidate,
                           "seconds_sum": {s: per_candidate[s] * n for s in SETTINGS},
                           "supernet_train_seconds": {k: v["train_seconds"] for k, v in supernets.items()},
                           "settings": {}}
    for s in PROXIES:
        entry: dict[str, Any] = {}
        for metric in ("fitness", "accuracy"):
            x, y = [r[f"full_{metric}"] for r in rows], [r[f"{s}_{metric}"] for r in rows]
            entry[f"tau_{metric}"] = kendall(x, y)
            entry[f"tau_{metric}_ci95"] = bootstrap_tau(x, y, resamples, seed=1)
        cost = per_candidate[s]
        entry["seconds_per_candidate"] = cost
        entry["speedup_vs_short"] = per_candidate["short"] / cost if cost > 0 else None
        if s in SUPERNET_OF:
            once = supernets[SUPERNET_OF[s]]["train_seconds"]
            for label, k in (("this_run", n), ("amortised", amortise)):
                total = cost + once / k
                entry[f"seconds_per_candidate_{label}"] = total
                entry[f"speedup_vs_short_{label}"] = per_candidate["short"] / total
        speed = entry.get("speedup_vs_short_amortised", entry["speedup_vs_short"])
        tau = entry["tau_fitness"]
        entry["target_met"] = bool(s != "short" and tau is not None and tau >= TAU_TARGET
                                   and speed is not None and speed >= SPEEDUP_TARGET)
        out["settings"][s] = entry
    return out


def table_text(summary: dict[str, Any], epochs: dict[str, int]) -> str:
    def f(value: float | None, spec: str) -> str:
        return "—" if value is None else format(value, spec)

    def ci(entry: dict[str, Any], metric: str) -> str:
        lo, hi = entry[f"tau_{metric}_ci95"]
        return f"{f(entry[f'tau_{metric}'], '.3f')} [{f(lo, '.2f')}, {f(hi, '.2f')}]"

    rows = []
    per = summary["seconds_per_candidate"]
    rows.append([LABELS["full"], str(epochs["full"]), "reference", "reference", f"{per['full']:.2f}", "—", "—", "—"])
    for s in PROXIES:
        e = summary["settings"][s]
        speed = f(e["speedup_vs_short"], ".2f") + "×"
        run = (f"{e['seconds_per_candidate_this_run']:.2f} s, {e['speedup_vs_short_this_run']:.2f}×"
               if "seconds_per_candidate_this_run" in e else "—")
        amort = (f"{e['seconds_per_candidate_amortised']:.3f} s, {e['speedup_vs_short_amortised']:.2f}×"
                 if "seconds_per_candidate_amortised" in e else "—")
        rows.append([LABELS[s], str(epochs[s]), ci(e, "fitness"), ci(e, "accuracy"), f"{per[s]:.2f}", speed, run,
                     amort])
    k = summary["amortise_over"]
    n = summary["architectures"]
    return format_table(["setting", "epochs", "τ fitness [95% CI]", "τ accuracy [95% CI]", "s / candidate",
                         "less than (b)", f"+ supernet / {n}", f"+ supernet / {k}"], rows)


def plot(rows: list[dict[str, Any]], summary: dict[str, Any], path: Path, title: str) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(PROXIES), figsize=(3.3 * len(PROXIES), 3.6), sharex=True)
    full = [r["full_fitness"] for r in rows]
    for i, (ax, s) in enumerate(zip(axes, PROXIES)):
        ax.scatter(full, [r[f"{s}_fitness"] for r in rows], color=f"C{i}", s=18)
        tau = summary["settings"][s]["tau_fitness"]
        ax.set_title(f"{LABELS[s]}\nτ = {'—' if tau is None else f'{tau:.3f}'}", fontsize=7)
        ax.set_xlabel("fitness after (a)", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("fitness of the proxy")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", type=int, default=20, help="architectures sampled from the space")
    parser.add_argument("--arch-seed", type=int, default=0, help="seed of the sampling")
    parser.add_argument("--full-epochs", type=int, default=30, help="(a) epochs from scratch")
    parser.add_argument("--epochs", type=int, default=10, help="(b) N epochs from scratch")
    parser.add_argument("--short-epochs", type=int, default=None, help="(c), (d): epochs from a supernet (default N/5)")
    parser.add_argument("--supernet-epochs", type=int, default=30, help="training of each supernet (once)")
    parser.add_argument("--subset-per-class", type=int, default=None, help="search subset: images per class")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--evaluator-seed", type=int, default=0)
    parser.add_argument("--amortise", type=int, default=1600,
                        help="candidates the supernet's training is spread over (paper: 32 × 50 = 1600)")
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples for τ's interval")
    parser.add_argument("--supernet-cache", type=Path, default=None,
                        help="folder for the supernets (default: a fresh temporary one; it must be empty, "
                             "so that both are trained and timed in this run)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="output folder")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.short_epochs is None:
        args.short_epochs = max(1, args.epochs // 5)
    if min(args.archs, args.full_epochs, args.epochs, args.short_epochs, args.supernet_epochs, args.amortise,
           args.bootstrap) < 1:
        parser.error("counts of architectures, epochs, candidates and resamples must be >= 1")
    if args.archs < 2:
        parser.error("--archs must be >= 2 (a ranking needs two)")
    if args.supernet_cache is not None and args.supernet_cache.is_dir() and any(args.supernet_cache.iterdir()):
        parser.error(f"--supernet-cache {args.supernet_cache} is not empty: the supernets must be trained in this run")
    return args


def run(args: argparse.Namespace, argv: Sequence[str] | None, supernet_dir: Path) -> int:
    meta = header("B4 supernet ranking", "b4_supernet_ranking.py", argv, args)
    evaluators = build_evaluators(args, supernet_dir)
    archs = sample_architectures(evaluators["full"].search_space(), args.archs, args.arch_seed)
    supernets = train_supernets(evaluators, supernet_dir)
    for kind, info in supernets.items():
        print(f"supernet ({kind}): {info['epochs']} epochs, {info['train_seconds']:.1f} s")
    scorers = {s: evaluator_score(evaluators[s]) for s in evaluators}
    bar = progress_bar(len(archs) * len(SETTINGS), "B4 evaluations", enabled=not args.no_progress, unit="eval")
    rows: list[dict[str, Any]] = []
    failed = 0
    try:
        for i, arch in enumerate(archs):
            row: dict[str, Any] = {"index": i, "arch": arch}
            for s in SETTINGS:  # the settings of one architecture back to back
                if s == "sandwich_untrained":
                    score = untrained_score(evaluators["sandwich"], arch)
                else:
                    result = scorers[s](arch)
                    score = {"fitness": result.fitness if result.ok else None,
                             "accuracy": result.metrics.get("accuracy"),
                             "seconds": result.metrics.get("train_seconds"),
                             "flops_norm": result.metrics.get("flops_norm")}
                row[f"{s}_fitness"], row[f"{s}_accuracy"] = score["fitness"], score["accuracy"]
                row[f"{s}_seconds"] = score["seconds"]
                row.setdefault("flops_norm", score["flops_norm"])
                if bar is not None:
                    bar.update(1)
            if any(row[f"{s}_fitness"] is None for s in SETTINGS):
                failed += 1
            rows.append(row)
    finally:
        if bar is not None:
            bar.close()
    ok = [r for r in rows if all(r[f"{s}_fitness"] is not None for s in SETTINGS)]
    summary = analyse(ok, supernets, args.amortise, args.bootstrap)
    summary["failed_architectures"] = failed
    epochs = {"full": args.full_epochs, "short": args.epochs, "widest": args.short_epochs,
              "widest_inherit": args.short_epochs, "sandwich": args.short_epochs, "sandwich_untrained": 0}
    text = table_text(summary, epochs)
    print(f"\nB4: ranking of {len(ok)} sampled architectures against (a) {args.full_epochs} epochs from scratch")
    print(text)
    for s in PROXIES:
        if s != "short":
            e = summary["settings"][s]
            print(f"{LABELS[s]}: target τ ≥ {TAU_TARGET} at ≥ {SPEEDUP_TARGET:g}× less (supernet amortised over "
                  f"{args.amortise}): {'MET' if e['target_met'] else 'NOT MET'}")
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / f"{STEM}.json", {**meta, "epochs": epochs, "supernets": supernets, "summary": summary,
                                           "table": text, "architectures": rows})
    write_csv(args.out / f"{STEM}.csv", rows)
    plot(ok, summary, args.out / f"{STEM}.png",
         f"B4: {len(ok)} architectures; (a) {args.full_epochs}, (b) {args.epochs}, (c)/(d) {args.short_epochs} epochs; "
         f"supernets {args.supernet_epochs} epochs")
    print(f"wrote {args.out / STEM}.json, .csv, .png")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.supernet_cache is not None:
        return run(args, argv, args.supernet_cache)
    with tempfile.TemporaryDirectory(prefix="b4-supernets-") as folder:
        return run(args, argv, Path(folder))


if __name__ == "__main__":
    sys.exit(main())
