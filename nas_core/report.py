"""A finished search as files a person reads: best.json, trials.csv, two figures and report.md.

``report.md`` compares the searched networks with the uniformly widened ones and the
full-precision network in the form of the paper's Table 1 (Models | FLOPs | Speedup | Memory |
Top-1; counts in M with one decimal as the paper, or in K when Uniform-1× is below 1M FLOPs, as
in the 8×8 digits demo, where M would read "0.0M"). ``pareto.png`` shows accuracy against FLOPs
for every successful candidate with the Pareto front, the evaluated Uniform-k× baselines and the
best candidate; ``channels.png`` shows output channels per layer of the searched networks next to
Uniform-1× and Uniform-4× (the paper's Fig. 2).

Baseline costs are *computed* (``evaluators.cost``), so they need the network setting: backbone,
width scale, input size, classes, input channels. Arguments win; missing ones are inferred from
the dimension names (``conv1..conv6`` → vgg_small, ``stage*.out``/``stage*.block*.inner`` →
resnet18 or resnet18_cifar) and from the recorded FLOPs, which must match a known setting (the
paper's, or the 8×8 digits demo's). Whatever cannot be known is left out and said so in
report.md — a generic search (toy space, no ``flops`` metric) still gets best.json, trials.csv
and a report with the best candidate; figures that need FLOPs or a backbone are skipped, with a
note saying why, and a stale figure from an earlier report in the same folder is removed.

``nas_core`` itself imports neither torch nor matplotlib: both are imported when first needed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .driver import Record
from .results import SearchResults, write_best_json, write_trials_csv

__all__ = [
    "NetworkSetting", "ReportSelection", "auto_models", "format_count", "resolve_setting", "select", "table_unit",
    "write_report",
]

BASELINE_RATIOS = (1.0, 2.0, 3.0, 4.0)
"""Uniform-k× rows always in the table (as in Table 1); evaluated uniform networks are added."""

_REL_TOL = 1e-6
_DASH = "—"
_UNITS = {"M": 1e6, "K": 1e3}


# ----------------------------------------------------------------------------- setting


@dataclass(frozen=True)
class NetworkSetting:
    """What ``evaluators.cost`` needs to compute a width-coded network's cost."""

    backbone: str
    width_scale: float
    image_size: int
    num_classes: int
    in_channels: int

    def cost(self, ratios: Mapping[str, float], *, full_precision: bool = False) -> Any:
        """``evaluators.cost.Cost`` of the network with these per-layer ratios."""
        from evaluators.cost import network_cost

        return network_cost(self.backbone, ratios, width_scale=self.width_scale, full_precision=full_precision,
                            image_size=self.image_size, num_classes=self.num_classes, in_channels=self.in_channels)

    def channels(self, ratios: Mapping[str, float]) -> dict[str, int]:
        from evaluators.backbones import layer_channels

        return layer_channels(self.backbone, ratios, self.width_scale)

    def layers(self) -> list[str]:
        from evaluators.backbones import searchable_layers

        return [spec.name for spec in searchable_layers(self.backbone)]

    def uniform(self, ratio: float) -> dict[str, float]:
        return {name: float(ratio) for name in self.layers()}

    def describe(self) -> str:
        return (f"{self.backbone}, width scale {self.width_scale:g}, {self.image_size}×{self.image_size} input "
                f"with {self.in_channels} channel{'s' if self.in_channels != 1 else ''}, {self.num_classes} classes")


def _dimension_names(results: SearchResults) -> list[str]:
    if results.space is not None:
        return list(results.space.names)
    names: list[str] = []
    for record in results.records:
        names.extend(k for k in record.arch if k not in names)
    return names


def _ratios(arch: Mapping[str, Any]) -> dict[str, float] | None:
    """The architecture as {layer: ratio} if every value is a positive number, else None."""
    out: dict[str, float] = {}
    for name, value in arch.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            return None
        out[name] = float(value)
    return out


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=_REL_TOL, abs_tol=1e-12)


def resolve_setting(
    results: SearchResults,
    *,
    backbone: str | None = None,
    width_scale: float | None = None,
    image_size: int | None = None,
    num_classes: int | None = None,
    in_channels: int | None = None,
) -> tuple[NetworkSetting | None, list[str]]:
    """The setting that computed baselines use, and notes on how it was found (or why not).

    Given values are kept. Missing ones come from candidate settings (for each backbone that
    the dimension names fit: the paper's setting, then the digits demo's); the first candidate
    whose computed FLOPs (and memory) match the recorded ones of up to 8 successful candidates
    wins. If none matches, the first candidate is used and a note warns that the baselines may
    not be comparable; if the names fit no backbone, the result is None.
    """
    try:
        from evaluators.backbones import BACKBONES, PAPER_SETTINGS, searchable_layers
        from evaluators.fitness import DATASET_SETTINGS
    except ImportError as err:  # the evaluator plugins are not installed
        return None, [f"baselines left out: evaluators.backbones could not be imported ({err})"]
    notes: list[str] = []
    names = _dimension_names(results)
    fits = [b for b in BACKBONES if sorted(s.name for s in searchable_layers(b)) == sorted(names)]
    if backbone is not None:
        if backbone not in BACKBONES:
            return None, [f"baselines left out: unknown backbone {backbone!r} (known: {', '.join(BACKBONES)})"]
        if backbone not in fits:
            return None, [f"baselines left out: the dimension names {names} are not the searchable layers of "
                          f"{backbone!r}"]
        fits = [backbone]
    elif not fits:
        return None, [f"baselines left out: the dimension names {names[:8]}{' …' if len(names) > 8 else ''} "
                      "match no known backbone (a generic search); pass backbone= for a width search"]
    given = (width_scale, image_size, num_classes, in_channels)
    digits = DATASET_SETTINGS["digits"]
    digits_preset = (digits["width_scale"], digits["image_size"], digits["num_classes"], digits["in_channels"])
    candidates: list[NetworkSetting] = []
    for name in fits:
        paper = PAPER_SETTINGS[name]
        for preset in ((1.0, paper.image_size, paper.num_classes, paper.in_channels), digits_preset):
            values = [g if g is not None else p for g, p in zip(given, preset)]
            candidate = NetworkSetting(name, float(values[0]), int(values[1]), int(values[2]), int(values[3]))
            if candidate not in candidates and _computable(candidate):
                candidates.append(candidate)
    if not candidates:
        return None, [f"baselines left out: no network can be built for backbone {'/'.join(fits)} with "
                      f"width_scale={width_scale}, image_size={image_size}, num_classes={num_classes}, "
                      f"in_channels={in_channels}"]
    inferred = backbone is None or any(g is None for g in given)
    ambiguity = ("; the dimension names fit both resnet18 and resnet18_cifar, pass backbone= to choose"
                 if backbone is None and len(fits) > 1 else "")
    samples = [r for r in results.evaluated() if r.result.ok and "flops" in r.result.metrics][:8]
    checkable = [(r, ratios) for r in samples if (ratios := _ratios(r.arch)) is not None]
    if not checkable:
        if inferred:
            notes.append(f"setting assumed, not checked (no recorded FLOPs to compare): {candidates[0].describe()}"
                         + ambiguity)
        return candidates[0], notes
    matching = [c for c in candidates if all(_matches(c, r, ratios) for r, ratios in checkable)]
    if matching:
        if inferred:
            several = len({c.backbone for c in matching}) > 1
            notes.append(f"setting inferred: {matching[0].describe()} (its computed FLOPs match the recorded ones of "
                         f"{len(checkable)} candidate{'s' if len(checkable) != 1 else ''})"
                         + (ambiguity if several else ""))
        return matching[0], notes
    chosen = candidates[0]
    notes.append(f"WARNING: the recorded FLOPs/memory do not match those computed for {chosen.describe()}; the "
                 "Full-Precision and Uniform rows use that setting and may not be comparable with the searched rows "
                 "(pass backbone=, width_scale=, image_size=, num_classes=, in_channels= as the evaluator used them)")
    return chosen, notes


def _computable(setting: NetworkSetting) -> bool:
    """Whether the full-precision Uniform-1× network of ``setting`` exists (input not too small …)."""
    try:
        setting.cost(setting.uniform(1.0), full_precision=True)
    except ValueError:
        return False
    return True


def _matches(setting: NetworkSetting, record: Record, ratios: Mapping[str, float]) -> bool:
    try:
        cost = setting.cost(ratios)
    except ValueError:
        return False
    metrics = record.result.metrics
    if not _close(cost.flops, metrics["flops"]):
        return False
    return "memory_bits" not in metrics or _close(cost.memory_bits, metrics["memory_bits"])


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
class ReportSelection:
    """The records a report talks about, chosen once so tables and figures agree."""

    evaluated: list[Record]
    succeeded: list[Record]
    failed: list[Record]
    reused: int
    front: list[Record]
    best: Record | None
    auto_a: Record | None
    auto_b: Record | None
    uniform1_flops: float | None
    uniform: dict[float, Record] = field(default_factory=dict)  # ratio -> evaluated uniform record (any status)


def _uniform_ratio(record: Record, setting: NetworkSetting | None) -> float | None:
    """k if the record is the Uniform-k× network of ``setting``'s backbone, else None."""
    if setting is None:
        return None
    ratios = _ratios(record.arch)
    if ratios is None or sorted(ratios) != sorted(setting.layers()):
        return None
    values = set(ratios.values())
    return values.pop() if len(values) == 1 else None


def select(results: SearchResults, setting: NetworkSetting | None) -> ReportSelection:
    """Best, front, Auto-A/B and evaluated uniform networks; failed records are never chosen."""
    evaluated = results.evaluated()
    succeeded = [r for r in evaluated if r.result.ok]
    front = results.pareto_front()
    uniform1: float | None = None
    if setting is not None:
        uniform1 = setting.cost(setting.uniform(1.0)).flops
    else:  # flops_norm is FLOPs relative to binary 1×, so FLOPs / flops_norm is its FLOPs
        for r in succeeded:
            m = r.result.metrics
            if m.get("flops") and m.get("flops_norm"):
                uniform1 = m["flops"] / m["flops_norm"]
                break
    auto_a, auto_b = auto_models(front, uniform1)
    uniform: dict[float, Record] = {}
    for r in evaluated:
        k = _uniform_ratio(r, setting)
        if k is not None and (k not in uniform or (r.result.ok and not uniform[k].result.ok)):
            uniform[k] = r
    best = results.best(1)
    return ReportSelection(
        evaluated=evaluated,
        succeeded=succeeded,
        failed=[r for r in evaluated if not r.result.ok],
        reused=sum(r.source == "reused" for r in results.records),
        front=front,
        best=best[0] if best else None,
        auto_a=auto_a,
        auto_b=auto_b,
        uniform1_flops=uniform1,
        uniform=uniform,
    )


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


def _infer_lambda(records: Iterable[Record]) -> float | None:
    """λ of Eq. 4 if every positive recorded fitness equals accuracy − λ·flops_norm for one λ."""
    lams = []
    for r in records:
        m, fit = r.result.metrics, r.result.fitness
        if fit is None or fit <= 0 or "accuracy" not in m or not m.get("flops_norm"):
            continue
        lams.append((m["accuracy"] - fit) / m["flops_norm"])
    if len(lams) >= 2 and max(lams) - min(lams) <= 1e-6 * max(1.0, abs(lams[0])):
        return lams[0]
    return None


# ------------------------------------------------------------------------------- figures


def _flops_axis(selection: ReportSelection, setting: NetworkSetting | None) -> tuple[float, str]:
    """Divisor and axis label for FLOPs: M or K MACs for a known setting, raw values otherwise."""
    if setting is None:
        return 1.0, "flops (as recorded by the evaluator)"
    unit = table_unit(selection.uniform1_flops)  # the same unit as report.md's table
    return _UNITS[unit], f"FLOPs ({unit} MACs, binary layers ÷ 64)"


def _new_figure() -> Any:
    from matplotlib.figure import Figure

    # A bare Figure (not pyplot): no global backend or figure registry, nothing to close.
    return Figure(figsize=(7, 5), dpi=120, layout="constrained")


def _plot_pareto(selection: ReportSelection, setting: NetworkSetting | None, path: Path, title: str) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    points = [r for r in selection.succeeded if "flops" in r.result.metrics and "accuracy" in r.result.metrics]
    divisor, xlabel = _flops_axis(selection, setting)

    def xy(records: Sequence[Record]) -> tuple[list[float], list[float]]:
        return ([r.result.metrics["flops"] / divisor for r in records], [r.result.metrics["accuracy"] for r in records])

    fig = _new_figure()
    ax = fig.add_subplot()
    ax.scatter(*xy(points), s=14, color="0.6", alpha=0.7, label=f"candidates ({len(points)})", zorder=2)
    ax.plot(*xy(selection.front), "-o", color="tab:blue", ms=5, lw=1.6, label="Pareto front", zorder=3)
    uniforms = sorted((k, r) for k, r in selection.uniform.items() if r in points)
    if uniforms:
        ux, uy = xy([r for _, r in uniforms])
        ax.scatter(ux, uy, marker="s", s=46, facecolor="white", edgecolor="tab:green", linewidth=1.6,
                   label="Uniform-k× (evaluated)", zorder=4)
    if selection.best is not None and selection.best in points:
        bx, by = xy([selection.best])
        ax.scatter(bx, by, marker="*", s=220, color="tab:red", edgecolor="black", linewidth=0.6,
                   label=f"best fitness ({selection.best.result.fitness:.2f})", zorder=5)
    if setting is not None and selection.uniform1_flops:
        ax.axvline(selection.uniform1_flops / divisor, color="0.4", ls=":", lw=1, label="Uniform-1× FLOPs", zorder=1)
    xs = [x for x in xy(points)[0] if x > 0]
    if xs and len(xs) == len(points):
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.margins(x=0.12, y=0.06)  # room for the Uniform labels right of the last point
    ax.set_xlabel(xlabel)
    ax.set_ylabel("validation accuracy (%)" if setting is not None else "accuracy (as recorded by the evaluator)")
    ax.set_title(title, fontsize=11)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8, framealpha=0.9)  # above-left of a front is empty
    if uniforms:
        ax.get_xlim()  # settles the autoscaled limits, so data -> axes fractions below are final
        for (k, _), x, y in zip(uniforms, *xy([r for _, r in uniforms])):
            # Right of the point (below the front) as a rule; in the right fifth of the axes
            # above-left, which is empty for the most accurate points: labels stay in the figure.
            near_edge = ax.transAxes.inverted().transform(ax.transData.transform((x, y)))[0] > 0.8
            ax.annotate(f"Uniform-{_ratio_label(k)}", (x, y), xytext=(-8, 5) if near_edge else (7, -12),
                        textcoords="offset points", ha="right" if near_edge else "left", fontsize=8,
                        color="tab:green", bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.75},
                        zorder=6)
    fig.savefig(path)


def _plot_channels(series: Sequence[tuple[str, dict[str, int]]], baselines: Sequence[tuple[str, dict[str, int]]],
                   layers: Sequence[str], path: Path, title: str) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    fig = _new_figure()
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


def _channel_series(selection: ReportSelection) -> list[tuple[str, Record]]:
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


# -------------------------------------------------------------------------------- report


def _cost_of(record: Record, setting: NetworkSetting | None) -> tuple[float | None, float | None]:
    """(FLOPs, memory bits) of a record: recorded if present, else computed, else None."""
    m = record.result.metrics
    flops, memory = m.get("flops"), m.get("memory_bits")
    ratios = _ratios(record.arch)
    if (flops is None or memory is None) and setting is not None and ratios is not None:
        try:
            cost = setting.cost(ratios)
        except ValueError:
            return flops, memory
        flops = cost.flops if flops is None else flops
        memory = cost.memory_bits if memory is None else memory
    return flops, memory


def _table(selection: ReportSelection, setting: NetworkSetting | None,
           full_precision_accuracy: float | None) -> tuple[list[list[str]], list[tuple[str, Record]], list[str]]:
    """Table-1 rows, the searched (label, record) pairs, and notes on rows left out."""
    rows: list[list[str]] = []
    notes: list[str] = []
    fp_flops: float | None = None
    unit = table_unit(selection.uniform1_flops)
    raw = setting is None  # FLOPs of a generic evaluator: units unknown, shown as recorded

    def flops_text(value: float | None) -> str:
        if value is None:
            return _DASH
        return f"{value:.4g}" if raw else format_count(value, unit)

    def speedup(value: float | None) -> str:
        return _DASH if fp_flops is None or not value else f"{fp_flops / value:.1f}×"

    if setting is not None:
        fp = setting.cost(setting.uniform(1.0), full_precision=True)
        fp_flops = fp.flops
        acc = _DASH if full_precision_accuracy is None else f"{full_precision_accuracy:.2f}"
        rows.append(["Full-Precision", format_count(fp.flops, unit), _DASH, format_count(fp.memory_bits, unit), acc])
        for k in sorted(set(BASELINE_RATIOS) | set(selection.uniform)):
            cost = setting.cost(setting.uniform(k))
            rows.append([f"Uniform-{_ratio_label(k)}", format_count(cost.flops, unit), speedup(cost.flops),
                         format_count(cost.memory_bits, unit), _accuracy(selection.uniform.get(k))])
    searched = [("Auto-A", selection.auto_a), ("Auto-B", selection.auto_b), ("Best fitness", selection.best)]
    if selection.auto_a is None and selection.auto_b is not None:
        notes.append("Auto-A left out: " + ("no Pareto-front member has FLOPs ≤ Uniform-1×"
                                            if selection.uniform1_flops is not None
                                            else "the Uniform-1× FLOPs are unknown (no backbone, no flops_norm)"))
    if selection.auto_b is None:
        notes.append("Auto-A and Auto-B left out: no successful candidate has both 'accuracy' and 'flops' metrics")
    chosen = [(label, r) for label, r in searched if r is not None]
    for label, record in chosen:
        flops, memory = _cost_of(record, setting)
        memory_text = _DASH if memory is None else (f"{memory:.4g}" if raw else format_count(memory, unit))
        rows.append([label, flops_text(flops), speedup(flops), memory_text, _accuracy(record)])
    return rows, chosen, notes


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(":---" if a == "l" else "---:" for a in align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _architecture_lines(chosen: Sequence[tuple[str, Record]], setting: NetworkSetting | None) -> list[str]:
    if not chosen:
        return ["No successful candidate."]
    width_coded = setting is not None and all(_is_width_arch(r, setting) for _, r in chosen)
    if not width_coded:
        return [f"- **{label}** (candidate #{r.candidate_id}, fitness {r.result.fitness:.4f}): "
                f"`{json.dumps(r.arch, sort_keys=False)}`" for label, r in chosen]
    assert setting is not None
    layers = setting.layers()
    base = setting.channels(setting.uniform(1.0))
    header = ["Layer", "Uniform-1×"] + [f"{label} (#{r.candidate_id})" for label, r in chosen]
    per_record = [(_ratios(r.arch) or {}, setting.channels(_ratios(r.arch) or {})) for _, r in chosen]
    rows = [[name, f"{base[name]} ch"] + [f"{_ratio_label(ratios[name])} → {ch[name]} ch" for ratios, ch in per_record]
            for name in layers]
    lines = ["Expansion ratio and output channels per searchable layer "
             f"(channels = round(base × {setting.width_scale:g} × ratio)):", ""]
    lines += _markdown_table(header, rows, "l" + "r" * (len(header) - 1))
    lines.append("")
    for label, r in chosen:
        k = _uniform_ratio(r, setting)
        same = [other for other, o in chosen if o.key == r.key and other != label]
        extra = [f"the Uniform-{_ratio_label(k)} network"] if k is not None else []
        extra += [f"same architecture as {', '.join(same)}"] if same else []
        lines.append(f"- **{label}**: candidate #{r.candidate_id} (trial {r.trial_id}), fitness "
                     f"{r.result.fitness:.4f}" + (f"; {'; '.join(extra)}" if extra else ""))
    return lines


def _is_width_arch(record: Record, setting: NetworkSetting) -> bool:
    ratios = _ratios(record.arch)
    return ratios is not None and sorted(ratios) == sorted(setting.layers())


def _fitness_lines(selection: ReportSelection, lam: float | None) -> list[str]:
    eq4 = "fitness = max(Top-1 − λ · FLOPs / FLOPs(binary Uniform-1×), 0) (the paper's Eq. 4)"
    if lam is not None:
        return [f"{eq4} with λ = {lam:g}."]
    inferred = _infer_lambda(selection.succeeded)
    if inferred is not None:
        return [f"{eq4} with λ = {inferred:.4g} (inferred from the recorded fitness; λ was not given to the report)."]
    return ["Fitness as computed by the search's objective (λ / the objective was not given to the report and "
            "could not be inferred from the recorded metrics)."]


def _candidate_lines(selection: ReportSelection) -> list[str]:
    n = len(selection.evaluated)
    lines = [f"{n} distinct architecture{'s' if n != 1 else ''} evaluated: {len(selection.succeeded)} succeeded, "
             f"{len(selection.failed)} failed (failed ones are never chosen and not plotted)"
             + (f"; {selection.reused} further proposals reused an earlier result." if selection.reused else ".")]
    if selection.front:
        lines[0] += f" Pareto front (accuracy vs FLOPs): {len(selection.front)} members."
    for r in selection.failed[:10]:
        lines.append(f"- failed #{r.candidate_id}: {r.result.reason}")
    if len(selection.failed) > 10:
        lines.append(f"- … and {len(selection.failed) - 10} more (see trials.csv)")
    return lines


_OUTPUTS = {"best_json": "best.json", "trials_csv": "trials.csv", "pareto_png": "pareto.png",
            "channels_png": "channels.png", "report_md": "report.md"}


def write_report(
    results: SearchResults,
    out_dir: Path,
    *,
    backbone: str | None = None,
    width_scale: float | None = None,
    image_size: int | None = None,
    num_classes: int | None = None,
    in_channels: int | None = None,
    lam: float | None = None,
    full_precision_accuracy: float | None = None,
) -> dict[str, Path]:
    """Write best.json, trials.csv, pareto.png, channels.png and report.md into ``out_dir``.

    Returns {"best_json", "trials_csv", "pareto_png", "channels_png", "report_md": path} for the
    files written; a file that could not be made (no successful candidate, no FLOPs, no known
    backbone) is absent, any old copy of it in ``out_dir`` is removed, and report.md says why.
    ``full_precision_accuracy`` (optional) fills the Full-Precision row's Top-1, which a binary
    search never measures itself.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    notes: list[str] = []
    if write_best_json(results, out_dir / _OUTPUTS["best_json"]) is not None:
        paths["best_json"] = out_dir / _OUTPUTS["best_json"]
    else:
        notes.append("best.json not written: no successful candidate")
    write_trials_csv(results, out_dir / _OUTPUTS["trials_csv"])
    paths["trials_csv"] = out_dir / _OUTPUTS["trials_csv"]

    setting, setting_notes = resolve_setting(results, backbone=backbone, width_scale=width_scale,
                                             image_size=image_size, num_classes=num_classes, in_channels=in_channels)
    notes += setting_notes
    selection = select(results, setting)
    name = setting.backbone if setting is not None else "search"
    failed_text = f", {len(selection.failed)} failed (not shown)" if selection.failed else ""

    plottable = [r for r in selection.succeeded if "flops" in r.result.metrics and "accuracy" in r.result.metrics]
    if plottable:
        n = len(selection.evaluated)
        title = f"{name}: accuracy vs FLOPs, {n} candidate{'s' if n != 1 else ''}{failed_text}"
        _plot_pareto(selection, setting, out_dir / _OUTPUTS["pareto_png"], title)
        paths["pareto_png"] = out_dir / _OUTPUTS["pareto_png"]
    else:
        notes.append("pareto.png not drawn: no successful candidate has both 'accuracy' and 'flops' metrics")

    series = [(label, r) for label, r in _channel_series(selection)
              if setting is not None and _is_width_arch(r, setting)]
    if setting is not None and series:
        layers = setting.layers()
        _plot_channels(
            [(label, setting.channels(_ratios(r.arch) or {})) for label, r in series],
            [(f"Uniform-{_ratio_label(k)}", setting.channels(setting.uniform(k))) for k in (1.0, 4.0)],
            layers, out_dir / _OUTPUTS["channels_png"],
            f"{setting.backbone} (width scale {setting.width_scale:g}): output channels per layer")
        paths["channels_png"] = out_dir / _OUTPUTS["channels_png"]
    else:
        notes.append("channels.png not drawn: " + ("no known backbone" if setting is None else "no successful candidate"))

    rows, chosen, table_notes = _table(selection, setting, full_precision_accuracy)
    notes += table_notes
    md = _render_markdown(results, selection, setting, rows, chosen, notes, lam, paths)
    (out_dir / _OUTPUTS["report_md"]).write_text(md, encoding="utf-8")
    paths["report_md"] = out_dir / _OUTPUTS["report_md"]

    for key, filename in _OUTPUTS.items():  # an old figure/best.json must not pass for this search's
        if key not in paths and (out_dir / filename).exists():
            (out_dir / filename).unlink()
    return paths


def _render_markdown(results: SearchResults, selection: ReportSelection, setting: NetworkSetting | None,
                     rows: Sequence[Sequence[str]], chosen: Sequence[tuple[str, Record]], notes: Sequence[str],
                     lam: float | None, paths: Mapping[str, Path]) -> str:
    lines = ["# Search report" + (f": {setting.backbone} width search" if setting else ""), "",
             f"Results: `{results.source}`", ""]
    if setting is not None:
        lines += [f"Network setting for computed costs: {setting.describe()}.", ""]
    unit = table_unit(selection.uniform1_flops)
    lines += ["## Comparison (in the form of the paper's Table 1)", ""]
    lines += _markdown_table(["Models", "FLOPs", "Speedup", "Memory", "Top-1(%)"], rows, "lrrrr")
    lines.append("")
    if setting is not None:
        scale = "millions (M)" if unit == "M" else "thousands (K; a small-scale setting)"
        lines += ["FLOPs: multiply-accumulates for one image, binary layers counted ÷ 64 (as the paper). "
                  f"Memory: weights in {unit}bit (32 bits per full-precision weight, 1 per binary weight). "
                  f"Values in {scale}, one decimal; below 1{unit} three significant digits. "
                  "Speedup = FLOPs(Full-Precision) / FLOPs(row). Top-1: validation accuracy recorded by the search "
                  "(a Uniform row only if the search evaluated that network; Full-Precision only if given).", ""]
    else:
        lines += ["FLOPs and memory as recorded by the evaluator (units unknown: no backbone); "
                  "no computed baselines.", ""]
    limit = format_count(selection.uniform1_flops, unit) if setting is not None and selection.uniform1_flops else None
    lines += [f"- **Auto-A**: the most accurate Pareto-front member with FLOPs ≤ Uniform-1×"
              + (f" ({limit})." if limit else "."),
              "- **Auto-B**: the most accurate Pareto-front member.",
              "- **Best fitness**: the successful candidate of highest fitness.", ""]
    lines += ["## Searched architectures", ""] + _architecture_lines(chosen, setting) + [""]
    lines += ["## Fitness", ""] + _fitness_lines(selection, lam) + [""]
    lines += ["## Candidates", ""] + _candidate_lines(selection) + [""]
    lines += ["## Figures", ""]
    if "pareto_png" in paths:
        lines += ["[Accuracy vs FLOPs with the Pareto front](pareto.png)", "", "![pareto](pareto.png)", ""]
    if "channels_png" in paths:
        lines += ["[Output channels per layer](channels.png)", "", "![channels](channels.png)", ""]
    if "pareto_png" not in paths and "channels_png" not in paths:
        lines += ["No figures (see below).", ""]
    lines += ["Files: " + ", ".join(f"[{p.name}]({p.name})" for k, p in paths.items() if k.endswith(("json", "csv")))
              + ".", ""]
    if notes:
        lines += ["## Left out / notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)
