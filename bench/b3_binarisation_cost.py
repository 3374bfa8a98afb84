"""B3 — cost of binarisation in training: step time of binary VGG-small over full-precision VGG-small.

    python bench/b3_binarisation_cost.py                        # 1× and 4×, batch 128, auto device
    python bench/b3_binarisation_cost.py --width-scale 0.0625 --batch-size 8 --reps 2 --warmup 1 --out /tmp/b3

One training step (forward, backward, optimizer step; SGD with momentum, the CIFAR-10 retraining
recipe) on a batch of 32×32×3 images, for the binary VGG-small (DoReFa layers, first conv and FC
full precision, as trained by the search) and the full-precision VGG-small of the same widths
(``build_network(..., full_precision=True)``), at uniform widths 1× and 4× (``--ratios``). Both
networks get the same input batch and the same initial weights' seed; no data loading is timed.

Measured side by side: after ``--warmup`` steps of each, ``--reps`` repetitions alternate the
two networks (binary first on even repetitions, full precision first on odd ones, so drift in
machine load hits both alike); a step is timed with CUDA synchronised before and after. The
result per width is the ratio of median step times (binary / full precision), and the median of
the per-repetition ratios. Target for the doc: ≤ 1.2.

4× is 16× the arithmetic of 1×; on a CPU the default shrinks every width by ``--width-scale``
0.25 (both networks alike; on a GPU the default is the paper's widths, 1.0). The device is named
in the output (GPU name, or CPU model from /proc/cpuinfo with torch's thread count). Outputs in
``--out``: ``b3_binarisation_cost.json``, ``.csv`` (one row per timed step) and ``.png``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (RESULTS, device_name, format_table, header, progress_bar, pyplot, save_figure, write_csv,
                          write_json)

STEM = "b3_binarisation_cost"
KINDS = ("binary", "full_precision")


def build(ratio: float, *, full_precision: bool, width_scale: float, device: Any) -> Any:
    """VGG-small at uniform ``ratio`` (CIFAR-10 setting: 3 input channels, 10 classes)."""
    import torch

    from evaluators.backbones import build_network
    from evaluators.cost import uniform_ratios

    torch.manual_seed(0)
    model = build_network("vgg_small", uniform_ratios("vgg_small", ratio), width_scale=width_scale,
                          full_precision=full_precision, num_classes=10, in_channels=3)
    return model.to(device).train()


def make_step(model: Any, images: Any, labels: Any) -> Callable[[], None]:
    """One training step of ``model`` on the fixed batch, with the CIFAR-10 retraining optimizer."""
    import torch

    from evaluators.retrain import RETRAIN_DEFAULTS
    from evaluators.training import make_optimizer

    optimizer = make_optimizer(model, RETRAIN_DEFAULTS["cifar10"])
    criterion = torch.nn.CrossEntropyLoss()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = criterion(model(images), labels)
        loss.backward()
        optimizer.step()

    return step


def timed(step: Callable[[], None], device: Any) -> float:
    """Seconds of one call of ``step``, the device synchronised before and after."""
    import torch

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    started = time.perf_counter()
    step()
    sync()
    return time.perf_counter() - started


def measure(ratio: float, args: argparse.Namespace, device: Any, on_step: Callable[[], None]) -> dict[str, Any]:
    """Interleaved step times of the binary and full-precision networks at one width."""
    import torch

    generator = torch.Generator().manual_seed(0)
    images = torch.randn(args.batch_size, 3, 32, 32, generator=generator).to(device)
    labels = torch.randint(0, 10, (args.batch_size,), generator=generator).to(device)
    models = {kind: build(ratio, full_precision=(kind == "full_precision"), width_scale=args.width_scale,
                          device=device) for kind in KINDS}
    steps = {kind: make_step(models[kind], images, labels) for kind in KINDS}
    for _ in range(args.warmup):
        for kind in KINDS:
            timed(steps[kind], device)
            on_step()
    times: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for rep in range(args.reps):
        for kind in (KINDS if rep % 2 == 0 else KINDS[::-1]):
            times[kind].append(timed(steps[kind], device))
            on_step()
    medians = {kind: statistics.median(times[kind]) for kind in KINDS}
    pair_ratios = [b / f for b, f in zip(times["binary"], times["full_precision"])]
    from evaluators.backbones import layer_channels
    from evaluators.cost import uniform_ratios

    return {
        "ratio": ratio,
        "channels": layer_channels("vgg_small", uniform_ratios("vgg_small", ratio), args.width_scale),
        "params": sum(p.numel() for p in models["binary"].parameters()),
        "seconds": times,
        "median_seconds": medians,
        "slowdown": medians["binary"] / medians["full_precision"],
        "slowdown_median_of_pairs": statistics.median(pair_ratios),
        "slowdown_range_of_pairs": [min(pair_ratios), max(pair_ratios)],
    }


def table_text(results: list[dict[str, Any]]) -> str:
    rows = [[f"{r['ratio']:g}×", f"{1000 * r['median_seconds']['binary']:.1f}",
             f"{1000 * r['median_seconds']['full_precision']:.1f}", f"{r['slowdown']:.3f}",
             f"{r['slowdown_median_of_pairs']:.3f}"] for r in results]
    return format_table(["width", "binary ms/step", "FP ms/step", "binary / FP", "median of pairs"], rows)


def plot(results: list[dict[str, Any]], path: Path, title: str) -> None:
    import numpy as np

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    x = np.arange(len(results))
    for offset, kind, color in ((-0.2, "binary", "C3"), (0.2, "full_precision", "C0")):
        med = np.array([1000 * r["median_seconds"][kind] for r in results])
        low = med - np.array([1000 * min(r["seconds"][kind]) for r in results])
        high = np.array([1000 * max(r["seconds"][kind]) for r in results]) - med
        ax.bar(x + offset, med, width=0.4, color=color, yerr=[low, high], capsize=3,
               label="binary (DoReFa)" if kind == "binary" else "full precision")
    for i, r in enumerate(results):
        top = 1000 * max(max(r["seconds"]["binary"]), max(r["seconds"]["full_precision"]))
        ax.annotate(f"×{r['slowdown']:.2f}", (i, top), textcoords="offset points", xytext=(0, 4), ha="center")
    ax.margins(y=0.15)
    ax.set_xticks(x, [f"uniform {r['ratio']:g}×" for r in results])
    ax.set_ylabel("training step (ms), median with range")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    save_figure(fig, path)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ratios", type=float, nargs="+", default=[1.0, 4.0], help="uniform widths (default 1 4)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--width-scale", type=float, default=None,
                        help="shrink every width of both networks (default 1.0 on a GPU, 0.25 on a CPU)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps of each network first")
    parser.add_argument("--reps", type=int, default=10, help="timed steps of each network (k)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="output folder")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.reps < 1 or args.warmup < 0:
        parser.error("--batch-size and --reps must be >= 1, --warmup >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    import torch

    from evaluators.training import pick_device

    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    if args.width_scale is None:
        args.width_scale = 1.0 if device.type == "cuda" else 0.25
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    meta = header("B3 binarisation cost", "b3_binarisation_cost.py", argv, args)
    where = device_name(str(device))
    bar = progress_bar(len(args.ratios) * 2 * (args.warmup + args.reps), "B3 steps", enabled=not args.no_progress,
                       unit="step")
    results = []
    try:
        for ratio in args.ratios:
            results.append(measure(ratio, args, device, (lambda: bar.update(1)) if bar is not None else (lambda: None)))
    finally:
        if bar is not None:
            bar.close()
    text = table_text(results)
    print(f"\nB3: training step of binary vs full-precision VGG-small, batch {args.batch_size} of 32×32×3, "
          f"width scale {args.width_scale:g}, median of {args.reps} interleaved steps after {args.warmup} warm-up, "
          f"on {where}")
    print(text)
    worst = max(r["slowdown"] for r in results)
    print(f"worst binary / full-precision ratio {worst:.3f} (target ≤ 1.2: {'met' if worst <= 1.2 else 'not met'})")
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / f"{STEM}.json", {**meta, "device": str(device), "device_name": where,
                                           "width_scale": args.width_scale, "results": results, "table": text,
                                           "worst_slowdown": worst})
    rows = [{"ratio": r["ratio"], "kind": kind, "rep": i, "seconds": s}
            for r in results for kind in KINDS for i, s in enumerate(r["seconds"][kind])]
    write_csv(args.out / f"{STEM}.csv", rows)
    plot(results, args.out / f"{STEM}.png",
         f"B3: binary / full-precision training step, batch {args.batch_size}, width scale {args.width_scale:g}\n{where}")
    print(f"wrote {args.out / STEM}.json, .csv, .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
