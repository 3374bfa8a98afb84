"""Reading a finished (or running) search back: its records, best architectures and front.

Works on the state file the NNI tuner persists after every result
(``<experiment dir>/checkpoint/nas_search_state.json``) and on the in-process runner's state,
so reports never depend on NNI being up. The evaluator's description saved with the search
(``"evaluator"``, its :meth:`~nas_core.evaluator.Evaluator.describe`) says which metrics it
declared; a state saved without one (older searches) still loads, with ``evaluator`` None.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .driver import Record, best_records, counted_records, declared_pareto, one_record_per_candidate, pareto_front
from .errors import UserError
from .evaluator import Metric, declaration_of
from .space import SearchSpace
from .state_io import read_json, write_json_atomic

STATE_NAMES = ("checkpoint/nas_search_state.json", "nas_search_state.json")


class ResultsError(UserError, ValueError):
    """No search results where they were looked for; the message names the path."""


@dataclass
class SearchResults:
    source: Path
    space: SearchSpace | None
    records: list[Record]
    evaluator: dict[str, Any] | None = None
    """The evaluator's saved description, or None for a search saved without one."""
    notes: list[str] = field(default_factory=list)
    """What a reader should know about where the records came from (shown in report.md)."""

    def evaluated(self) -> list[Record]:
        """One record per distinct architecture (the result that counts for it)."""
        return list(counted_records(self.records).values())

    def best(self, n: int = 1) -> list[Record]:
        return best_records(self.evaluated(), n)

    @property
    def metrics(self) -> tuple[Metric, ...]:
        """The evaluator's declared metrics (empty when its description was not saved)."""
        return () if self.evaluator is None else declaration_of(self.evaluator)[0]

    @property
    def pareto_metrics(self) -> tuple[Metric, Metric] | None:
        """The declared Pareto pair as metrics with directions (y, x), or None if not declared."""
        if self.evaluator is None:
            return None
        metrics, pair = declaration_of(self.evaluator)
        return None if pair is None else declared_pareto(metrics, pair)

    def pareto_front(self, metrics: Sequence[Metric] | None = None) -> list[Record]:
        """Non-dominated distinct architectures over ``metrics`` (default: the declared pair)."""
        chosen = metrics or self.pareto_metrics
        if chosen is None:
            raise ValueError(f"{self.source}: no Pareto metrics declared by the search's evaluator; pass them")
        return pareto_front(self.evaluated(), chosen)


def find_state_file(location: str | Path) -> Path:
    path = Path(location)
    if path.is_file():
        return path
    for name in STATE_NAMES:
        if (path / name).is_file():
            return path / name
    raise ResultsError(f"{path}: no search state found (looked for {', '.join(STATE_NAMES)})")


def load_results(location: str | Path) -> SearchResults:
    state_file = find_state_file(location)
    try:
        state = read_json(state_file)
        driver_state = state["driver"]
        records = one_record_per_candidate(Record.from_json(r) for r in driver_state["records"])
        results = SearchResults(state_file, None, records, state.get("evaluator") or driver_state.get("evaluator"))
        _ = results.pareto_metrics  # a malformed saved declaration is told here, naming the file
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise ResultsError(f"{state_file}: not a readable search state ({err})") from None
    if "space" in state:
        results.space = SearchSpace.from_nni(state["space"])
    return results


def write_best_json(results: SearchResults, path: Path) -> dict[str, Any] | None:
    best = results.best(1)
    if not best:
        return None
    record = best[0]
    data = {
        "architecture": record.arch,
        "fitness": record.result.fitness,
        "metrics": dict(record.result.metrics),
        "trial_id": record.trial_id,
        "candidate_id": record.candidate_id,
    }
    if record.external_number is not None:
        data["trial_number"] = record.external_number
    if record.external_id is not None:
        data["trial_job"] = record.external_id
    write_json_atomic(path, data)
    return data


def write_trials_csv(results: SearchResults, path: Path) -> None:
    records = results.records
    dims: list[str] = list(results.space.names) if results.space else sorted({k for r in records for k in r.arch})
    metric_names = sorted({m for r in records for m in r.result.metrics})
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["candidate_id", "trial_id", "trial_number", "trial_job", "source", "status", "fitness",
                         *metric_names, *dims, "reason", "strategy_told"])
        for r in records:
            writer.writerow([
                r.candidate_id, r.trial_id, _blank(r.external_number), _blank(r.external_id), r.source, r.result.status,
                "" if r.result.fitness is None else r.result.fitness,
                *[r.result.metrics.get(m, "") for m in metric_names],
                *[r.arch.get(d, "") for d in dims],
                r.result.reason or "",
                r.strategy_told or "",
            ])


def _blank(value: Any) -> Any:
    return "" if value is None else value


def trial_label(record: Record) -> str:
    """How a person finds the trial that trained ``record`` in the runner's own UI ("Trial No. 3"),
    or "" when the runner did not say."""
    return "" if record.external_number is None else f"Trial No. {record.external_number}"


def format_record(record: Record) -> str:
    metrics = ", ".join(f"{k}={_short(v)}" for k, v in sorted(record.result.metrics.items()))
    label = trial_label(record)
    return f"fitness {record.result.fitness:.4f}  {json.dumps(record.arch)}{f'  ({label})' if label else ''}\n    {metrics}"


def _short(value: float) -> str:
    if abs(value) >= 1e5:
        return f"{value:.4g}"
    return f"{value:.4f}".rstrip("0").rstrip(".")
