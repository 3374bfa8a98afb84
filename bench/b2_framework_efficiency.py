"""B2 — framework efficiency: how much of the trial slots' time is spent training candidates.

    python bench/b2_framework_efficiency.py                    # the default job as it is
    python bench/b2_framework_efficiency.py --population 2 --generations 1 --max-trials 2 --epochs 1 \\
        --work /tmp/b2/work --out /tmp/b2                     # smoke

Runs the default job (``examples/digits/config.yml``: the paper's evolution, 8 × 8 candidates,
10 epochs each, 2 trials at a time) as a real NNI experiment through
``nas_core.nni_adapter.experiment.start``/``wait``, from a copy of the example folder in
``--work`` (default ``~/.cache/nas_core/bench/b2_job``; replaced on each run, with NNI's
experiment folder beside it; flags shrink or vary the copy: population, generations,
maxTrialNumber, epochs, trialConcurrency, strategy and its arguments, the manager's poll interval). Then, from NNI's trial
records (REST ``trial-jobs``: start and end time, and the final result, whose
``evaluator_seconds`` is the time spent inside ``evaluator.evaluate``):

    efficiency = Σ evaluator_seconds / ((last trial end − first trial start) × trialConcurrency)

The rest of the slot time is broken down:

* trial overhead — per trial, (end − start) − evaluator_seconds: interpreter start, imports
  (torch, NNI), building the evaluator, fetching parameters, reporting, process exit;
* gaps between a trial's end and the next trial's start in the same slot, split into
  *barrier wait* (the slot stays empty until another trial's result arrives: the evolution's
  generation barrier; estimated as the time until the last other trial that ended inside the
  gap, or up to ``RESULT_LEAD_S`` after it: its result arrives before its process ends) and *dispatch* (the rest: NNI's polling and the tuner's answer);
* idle at the ends — a slot that starts after the first trial or ends before the last.

Trials are assigned to slots greedily (each to the slot that became free last before it
started). Outputs in ``--out``: ``b2_framework_efficiency.json``, ``.csv`` (one row per trial)
and ``.png`` (one row per slot: overhead and compute bars). Target for the doc: ≥ 0.9 at
trialConcurrency 2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml

from nas_core.nni_adapter.experiment import DEFAULT_MANAGER_POLL_S
from bench.common import (REPO, RESULTS, WORK, format_table, header, pyplot, save_figure, write_csv,
                          write_json)

STEM = "b2_framework_efficiency"
END_POLL_S = 0.25
"""How often the end state is polled: the wall time's resolution (it was 1 s before 2026-11-30 07:00 UTC)."""
RESULT_LEAD_S = 0.25
"""A trial's result reaches the tuner a little before NNI records its process's end, so the trial
that releases a barrier can end just after the next generation's first trial started."""
GENERATIONAL = ("evolution", "nsga2")
DEFAULT_JOB = REPO / "examples" / "digits"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare_job(args: argparse.Namespace, folder: Path) -> tuple[Path, dict[str, Any]]:
    """Copy the job's folder to ``folder`` and apply the flags; returns (config path, config)."""
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(args.job, folder)
    config_path = folder / args.job_config.name
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    args_file = folder / config["trialCommand"].split("--args", 1)[1].split()[0]
    if args.epochs is not None or args.threads is not None:
        evaluator_args = yaml.safe_load(args_file.read_text(encoding="utf-8")) or {}
        if args.epochs is not None:
            evaluator_args["epochs"] = args.epochs
        if args.threads is not None:
            evaluator_args["threads"] = args.threads
        args_file.write_text(yaml.safe_dump(evaluator_args, sort_keys=False), encoding="utf-8")
    class_args = config["tuner"].setdefault("classArgs", {})
    if args.strategy is not None:
        class_args["strategy"], class_args["strategy_args"] = args.strategy, {}
    strategy_args = class_args.setdefault("strategy_args", {})
    strategy_args.update(args.strategy_args)
    if args.population is not None:
        strategy_args["population_size"] = args.population
    if args.generations is not None:
        strategy_args["generations"] = args.generations
    if args.worker is not None:
        config["trialCommand"] = f"{config['trialCommand']} --worker {args.worker}"
    if args.max_trials is not None:
        config["maxTrialNumber"] = args.max_trials
    if args.concurrency is not None:
        config["trialConcurrency"] = args.concurrency
    config["experimentWorkingDirectory"] = str((folder.parent / "experiments").resolve())
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return config_path, config


def run_experiment(config_path: Path, *, progress: bool, timeout: float,
                   manager_poll: float | None) -> tuple[Any, list[dict[str, Any]], float]:
    """Run the experiment to its end; returns (outcome, NNI's trial jobs, seconds from start() until
    the manager was first seen in its end state, polled every ``END_POLL_S``)."""
    from nas_core.nni_adapter import experiment as nni_experiment
    from nas_core.nni_adapter import rest

    nni_experiment.quiet_nni_logging()
    port = free_port()
    started = time.perf_counter()
    exp = nni_experiment.start(config_path, port=port, host="127.0.0.1", manager_poll=manager_poll, say=print)
    try:
        outcome = nni_experiment.wait(exp, poll=END_POLL_S, progress=progress, timeout=timeout)
        wall = time.perf_counter() - started
        jobs = rest.get(port, "trial-jobs") or []
    finally:
        exp.stop()
    return outcome, jobs, wall


def final_metrics(job: dict[str, Any]) -> dict[str, Any] | None:
    """The final result a trial reported, as the adapter reads it."""
    from nas_core.nni_adapter import rest

    value = rest.final_value(job)
    return value if isinstance(value, dict) else None


def parameter_id(job: dict[str, Any]) -> int | None:
    """The parameter id of the record the manager submitted the job with."""
    from nas_core.nni_adapter import rest

    record = rest.job_parameters(job)
    try:
        return int(record["parameter_id"]) if record is not None else None
    except (TypeError, ValueError, KeyError):
        return None


def state_records(experiment_dir: Path) -> list[Any]:
    """The search's records from its state file (empty when there is none)."""
    from nas_core.nni_adapter.tuner import state_path_of
    from nas_core.results import ResultsError, load_results

    try:
        return list(load_results(state_path_of(experiment_dir)).records)
    except ResultsError:
        return []


def state_seconds(records: Sequence[Any]) -> dict[int, float]:
    """evaluator_seconds by NNI parameter id, from the search's records (fallback source)."""
    out: dict[int, float] = {}
    for record in records:
        seconds = record.result.metrics.get("evaluator_seconds")
        if record.source == "trained" and seconds is not None and isinstance(record.trial_id, int):
            out[record.trial_id] = seconds
    return out


def generation_seconds(records: Sequence[Any], population: int) -> list[list[float]]:
    """evaluator_seconds of the trained candidates of each generation, in the order they were asked.

    For generational strategies: the search asks ``population`` candidates per generation and
    numbers them in asking order (copies answered from the store included), so consecutive
    blocks of candidate ids are the generations.
    """
    ordered = sorted(records, key=lambda r: r.candidate_id)
    generations: list[list[float]] = []
    for first in range(0, len(ordered), population):
        block = ordered[first:first + population]
        generations.append([r.result.metrics["evaluator_seconds"] for r in block
                            if r.source == "trained" and "evaluator_seconds" in r.result.metrics])
    return generations


def _makespan(seconds: Sequence[float], slots: int) -> float:
    """Each trial to the slot that frees first, in the given order."""
    loads = [0.0] * slots
    for value in seconds:
        loads[loads.index(min(loads))] += value
    return max(loads)


def barrier_replay(generations: list[list[float]], slots: int) -> dict[str, float] | None:
    """Efficiency of the recorded trials with no overhead at all, barrier only: as asked, and longest first.

    Separates what the generation barrier costs from what the framework costs, and shows how
    much of the longest-first gain the learned prediction got compared with exact durations.
    """
    total = sum(sum(g) for g in generations)
    if total <= 0:
        return None
    asked = sum(_makespan(g, slots) for g in generations)
    exact = sum(_makespan(sorted(g, reverse=True), slots) for g in generations)
    return {"as_asked": total / (slots * asked), "longest_first_exact": total / (slots * exact),
            "generation_sizes": [len(g) for g in generations]}  # type: ignore[dict-item]


def trial_rows(jobs: list[dict[str, Any]], fallback: dict[int, float]) -> list[dict[str, Any]]:
    """One row per trial that ran: times in seconds from the first start, and its compute time."""
    timed = [j for j in jobs if j.get("startTime") and j.get("endTime")]
    if not timed:
        return []
    origin = min(j["startTime"] for j in timed) / 1000.0
    rows = []
    for job in sorted(timed, key=lambda j: j["startTime"]):
        start, end = job["startTime"] / 1000.0 - origin, job["endTime"] / 1000.0 - origin
        metrics = final_metrics(job) or {}
        pid = parameter_id(job)
        compute = metrics.get("evaluator_seconds")
        source = "rest"
        if compute is None and pid is not None and pid in fallback:
            compute, source = fallback[pid], "state"
        rows.append({"trial": job.get("trialJobId"), "parameter_id": pid, "status": job.get("status"),
                     "start": start, "end": end, "duration": end - start,
                     "evaluator_seconds": compute, "metric_source": source if compute is not None else None,
                     "overhead": None if compute is None else max(0.0, end - start - compute),
                     "fitness": metrics.get("default")})
    return rows


def assign_slots(rows: list[dict[str, Any]], concurrency: int) -> None:
    """Put each trial (sorted by start) in the slot that became free last before it started.

    Sets ``slot`` and ``gap_before`` (seconds since the slot's previous trial ended; None for a
    slot's first trial).
    """
    slot_end: list[float] = []
    for row in rows:
        free = [i for i, end in enumerate(slot_end) if end <= row["start"] + 1e-6]
        if free:
            slot = max(free, key=lambda i: slot_end[i])
        elif len(slot_end) < concurrency:
            slot = len(slot_end)
            slot_end.append(float("nan"))
        else:  # timestamps overlap slightly: the slot that frees first
            slot = min(range(len(slot_end)), key=lambda i: slot_end[i])
        previous = slot_end[slot]
        row["slot"] = slot
        row["gap_before"] = None if math.isnan(previous) else max(0.0, row["start"] - previous)
        slot_end[slot] = row["end"] if math.isnan(previous) else max(previous, row["end"])


def breakdown(rows: list[dict[str, Any]], concurrency: int) -> dict[str, Any]:
    """Slot-seconds split into compute, trial overhead, gaps (barrier wait, dispatch) and end idle."""
    span = max(r["end"] for r in rows) - min(r["start"] for r in rows)
    total = span * concurrency
    compute = sum(r["evaluator_seconds"] or 0.0 for r in rows)
    overhead = sum(r["overhead"] or 0.0 for r in rows)
    barrier = dispatch = 0.0
    for row in rows:
        gap = row.get("gap_before")
        if not gap:
            continue
        gap_start = row["start"] - gap
        others = [r["end"] for r in rows
                  if r.get("slot") != row["slot"] and gap_start < r["end"] <= row["start"] + RESULT_LEAD_S]
        wait = (min(max(others), row["start"]) - gap_start) if others else 0.0
        row["barrier_wait"], row["dispatch"] = wait, gap - wait
        barrier += wait
        dispatch += gap - wait
    gaps = barrier + dispatch
    idle = max(0.0, total - compute - overhead - gaps)
    missing = sum(1 for r in rows if r["evaluator_seconds"] is None)

    def part(value: float) -> dict[str, float]:
        return {"seconds": value, "fraction": value / total if total > 0 else 0.0}

    return {
        "trials": len(rows), "trials_without_metric": missing, "concurrency": concurrency, "span_seconds": span,
        "slot_seconds": total, "efficiency": compute / total if total > 0 else 0.0,
        "compute": part(compute), "trial_overhead": part(overhead), "barrier_wait": part(barrier),
        "dispatch": part(dispatch), "idle_at_ends": part(idle),
        "per_trial": {
            "overhead_median": _median([r["overhead"] for r in rows]),
            "compute_median": _median([r["evaluator_seconds"] for r in rows]),
            "dispatch_median": _median([r.get("dispatch") for r in rows]),
            "first_in_slot_overhead": [next(r["overhead"] for r in rows if r.get("slot") == slot)
                                       for slot in sorted({r.get("slot") for r in rows if r.get("slot") is not None})],
        },
    }


def _median(values: Sequence[float | None]) -> float | None:
    import statistics

    kept = [v for v in values if v is not None]
    return statistics.median(kept) if kept else None


def table_text(summary: dict[str, Any]) -> str:
    names = [("compute (evaluator.evaluate)", "compute"), ("trial overhead (start, imports, report)", "trial_overhead"),
             ("gaps: generation-barrier wait", "barrier_wait"), ("gaps: dispatch (polling, tuner)", "dispatch"),
             ("idle at the ends", "idle_at_ends")]
    rows = [[label, f"{summary[key]['seconds']:.1f}", f"{100 * summary[key]['fraction']:.1f}%"] for label, key in names]
    rows.append(["total slot time", f"{summary['slot_seconds']:.1f}", "100.0%"])
    return format_table(["where the slot time goes", "seconds", "share"], rows)


def plot(rows: list[dict[str, Any]], summary: dict[str, Any], path: Path, title: str) -> None:
    plt = pyplot()
    slots = sorted({r["slot"] for r in rows})
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.7 * len(slots)))
    for row in rows:
        compute = row["evaluator_seconds"] or 0.0
        head = max(0.0, row["duration"] - compute)
        y = row["slot"]
        ax.barh(y, head, left=row["start"], height=0.6, color="0.7", edgecolor="0.4", linewidth=0.4)
        ax.barh(y, compute, left=row["start"] + head, height=0.6, color="C0", edgecolor="0.4", linewidth=0.4)
    from matplotlib.patches import Patch

    handles = [Patch(facecolor="0.7", edgecolor="0.4", label="trial overhead (process start, imports, reporting)"),
               Patch(facecolor="C0", edgecolor="0.4", label="compute (evaluator.evaluate)")]
    ax.set_yticks(slots, [f"slot {s}" for s in slots])
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the first trial started")
    ax.set_title(f"{title}\nefficiency {summary['efficiency']:.3f} "
                 f"(compute / ({summary['span_seconds']:.0f} s × {summary['concurrency']} slots))", fontsize=10)
    below = -0.35 if len(slots) <= 2 else -0.2
    ax.legend(handles=handles, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, below), ncol=2)
    ax.grid(axis="x", alpha=0.3)
    save_figure(fig, path)


def json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not JSON: {err}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def manager_poll(text: str) -> float | None:
    from nas_core.nni_adapter.experiment import parse_manager_poll

    try:
        return parse_manager_poll(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--job", type=Path, default=DEFAULT_JOB, help="folder of the job (default examples/digits)")
    parser.add_argument("--job-config", type=Path, default=Path("config.yml"), help="config file inside --job")
    parser.add_argument("--strategy", help="tuner classArgs.strategy (its strategy_args then start empty)")
    parser.add_argument("--strategy-args", type=json_object, default={}, metavar="JSON",
                        help='merged into strategy_args, e.g. \'{"elitism": 2}\'')
    parser.add_argument("--population", type=int, help="strategy_args.population_size")
    parser.add_argument("--generations", type=int, help="strategy_args.generations")
    parser.add_argument("--max-trials", type=int, help="maxTrialNumber")
    parser.add_argument("--worker", choices=("auto", "off"), help="trial command's --worker (off: a process per trial)")
    parser.add_argument("--manager-poll", type=manager_poll, default=DEFAULT_MANAGER_POLL_S, metavar="SECONDS",
                        help="NNI manager's loop for trial ends, as `nas_core search --manager-poll` "
                             f"(default {DEFAULT_MANAGER_POLL_S}; 'nni': NNI's own 0.5)")
    parser.add_argument("--concurrency", type=int, help="trialConcurrency")
    parser.add_argument("--epochs", type=int, help="evaluator epochs")
    parser.add_argument("--threads", type=int, help="evaluator threads per trial")
    parser.add_argument("--timeout", type=float, default=3600.0, help="give up after this many seconds")
    parser.add_argument("--work", type=Path, default=WORK / "b2_job",
                        help="folder for the job's copy and NNI's experiment folder (replaced on each run)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="output folder")
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    meta = header("B2 framework efficiency", "b2_framework_efficiency.py", argv, args)
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work.resolve()  # the job's copy and NNI's experiment folder; replaced each run
    if work.exists():
        shutil.rmtree(work)
    config_path, config = prepare_job(args, work / "job")
    concurrency = int(config.get("trialConcurrency", 1))
    outcome, jobs, wall = run_experiment(config_path, progress=not args.no_progress, timeout=args.timeout,
                                       manager_poll=args.manager_poll)
    records = state_records(outcome.experiment_dir)
    rows = trial_rows(jobs, state_seconds(records))
    if not rows:
        print(f"error: experiment {outcome.experiment_id} ended {outcome.status} with no finished trial: "
              f"{outcome.errors}", file=sys.stderr)
        return 1
    assign_slots(rows, concurrency)
    summary = breakdown(rows, concurrency)
    class_args = config["tuner"].get("classArgs", {})
    if class_args.get("strategy") in GENERATIONAL:
        population = int(class_args.get("strategy_args", {}).get("population_size", 32))
        summary["barrier_replay"] = barrier_replay(generation_seconds(records, population), concurrency)
    text = table_text(summary)
    print(f"\nB2: experiment {outcome.experiment_id} {outcome.status}, {summary['trials']} trials at "
          f"trialConcurrency {concurrency}; efficiency {summary['efficiency']:.3f} (target ≥ 0.9)")
    print(text)
    per = summary["per_trial"]
    print(f"per trial (median): compute {per['compute_median']:.2f} s, overhead {per['overhead_median']:.2f} s"
          + (f", dispatch gap {per['dispatch_median']:.2f} s" if per["dispatch_median"] is not None else ""))
    firsts = ", ".join(f"{s:.2f}" if s is not None else "?" for s in per["first_in_slot_overhead"])
    print(f"overhead of each slot's first trial (it starts the slot's worker): {firsts} s")
    print(f"experiment wall time from start() to {outcome.status}: {wall:.1f} s (includes NNI start-up); "
          f"Σ compute / (wall time × {concurrency}) = {summary['compute']['seconds'] / (wall * concurrency):.3f}")
    replay = summary.get("barrier_replay")
    if replay:
        print(f"barrier only, no other overhead (replayed trial times; generations of {replay['generation_sizes']} "
              f"trained): {replay['as_asked']:.3f} as asked, {replay['longest_first_exact']:.3f} longest first "
              "with exact durations")
    write_json(args.out / f"{STEM}.json", {
        **meta, "experiment_id": outcome.experiment_id, "status": outcome.status, "errors": outcome.errors,
        "experiment_dir": str(outcome.experiment_dir), "config": config, "tuner_args": class_args,
        "experiment_wall_seconds": wall, "load_average_at_end": list(os.getloadavg()), "summary": summary,
        "table": text, "trials": rows,
    })
    write_csv(args.out / f"{STEM}.csv", rows)
    plot(rows, summary, args.out / f"{STEM}.png",
         f"B2: {args.job.resolve().name} job, {summary['trials']} trials, trialConcurrency {concurrency}")
    print(f"wrote {args.out / STEM}.json, .csv, .png")
    return 0 if outcome.status == "DONE" else 1


if __name__ == "__main__":
    sys.exit(main())
