"""B1 — sample efficiency: best fitness found after N evaluated candidates, per search strategy.

    python bench/b1_sample_efficiency.py                       # budget 64, seeds 0 1 2, 10 epochs
    python bench/b1_sample_efficiency.py --budget 4 --seeds 0 --epochs 1 --out /tmp/b1   # smoke

The digits search with the paper's space and fitness (``binary_width``: VGG-small at width
scale 1/8, λ = 4). Strategies compared at the same budget of candidates:

* ours, in process through ``run_search``: ``evolution`` (the paper's, population ``--population``),
  ``regularized_evolution`` (same population, tournaments of half of it), ``nsga2`` (same
  population), ``random``. The framework never trains an architecture twice, so a candidate
  is a distinct architecture.
* NNI's own tuners on the same space (``space.to_nni()``): ``nni_evolution`` (NNI's
  ``Evolution``, same population), ``nni_tpe`` (``TPE``), ``nni_random`` (``Random``), driven
  in process through their Tuner API exactly as NNI's dispatcher calls them, one trial at a
  time: ``update_search_space``, ``generate_multiple_parameters([id], st_callback=...)``,
  ``receive_trial_result(id, params, {"default": fitness, **metrics})``, ``trial_end(id, ok)``.
  A candidate is one parameter request: an architecture the tuner proposes again counts again,
  as NNI would train it again (here the cache answers it for free).

Seeding: our strategies take ``seed``; TPE and Random take ``seed``; for every NNI tuner Python's
``random`` and numpy's global generator are seeded per run, and NNI's Evolution, which builds an
unseeded ``numpy.random.RandomState()`` in ``update_search_space``, gets one seeded with the run's
seed instead (nothing else of it is changed).

Every evaluation is memoised in ``--cache`` (JSON, rewritten atomically after each new result):
the fitness of an architecture is deterministic for a given evaluator setting and seed, so a
rerun, or a candidate two strategies share, costs nothing. Outputs in ``--out``:
``b1_sample_efficiency.json`` (summary + every candidate of every run), ``.csv`` (one row per
candidate) and ``.png`` (best-so-far against candidates: median over seeds, shaded range).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (RESULTS, Call, MemoScorer, ResultCache, drive_nni_tuner, format_table, header,
                          progress_bar, pyplot, save_figure, spread, write_csv, write_json)
from nas_core import EVALUATORS, STRATEGIES, run_search
from nas_core.space import InvalidArchitectureError, SearchSpace
from nas_core.strategy import TrialResult

STEM = "b1_sample_efficiency"
OURS = ("evolution", "regularized_evolution", "nsga2", "random")
NNI_TUNERS = {"nni_evolution": "Evolution", "nni_tpe": "TPE", "nni_random": "Random"}
ALL_STRATEGIES = (*OURS, *NNI_TUNERS)
CHECKPOINTS = (16, 32, 64)

Scorer = Callable[[dict[str, Any]], TrialResult]


def our_strategy_args(name: str, population: int, evolution_args: dict[str, Any] | None = None) -> dict[str, Any]:
    """Arguments of our strategies for a budget-limited run (generations never run out first)."""
    if name == "evolution":
        return {"population_size": population, "generations": 100_000, **(evolution_args or {})}
    if name == "nsga2":
        return {"population_size": population, "generations": 100_000}
    if name == "regularized_evolution":
        return {"population_size": population, "sample_size": max(1, population // 2)}
    return {}


def run_ours(name: str, seed: int, space: SearchSpace, score: Scorer, budget: int, population: int,
             evolution_args: dict[str, Any] | None = None) -> None:
    """One search by our strategy ``name``; every trained candidate goes through ``score``."""
    strategy = STRATEGIES.build(name, our_strategy_args(name, population, evolution_args), space=space, seed=seed)
    run_search(strategy, score, budget=budget, progress=False)


@contextlib.contextmanager
def seeded_nni(seed: int) -> Iterator[None]:
    """Seed the global generators NNI's tuners draw from, and NNI Evolution's own generator.

    ``EvolutionTuner.update_search_space`` creates ``numpy.random.RandomState()`` without a seed
    (entropy from the OS); inside this block such a call gets ``RandomState(seed)``.
    """
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    real = np.random.RandomState

    def seeded_state(*args: Any, **kwargs: Any) -> Any:
        return real(*args, **kwargs) if args or kwargs else real(seed)

    np.random.RandomState = seeded_state  # type: ignore[misc]
    try:
        yield
    finally:
        np.random.RandomState = real  # type: ignore[misc]


def make_nni_tuner(name: str, seed: int, space: SearchSpace, population: int) -> Any:
    """NNI's builtin tuner ``name`` (maximising), built by NNI's own factory, given our space."""
    from nni.tools.package_utils.tuner_factory import create_builtin_class_instance

    from nas_core.nni_adapter.experiment import quiet_nni_logging

    quiet_nni_logging()
    builtin = NNI_TUNERS[name]
    args: dict[str, Any] = {"optimize_mode": "maximize"}
    if builtin == "Evolution":
        args["population_size"] = population
    else:
        args["seed"] = seed
    tuner = create_builtin_class_instance(builtin, args, "tuners")
    with seeded_nni(seed):
        tuner.update_search_space(space.to_nni())
    return tuner


def run_nni(name: str, seed: int, space: SearchSpace, score: Scorer, budget: int, population: int) -> None:
    """One search by NNI tuner ``name``, one trial at a time, as NNI's dispatcher drives it."""
    tuner = make_nni_tuner(name, seed, space, population)

    def run_trial(params: Any) -> dict[str, float] | None:
        try:
            arch = space.validate(params)
        except InvalidArchitectureError as err:  # an NNI trial would fail on these parameters
            score_failed(score, params, f"invalid parameters: {err}")
            return None
        result = score(arch)
        # a failed trial ends FAILED; its result is not given to the tuner (NNI's Evolution would
        # otherwise drop the same trial twice, in receive_trial_result and in trial_end)
        return {"default": result.fitness, **result.metrics} if result.ok else None

    drive_nni_tuner(tuner, budget, run_trial)


def score_failed(score: Scorer, params: Any, reason: str) -> None:
    """Record a candidate that could not even be built (counts against the budget, never trains)."""
    recorder = getattr(score, "record_failure", None)
    if recorder is not None:
        recorder(params, reason)


class RunRecorder:
    """The scorer one run sees: memoised scoring plus the candidate list of that run."""

    def __init__(self, memo: MemoScorer) -> None:
        self.memo = memo
        self.candidates: list[dict[str, Any]] = []

    def __call__(self, arch: dict[str, Any]) -> TrialResult:
        result = self.memo(arch)
        call = self.memo.calls[-1]
        self.candidates.append({
            "fitness": result.fitness if result.ok else None,
            "accuracy": result.metrics.get("accuracy"),
            "flops_norm": result.metrics.get("flops_norm"),
            "evaluator_seconds": result.metrics.get("evaluator_seconds"),
            "cached": call.cached,
            "arch": call.arch,
        })
        return result

    def record_failure(self, params: Any, reason: str) -> None:
        self.candidates.append({"fitness": None, "accuracy": None, "flops_norm": None, "evaluator_seconds": None,
                                "cached": False, "arch": dict(params) if isinstance(params, dict) else params,
                                "reason": reason})


def best_so_far(fitnesses: Sequence[float | None]) -> list[float | None]:
    """Running maximum; None until the first successful candidate."""
    out: list[float | None] = []
    best: float | None = None
    for f in fitnesses:
        if f is not None and (best is None or f > best):
            best = f
        out.append(best)
    return out


def checkpoints_for(budget: int) -> list[int]:
    """16/32/64 where within the budget, and the budget itself."""
    return sorted({c for c in CHECKPOINTS if c <= budget} | {budget})


def summarise(runs: list[dict[str, Any]], strategies: Sequence[str], checkpoints: Sequence[int]) -> dict[str, Any]:
    """Per strategy and checkpoint: median and range over seeds of the best fitness so far."""
    summary: dict[str, Any] = {}
    for name in strategies:
        mine = [r for r in runs if r["strategy"] == name]
        entry: dict[str, Any] = {}
        for c in checkpoints:
            entry[str(c)] = spread([r["best_so_far"][c - 1] if len(r["best_so_far"]) >= c else None for r in mine])
        entry["trained"] = sum(r["trained"] for r in mine)
        entry["compute_seconds"] = spread([r["compute_seconds"] for r in mine])
        summary[name] = entry
    return summary


def table_text(summary: dict[str, Any], checkpoints: Sequence[int]) -> str:
    def cell(s: dict[str, Any]) -> str:
        if s["median"] is None:
            return "—"
        return f"{s['median']:.2f} [{s['min']:.2f}–{s['max']:.2f}]"

    rows = [[name, *[cell(entry[str(c)]) for c in checkpoints]] for name, entry in summary.items()]
    return format_table(["strategy", *[f"best after {c}" for c in checkpoints]], rows)


def padded(curve: list[float | None], length: int) -> list[float | None]:
    """A best-so-far curve of a run that ended early, held at its last value up to ``length``."""
    return curve + [curve[-1] if curve else None] * (length - len(curve))


def plot(runs: list[dict[str, Any]], strategies: Sequence[str], budget: int, path: Path, title: str) -> None:
    import numpy as np

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    xs = np.arange(1, budget + 1)
    floor: list[float] = []  # the lowest median after the first eighth of the budget: where the y axis starts
    for i, name in enumerate(strategies):
        curves = [padded(r["best_so_far"], budget) for r in runs if r["strategy"] == name]
        if not curves:
            continue
        values = np.array([[np.nan if v is None else v for v in c] for c in curves], dtype=float)
        with np.errstate(all="ignore"), _quiet_nan_warnings():
            median, low, high = np.nanmedian(values, 0), np.nanmin(values, 0), np.nanmax(values, 0)
        style = "--" if name.startswith("nni_") else "-"
        color = f"C{i}"
        ax.plot(xs, median, style, color=color, label=name, linewidth=1.6)
        ax.fill_between(xs, low, high, color=color, alpha=0.15, linewidth=0)
        settled = median[max(0, budget // 8 - 1):]
        if np.isfinite(settled).any():
            floor.append(float(np.nanmin(settled)))
    if floor:
        ax.set_ylim(bottom=min(floor) - 1.0)  # the early climb of every curve would hide their differences
    ax.set_xlabel("candidates evaluated")
    ax.set_ylabel("best fitness so far (median over seeds, range shaded)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    save_figure(fig, path)


@contextlib.contextmanager
def _quiet_nan_warnings() -> Iterator[None]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=int, default=64, help="candidates per run (default 64)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--strategies", nargs="+", default=list(ALL_STRATEGIES), choices=ALL_STRATEGIES)
    parser.add_argument("--epochs", type=int, default=10, help="training epochs per candidate (paper: 10)")
    parser.add_argument("--population", type=int, default=8, help="population of the evolutionary strategies")
    parser.add_argument("--evolution-args", type=json.loads, default=None,
                        help='extra arguments of our evolution as a JSON object, e.g. \'{"mutation_prob": 0.5, '
                             '"crossover_prob": 0.3}\' (to compare variants)')
    parser.add_argument("--threads", type=int, default=2, help="torch threads per evaluation")
    parser.add_argument("--evaluator-seed", type=int, default=0, help="seed of data split and initialisation")
    parser.add_argument("--subset-per-class", type=int, default=None,
                        help="train candidates on this many images per class (default: the whole search split)")
    parser.add_argument("--cache", type=Path, default=RESULTS / "b1_cache.json")
    parser.add_argument("--out", type=Path, default=RESULTS, help="output folder")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.budget < 1 or args.epochs < 1 or args.population < 2:
        parser.error("--budget and --epochs must be >= 1, --population >= 2")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    meta = header("B1 sample efficiency", "b1_sample_efficiency.py", argv, args)
    evaluator_args = {"epochs": args.epochs, "threads": args.threads, "seed": args.evaluator_seed}
    if args.subset_per_class is not None:
        evaluator_args["subset_per_class"] = args.subset_per_class
    evaluator = EVALUATORS.build("binary_width", evaluator_args)
    space = evaluator.search_space()
    bar = progress_bar(len(args.strategies) * len(args.seeds) * args.budget, "B1 candidates",
                       enabled=not args.no_progress, unit="cand")
    memo = MemoScorer(evaluator, ResultCache(args.cache))
    runs: list[dict[str, Any]] = []
    try:
        for name in args.strategies:
            for seed in args.seeds:
                recorder = RunRecorder(memo)
                trained_before = memo.trained

                def on_call(call: Call, name: str = name, seed: int = seed) -> None:
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(strategy=name, seed=seed, trained=memo.trained, refresh=False)

                memo.on_call = on_call
                if name in NNI_TUNERS:
                    run_nni(name, seed, space, recorder, args.budget, args.population)
                else:
                    run_ours(name, seed, space, recorder, args.budget, args.population, args.evolution_args)
                cands = recorder.candidates[: args.budget]
                fitness = [c["fitness"] for c in cands]
                runs.append({
                    "strategy": name, "seed": seed, "candidates": cands, "best_so_far": best_so_far(fitness),
                    "trained": memo.trained - trained_before,
                    "distinct": len({json.dumps(c["arch"], sort_keys=True) for c in cands}),
                    "compute_seconds": sum(c["evaluator_seconds"] or 0.0 for c in cands),
                    "finished_early": len(cands) < args.budget,
                })
    finally:
        if bar is not None:
            bar.close()
    checkpoints = checkpoints_for(args.budget)
    summary = summarise(runs, args.strategies, checkpoints)
    text = table_text(summary, checkpoints)
    print(f"\nB1: best fitness after N candidates, median [min–max] over seeds {args.seeds} "
          f"({args.epochs} epochs per candidate, population {args.population})")
    print(text)
    print(f"trained {memo.trained} networks in this run; {sum(c.cached for c in memo.calls)} requests answered "
          f"by the cache ({args.cache})")
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / f"{STEM}.json", {**meta, "checkpoints": checkpoints, "summary": summary, "table": text,
                                           "trained_this_run": memo.trained, "runs": runs})
    rows = [{"strategy": r["strategy"], "seed": r["seed"], "candidate": i + 1, "fitness": c["fitness"],
             "best_so_far": r["best_so_far"][i], "accuracy": c["accuracy"], "flops_norm": c["flops_norm"],
             "evaluator_seconds": c["evaluator_seconds"], "cached": c["cached"], "arch": c["arch"]}
            for r in runs for i, c in enumerate(r["candidates"])]
    write_csv(args.out / f"{STEM}.csv", rows)
    plot(runs, args.strategies, args.budget, args.out / f"{STEM}.png",
         f"B1 digits search: {args.epochs} epochs/candidate, seeds {args.seeds}")
    print(f"wrote {args.out / STEM}.json, .csv, .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
