"""A finished search as files a person reads: best.json, trials.csv, pareto.png and report.md.

The report is generic: it knows the records, the fitness, and what the evaluator declared about
its metrics in the description saved with the search (``results.evaluator``, see
:meth:`~nas_core.evaluator.Evaluator.describe`). ``pareto.png`` plots the evaluator's two
``pareto_metrics`` (the first up the y axis, the second along x, each in its declared direction)
for every successful candidate, with the front and the best candidate; ``report.md`` has a
summary, the best candidates, the front, the early-stopped candidates (stopped before the end,
e.g. by an NNI assessor, shown with their last per-epoch metrics and never chosen) and the failures.

What only one evaluator can say (a paper's table, baselines it computes, figures of its own) it
contributes through the extension point :meth:`Evaluator.report_sections`: a class method that
gets the results and the output folder and returns :class:`ReportSection` objects. Their
markdown and figures go into report.md after the summary, and their ``reference_points``
(labelled points with both Pareto metrics, such as an evaluated baseline) are drawn on
pareto.png. A search saved without an evaluator description gets the generic files, minus the
figure, and a note saying so.

``nas_core`` itself imports neither torch nor matplotlib: matplotlib is imported when drawing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .driver import Record
from .evaluator import Metric
from .registry import EVALUATORS, RegistryError
from .results import SearchResults, trial_label, write_best_json, write_trials_csv

__all__ = ["ReportSection", "markdown_table", "new_figure", "write_report"]

_DASH = "—"
_CORE_FILES = {"best_json": "best.json", "trials_csv": "trials.csv", "pareto_png": "pareto.png",
               "report_md": "report.md"}


@dataclass(frozen=True)
class ReportSection:
    """Part of report.md that an evaluator contributes (see :meth:`Evaluator.report_sections`).

    ``markdown`` is the body under a ``## title`` heading; ``figures`` are files the section
    wrote into the report's folder (linked and shown under it, and returned by
    :func:`write_report`); ``reference_points`` are (label, metrics) pairs drawn on pareto.png
    when they have both Pareto metrics; ``notes`` join the report's "Left out / notes".
    """

    title: str
    markdown: str
    figures: Sequence[Path] = ()
    reference_points: Sequence[tuple[str, Mapping[str, float]]] = ()
    notes: Sequence[str] = field(default_factory=tuple)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> list[str]:
    """Lines of a markdown table; ``align`` has one "l" (left) or "r" (right) per column. Each cell
    is put on one line and its ``|`` escaped, so a plugin's text (a failure's reason) cannot break the table."""
    lines = ["| " + " | ".join(map(_cell, header)) + " |",
             "|" + "|".join(":---" if a == "l" else "---:" for a in align) + "|"]
    lines += ["| " + " | ".join(map(_cell, row)) + " |" for row in rows]
    return lines


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def one_line(text: object) -> str:
    """``text`` with its whitespace, newlines included, run together: one markdown list item."""
    return " ".join(str(text).split())


def new_figure() -> Any:
    """A bare matplotlib Figure (not pyplot: no global backend or figure registry, nothing to close)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(7, 5), dpi=120, layout="constrained")


def _value(value: float | None) -> str:
    if value is None:
        return _DASH
    if abs(value) >= 1e4:
        return f"{value:,.0f}"
    if value != 0 and abs(value) < 1e-3:
        return f"{value:.3g}"
    return f"{value:.4f}".rstrip("0").rstrip(".")


def _axis_label(metric: Metric) -> str:
    better = "higher" if metric.direction == "maximize" else "lower"
    return f"{metric.name} ({metric.description + '; ' if metric.description else ''}{better} is better)"


# --------------------------------------------------------------------------- sections
def _evaluator_sections(results: SearchResults, out_dir: Path) -> tuple[list[ReportSection], list[str]]:
    """The evaluator's own sections, and notes on why there are none when it cannot be reached."""
    description = results.evaluator
    if description is None:
        return [], ["the search saved no evaluator description (a search from an older version, or one scored by "
                    "a plain function): generic report only, without the Pareto figure or the evaluator's own sections"]
    target = description.get("class") or description.get("name")
    try:
        evaluator_class = EVALUATORS.resolve(str(target))
    except Exception as err:  # noqa: BLE001 - its plugin is missing or fails to import: the generic report stands
        reason = err if isinstance(err, RegistryError) else f"{type(err).__name__}: {err}"
        return [], [f"the evaluator's own report sections are left out: {reason}"]
    hook = getattr(evaluator_class, "report_sections", None)
    if hook is None:  # not a nas_core Evaluator (a bare factory): nothing to add
        return [], []
    return list(hook(results, out_dir)), []


# ----------------------------------------------------------------------------- figure
def _plot_pareto(results: SearchResults, pair: tuple[Metric, Metric], points: Sequence[Record], front: Sequence[Record],
                 best: Record | None, references: Sequence[tuple[str, Mapping[str, float]]], path: Path,
                 title: str) -> None:
    from matplotlib.ticker import EngFormatter

    y_metric, x_metric = pair

    def xy(records: Sequence[Record]) -> tuple[list[float], list[float]]:
        return ([r.result.metrics[x_metric.name] for r in records], [r.result.metrics[y_metric.name] for r in records])

    fig = new_figure()
    ax = fig.add_subplot()
    ax.scatter(*xy(points), s=14, color="0.6", alpha=0.7, label=f"candidates ({len(points)})", zorder=2)
    ax.plot(*xy(front), "-o", color="tab:blue", ms=5, lw=1.6, label="Pareto front", zorder=3)
    shown = [(label, m) for label, m in references if x_metric.name in m and y_metric.name in m]
    if shown:
        ax.scatter([m[x_metric.name] for _, m in shown], [m[y_metric.name] for _, m in shown], marker="s", s=46,
                   facecolor="white", edgecolor="tab:green", linewidth=1.6, label="reference points", zorder=4)
    if best is not None and best in points:
        bx, by = xy([best])
        ax.scatter(bx, by, marker="*", s=220, color="tab:red", edgecolor="black", linewidth=0.6,
                   label=f"best fitness ({best.result.fitness:.4g})", zorder=5)
    xs = [x for x in xy(points)[0] + [m[x_metric.name] for _, m in shown]]
    if xs and min(xs) > 0 and max(xs) / min(xs) >= 10:
        ax.set_xscale("log")
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.margins(x=0.12, y=0.06)  # room for labels right of the last point
    ax.set_xlabel(_axis_label(x_metric))
    ax.set_ylabel(_axis_label(y_metric))
    ax.set_title(title, fontsize=11)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, framealpha=0.9)
    if shown:
        ax.get_xlim()  # settles the autoscaled limits, so data -> axes fractions below are final
        for label, m in shown:
            x, y = m[x_metric.name], m[y_metric.name]
            # Right of the point as a rule; in the right fifth of the axes to its left, so labels stay inside.
            near_edge = ax.transAxes.inverted().transform(ax.transData.transform((x, y)))[0] > 0.8
            ax.annotate(label, (x, y), xytext=(-8, 5) if near_edge else (7, -12), textcoords="offset points",
                        ha="right" if near_edge else "left", fontsize=8, color="tab:green",
                        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.75}, zorder=6)
    fig.savefig(path)


# ---------------------------------------------------------------------------- report
def write_report(results: SearchResults, out_dir: Path, *, top: int = 5) -> dict[str, Path]:
    """Write best.json, trials.csv, pareto.png, the evaluator's figures and report.md into ``out_dir``.

    Returns {name: path} of the files written ("best_json", "trials_csv", "pareto_png",
    "report_md", and one key per figure a section wrote, its file name with "." as "_"). A core
    file that could not be made (no successful candidate, no declared Pareto pair) is absent,
    any old copy of it in ``out_dir`` is removed, and report.md says why.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    notes: list[str] = list(results.notes)
    if write_best_json(results, out_dir / _CORE_FILES["best_json"]) is not None:
        paths["best_json"] = out_dir / _CORE_FILES["best_json"]
    else:
        notes.append("best.json not written: no successful candidate")
    write_trials_csv(results, out_dir / _CORE_FILES["trials_csv"])
    paths["trials_csv"] = out_dir / _CORE_FILES["trials_csv"]

    sections, section_notes = _evaluator_sections(results, out_dir)
    notes += section_notes
    for section in sections:
        notes += list(section.notes)
        for figure in section.figures:
            paths.setdefault(Path(figure).name.replace(".", "_"), Path(figure))

    evaluated = results.evaluated()
    succeeded = [r for r in evaluated if r.result.ok]
    stopped = [r for r in evaluated if r.result.early_stopped]
    failed = [r for r in evaluated if not r.result.ok and not r.result.early_stopped]
    best = results.best(top)
    pair = results.pareto_metrics
    front: list[Record] = []
    if pair is None:
        if results.evaluator is not None:
            notes.append("pareto.png not drawn: the evaluator declares no pareto_metrics")
    else:
        front = results.pareto_front(pair)
        points = [r for r in succeeded if all(m.name in r.result.metrics for m in pair)]
        if points:
            n = len(evaluated)
            title = (f"{results.evaluator.get('name', 'search') if results.evaluator else 'search'}: {pair[0].name} vs "
                     f"{pair[1].name}, {n} candidate{'s' if n != 1 else ''}"
                     + (f", {len(failed)} failed (not shown)" if failed else "")
                     + (f", {len(stopped)} early-stopped (not shown)" if stopped else ""))
            references = [p for s in sections for p in s.reference_points]
            _plot_pareto(results, pair, points, front, best[0] if best else None, references,
                         out_dir / _CORE_FILES["pareto_png"], title)
            paths["pareto_png"] = out_dir / _CORE_FILES["pareto_png"]
        else:
            notes.append(f"pareto.png not drawn: no successful candidate has both {pair[0].name!r} and "
                         f"{pair[1].name!r}")

    md = _render(results, sections, evaluated, succeeded, failed, stopped, best, pair, front, notes, paths)
    (out_dir / _CORE_FILES["report_md"]).write_text(md, encoding="utf-8")
    paths["report_md"] = out_dir / _CORE_FILES["report_md"]
    for key, filename in _CORE_FILES.items():  # an old figure/best.json must not pass for this search's
        if key not in paths and (out_dir / filename).exists():
            (out_dir / filename).unlink()
    return paths


def _candidate(record: Record) -> str:
    """``#<candidate id>``, with the runner's own trial number when it told one (``#4 (Trial No. 3)``)."""
    label = trial_label(record)
    return f"#{record.candidate_id} ({label})" if label else f"#{record.candidate_id}"


def _render(results: SearchResults, sections: Sequence[ReportSection], evaluated: Sequence[Record],
            succeeded: Sequence[Record], failed: Sequence[Record], stopped: Sequence[Record], best: Sequence[Record],
            pair: tuple[Metric, Metric] | None, front: Sequence[Record], notes: Sequence[str],
            paths: Mapping[str, Path]) -> str:
    description = results.evaluator
    name = description.get("name") if description else None
    lines = [f"# Search report{f': {name}' if name else ''}", "", f"Results: `{results.source}`", ""]
    if description is not None:
        args = json.dumps(description.get("args") or {}, sort_keys=True)
        lines += [f"Evaluator `{name}` with arguments `{args}`; fitness from objective "
                  f"`{json.dumps(description.get('objective'), sort_keys=True)}`.", ""]
    reused = sum(r.source == "reused" for r in results.records)
    lines += [f"{len(evaluated)} distinct architecture{'s' if len(evaluated) != 1 else ''} evaluated: "
              f"{len(succeeded)} succeeded, "
              + (f"{len(stopped)} early-stopped (stopped before the end, e.g. by an NNI assessor: not fully "
                 "trained), " if stopped else "")
              + f"{len(failed)} failed ({'early-stopped and ' if stopped else ''}failed ones are never chosen and "
              "not plotted)"
              + (f"; {reused} further proposals reused an earlier result." if reused else "."), ""]

    for section in sections:
        lines += [f"## {section.title}", "", section.markdown.rstrip(), ""]
        for figure in section.figures:
            figure = Path(figure)
            lines += [f"![{figure.stem}]({figure.name})", ""]

    shown = [m.name for m in pair] if pair else []
    lines += ["## Best candidates (by fitness)", ""]
    if best:
        rows = [[str(i), _candidate(r), _value(r.result.fitness), *[_value(r.result.metrics.get(m)) for m in shown],
                 f"`{json.dumps(r.arch)}`"] for i, r in enumerate(best, 1)]
        lines += markdown_table(["Rank", "Candidate", "Fitness", *shown, "Architecture"], rows,
                                "lrr" + "r" * len(shown) + "l")
        told_otherwise = [r for r in best if r.strategy_told]
        if told_otherwise:
            lines += ["", *[f"- {_candidate(r)}: the strategy was told it {r.strategy_told} (its success arrived "
                            "later), so the search's choices did not use this result." for r in told_otherwise]]
    else:
        lines.append("No successful candidate.")
    lines.append("")

    if pair is not None:
        arrows = " vs ".join(f"{m.name} ({'↑' if m.direction == 'maximize' else '↓'})" for m in pair)
        lines += [f"## Pareto front: {arrows}", ""]
        if front:
            rows = [[_candidate(r), *[_value(r.result.metrics[m]) for m in shown], _value(r.result.fitness),
                     f"`{json.dumps(r.arch)}`"] for r in front]
            lines += markdown_table(["Candidate", *shown, "Fitness", "Architecture"], rows, "l" + "r" * len(shown) + "rl")
        else:
            lines.append("Empty: no successful candidate has both metrics.")
        lines.append("")
        if "pareto_png" in paths:
            lines += [f"![{pair[0].name} vs {pair[1].name} with the Pareto front](pareto.png)", ""]

    if stopped:
        lines += ["## Early-stopped candidates (not fully trained, never chosen)", ""]
        rows = [[_candidate(r), str(r.trial_id if r.trial_id is not None else _DASH),
                 ", ".join(f"{k}={_value(v)}" for k, v in sorted(r.result.metrics.items())) or _DASH,
                 str(r.result.reason), f"`{json.dumps(r.arch)}`"] for r in stopped[:20]]
        lines += markdown_table(["Candidate", "Trial", "Last per-epoch metrics", "Why", "Architecture"], rows, "lllll")
        if len(stopped) > 20:
            lines.append(f"… and {len(stopped) - 20} more (see trials.csv, status early_stopped)")
        lines.append("")

    if failed:
        lines += ["## Failed candidates", ""]
        lines += [f"- {_candidate(r)}: {one_line(r.result.reason)}" for r in failed[:10]]
        if len(failed) > 10:
            lines.append(f"- … and {len(failed) - 10} more (see trials.csv)")
        lines.append("")

    lines += ["Files: " + ", ".join(f"[{p.name}]({p.name})" for k, p in paths.items() if k != "report_md") + ".", ""]
    if notes:
        lines += ["## Left out / notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)
