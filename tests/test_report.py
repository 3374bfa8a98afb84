"""write_report: Table-1 rows against evaluators.cost, Auto-A/B selection, figures, generic searches."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaluators.cost import network_cost, uniform_ratios
from nas_core.driver import Record
from nas_core.report import auto_models, format_count, resolve_setting, table_unit, write_report
from nas_core.results import SearchResults
from nas_core.space import Dimension, SearchSpace
from nas_core.strategy import TrialResult
from spaces.width import BinaryWidthSpace

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DIGITS = {"width_scale": 0.125, "image_size": 8, "num_classes": 10, "in_channels": 1}
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
    results = SearchResults(Path("state.json"), SPACE, digits_records())
    paths = write_report(results, out, backbone="vgg_small", lam=LAM, **DIGITS)
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
    assert "failed #7: diverged: loss is NaN" in md
    assert "![pareto](pareto.png)" in md and "![channels](channels.png)" in md
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
    paper = {"width_scale": 1.0, "image_size": 32, "num_classes": 10, "in_channels": 3}
    records = [make_record(0, 1, 90.24, setting=paper), make_record(1, A, 92.17, setting=paper),
               make_record(2, 0.25, 80.0, setting=paper, failed="out of memory")]
    paths = write_report(SearchResults(Path("s.json"), SPACE, records), tmp_path, backbone="vgg_small",
                         width_scale=1.0, full_precision_accuracy=93.48)
    rows = table_rows(paths["report_md"].read_text())
    assert rows["Full-Precision"] == ["608.1M", "—", "149.0M", "93.48"]
    assert rows["Uniform-1×"] == ["13.2M", "46.1×", "7.3M", "90.24"]
    assert rows["Uniform-2×"][:3] == ["45.3M", "13.4×", "23.7M"]
    assert rows["Uniform-3×"][:3] == ["96.2M", "6.3×", "49.3M"]
    assert rows["Uniform-4×"] == ["166.0M", "3.7×", "84.1M", "—"]
    assert "failed, not shown" not in paths["report_md"].read_text()  # title text lives in the figure only
    assert set(paths) >= {"pareto_png", "channels_png"}


def test_setting_is_inferred_from_names_and_recorded_flops():
    results = SearchResults(Path("s.json"), None, digits_records())
    setting, notes = resolve_setting(results)
    assert setting is not None and (setting.backbone, setting.width_scale, setting.image_size,
                                    setting.num_classes, setting.in_channels) == ("vgg_small", 0.125, 8, 10, 1)
    assert "setting inferred" in notes[0]
    wrong, notes = resolve_setting(results, backbone="vgg_small", width_scale=0.25, image_size=8,
                                   num_classes=10, in_channels=1)
    assert wrong is not None and wrong.width_scale == 0.25 and notes[0].startswith("WARNING")
    none, notes = resolve_setting(results, backbone="resnet18")
    assert none is None and "not the searchable layers" in notes[0]


def test_resnet_cifar_is_told_apart_from_resnet18_by_its_flops():
    space = BinaryWidthSpace(backbone="resnet18_cifar")
    arch = space.uniform(1)
    cost = network_cost("resnet18_cifar", arch)
    record = Record(0, 0, arch, space.key(arch), TrialResult.succeeded(
        {"accuracy": 90.0, "flops": cost.flops, "memory_bits": cost.memory_bits}, 90.0), "trained")
    setting, notes = resolve_setting(SearchResults(Path("s.json"), space, [record]))
    assert setting is not None and setting.backbone == "resnet18_cifar" and setting.image_size == 32


def toy_space() -> SearchSpace:
    return SearchSpace([Dimension("depth", (1, 2, 3)), Dimension("act", ("relu", "tanh"))])


def test_generic_search_without_flops_still_reports(tmp_path):
    space = toy_space()
    archs = [{"depth": 1, "act": "relu"}, {"depth": 3, "act": "tanh"}, {"depth": 2, "act": "relu"}]
    results = SearchResults(Path("toy.json"), space, [
        Record(0, 0, archs[0], space.key(archs[0]), TrialResult.succeeded({"score": 1.0}, 1.0), "trained"),
        Record(1, 1, archs[1], space.key(archs[1]), TrialResult.succeeded({"score": 3.0}, 3.0), "trained"),
        Record(2, 2, archs[2], space.key(archs[2]), TrialResult.failed("crashed", {"score": 9.0}), "trained"),
    ])
    (tmp_path / "pareto.png").write_bytes(PNG_MAGIC)  # stale figure from an earlier report
    paths = write_report(results, tmp_path)
    assert set(paths) == {"best_json", "trials_csv", "report_md"}
    assert not (tmp_path / "pareto.png").exists() and not (tmp_path / "channels.png").exists()
    md = paths["report_md"].read_text()
    rows = table_rows(md)
    assert list(rows) == ["Best fitness"] and rows["Best fitness"] == ["—", "—", "—", "—"]
    assert '"depth": 3, "act": "tanh"' in md
    assert "match no known backbone" in md and "pareto.png not drawn" in md and "channels.png not drawn" in md


def test_generic_search_with_flops_gets_a_front_plot_but_no_baselines(tmp_path):
    space = toy_space()
    records = []
    for cid, (depth, act) in enumerate([(1, "relu"), (2, "relu"), (3, "tanh"), (2, "tanh")]):
        arch = {"depth": depth, "act": act}
        metrics = {"accuracy": 50.0 + 10 * depth + (act == "tanh"), "flops": float(depth * depth + 1)}
        records.append(Record(cid, cid, arch, space.key(arch), TrialResult.succeeded(metrics, metrics["accuracy"]),
                              "trained"))
    paths = write_report(SearchResults(Path("toy.json"), space, records), tmp_path)
    assert set(paths) == {"best_json", "trials_csv", "pareto_png", "report_md"}
    rows = table_rows(paths["report_md"].read_text())
    assert list(rows) == ["Auto-B", "Best fitness"] and rows["Auto-B"] == ["10", "—", "—", "81.00"]
    assert "Auto-A left out" in paths["report_md"].read_text()


def test_all_failed_search_writes_a_report_without_best(tmp_path):
    records = [make_record(0, 1, 90.0, failed="diverged"), make_record(1, 2, 91.0, failed="timeout")]
    paths = write_report(SearchResults(Path("s.json"), SPACE, records), tmp_path, backbone="vgg_small", **DIGITS)
    assert set(paths) == {"trials_csv", "report_md"}
    md = paths["report_md"].read_text()
    rows = table_rows(md)
    assert rows["Uniform-1×"][3] == "—" and "Best fitness" not in rows
    assert "best.json not written" in md and "2 failed" in md
