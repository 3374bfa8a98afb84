"""The paper's report sections (evaluators.paper_report) reached through the core report's extension point:
Table-1 rows against evaluators.cost, Auto-A/B selection, the channels figure, the setting read from the saved
evaluator description (never inferred)."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaluators.cli_commands import CommandError, paper_description
from evaluators.cost import network_cost, uniform_ratios
from evaluators.paper_report import auto_models, format_count, paper_sections, table_unit
from nas_core.cli import main
from nas_core.driver import Record
from nas_core.report import write_report
from nas_core.results import SearchResults
from nas_core.state_io import write_json_atomic
from nas_core.strategy import TrialResult
from spaces.width import BinaryWidthSpace

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DIGITS = {"width_scale": 0.125, "image_size": 8, "num_classes": 10, "in_channels": 1}
PAPER = {"width_scale": 1.0, "image_size": 32, "num_classes": 10, "in_channels": 3}
LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "conv6")
SPACE = BinaryWidthSpace(backbone="vgg_small")
LAM = 4.0


def arch_of(ratios: float | tuple[float, ...]) -> dict[str, float]:
    values = ratios if isinstance(ratios, tuple) else (ratios,) * len(LAYERS)
    return SPACE.validate(dict(zip(LAYERS, values)))


def make_record(cid: int, ratios: float | tuple[float, ...], acc: float, *, setting: dict = DIGITS,
                failed: str | None = None, source: str = "trained") -> Record:
    """A record with the metrics BinaryWidthEvaluator would report for this architecture."""
    arch = arch_of(ratios)
    cost = network_cost("vgg_small", arch, **setting)
    ref = network_cost("vgg_small", uniform_ratios("vgg_small", 1), **setting).flops
    metrics = {"accuracy": acc, "flops": cost.flops, "flops_norm": cost.flops / ref,
               "memory_bits": cost.memory_bits, "params": float(cost.params)}
    result = (TrialResult.failed(failed, metrics) if failed
              else TrialResult.succeeded(metrics, max(acc - LAM * metrics["flops_norm"], 0.0)))
    return Record(cid, cid if source == "trained" else None, arch, SPACE.key(arch), result, source)  # type: ignore[arg-type]


A = (0.5, 0.5, 1, 1, 0.5, 1)  # narrower than Uniform-1× in places: Auto-A
B = (1, 2, 2, 1, 2, 2)  # the most accurate: Auto-B


def digits_records() -> list[Record]:
    return [
        make_record(0, 1, 90.0),  # Uniform-1×
        make_record(1, 4, 93.0),  # Uniform-4×
        make_record(2, 0.5, 80.0),  # Uniform-0.5×
        make_record(3, 2, 91.0),  # Uniform-2×, dominated by A
        make_record(4, A, 92.0),
        make_record(5, B, 95.0),
        make_record(6, 0.25, 70.0),  # smallest on the front
        make_record(7, (0.25, 0.5, 0.5, 0.5, 0.5, 0.5), 99.0, failed="diverged: loss is NaN"),
        make_record(8, A, 92.0, source="reused"),
    ]


def table_rows(md: str) -> dict[str, list[str]]:
    """Table-1 rows of report.md: model name -> [FLOPs, Speedup, Memory, Top-1]."""
    lines = md.splitlines()
    start = lines.index("| Models | FLOPs | Speedup | Memory | Top-1(%) |")
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def digits_cost(ratios: float | tuple[float, ...], full_precision: bool = False):
    return network_cost("vgg_small", arch_of(ratios), full_precision=full_precision, **DIGITS)


@pytest.fixture(scope="module")
def digits_report(tmp_path_factory) -> tuple[Path, dict[str, Path], SearchResults]:
    out = tmp_path_factory.mktemp("report")
    results = SearchResults(Path("state.json"), SPACE, digits_records(), paper_description(None, lam=LAM))
    paths = write_report(results, out)
    return out, paths, results


def test_writes_the_four_files_and_figures_are_real_pngs(digits_report):
    out, paths, _ = digits_report
    assert set(paths) == {"best_json", "trials_csv", "pareto_png", "channels_png", "report_md"}
    for name in ("best.json", "trials.csv", "pareto.png", "channels.png", "report.md"):
        assert (out / name).is_file(), name
    for name in ("pareto.png", "channels.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 20_000, (name, len(data))
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert (width, height) == (840, 600)  # (7, 5) inches at 120 dpi
    assert len((out / "trials.csv").read_text().splitlines()) == 1 + 9


def test_table1_baselines_match_evaluators_cost(digits_report):
    out, _, _ = digits_report
    rows = table_rows((out / "report.md").read_text())
    fp = digits_cost(1, full_precision=True)
    assert table_unit(digits_cost(1).flops) == "K"  # digits-scale networks are counted in thousands
    assert rows["Full-Precision"] == [format_count(fp.flops, "K"), "—", format_count(fp.memory_bits, "K"), "—"]
    assert rows["Full-Precision"][:3] == ["612.9K", "—", "2617.9K"]
    for k, label, top1 in ((0.5, "Uniform-0.5×", "80.00"), (1, "Uniform-1×", "90.00"), (2, "Uniform-2×", "91.00"),
                           (3, "Uniform-3×", "—"), (4, "Uniform-4×", "93.00")):
        cost = digits_cost(k)
        assert rows[label] == [format_count(cost.flops, "K"), f"{fp.flops / cost.flops:.1f}×",
                               format_count(cost.memory_bits, "K"), top1], label
    assert rows["Uniform-1×"][:3] == ["29.7K", "20.6×", "403.7K"]
    assert rows["Uniform-0.25×"][3] == "70.00"  # evaluated uniform networks get a row too
    assert list(rows) == ["Full-Precision", "Uniform-0.25×", "Uniform-0.5×", "Uniform-1×", "Uniform-2×", "Uniform-3×",
                          "Uniform-4×", "Auto-A", "Auto-B", "Best fitness"]


def test_searched_rows_are_auto_a_auto_b_and_best(digits_report):
    out, _, results = digits_report
    md = (out / "report.md").read_text()
    rows = table_rows(md)
    fp = digits_cost(1, full_precision=True).flops
    for label, ratios, top1 in (("Auto-A", A, "92.00"), ("Auto-B", B, "95.00")):
        cost = digits_cost(ratios)
        assert rows[label] == [format_count(cost.flops, "K"), f"{fp / cost.flops:.1f}×",
                               format_count(cost.memory_bits, "K"), top1], label
    best = max((r for r in results.records if r.result.ok), key=lambda r: r.result.fitness)
    assert best.candidate_id == 4 and rows["Best fitness"] == rows["Auto-A"]
    assert "same architecture as Auto-A" in md and "λ = 4" in md
    assert "8 distinct architectures evaluated: 7 succeeded, 1 failed" in md
    assert "#7: diverged: loss is NaN" in md
    assert "](pareto.png)" in md and "![channels](channels.png)" in md
    assert "| conv1 | 16 ch | 0.5× → 8 ch |" in md  # channel table: base 128 × 0.125 × ratio


def test_failed_candidate_is_never_best_even_with_the_highest_accuracy(digits_report):
    import json

    out, _, _ = digits_report
    best = json.loads((out / "best.json").read_text())
    assert best["candidate_id"] == 4 and best["metrics"]["accuracy"] == 92.0
    assert "99.00" not in (out / "report.md").read_text()


def test_counts_are_formatted_as_the_paper_writes_them():
    assert format_count(13_194_250) == "13.2M" and format_count(608_059_402) == "608.1M"
    assert format_count(950_300) == "0.950M" and format_count(29_746, "K") == "29.7K"
    assert format_count(None) == "—"
    assert table_unit(13.2e6) == "M" and table_unit(None) == "M"


def test_auto_models_on_a_hand_made_front():
    u1 = digits_cost(1).flops
    small, a, u1_rec, b = (make_record(0, 0.25, 70.0), make_record(1, A, 92.0), make_record(2, 1, 90.0),
                           make_record(3, B, 95.0))
    front = [small, a, u1_rec, b]
    assert auto_models(front, u1) == (a, b)
    assert auto_models(front, None) == (None, b)
    assert auto_models([b], u1) == (None, b)  # nothing at most Uniform-1× FLOPs
    assert auto_models([], u1) == (None, None)
    tie = make_record(4, 2, 95.0)  # as accurate as b but more FLOPs: b wins
    assert auto_models([b, tie], u1)[1] is b


def test_paper_scale_table_reproduces_table1(tmp_path):
    records = [make_record(0, 1, 90.24, setting=PAPER), make_record(1, A, 92.17, setting=PAPER),
               make_record(2, 0.25, 80.0, setting=PAPER, failed="out of memory")]
    results = SearchResults(Path("s.json"), SPACE, records, paper_description(None, dataset="cifar10", lam=LAM))
    sections = paper_sections(results, tmp_path, full_precision_accuracy=93.48)
    rows = table_rows(sections[0].markdown)
    assert rows["Full-Precision"] == ["608.1M", "—", "149.0M", "93.48"]
    assert rows["Uniform-1×"] == ["13.2M", "46.1×", "7.3M", "90.24"]
    assert rows["Uniform-2×"][:3] == ["45.3M", "13.4×", "23.7M"]
    assert rows["Uniform-3×"][:3] == ["96.2M", "6.3×", "49.3M"]
    assert rows["Uniform-4×"] == ["166.0M", "3.7×", "84.1M", "—"]
    assert [p.name for p in sections[1].figures] == ["channels.png"]
    assert sections[0].reference_points == [("Uniform-1×", dict(records[0].result.metrics))]


def test_the_setting_is_read_from_the_saved_description_not_guessed(tmp_path):
    """The same records under another saved setting give that setting's baselines: nothing is inferred."""
    results = SearchResults(Path("s.json"), SPACE, digits_records(), paper_description(None, dataset="cifar10"))
    rows = table_rows(paper_sections(results, tmp_path)[0].markdown)
    assert rows["Uniform-1×"][0] == "13.2M"  # cifar10's vgg_small, as saved, although the FLOPs are digits'
    unsaved = SearchResults(Path("s.json"), SPACE, digits_records(), {"name": "binary_width", "metrics": []})
    (tmp_path / "channels.png").write_bytes(PNG_MAGIC)  # stale figure from an earlier report
    sections = paper_sections(unsaved, tmp_path)
    assert "has no network setting" in sections[0].markdown and not (tmp_path / "channels.png").exists()


def test_paper_description_overrides_and_refuses_other_evaluators():
    saved = paper_description(None, lam=2.0)
    assert saved["setting"] == {"backbone": "vgg_small", "dataset": "digits", **DIGITS, "cost_convention": "table1"}
    assert saved["objective"]["lam"] == 2.0
    wider = paper_description(saved, width_scale=0.25)
    assert wider["setting"]["width_scale"] == 0.25 and wider["objective"]["lam"] == 2.0
    with pytest.raises(CommandError, match="'toy', not 'binary_width'"):
        paper_description({"name": "toy"})
    with pytest.raises(CommandError, match="--width-scale must be a finite number > 0, got -1"):
        paper_description(None, width_scale=-1)


def test_paper_report_command_reports_a_search_saved_without_a_description(tmp_path, capsys):
    state = tmp_path / "state.json"
    write_json_atomic(state, {"driver": {"records": [r.to_json() for r in digits_records()]}})
    assert main(["report", str(state), "--output", str(tmp_path / "generic")]) == 0
    generic = (tmp_path / "generic" / "report.md").read_text()
    assert "saved no evaluator description" in generic and "Table 1" not in generic
    assert main(["paper-report", str(state), "--lam", "4", "--output", str(tmp_path / "paper")]) == 0
    md = (tmp_path / "paper" / "report.md").read_text()
    assert table_rows(md)["Uniform-1×"][:3] == ["29.7K", "20.6×", "403.7K"] and "λ = 4" in md
    assert (tmp_path / "paper" / "channels.png").is_file() and (tmp_path / "paper" / "pareto.png").is_file()
    assert main(["paper-report", str(state), "--dataset", "mnist"]) == 2
    assert "--dataset must be one of" in capsys.readouterr().err


def test_all_failed_search_writes_a_report_without_best(tmp_path):
    records = [make_record(0, 1, 90.0, failed="diverged"), make_record(1, 2, 91.0, failed="timeout")]
    paths = write_report(SearchResults(Path("s.json"), SPACE, records, paper_description(None)), tmp_path)
    assert set(paths) == {"trials_csv", "report_md"}
    md = paths["report_md"].read_text()
    rows = table_rows(md)
    assert rows["Uniform-1×"][3] == "—" and "Best fitness" not in rows
    assert "best.json not written" in md and "2 failed" in md


def test_the_paper_evaluator_describes_its_metrics_setting_and_lambda():
    from evaluators.fitness import BinaryWidthEvaluator

    description = BinaryWidthEvaluator(dataset="digits", lam=2.0, epochs=1).describe()
    assert description["args"] == {"dataset": "digits", "lam": 2.0, "epochs": 1}  # as given, defaults not filled
    assert description["pareto_metrics"] == ["accuracy", "flops"]
    directions = {m["name"]: m["direction"] for m in description["metrics"]}
    assert description["metrics"][0]["name"] == "accuracy" and directions["accuracy"] == "maximize"
    assert directions["flops"] == directions["flops_norm"] == directions["memory_bits"] == "minimize"
    assert description["objective"] == {"name": "binary_fitness", "lam": 2.0}
    assert description["setting"] == {"backbone": "vgg_small", "dataset": "digits", **DIGITS, "cost_convention": "table1"}
