"""Training recipes shared by candidate evaluation, supernet training and retraining.

What is the paper's and what is ours. The paper gives the number of epochs per candidate (10),
the supernet's length on ImageNet (150 epochs) and the retraining schedules (SGD, lr 0.1, ×0.1 at
60/120/180 of 200 epochs on CIFAR-10, at 50/100/135 of 150 on ImageNet, the other hyper-parameters
deferred to its references). It does not say how a candidate is trained. Our defaults:

* candidates and the supernet: Adam, lr 2e-3, cosine schedule, batch 64, no weight decay (ours:
  binary networks are fragile under large SGD learning rates, whose steps push the latent
  weights back and forth across the sign boundary, and a 10-epoch run has no time to recover);
  ``optimizer="sgd", schedule="step"`` with its ``milestones`` gives the SGD recipe instead;
* SGD uses Nesterov momentum (``nesterov``, ours; ``False`` is plain momentum as in the
  ResNet recipe the paper's ImageNet retraining refers to); momentum 0.9, weight decay 1e-4
  and the batch sizes of retraining are in :mod:`evaluators.retrain`.

A NaN or infinite loss raises :class:`TrainingDiverged` with the epoch and batch where it happened.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("cosine", "step", "constant")


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass(frozen=True)
class TrainConfig:
    """How to train: every field validated at construction, errors name the field and value."""

    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 2e-3
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 0.0
    schedule: str = "cosine"
    milestones: Sequence[int] = field(default_factory=tuple)
    gamma: float = 0.1

    def __post_init__(self) -> None:
        def positive_int(name: str, value: Any, allow_zero: bool = False) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
                raise ValueError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} integer, got {value!r}")

        def non_negative(name: str, value: Any, strictly: bool = False) -> None:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not ok or value < 0 or (strictly and value == 0):
                raise ValueError(f"{name} must be a {'positive' if strictly else 'non-negative'} number, got {value!r}")

        positive_int("epochs", self.epochs, allow_zero=True)
        positive_int("batch_size", self.batch_size)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer={self.optimizer!r} must be one of {OPTIMIZERS}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule={self.schedule!r} must be one of {SCHEDULES}")
        non_negative("lr", self.lr, strictly=True)
        non_negative("momentum", self.momentum)
        if not isinstance(self.nesterov, bool):
            raise ValueError(f"nesterov must be true or false, got {self.nesterov!r}")
        non_negative("weight_decay", self.weight_decay)
        non_negative("gamma", self.gamma, strictly=True)
        if isinstance(self.milestones, (str, bytes)) or not all(
            isinstance(m, int) and not isinstance(m, bool) and m > 0 for m in self.milestones
        ):
            raise ValueError(f"milestones must be a list of positive epoch numbers, got {self.milestones!r}")
        object.__setattr__(self, "milestones", tuple(sorted(self.milestones)))
        if self.schedule == "step" and not self.milestones:  # else a constant rate, silently
            raise ValueError("schedule='step' needs milestones (the epochs where the lr is multiplied by gamma), got none")

    def to_json(self) -> dict[str, Any]:
        """The fields as JSON; ``nesterov`` only when off, so settings stored before it existed
        (cache keys, checkpoints) still match."""
        data = asdict(self)
        data["milestones"] = list(self.milestones)
        if self.nesterov:
            del data["nesterov"]
        return data


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                           nesterov=config.nesterov and config.momentum > 0)


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, config.epochs))
    if config.schedule == "step":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(config.milestones), gamma=config.gamma)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"device={device!r} is not a torch device: {err}") from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} requested but CUDA is not available")
    return chosen


LossFunction = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def train_one_epoch(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    *,
    epoch: int,
    loss_fn: LossFunction | None = None,
) -> float:
    """One pass over ``loader``; returns the mean loss. Raises :class:`TrainingDiverged` on NaN/inf.

    ``loss_fn(model, images, labels)`` replaces the cross-entropy of the model's output (the
    sandwich-trained supernet computes several sub-networks' losses per batch).
    """
    model.train()
    criterion = nn.CrossEntropyLoss()
    total, count = 0.0, 0
    for batch, (images, labels) in enumerate(loader):
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        loss = criterion(model(images), labels) if loss_fn is None else loss_fn(model, images, labels)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise TrainingDiverged(f"training loss is {value} at epoch {epoch + 1}, batch {batch + 1}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += value * labels.shape[0]
        count += labels.shape[0]
    return total / max(1, count)


@torch.no_grad()
def accuracy(model: nn.Module, loader: Iterable[tuple[torch.Tensor, torch.Tensor]], device: torch.device) -> float:
    """Top-1 accuracy in percent."""
    model.eval()
    correct, count = 0, 0
    for images, labels in loader:
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        correct += int((model(images).argmax(dim=1) == labels).sum())
        count += labels.shape[0]
    if count == 0:
        raise ValueError("accuracy over an empty data set")
    return 100.0 * correct / count


BN_BATCHES = 20
"""Training batches used to re-estimate batch-norm statistics (about 1,300 images at batch 64:
enough for stable means and variances, a few per cent of one candidate's training time)."""


@torch.no_grad()
def reestimate_batch_norm(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    batches: int = BN_BATCHES,
) -> int:
    """Replace every BatchNorm's running statistics by their plain average over ``batches`` batches.

    A network sliced out of a wider one inherits statistics measured on other inputs (a 4×
    network's, or a mixture of sub-networks' in the sandwich rule), which fit none of its layers.
    Forward passes in train mode with a cumulative average (``momentum=None``) and no gradient
    give it its own; weights and the model's train/eval mode are unchanged. Returns the batches
    used (0 when the model has no BatchNorm, which then stays untouched).
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return 0
    if isinstance(batches, bool) or not isinstance(batches, int) or batches < 1:
        raise ValueError(f"batches must be a positive integer, got {batches!r}")
    was_training = model.training
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    model.to(device).train()
    used = 0
    try:
        for images, _ in loader:
            if used == batches:
                break
            model(images.to(device, non_blocking=True))
            used += 1
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        model.train(was_training)
    if used == 0:
        raise ValueError("batch-norm re-estimation over an empty data set")
    return used


EpochCallback = Callable[[int, dict[str, float]], None]


def fit(
    model: nn.Module,
    train_loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    val_loader: Iterable[tuple[torch.Tensor, torch.Tensor]] | None,
    config: TrainConfig,
    device: torch.device,
    *,
    on_epoch: EpochCallback | None = None,
    loss_fn: LossFunction | None = None,
) -> dict[str, float]:
    """Train for ``config.epochs``; calls ``on_epoch(epoch, metrics)`` after each. Returns the last metrics."""
    model.to(device)
    optimizer = make_optimizer(model, config)
    scheduler = make_scheduler(optimizer, config)
    metrics: dict[str, float] = {}
    started = time.perf_counter()
    for epoch in range(config.epochs):
        loss = train_one_epoch(model, train_loader, optimizer, device, epoch=epoch, loss_fn=loss_fn)
        scheduler.step()
        metrics = {"loss": loss, "train_seconds": time.perf_counter() - started}
        if val_loader is not None:
            metrics["accuracy"] = accuracy(model, val_loader, device)
        if on_epoch is not None:
            on_epoch(epoch, metrics)
    return metrics
