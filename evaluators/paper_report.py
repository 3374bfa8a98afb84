"""The paper's part of a search report: Table 1, Auto-A/B, the channels-per-layer figure, Eq. 4.

Reached through :meth:`BinaryWidthEvaluator.report_sections` (the core's report extension
point, :mod:`nas_core.report`). Everything is read from what the search saved: the evaluator's
description (``results.evaluator``) gives the network ``setting`` (backbone, width scale, input
size, classes, input channels) and λ (its objective's ``lam``); nothing is guessed from
dimension names or recorded FLOPs.

* **Comparison (in the form of the paper's Table 1)**: Models | FLOPs | Speedup | Memory | Top-1.
  Full-Precision and Uniform-k× rows are *computed* (:mod:`evaluators.cost`; their Top-1 only if
  the search evaluated that network); Auto-A, Auto-B and Best fitness are searched rows. Counts in
  M with one decimal as the paper, or in K when Uniform-1× is below 1M FLOPs (the 8×8 digits demo,
  where M would read "0.0M"). Evaluated Uniform-k× networks are drawn on the core's pareto.png.
* **Searched architectures**: ratio and output channels per layer, and ``channels.png`` (the
  paper's Fig. 2): channels per layer of the searched networks next to Uniform-1× and Uniform-4×.
* **Fitness**: Eq. 4 with the search's λ.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas_core.driver import Record
from nas_core.report import ReportSection, markdown_table, new_figure
from nas_core.results import SearchResults

__all__ = [
    "NetworkSetting", "PaperSelection", "auto_models", "format_count", "paper_sections", "select", "setting_of",
    "table_unit",
]

BASELINE_RATIOS = (1.0, 2.0, 3.0, 4.0)
"""Uniform-k× rows always in the table (as in Table 1); evaluated uniform networks are added."""

CHANNELS_PNG = "channels.png"
_REL_TOL = 1e-6
_DASH = "—"
_UNITS = {"M": 1e6, "K": 1e3}


# ----------------------------------------------------------------------------- setting
@dataclass(frozen=True)
class NetworkSetting:
    """What :mod:`evaluators.cost` needs to compute a width-coded network's cost."""

    backbone: str
    width_scale: float
    image_size: int
    num_classes: int
    in_channels: int
    cost_convention: str = "table1"

    def cost(self, ratios: Mapping[str, float], *, full_precision: bool = False) -> Any:
        """:class:`evaluators.cost.Cost` of the network with these per-layer ratios."""
        from .cost import network_cost

        return network_cost(self.backbone, ratios, width_scale=self.width_scale, full_precision=full_precision,
                            image_size=self.image_size, num_classes=self.num_classes, in_channels=self.in_channels,
                            convention=self.cost_convention)

    def channels(self, ratios: Mapping[str, float]) -> dict[str, int]:
        from .backbones import layer_channels

        return layer_channels(self.backbone, ratios, self.width_scale)

    def layers(self) -> list[str]:
        from .backbones import searchable_layers

        return [spec.name for spec in searchable_layers(self.backbone)]

    def uniform(self, ratio: float) -> dict[str, float]:
        return {name: float(ratio) for name in self.layers()}

    def describe(self) -> str:
        return (f"{self.backbone}, width scale {self.width_scale:g}, {self.image_size}×{self.image_size} input "
                f"with {self.in_channels} channel{'s' if self.in_channels != 1 else ''}, {self.num_classes} classes")


def setting_of(description: Mapping[str, Any] | None) -> tuple[NetworkSetting | None, str | None]:
    """The network setting the search's evaluator saved, or None and why not."""
    saved = (description or {}).get("setting")
    if not isinstance(saved, Mapping):
        return None, "the search's evaluator description has no network setting (give one with `paper-report`)"
    try:
        setting = NetworkSetting(str(saved["backbone"]), float(saved["width_scale"]), int(saved["image_size"]),
                                 int(saved["num_classes"]), int(saved["in_channels"]),
                                 str(saved.get("cost_convention", "table1")))
        setting.cost(setting.uniform(1.0), full_precision=True)
    except (KeyError, TypeError, ValueError) as err:
        return None, f"the saved network setting {dict(saved)} cannot be computed: {err}"
    return setting, None


def _ratios(arch: Mapping[str, Any]) -> dict[str, float] | None:
    """The architecture as {layer: ratio} if every value is a positive number, else None."""
    out: dict[str, float] = {}
    for name, value in arch.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            return None
        out[name] = float(value)
    return out


# --------------------------------------------------------------------------- selection
def auto_models(front: Sequence[Record], uniform1_flops: float | None) -> tuple[Record | None, Record | None]:
    """(Auto-A, Auto-B) of a Pareto front.

    Auto-A is the most accurate front member whose FLOPs do not exceed ``uniform1_flops`` (None
    when no member qualifies or the reference is unknown); Auto-B the most accurate member
    overall. Ties go to the member with fewer FLOPs.
    """
    def most_accurate(records: Iterable[Record]) -> Record | None:
        pool = [r for r in records if r.result.ok]
        if not pool:
            return None
        return min(pool, key=lambda r: (-r.result.metrics["accuracy"], r.result.metrics["flops"], r.candidate_id))

    auto_b = most_accurate(front)
    if uniform1_flops is None:
        return None, auto_b
    limit = uniform1_flops * (1 + _REL_TOL)
    return most_accurate(r for r in front if r.result.metrics["flops"] <= limit), auto_b


@dataclass
class PaperSelection:
    """The records the paper's sections talk about, chosen once so tables and figures agree."""

    front: list[Record]
    best: Record | None
    auto_a: Record | None
    auto_b: Record | None
    uniform1_flops: float
    uniform: dict[float, Record] = field(default_factory=dict)  # ratio -> evaluated uniform record (any status)


def _uniform_ratio(record: Record, setting: NetworkSetting) -> float | None:
    """k if the record is the Uniform-k× network of ``setting``'s backbone, else None."""
    ratios = _ratios(record.arch)
    if ratios is None or sorted(ratios) != sorted(setting.layers()):
        return None
    values = set(ratios.values())
    return values.pop() if len(values) == 1 else None


def select(results: SearchResults, setting: NetworkSetting) -> PaperSelection:
    """Best, accuracy-vs-FLOPs front, Auto-A/B and evaluated uniform networks; failures are never chosen."""
    from nas_core.evaluator import Metric

    front = results.pareto_front((Metric("accuracy", "maximize"), Metric("flops", "minimize")))
    uniform1 = setting.cost(setting.uniform(1.0)).flops
    auto_a, auto_b = auto_models(front, uniform1)
    uniform: dict[float, Record] = {}
    for r in results.evaluated():
        k = _uniform_ratio(r, setting)
        if k is not None and (k not in uniform or (r.result.ok and not uniform[k].result.ok)):
            uniform[k] = r
    best = results.best(1)
    return PaperSelection(front=front, best=best[0] if best else None, auto_a=auto_a, auto_b=auto_b,
                          uniform1_flops=uniform1, uniform=uniform)


# ------------------------------------------------------------------------------ format
def format_count(value: float | None, unit: str = "M") -> str:
    """A count as the paper writes it: in millions ("M", or thousands "K"), one decimal ("13.2M").

    Below 1 unit, three significant digits ("0.950M") so small networks never read "0.0M".
    """
    if value is None:
        return _DASH
    scaled = value / _UNITS[unit]
    return f"{scaled:.1f}{unit}" if abs(scaled) >= 1 else f"{scaled:#.3g}{unit}"


def table_unit(uniform1_flops: float | None) -> str:
    """"M" at the paper's scale (Uniform-1× ≥ 1M FLOPs), "K" for small demos (the 8×8 digits)."""
    return "K" if uniform1_flops is not None and uniform1_flops < 1e6 else "M"


def _ratio_label(k: float) -> str:
    return f"{k:g}×"


def _accuracy(record: Record | None) -> str:
    if record is None or not record.result.ok or "accuracy" not in record.result.metrics:
        return _DASH
    return f"{record.result.metrics['accuracy']:.2f}"


def _cost_of(record: Record, setting: NetworkSetting) -> tuple[float | None, float | None]:
    """(FLOPs, memory bits) of a record: recorded if present, else computed, else None."""
    m = record.result.metrics
    flops, memory = m.get("flops"), m.get("memory_bits")
    ratios = _ratios(record.arch)
    if (flops is None or memory is None) and ratios is not None:
        try:
            cost = setting.cost(ratios)
        except ValueError:
            return flops, memory
        flops = cost.flops if flops is None else flops
        memory = cost.memory_bits if memory is None else memory
    return flops, memory


# ------------------------------------------------------------------------------ table 1
def table_rows(selection: PaperSelection, setting: NetworkSetting, full_precision_accuracy: float | None = None,
               ) -> tuple[list[list[str]], list[tuple[str, Record]], list[str]]:
    """Table-1 rows, the searched (label, record) pairs, and notes on rows left out."""
    unit = table_unit(selection.uniform1_flops)
    fp = setting.cost(setting.uniform(1.0), full_precision=True)

    def speedup(value: float | None) -> str:
        return _DASH if not value else f"{fp.flops / value:.1f}×"

    acc = _DASH if full_precision_accuracy is None else f"{full_precision_accuracy:.2f}"
    rows = [["Full-Precision", format_count(fp.flops, unit), _DASH, format_count(fp.memory_bits, unit), acc]]
    for k in sorted(set(BASELINE_RATIOS) | set(selection.uniform)):
        cost = setting.cost(setting.uniform(k))
        rows.append([f"Uniform-{_ratio_label(k)}", format_count(cost.flops, unit), speedup(cost.flops),
                     format_count(cost.memory_bits, unit), _accuracy(selection.uniform.get(k))])
    notes: list[str] = []
    if selection.auto_a is None and selection.auto_b is not None:
        notes.append("Auto-A left out: no Pareto-front member has FLOPs ≤ Uniform-1×")
    if selection.auto_b is None:
        notes.append("Auto-A and Auto-B left out: no successful candidate has both 'accuracy' and 'flops' metrics")
    searched = [("Auto-A", selection.auto_a), ("Auto-B", selection.auto_b), ("Best fitness", selection.best)]
    chosen = [(label, r) for label, r in searched if r is not None]
    for label, record in chosen:
        flops, memory = _cost_of(record, setting)
        rows.append([label, format_count(flops, unit), speedup(flops), format_count(memory, unit), _accuracy(record)])
    return rows, chosen, notes


def _table_section(selection: PaperSelection, setting: NetworkSetting,
                   full_precision_accuracy: float | None) -> ReportSection:
    rows, _, notes = table_rows(selection, setting, full_precision_accuracy)
    unit = table_unit(selection.uniform1_flops)
    scale = "millions (M)" if unit == "M" else "thousands (K; a small-scale setting)"
    lines = [f"Network setting for computed costs: {setting.describe()} (as the search's evaluator saved it).", ""]
    lines += markdown_table(["Models", "FLOPs", "Speedup", "Memory", "Top-1(%)"], rows, "lrrrr")
    lines += ["", "FLOPs: multiply-accumulates for one image, binary layers counted ÷ 64 (as the paper). "
              f"Memory: weights in {unit}bit (32 bits per full-precision weight, 1 per binary weight). "
              f"Values in {scale}, one decimal; below 1{unit} three significant digits. "
              "Speedup = FLOPs(Full-Precision) / FLOPs(row). Top-1: validation accuracy recorded by the search "
              "(a Uniform row only if the search evaluated that network; Full-Precision only if given).", "",
              "- **Auto-A**: the most accurate Pareto-front member (accuracy vs FLOPs) with FLOPs ≤ Uniform-1× "
              f"({format_count(selection.uniform1_flops, unit)}).",
              "- **Auto-B**: the most accurate Pareto-front member.",
              "- **Best fitness**: the successful candidate of highest fitness."]
    references = [(f"Uniform-{_ratio_label(k)}", dict(r.result.metrics))
                  for k, r in sorted(selection.uniform.items()) if r.result.ok]
    return ReportSection("Comparison (in the form of the paper's Table 1)", "\n".join(lines),
                         reference_points=references, notes=notes)


# ---------------------------------------------------------------------- architectures
def _is_width_arch(record: Record, setting: NetworkSetting) -> bool:
    ratios = _ratios(record.arch)
    return ratios is not None and sorted(ratios) == sorted(setting.layers())


def _architecture_lines(chosen: Sequence[tuple[str, Record]], setting: NetworkSetting) -> list[str]:
    if not chosen:
        return ["No successful candidate."]
    if not all(_is_width_arch(r, setting) for _, r in chosen):
        return [f"- **{label}** (candidate #{r.candidate_id}, fitness {r.result.fitness:.4f}): "
                f"`{json.dumps(r.arch, sort_keys=False)}`" for label, r in chosen]
    layers = setting.layers()
    base = setting.channels(setting.uniform(1.0))
    header = ["Layer", "Uniform-1×"] + [f"{label} (#{r.candidate_id})" for label, r in chosen]
    per_record = [(_ratios(r.arch) or {}, setting.channels(_ratios(r.arch) or {})) for _, r in chosen]
    rows = [[name, f"{base[name]} ch"] + [f"{_ratio_label(ratios[name])} → {ch[name]} ch" for ratios, ch in per_record]
            for name in layers]
    lines = ["Expansion ratio and output channels per searchable layer "
             f"(channels = round(base × {setting.width_scale:g} × ratio)):", ""]
    lines += markdown_table(header, rows, "l" + "r" * (len(header) - 1))
    lines.append("")
    for label, r in chosen:
        k = _uniform_ratio(r, setting)
        same = [other for other, o in chosen if o.key == r.key and other != label]
        extra = [f"the Uniform-{_ratio_label(k)} network"] if k is not None else []
        extra += [f"same architecture as {', '.join(same)}"] if same else []
        lines.append(f"- **{label}**: candidate #{r.candidate_id} (trial {r.trial_id}), fitness "
                     f"{r.result.fitness:.4f}" + (f"; {'; '.join(extra)}" if extra else ""))
    return lines


def _channel_series(selection: PaperSelection) -> list[tuple[str, Record]]:
    """Best, smallest on front and most accurate on front; one entry per distinct record."""
    wanted = [("best fitness", selection.best),
              ("smallest on front", selection.front[0] if selection.front else None),
              ("most accurate on front", selection.auto_b)]
    merged: list[tuple[list[str], Record]] = []
    for label, record in wanted:
        if record is None:
            continue
        for labels, other in merged:
            if other.key == record.key:
                labels.append(label)
                break
        else:
            merged.append(([label], record))
    return [(" = ".join(labels) + f" (#{record.candidate_id})", record) for labels, record in merged]


def _plot_channels(series: Sequence[tuple[str, dict[str, int]]], baselines: Sequence[tuple[str, dict[str, int]]],
                   layers: Sequence[str], path: Path, title: str) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    fig = new_figure()
    ax = fig.add_subplot()
    positions = list(range(len(layers)))
    width = 0.8 / max(1, len(series))
    colors = ("tab:red", "tab:blue", "tab:orange", "tab:purple")
    for i, (label, channels) in enumerate(series):
        offset = (i - (len(series) - 1) / 2) * width
        ax.bar([p + offset for p in positions], [channels[n] for n in layers], width=width * 0.95,
               color=colors[i % len(colors)], label=label, zorder=3)
    edges = [p - 0.5 for p in positions] + [positions[-1] + 0.5]
    for (label, channels), style in zip(baselines, ("--", ":")):
        # A level across each layer's group of bars, so bars read against it directly.
        ax.stairs([channels[n] for n in layers], edges, baseline=None, linestyle=style, color="0.2", lw=1.5,
                  label=label, zorder=4)
    # Ratios are multiplicative (0.25× … 4×): a log2 axis gives every step the same height.
    ax.set_yscale("log", base=2)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    values = [c for _, channels in [*series, *baselines] for c in channels.values()]
    ax.set_ylim(2 ** (math.floor(math.log2(min(values))) - 0.5), 2 ** (math.ceil(math.log2(max(values))) + 0.3))
    ax.yaxis.set_major_locator(LogLocator(base=2))
    ax.set_xlim(edges[0], edges[-1])
    ax.set_xticks(positions)
    long_names = max(len(n) for n in layers) > 6
    ax.set_xticklabels(layers, rotation=40 if long_names else 0, ha="right" if long_names else "center", fontsize=9)
    ax.set_xlabel("searchable layer")
    ax.set_ylabel("output channels")
    ax.set_title(title, fontsize=11)
    ax.grid(True, axis="y", alpha=0.3, zorder=0)
    # Outside the axes, under the layer names: bars of any layer may reach the top, so no corner
    # inside is safe.
    fig.legend(loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    fig.savefig(path)


def _architecture_section(selection: PaperSelection, setting: NetworkSetting, chosen: Sequence[tuple[str, Record]],
                          out_dir: Path) -> ReportSection:
    series = [(label, r) for label, r in _channel_series(selection) if _is_width_arch(r, setting)]
    path = out_dir / CHANNELS_PNG
    if not series:
        if path.exists():  # an old figure must not pass for this search's
            path.unlink()
        return ReportSection("Searched architectures", "\n".join(_architecture_lines(chosen, setting)),
                             notes=[f"{CHANNELS_PNG} not drawn: no successful width-coded candidate"])
    _plot_channels(
        [(label, setting.channels(_ratios(r.arch) or {})) for label, r in series],
        [(f"Uniform-{_ratio_label(k)}", setting.channels(setting.uniform(k))) for k in (1.0, 4.0)],
        setting.layers(), path, f"{setting.backbone} (width scale {setting.width_scale:g}): output channels per layer")
    return ReportSection("Searched architectures", "\n".join(_architecture_lines(chosen, setting)), figures=[path])


# ------------------------------------------------------------------------------ fitness
def _fitness_section(description: Mapping[str, Any]) -> ReportSection:
    eq4 = "fitness = max(Top-1 − λ · FLOPs / FLOPs(binary Uniform-1×), 0) (the paper's Eq. 4)"
    objective = description.get("objective") or {}
    lam = objective.get("lam") if isinstance(objective, Mapping) else None
    if isinstance(lam, (int, float)) and not isinstance(lam, bool):
        return ReportSection("Fitness", f"{eq4} with λ = {lam:g}.")
    return ReportSection("Fitness", f"Fitness from the search's objective `{json.dumps(objective)}` (no λ saved).")


def paper_sections(results: SearchResults, out_dir: Path, *,
                   full_precision_accuracy: float | None = None) -> list[ReportSection]:
    """The paper's report sections for a search whose evaluator description is ``results.evaluator``.

    ``full_precision_accuracy`` (optional) fills the Full-Precision row's Top-1, which a binary
    search never measures itself.
    """
    description = results.evaluator or {}
    setting, why_not = setting_of(description)
    if setting is None:
        path = Path(out_dir) / CHANNELS_PNG
        if path.exists():
            path.unlink()
        return [ReportSection("Comparison (in the form of the paper's Table 1)", f"Left out: {why_not}.",
                              notes=[f"Table 1 and {CHANNELS_PNG} left out: {why_not}"]), _fitness_section(description)]
    selection = select(results, setting)
    _, chosen, _ = table_rows(selection, setting, full_precision_accuracy)
    return [_table_section(selection, setting, full_precision_accuracy),
            _architecture_section(selection, setting, chosen, Path(out_dir)),
            _fitness_section(description)]
