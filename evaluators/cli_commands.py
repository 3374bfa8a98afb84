"""The paper plugins' commands for ``python -m nas_core``: ``cost``, ``retrain`` and ``paper-report``.

Registered in :data:`nas_core.registry.COMMANDS` by ``evaluators/__init__.py``; each ``add_*``
adds one sub-command. This module imports no torch: the commands import what they need when run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from nas_core.errors import UserError

from evaluators.datasets import dataset_names, dataset_settings, get_dataset


class CommandError(UserError, ValueError):
    """Bad command input; printed as one line by the CLI."""


def _ratios(text: str | None, backbone: str) -> dict[str, float]:
    from spaces.layouts import searchable_layers

    names = [layer.name for layer in searchable_layers(backbone)]
    if text is None:
        return {name: 1.0 for name in names}
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if len(parts) == 1:
        parts = parts * len(names)
    if len(parts) != len(names):
        raise CommandError(f"--ratios {text!r}: {backbone} has {len(names)} searchable layers ({', '.join(names)}), "
                           f"got {len(parts)} ratios")
    try:
        return dict(zip(names, (float(p) for p in parts)))
    except ValueError:
        raise CommandError(f"--ratios {text!r}: every ratio must be a number") from None


def cmd_cost(args: argparse.Namespace) -> int:
    from spaces.layouts import backbone_names

    from .cost import network_cost

    if args.backbone not in backbone_names():
        raise CommandError(f"unknown backbone {args.backbone!r}; expected one of {', '.join(backbone_names())}")
    ratios = _ratios(args.ratios, args.backbone)
    try:
        cost = network_cost(args.backbone, ratios, width_scale=args.width_scale, full_precision=args.full_precision,
                            image_size=args.image_size, num_classes=args.num_classes, convention=args.convention)
        reference = network_cost(args.backbone, {k: 1.0 for k in ratios}, width_scale=args.width_scale,
                                 image_size=args.image_size, num_classes=args.num_classes, convention=args.convention)
    except ValueError as err:
        raise CommandError(str(err)) from None
    data: dict[str, Any] = {
        "backbone": args.backbone,
        "ratios": ratios,
        "full_precision": args.full_precision,
        "width_scale": args.width_scale,
        "convention": args.convention,
        "flops": cost.flops,
        "flops_norm": cost.flops / reference.flops,
        "memory_bits": cost.memory_bits,
        "fp_macs": cost.fp_macs,
        "binary_macs": cost.binary_macs,
        "params": cost.params,
    }
    if args.json:
        print(json.dumps(data, indent=1))
    else:
        kind = "full precision" if args.full_precision else "binary (first conv and FC full precision)"
        print(f"{args.backbone}, {kind}, width scale {args.width_scale}")
        print(f"  ratios       {', '.join(f'{k}={v:g}' for k, v in ratios.items())}")
        rule = "MACs; binary MACs / 64" + ("; + BN and max-pool ops" if args.convention == "table2" else "")
        print(f"  FLOPs        {cost.flops / 1e6:.2f} M  ({rule}, convention {args.convention})"
              f"  = {data['flops_norm']:.3f} × binary 1×")
        print(f"  memory       {cost.memory_bits / 1e6:.2f} Mbit  (32 bits per FP weight, 1 per binary weight)")
        print(f"  parameters   {cost.params}")
    return 0


def cmd_retrain(args: argparse.Namespace) -> int:
    from .retrain import RETRAIN_DEFAULTS, read_architecture, retrain

    arch = read_architecture(args.arch)
    backbone = args.backbone or get_dataset(args.dataset).backbone
    overrides: dict[str, Any] = {}
    for field in ("epochs", "lr", "batch_size", "optimizer", "weight_decay", "schedule"):
        value = getattr(args, field)
        if value is not None:
            overrides[field] = value
    if args.milestones is not None:
        try:
            overrides["milestones"] = tuple(int(m) for m in args.milestones.split(",") if m.strip())
        except ValueError:
            raise CommandError(f"--milestones {args.milestones!r}: expected epochs like 60,120,180") from None
    if args.dataset not in RETRAIN_DEFAULTS:
        raise CommandError(f"--dataset {args.dataset}: no retraining recipe (add one to "
                           "evaluators.retrain.RETRAIN_DEFAULTS)")
    try:
        config = RETRAIN_DEFAULTS[args.dataset].__class__(**{**RETRAIN_DEFAULTS[args.dataset].to_json(), **overrides})
    except ValueError as err:
        raise CommandError(str(err)) from None
    output = args.output or f"retrain-{backbone}-{args.dataset}"
    result = retrain(arch, backbone=backbone, dataset=args.dataset, data_dir=args.data_dir,
                     width_scale=args.width_scale, config=config, seed=args.seed, device=args.device,
                     progress=not args.no_progress, output_dir=output)
    m = result.metrics
    print(f"test accuracy {result.test_accuracy:.2f}% after {result.epochs} epochs; FLOPs {m['flops'] / 1e6:.3f} M "
          f"({m['flops_norm']:.2f} × binary 1×), memory {m['memory_bits'] / 1e6:.3f} Mbit")
    print(f"checkpoint and metrics: {result.output_dir}/checkpoint.pt, {result.output_dir}/metrics.json")
    return 0


def cmd_paper_report(args: argparse.Namespace) -> int:
    from nas_core.cli import default_output, experiment_location, print_best
    from nas_core.report import write_report
    from nas_core.results import load_results

    from nas_core.arguments import check_number, check_positive
    from nas_core.cli import check_top

    check_top(args.top)
    try:  # before reading the search, so a bad flag is named first
        if args.lam is not None:
            check_number("--lam", args.lam, minimum=0.0)
        if args.width_scale is not None:
            check_positive("--width-scale", args.width_scale)
        if args.image_size is not None:
            check_positive("--image-size", args.image_size)
    except ValueError as err:
        raise CommandError(str(err)) from None
    location = experiment_location(args.location)
    results = load_results(location)
    results.evaluator = paper_description(results.evaluator, backbone=args.backbone, dataset=args.dataset,
                                          width_scale=args.width_scale, image_size=args.image_size, lam=args.lam)
    print_best(results, args.top)
    written = write_report(results, Path(args.output) if args.output else default_output(location))
    print(f"report: {', '.join(str(p) for p in written.values())}")
    return 0


def paper_description(saved: dict[str, Any] | None, *, backbone: str | None = None, dataset: str | None = None,
                      width_scale: float | None = None, image_size: int | None = None,
                      lam: float | None = None) -> dict[str, Any]:
    """The search's saved ``binary_width`` description with the given values overriding its setting and λ;
    for a search saved without a description (older versions), one made from them and the defaults."""
    from nas_core.arguments import check_choice, check_number, check_positive

    from .fitness import BinaryWidthEvaluator

    if saved is not None and saved.get("name") != BinaryWidthEvaluator.name:
        raise CommandError(f"paper-report: the search's evaluator is {saved.get('name')!r}, not "
                           f"{BinaryWidthEvaluator.name!r}; use `report`")
    description: dict[str, Any] = dict(saved) if saved is not None else {
        "name": BinaryWidthEvaluator.name,
        "class": f"{BinaryWidthEvaluator.__module__}:{BinaryWidthEvaluator.__qualname__}",
        "args": {},
        "metrics": [m.to_json() for m in BinaryWidthEvaluator.metrics],
        "pareto_metrics": list(BinaryWidthEvaluator.pareto_metrics or ()),
        "objective": {"name": "binary_fitness"},
    }
    previous = dict(description.get("setting") or {})
    try:
        if dataset is not None:
            check_choice("--dataset", dataset, sorted(dataset_names()))
            previous = {k: v for k, v in previous.items() if k == "backbone"}  # the rest follows the data set
        chosen = dataset or previous.get("dataset") or "digits"
        defaults = dataset_settings()[chosen]
        setting = {
            "backbone": backbone or previous.get("backbone") or get_dataset(chosen).backbone,
            "dataset": chosen,
            "width_scale": check_positive("--width-scale", width_scale) if width_scale is not None
            else previous.get("width_scale", defaults["width_scale"]),
            "image_size": int(check_positive("--image-size", image_size)) if image_size is not None
            else previous.get("image_size", defaults["image_size"]),
            "num_classes": previous.get("num_classes", defaults["num_classes"]),
            "in_channels": previous.get("in_channels", defaults["in_channels"]),
            "cost_convention": previous.get("cost_convention", "table1"),
        }
        if lam is not None:
            check_number("--lam", lam, minimum=0.0)
    except ValueError as err:
        raise CommandError(str(err)) from None
    description["setting"] = setting
    if lam is not None:
        description["objective"] = {**(description.get("objective") or {}), "lam": float(lam)}
    return description


def add_cost(sub: argparse._SubParsersAction, name: str) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(name, help="FLOPs and memory of one network (the paper's counting rule)")
    p.add_argument("backbone", help="vgg_small, resnet18 or resnet18_cifar (any registered backbone)")
    p.add_argument("--ratios", help="comma-separated ratio per searchable layer in the space's order (resnet18: the "
                                    "4 stage widths, then the 8 block-inner widths, as the authors publish them), "
                                    "or one for all (default: all 1)")
    p.add_argument("--convention", default="table1",
                   help="FLOPs counting: table1 (default; fits the paper's Table 1) or table2 (adds BatchNorm and "
                        "max-pool operations; fits Table 2's ResNet-18 rows)")
    p.add_argument("--full-precision", action="store_true", help="count every layer as full precision")
    p.add_argument("--width-scale", type=float, default=1.0, help="channel multiplier for small data (default 1)")
    p.add_argument("--image-size", type=int, default=None, help="input side (default: the backbone's paper setting)")
    p.add_argument("--num-classes", type=int, default=None, help="classes (default: the backbone's paper setting)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_cost)


def add_retrain(sub: argparse._SubParsersAction, name: str) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(name, help="train an architecture on the full training set with the paper's schedule")
    p.add_argument("arch", help="architecture JSON (layer -> ratio), or a search's best.json")
    p.add_argument("--dataset", default="digits", choices=dataset_names(), help="default digits")
    p.add_argument("--data-dir", help="data directory (cifar10, imagenet)")
    p.add_argument("--backbone", help="default: the data set's (vgg_small for digits/cifar10, resnet18 for imagenet)")
    p.add_argument("--width-scale", type=float, default=None, help="default: 0.125 for digits, else 1")
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--optimizer", choices=["adam", "sgd"])
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--schedule", choices=["cosine", "step", "constant"])
    p.add_argument("--milestones", help="epochs where the lr is multiplied by 0.1, e.g. 60,120,180")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.add_argument("--output", help="folder for checkpoint.pt and metrics.json (resumes if it holds a checkpoint)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_retrain)


def add_paper_report(sub: argparse._SubParsersAction, name: str) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(name, help="the report (`report`) of a binary_width search with its network setting or λ given "
                                  "explicitly, e.g. for a search saved without an evaluator description")
    p.add_argument("location", help="NNI experiment id, experiment directory, or a search state file")
    p.add_argument("--output", help="folder to write (default <experiment dir>/nas_results)")
    p.add_argument("--top", type=int, default=3, help="how many best architectures to print")
    p.add_argument("--backbone", help="backbone of the search (default: as saved, else the data set's)")
    p.add_argument("--dataset", help="digits, cifar10 or imagenet: classes, input channels and default sizes "
                                     "(default: as saved, else digits)")
    p.add_argument("--width-scale", type=float, help="width scale of the search (default: as saved, else the data set's)")
    p.add_argument("--image-size", type=int, help="input side (default: as saved, else the data set's)")
    p.add_argument("--lam", type=float, help="λ of the fitness, for the report's text (default: as saved)")
    p.set_defaults(func=cmd_paper_report)
