"""Retrain a searched architecture on the full training set (the paper's final step).

Defaults per data set, the paper's where it states them and ours elsewhere:

* CIFAR-10: the paper's 200 epochs of SGD, lr 0.1, ×0.1 at epochs 60/120/180; it defers the rest
  to its reference [24], and ours are batch 128, momentum 0.9, weight decay 1e-4, Nesterov;
* ImageNet: the paper's 150 epochs, lr 0.1, ×0.1 at 50/100/135; the rest follows the ResNet
  recipe it refers to (batch 256, momentum 0.9, weight decay 1e-4), except Nesterov, which is
  ours (``overrides={"nesterov": False}`` for plain momentum);
* digits (not in the paper): ours, 40 epochs of Adam lr 2e-3 with a cosine schedule, batch 64,
  which trains binary networks stably at that size.

Every field can be overridden. The data split comes from ``split_seed`` (the search's seed) and
the seed varies only the initialisation and the batch order, so every seed trains and tests on
the same images and the test images are never ones the search trained or validated on. A
checkpoint is written atomically after every epoch; running again with the same output folder
continues from it. The result (test accuracy, FLOPs, memory) goes to ``metrics.json``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from nas_core.errors import UserError
from nas_core.state_io import write_json_atomic

from .backbones import build_network
from .training import TrainConfig, TrainingDiverged, accuracy, make_optimizer, make_scheduler, pick_device, train_one_epoch

RETRAIN_DEFAULTS: dict[str, TrainConfig] = {
    "cifar10": TrainConfig(epochs=200, batch_size=128, optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4,
                           schedule="step", milestones=(60, 120, 180)),
    "imagenet": TrainConfig(epochs=150, batch_size=256, optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4,
                            schedule="step", milestones=(50, 100, 135)),
    "digits": TrainConfig(epochs=40, batch_size=64, optimizer="adam", lr=2e-3, schedule="cosine"),
}


class RetrainError(UserError, ValueError):
    """Bad retraining input (architecture file, mismatched checkpoint); the message names it."""


def read_architecture(path: str | os.PathLike[str]) -> dict[str, Any]:
    """An architecture from a JSON file: a plain mapping, or a ``best.json`` with ``architecture``."""
    file = Path(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RetrainError(f"{file}: no such file") from None
    except json.JSONDecodeError as err:
        raise RetrainError(f"{file}: not valid JSON: {err}") from None
    if isinstance(data, dict) and isinstance(data.get("architecture"), dict):
        data = data["architecture"]
    if not isinstance(data, dict) or not data:
        raise RetrainError(f"{file}: expected an architecture (layer -> ratio) or a best.json")
    return data


@dataclass
class RetrainResult:
    test_accuracy: float
    epochs: int
    metrics: dict[str, Any]
    output_dir: Path


def retrain(
    arch: Mapping[str, Any],
    *,
    backbone: str,
    dataset: str,
    output_dir: str | os.PathLike[str],
    data_dir: str | None = None,
    width_scale: float | None = None,
    config: TrainConfig | None = None,
    seed: int = 0,
    split_seed: int = 0,
    device: str = "auto",
    progress: bool = True,
    overrides: Mapping[str, Any] | None = None,
) -> RetrainResult:
    """Train ``arch`` on train+val (all with the training augmentation), test on the test split;
    resumable from ``output_dir``.

    ``seed`` sets the initialisation and batch order, ``split_seed`` the data split (the one the
    search used: its train and validation images are what this trains on)."""
    from .fitness import BinaryWidthEvaluator

    from .data import DataError

    try:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        evaluator = BinaryWidthEvaluator(backbone=backbone, dataset=dataset, data_dir=data_dir,
                                         width_scale=width_scale, seed=split_seed, device=device)
        ratios = {name: float(v) for name, v in evaluator.space.validate(arch).items()}
        train_config = replace(config or RETRAIN_DEFAULTS[dataset], **dict(overrides or {}))
        target = pick_device(device)
    except DataError:
        raise
    except ValueError as err:
        raise RetrainError(str(err)) from None
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / "checkpoint.pt"
    setting = {"architecture": ratios, "backbone": backbone, "dataset": dataset, "width_scale": evaluator.width_scale,
               "seed": seed, "split_seed": split_seed, "train": train_config.to_json()}

    splits, _ = evaluator._data
    from .data import make_loader, make_train_loader

    train_loader = make_train_loader(splits.train_and_val(), train_config.batch_size, seed=seed)
    test_loader = make_loader(splits.test, max(256, train_config.batch_size), shuffle=False, seed=seed)
    torch.manual_seed(seed)
    model = build_network(backbone, ratios, width_scale=evaluator.width_scale, num_classes=splits.num_classes,
                          in_channels=splits.in_channels).to(target)
    optimizer = make_optimizer(model, train_config)
    scheduler = make_scheduler(optimizer, train_config)
    start_epoch, history = 0, []
    if checkpoint.exists():
        saved = torch.load(checkpoint, map_location=target, weights_only=False)
        if saved["setting"] != setting:
            raise RetrainError(f"{checkpoint} belongs to another setting; use another --output or delete it")
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        start_epoch, history = int(saved["epoch"]), list(saved["history"])

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=train_config.epochs, initial=start_epoch, desc="retrain", unit="epoch")
    started = time.perf_counter()
    for epoch in range(start_epoch, train_config.epochs):
        try:
            loss = train_one_epoch(model, train_loader, optimizer, target, epoch=epoch)
        except TrainingDiverged as err:
            if bar is not None:
                bar.close()
            raise RetrainError(f"training diverged ({err}) with lr {train_config.lr:g}; try a smaller --lr") from None
        scheduler.step()
        history.append({"epoch": epoch + 1, "loss": loss, "lr": optimizer.param_groups[0]["lr"]})
        tmp = checkpoint.with_suffix(".tmp")
        torch.save({"setting": setting, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "epoch": epoch + 1, "history": history}, tmp)
        os.replace(tmp, checkpoint)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}")
    if bar is not None:
        bar.close()
    test_acc = accuracy(model, test_loader, target)
    cost = evaluator._cost(ratios)
    metrics = {
        **setting,
        "test_accuracy": test_acc,
        "flops": cost.flops,
        "flops_norm": cost.flops / evaluator._reference_flops,
        "memory_bits": cost.memory_bits,
        "params": cost.params,
        "history": history,
        "seconds_this_run": time.perf_counter() - started,
    }
    write_json_atomic(out / "metrics.json", metrics)
    return RetrainResult(test_acc, train_config.epochs, metrics, out)
