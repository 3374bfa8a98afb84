"""The core's generic report: files, the Pareto figure of the declared pair in its directions, the evaluator's
description saved with the results, and the report_sections extension point."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from nas_core.driver import Record
from nas_core.evaluator import Evaluator, Metric, MetricObjective
from nas_core.report import ReportSection, write_report
from nas_core.results import ResultsError, SearchResults, load_results
from nas_core.space import Dimension, SearchSpace
from nas_core.state_io import write_json_atomic
from nas_core.strategy import TrialResult

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SPACE = SearchSpace([Dimension("depth", (1, 2, 3, 4)), Dimension("act", ("relu", "tanh"))])


class SpeedEvaluator(Evaluator):
    """Declares 'quality' (maximised) and 'latency' (minimised); contributes one report section."""

    name = "speed"
    metrics = (Metric("quality", "maximize", "made-up score"), Metric("latency", "minimize", "ms"),
               Metric("size", "minimize"))
    pareto_metrics = ("quality", "latency")

    def __init__(self, *, scale: float = 1.0, tag: str = "") -> None:
        self.scale = scale
        self.objective = MetricObjective("quality")

    def evaluate(self, arch, reporter=None):  # type: ignore[no-untyped-def]
        depth = int(arch["depth"])
        return {"quality": self.scale * depth, "latency": float(depth * depth), "size": float(depth)}

    @classmethod
    def report_sections(cls, results: SearchResults, out_dir: Path) -> list[ReportSection]:
        figure = out_dir / "extra.png"
        figure.write_bytes(PNG_MAGIC)
        scale = (results.evaluator or {}).get("args", {}).get("scale")
        return [ReportSection("Speed table", f"scale as saved: {scale}", figures=[figure],
                              reference_points=[("baseline", {"quality": 2.5, "latency": 3.0})],
                              notes=["a note from the evaluator"])]


def record(cid: int, depth: int, act: str, metrics: Mapping[str, float], *, failed: str | None = None,
           source: str = "trained") -> Record:
    arch = {"depth": depth, "act": act}
    result = TrialResult.failed(failed, metrics) if failed else TrialResult.succeeded(metrics, metrics.get("quality", 0.0))
    return Record(cid, cid, arch, SPACE.key(arch), result, source)  # type: ignore[arg-type]


def speed_records() -> list[Record]:
    evaluator = SpeedEvaluator()
    out = []
    for cid, (depth, act) in enumerate([(1, "relu"), (2, "relu"), (3, "tanh"), (4, "relu")]):
        out.append(record(cid, depth, act, evaluator.evaluate({"depth": depth, "act": act})))
    out.append(record(4, 2, "tanh", {"quality": 99.0, "latency": 0.5}, failed="crashed"))
    return out


def test_describe_saves_the_constructor_arguments_metrics_and_objective():
    description = SpeedEvaluator(scale=2.0, tag="x").describe()
    assert json.loads(json.dumps(description)) == description
    assert description == {
        "name": "speed", "class": "tests.test_report:SpeedEvaluator", "args": {"scale": 2.0, "tag": "x"},
        "metrics": [{"name": "quality", "direction": "maximize", "description": "made-up score"},
                    {"name": "latency", "direction": "minimize", "description": "ms"},
                    {"name": "size", "direction": "minimize", "description": ""}],
        "pareto_metrics": ["quality", "latency"], "objective": {"name": "metric", "metric": "quality"},
    }


def test_metric_objective_names_its_metric():
    with pytest.raises(ValueError, match="metric must be a non-empty metric name, got ''"):
        MetricObjective("")


def test_generic_report_plots_the_declared_pair_and_adds_the_evaluator_sections(tmp_path):
    results = SearchResults(Path("speed.json"), SPACE, speed_records(), SpeedEvaluator(scale=1.0).describe())
    paths = write_report(results, tmp_path)
    assert set(paths) == {"best_json", "trials_csv", "pareto_png", "extra_png", "report_md"}
    assert paths["pareto_png"].read_bytes().startswith(PNG_MAGIC)
    md = paths["report_md"].read_text()
    assert md.startswith("# Search report: speed")
    assert "## Speed table\n\nscale as saved: 1.0" in md and "![extra](extra.png)" in md
    assert "- a note from the evaluator" in md
    assert "## Pareto front: quality (↑) vs latency (↓)" in md
    front = [line.split("|")[1].strip() for line in md.split("## Pareto front")[1].splitlines() if line.startswith("| #")]
    assert front == ["#0", "#1", "#2", "#3"]  # each deeper candidate is better and slower: all on the front
    assert "#4: crashed" in md and "99" not in md.split("## Failed")[0]  # a failure is never best nor on the front
    assert "accuracy" not in md and "flops" not in md.lower()


def test_directions_come_from_the_declaration():
    """Declaring latency as maximised turns the same records' front into the single best-in-both one."""
    description = SpeedEvaluator().describe()
    description["metrics"][1]["direction"] = "maximize"
    front = SearchResults(Path("s.json"), SPACE, speed_records(), description).pareto_front()
    assert [r.candidate_id for r in front] == [3]


def test_a_search_saved_without_a_description_gets_the_generic_report_and_a_note(tmp_path):
    (tmp_path / "pareto.png").write_bytes(PNG_MAGIC)  # stale figure from an earlier report
    paths = write_report(SearchResults(Path("old.json"), SPACE, speed_records()), tmp_path)
    assert set(paths) == {"best_json", "trials_csv", "report_md"} and not (tmp_path / "pareto.png").exists()
    md = paths["report_md"].read_text()
    assert "saved no evaluator description" in md and "| 1 | #3 | 4 |" in md


def test_no_declared_pair_and_an_unknown_evaluator_are_said(tmp_path):
    description = {**SpeedEvaluator().describe(), "pareto_metrics": None, "class": "no_such_module:Evaluator"}
    md = write_report(SearchResults(Path("s.json"), SPACE, speed_records(), description), tmp_path)["report_md"].read_text()
    assert "pareto.png not drawn: the evaluator declares no pareto_metrics" in md
    assert "own report sections are left out" in md and "no_such_module" in md


def test_all_failed_search_writes_a_report_without_best(tmp_path):
    records = [record(0, 1, "relu", {}, failed="diverged"), record(1, 2, "relu", {}, failed="timeout")]
    paths = write_report(SearchResults(Path("s.json"), SPACE, records, SpeedEvaluator().describe()), tmp_path)
    assert set(paths) == {"trials_csv", "extra_png", "report_md"}
    md = paths["report_md"].read_text()
    assert "best.json not written" in md and "2 failed" in md and "No successful candidate." in md


def test_load_results_reads_the_saved_description_at_the_top_or_in_the_driver_state(tmp_path):
    records = [r.to_json() for r in speed_records()]
    description = SpeedEvaluator().describe()
    write_json_atomic(tmp_path / "top.json", {"evaluator": description, "driver": {"records": records}})
    write_json_atomic(tmp_path / "driver.json", {"driver": {"records": records, "evaluator": description}})
    write_json_atomic(tmp_path / "none.json", {"driver": {"records": records}})
    for name in ("top.json", "driver.json"):
        results = load_results(tmp_path / name)
        assert results.evaluator == description and [m.name for m in results.pareto_metrics or ()] == ["quality", "latency"]
    assert load_results(tmp_path / "none.json").evaluator is None
    bad = {**description, "pareto_metrics": ["quality", "speed"]}
    write_json_atomic(tmp_path / "bad.json", {"evaluator": bad, "driver": {"records": records}})
    with pytest.raises(ResultsError, match="bad.json: not a readable search state.*'speed', which is not declared"):
        load_results(tmp_path / "bad.json")


def test_early_stopped_candidates_are_shown_apart_and_never_best_nor_on_the_front(tmp_path):
    """An early stop with tempting partial metrics (better in both) stays out of best, front and figure."""
    arch = {"depth": 1, "act": "tanh"}
    stopped = Record(5, "Xy12z", arch, SPACE.key(arch),
                     TrialResult.stopped_early("stopped by Medianstop after 2 epochs", {"quality": 50.0, "latency": 0.1}),
                     "trained")
    results = SearchResults(Path("s.json"), SPACE, [*speed_records(), stopped], SpeedEvaluator().describe(),
                            notes=["records rebuilt from somewhere"])
    paths = write_report(results, tmp_path)
    best = json.loads(paths["best_json"].read_text())
    assert best["candidate_id"] == 3 and best["fitness"] == 4.0
    md = paths["report_md"].read_text()
    assert "4 succeeded, 1 early-stopped" in md and "1 failed" in md
    early = md.split("## Early-stopped candidates")[1].split("##")[0]
    assert "| #5 | Xy12z | latency=0.1, quality=50 | stopped by Medianstop after 2 epochs |" in early
    assert "#5" not in md.split("## Early-stopped")[0]  # not in best nor front
    assert "- records rebuilt from somewhere" in md
    rows = paths["trials_csv"].read_text().splitlines()
    assert any(row.startswith("5,Xy12z,,,trained,early_stopped,,") for row in rows)  # no trial number, job


def test_a_best_candidate_the_strategy_was_told_failed_is_marked(tmp_path):
    """A success that arrived after its failure was told upgrades the record; the report says the
    search's choices never saw it."""
    import csv
    import dataclasses

    records = speed_records()
    records[3] = dataclasses.replace(records[3], strategy_told="failed")
    paths = write_report(SearchResults(Path("s.json"), SPACE, records, SpeedEvaluator().describe()), tmp_path, top=4)
    md = paths["report_md"].read_text()
    assert "- #3: the strategy was told it failed (its success arrived later)" in md
    rows = list(csv.DictReader(paths["trials_csv"].open()))
    assert [row["strategy_told"] for row in rows] == ["", "", "", "failed", ""]


def test_a_reason_with_newlines_or_pipes_stays_in_its_list_item_and_table_cell(tmp_path):
    reason = "diverged\nTraceback line | pipe"
    stop = Record(1, 1, {"depth": 2, "act": "relu"}, SPACE.key({"depth": 2, "act": "relu"}),
                  TrialResult.stopped_early("stopped | by\nassessor", {"quality": 1.0}), "trained")
    records = [record(0, 1, "relu", {}, failed=reason), stop]
    md = write_report(SearchResults(Path("s.json"), SPACE, records, SpeedEvaluator().describe()),
                      tmp_path)["report_md"].read_text()
    assert "diverged Traceback line | pipe" in md and "\nTraceback line" not in md
    (row,) = [line for line in md.splitlines() if "stopped" in line and line.startswith("| ")]
    assert "stopped \\| by assessor" in row and row.count(" | ") == 4  # five cells


def test_an_evaluator_whose_module_fails_to_import_leaves_its_sections_out_with_a_note(tmp_path, monkeypatch):
    (tmp_path / "broken_eval_plugin.py").write_text("raise RuntimeError('import-time bug')\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    description = {**SpeedEvaluator().describe(), "class": "broken_eval_plugin:Evaluator"}
    md = write_report(SearchResults(Path("s.json"), SPACE, speed_records(), description),
                      tmp_path / "out")["report_md"].read_text()
    assert "own report sections are left out: RuntimeError: import-time bug" in md
