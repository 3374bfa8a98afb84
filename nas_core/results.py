"""Reading a finished (or running) search back: its records, best architectures and front.

Works on the state file the NNI tuner persists after every result
(``<experiment dir>/checkpoint/nas_search_state.json``) and on the in-process runner's state,
so reports never depend on NNI being up.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .driver import Record, best_records, pareto_front
from .space import SearchSpace
from .state_io import read_json, write_json_atomic

STATE_NAMES = ("checkpoint/nas_search_state.json", "nas_search_state.json")


class ResultsError(ValueError):
    """No search results where they were looked for; the message names the path."""


@dataclass
class SearchResults:
    source: Path
    space: SearchSpace | None
    records: list[Record]

    def evaluated(self) -> list[Record]:
        """One record per distinct architecture (the result that counts for it)."""
        latest: dict[str, Record] = {}
        for record in self.records:
            if record.source == "reused":
                continue
            previous = latest.get(record.key)
            if previous is None or (not previous.result.ok and record.result.ok):
                latest[record.key] = record
        return list(latest.values())

    def best(self, n: int = 1) -> list[Record]:
        return best_records(self.evaluated(), n)

    def pareto_front(self, maximize: str = "accuracy", minimize: str = "flops") -> list[Record]:
        return pareto_front(self.evaluated(), maximize=maximize, minimize=minimize)


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
        records = [Record.from_json(r) for r in driver_state["records"]]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ResultsError(f"{state_file}: not a readable search state ({err})") from None
    space = SearchSpace.from_nni(state["space"]) if "space" in state else None
    return SearchResults(state_file, space, records)


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
    write_json_atomic(path, data)
    return data


def write_trials_csv(results: SearchResults, path: Path) -> None:
    records = results.records
    dims: list[str] = list(results.space.names) if results.space else sorted({k for r in records for k in r.arch})
    metric_names = sorted({m for r in records for m in r.result.metrics})
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["candidate_id", "trial_id", "source", "status", "fitness", *metric_names, *dims, "reason"])
        for r in records:
            writer.writerow([
                r.candidate_id, r.trial_id, r.source, r.result.status,
                "" if r.result.fitness is None else r.result.fitness,
                *[r.result.metrics.get(m, "") for m in metric_names],
                *[r.arch.get(d, "") for d in dims],
                r.result.reason or "",
            ])


def format_record(record: Record) -> str:
    metrics = ", ".join(f"{k}={_short(v)}" for k, v in sorted(record.result.metrics.items()))
    return f"fitness {record.result.fitness:.4f}  {json.dumps(record.arch)}\n    {metrics}"


def _short(value: float) -> str:
    if abs(value) >= 1e5:
        return f"{value:.4g}"
    return f"{value:.4f}".rstrip("0").rstrip(".")
