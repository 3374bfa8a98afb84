"""The in-process runner: a whole search in one Python process, without NNI.

For tests, notebooks and quick experiments. It drives the same strategy and evaluator objects
as an NNI experiment does, shows progress with tqdm, and, given a state file, persists the
search after every result so that ``run_search(..., state_file=same)`` continues it.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .driver import SearchDriver
from .evaluator import CandidateFailed, Evaluator, Reporter, check_metrics, null_reporter
from .space import Architecture
from .state_io import read_json, write_json_atomic
from .strategy import FINISHED, WAIT, Strategy, StrategyError, TrialResult

_logger = logging.getLogger("nas_core.runner")

Score = Callable[[Architecture], TrialResult]


def score_candidate(evaluator: Evaluator, arch: Architecture, reporter: Reporter = null_reporter) -> TrialResult:
    """Prepare, time and score one candidate; a failure becomes a failed result, never an exception.

    The one place where a candidate's metrics, fitness and ``evaluator_seconds`` (the time inside
    ``evaluate`` only: ``prepare``'s once-per-process work is no candidate's compute) are made, for
    the in-process runner and for NNI trials alike. A failed preparation's reason starts with
    ``preparing the evaluator: ``.
    """
    stage = "preparing the evaluator: "
    try:
        evaluator.prepare()
        stage = ""
        started = time.perf_counter()
        metrics = check_metrics(evaluator.evaluate(arch, reporter))
        fitness = evaluator.objective.fitness(metrics)
        metrics["evaluator_seconds"] = time.perf_counter() - started
        return TrialResult.succeeded(metrics, fitness)
    except CandidateFailed as err:
        return TrialResult.failed(f"{stage}{err}")
    except Exception as err:  # the candidate failed; the search goes on
        _logger.warning("candidate %s failed:\n%s", arch, traceback.format_exc())
        return TrialResult.failed(f"{stage}{type(err).__name__}: {err}")


def describe_evaluator(evaluator: Evaluator) -> dict[str, Any]:
    """What the search records about its evaluator (:meth:`Evaluator.describe`)."""
    return dict(evaluator.describe())


def record_evaluator(driver: SearchDriver, description: dict[str, Any]) -> None:
    """Hand the evaluator's description to a driver that keeps one (reports read it)."""
    driver.set_evaluator_description(description)


def evaluator_score(evaluator: Evaluator) -> Score:
    """Turn an evaluator into a scoring function (:func:`score_candidate` without a reporter)."""

    def score(arch: Architecture) -> TrialResult:
        return score_candidate(evaluator, arch)

    return score


def run_search(
    strategy: Strategy,
    score: Score | Evaluator,
    *,
    budget: int,
    concurrency: int = 1,
    state_file: str | Path | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    batch_order: str = "none",
) -> SearchDriver:
    """Run until ``budget`` candidates were trained or the strategy finishes.

    ``concurrency`` > 1 keeps that many candidates asked before the oldest is scored, as
    parallel trials would (scoring itself stays sequential and deterministic). ``stop_after``
    stops after that many results in this call, as a crash would (for resume tests).
    ``batch_order`` is the driver's (:mod:`nas_core.scheduling`). The default, ``"none"``, keeps the
    strategy's order: candidates are scored here one at a time, so ordering them saves no time,
    and an order that follows measured durations would make a seeded search depend on timing
    noise (which candidates fall before the budget's cut, which result a steady-state strategy
    sees first). ``"longest_first"`` reproduces what the NNI tuner does.
    """
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"budget must be a positive integer, got {budget!r}")
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be a positive integer, got {concurrency!r}")
    scorer: Score = evaluator_score(score) if isinstance(score, Evaluator) else score
    driver = SearchDriver(strategy, batch_order=batch_order)
    description = describe_evaluator(score) if isinstance(score, Evaluator) else None
    queue: deque[tuple[int, Architecture]] = deque()
    next_trial = 0
    if state_file is not None and Path(state_file).exists():
        saved = read_json(state_file)
        driver.load_state_dict(saved["driver"])
        next_trial = int(saved["next_trial"])
        queue.extend((int(tid), arch) for tid, arch in driver.pending.items())
        if description is None and isinstance(saved.get("evaluator"), dict):
            description = saved["evaluator"]
    if description is not None:
        record_evaluator(driver, description)

    def trained() -> int:
        return sum(1 for r in driver.records if r.source == "trained")

    def persist() -> None:
        if state_file is not None:
            state: dict[str, Any] = {"next_trial": next_trial, "driver": driver.state_dict()}
            if description is not None:
                state["evaluator"] = description
            write_json_atomic(state_file, state)

    bar = _progress_bar(budget, trained(), enabled=progress)
    results_this_call = 0
    try:
        while trained() < budget:
            next_trial = fill_in_flight(driver, queue, min(concurrency, budget - trained()), next_trial)
            if not queue:
                if driver.strategy_finished:
                    break
                raise StrategyError(f"strategy {strategy.name!r} answered WAIT with no candidate in flight")
            trial_id, arch = queue.popleft()
            driver.tell(trial_id, scorer(arch))
            persist()
            results_this_call += 1
            if bar is not None:
                best = driver.best()
                bar.update(1)
                bar.set_postfix(best=f"{best[0].result.fitness:.3f}" if best else "-")
            if stop_after is not None and results_this_call >= stop_after:
                break
    finally:
        if bar is not None:
            bar.close()
    persist()
    return driver


def fill_in_flight(driver: SearchDriver, queue: deque[tuple[int, Architecture]], limit: int, next_trial: int) -> int:
    """Ask for candidates until ``limit`` are in flight or the driver answers WAIT or FINISHED.

    Asked candidates are appended to ``queue`` under consecutive trial ids; returns the next free id.
    """
    while len(queue) < limit:
        answer = driver.ask(next_trial)
        if answer is WAIT or answer is FINISHED:
            break
        queue.append((next_trial, answer))  # type: ignore[arg-type]
        next_trial += 1
    return next_trial


def _progress_bar(total: int, initial: int, *, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc="search", unit="trial")
