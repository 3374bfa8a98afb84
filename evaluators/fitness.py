"""The paper's evaluator: train a width-coded binary network briefly and score it.

Fitness (Eq. 4): ``max(Acc − λ · FLOPs / FLOPs(binary 1×), 0)`` with Acc the top-1 validation
accuracy in percent, FLOPs counting binary layers / 64, and λ = 4. The objective is separate
from the raw metrics (:class:`BinaryFitness`), so stored results can be re-scored with
another λ without training again.
"""

from __future__ import annotations

import functools
import math
import os
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from nas_core.arguments import check_choice, check_int, check_optional_int
from nas_core.evaluator import CandidateFailed, Evaluator, Metric, Metrics, Objective, Reporter, null_reporter
from nas_core.space import Architecture

from spaces.width import PAPER_RATIOS, BinaryWidthSpace

from evaluators.datasets import DatasetInfo, dataset_names, dataset_settings, get_dataset

if TYPE_CHECKING:
    from nas_core.report import ReportSection
    from nas_core.results import SearchResults


def __getattr__(name: str) -> Any:
    if name == "DATASET_SETTINGS":  # per data set: default width scale and input size, classes, channels
        return dataset_settings()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class BinaryFitness(Objective):
    """``max(accuracy − λ · flops_norm, 0)``: the paper's Eq. 4."""

    name = "binary_fitness"

    def __init__(self, lam: float = 4.0) -> None:
        if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not math.isfinite(lam) or lam < 0:
            raise ValueError(f"lam (λ) must be a non-negative number, got {lam!r}")
        self.lam = float(lam)

    def fitness(self, metrics: Mapping[str, float]) -> float:
        return max(float(metrics["accuracy"]) - self.lam * float(metrics["flops_norm"]), 0.0)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "lam": self.lam}


def _check_data_root(dataset: str, data_dir: str | None) -> None:
    if dataset not in dataset_names():
        raise ValueError(f"dataset={dataset!r} must be one of {dataset_names()}")
    get_dataset(dataset).check_root(data_dir)


def _image_size(info: DatasetInfo, image_size: int | None) -> int:
    """The input side the network gets and the cost model counts: ``image_size`` where the data set
    resizes its images, else its own size (a different value would price an input never given)."""
    size = check_optional_int("image_size", image_size, minimum=1)
    if size is None:
        return info.image_size
    if not info.resizable and size != info.image_size:
        raise ValueError(f"image_size={size} differs from {info.name}'s image size {info.image_size} "
                         f"(its images are not resized)")
    return size


class BinaryWidthEvaluator(Evaluator):
    """Trains a binary network with the candidate's per-layer widths for a few epochs.

    ``backbone``, ``width_scale`` and ``image_size`` default to the data set's
    (:mod:`evaluators.datasets`); ``image_size`` may differ from it only where the data set resizes
    its images (imagenet). ``milestones`` are the epochs where ``schedule="step"`` multiplies the
    learning rate by 0.1 (required with it). :meth:`describe` names the setting they resolved to.
    """

    name = "binary_width"
    metrics = (
        Metric("accuracy", "maximize", "top-1 validation accuracy (%)"),
        Metric("flops", "minimize", "multiply-accumulates for one image, binary ones counted ÷ 64"),
        Metric("flops_norm", "minimize", "FLOPs relative to the binary Uniform-1× network"),
        Metric("memory_bits", "minimize", "weights in bits: 32 per full-precision weight, 1 per binary weight"),
        Metric("params", "minimize", "weights"),
        Metric("loss", "minimize", "training loss of the last epoch"),
        Metric("train_seconds", "minimize", "seconds spent training and validating"),
    )
    pareto_metrics = ("accuracy", "flops")

    def __init__(
        self,
        *,
        backbone: str | None = None,
        dataset: str = "digits",
        data_dir: str | None = None,
        ratios: Sequence[float] = PAPER_RATIOS,
        width_scale: float | None = None,
        image_size: int | None = None,
        epochs: int = 10,
        batch_size: int = 64,
        optimizer: str = "adam",
        lr: float = 2e-3,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        schedule: str = "cosine",
        milestones: Sequence[int] = (),
        subset_per_class: int | None = None,
        val_size: int | None = None,
        lam: float = 4.0,
        cost_convention: str = "table1",
        seed: int = 0,
        supernet: bool = False,
        supernet_epochs: int | None = None,
        supernet_training: str = "widest",
        supernet_bn: str = "reestimate",
        cache_dir: str | None = None,
        device: str = "auto",
        num_workers: int = 0,
        threads: int | None = None,
    ) -> None:
        from .training import TrainConfig

        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
        _check_data_root(dataset, data_dir)
        info = get_dataset(dataset)
        if backbone is None:
            backbone = info.backbone
        self.space = BinaryWidthSpace(backbone=backbone, ratios=ratios)
        self.backbone = backbone
        self.dataset = dataset
        self.data_dir = data_dir
        self.width_scale = info.width_scale if width_scale is None else width_scale
        if isinstance(self.width_scale, bool) or not isinstance(self.width_scale, (int, float)) or self.width_scale <= 0:
            raise ValueError(f"width_scale must be a positive number, got {self.width_scale!r}")
        self.image_size = _image_size(info, image_size)
        self.train_config = TrainConfig(epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr,
                                        momentum=momentum, weight_decay=weight_decay, schedule=schedule,
                                        milestones=milestones)
        for name, value in (("subset_per_class", subset_per_class), ("val_size", val_size),
                            ("supernet_epochs", supernet_epochs), ("threads", threads)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        check_int("seed", seed, minimum=0)  # scikit-learn's and numpy's splits take no negative seed
        check_int("num_workers", num_workers, minimum=0)
        if not isinstance(supernet, bool):
            raise ValueError(f"supernet must be true or false, got {supernet!r}")
        from .supernet import SUPERNET_BN, SUPERNET_TRAINING

        if supernet_training not in SUPERNET_TRAINING:
            raise ValueError(f"supernet_training={supernet_training!r} must be one of {SUPERNET_TRAINING}")
        if supernet_bn not in SUPERNET_BN:
            raise ValueError(f"supernet_bn={supernet_bn!r} must be one of {SUPERNET_BN}")
        if supernet_training == "sandwich" and backbone != "vgg_small":
            raise ValueError(f"supernet_training='sandwich' supports backbone 'vgg_small' only, got {backbone!r}")
        self.subset_per_class = subset_per_class
        self.val_size = val_size
        self.seed = seed
        self.supernet = supernet
        self.supernet_epochs = supernet_epochs or max(3 * epochs, 1)  # ours; the paper: 15× (150 for 10)
        self.supernet_training = supernet_training
        self.supernet_bn = supernet_bn
        self.cache_dir = cache_dir
        self.device_name = device
        self.num_workers = num_workers
        self.threads = threads
        self.objective = BinaryFitness(lam)
        from .cost import CONVENTIONS

        self.cost_convention = check_choice("cost_convention", cost_convention, CONVENTIONS)
        self._supernet_memo: dict[str, Any] | None = None

    # ------------------------------------------------------------------ set-up
    def search_space(self) -> BinaryWidthSpace:
        return self.space

    def describe(self) -> dict[str, Any]:
        """The base description plus ``setting``: the network the defaults resolved to, which the
        paper's report (:mod:`evaluators.paper_report`) computes its baselines for."""
        dataset = get_dataset(self.dataset)
        return {**super().describe(), "setting": {
            "backbone": self.backbone, "dataset": self.dataset, "width_scale": float(self.width_scale),
            "image_size": int(self.image_size), "num_classes": dataset.num_classes,
            "in_channels": dataset.in_channels, "cost_convention": self.cost_convention,
        }}

    @classmethod
    def report_sections(cls, results: SearchResults, out_dir: Path) -> list[ReportSection]:
        """The paper's Table 1, Auto-A/B, channels-per-layer figure and fitness (:mod:`.paper_report`)."""
        from .paper_report import paper_sections

        return paper_sections(results, out_dir)

    @functools.cached_property
    def _data(self) -> Any:
        from .data import class_balanced_subset, load_dataset

        splits = load_dataset(self.dataset, root=self.data_dir, seed=self.seed, val_size=self.val_size,
                              **({"image_size": self.image_size} if get_dataset(self.dataset).resizable else {}))
        train = splits.train
        if self.subset_per_class is not None:
            train = class_balanced_subset(train, self.subset_per_class, seed=self.seed)
        return splits, train

    def _setting(self) -> dict[str, Any]:
        # data_dir None when unset (digits): an absolute path of "" would be the working directory,
        # making the supernet's cache key depend on where the trial was started
        data_dir = os.path.abspath(self.data_dir) if self.data_dir else None
        return {"backbone": self.backbone, "dataset": self.dataset, "data_dir": data_dir,
                "width_scale": self.width_scale, "image_size": self.image_size,
                "subset_per_class": self.subset_per_class, "val_size": self.val_size, "seed": self.seed}

    @functools.cached_property
    def _reference_flops(self) -> float:
        """FLOPs of the binary network at ratio 1 everywhere (the paper's normaliser)."""
        return self._cost({name: 1.0 for name in self.space.names}).flops

    def _cost(self, ratios: Mapping[str, float]) -> Any:
        from .cost import network_cost

        splits, _ = self._data
        return network_cost(self.backbone, ratios, width_scale=self.width_scale, image_size=self.image_size,
                            num_classes=splits.num_classes, in_channels=splits.in_channels,
                            convention=self.cost_convention)

    def _build(self, ratios: Mapping[str, float]) -> Any:
        import torch

        from .backbones import build_network

        splits, _ = self._data
        torch.manual_seed(self.seed)
        return build_network(self.backbone, ratios, width_scale=self.width_scale,
                             num_classes=splits.num_classes, in_channels=splits.in_channels)

    def _loaders(self) -> tuple[Any, Any]:
        from .data import make_loader, make_train_loader

        splits, train = self._data
        bs = self.train_config.batch_size
        return (make_train_loader(train, bs, seed=self.seed, num_workers=self.num_workers),
                make_loader(splits.val, max(bs, 256), shuffle=False, seed=self.seed, num_workers=self.num_workers))

    def supernet_state(self) -> dict[str, Any]:
        """The trained uniformly-widest network (trained once, then read from the cache; kept in
        memory after the first read, since every candidate slices it)."""
        if self._supernet_memo is not None:
            return self._supernet_memo
        from dataclasses import replace

        from .supernet import cached_state
        from .training import accuracy, fit, pick_device, reestimate_batch_norm

        widest = {name: max(self.space.ratios) for name in self.space.names}
        config = replace(self.train_config, epochs=self.supernet_epochs)
        setting = {**self._setting(), "ratios": widest, "train": config.to_json(), "kind": "supernet"}
        if self.supernet_training != "widest":
            setting["supernet_training"] = self.supernet_training
            setting["widest_bn"] = "reestimated"  # stored statistics: the widest network's own

        def train() -> tuple[dict[str, Any], dict[str, float]]:
            model = self._build(widest)
            train_loader, val_loader = self._loaders()
            loss_fn, mask = self._supernet_loss(model, widest)
            device = pick_device(self.device_name)
            try:
                metrics = fit(model, train_loader, val_loader, config, device, loss_fn=loss_fn)
            finally:
                if mask is not None:
                    mask.remove()
            if mask is not None:  # its statistics mix all sub-networks': give the widest its own
                reestimate_batch_norm(model, self._bn_loader(), device)
                metrics["accuracy"] = accuracy(model, val_loader, device)
            return model.state_dict(), metrics

        state, _ = cached_state(setting, train, self.cache_dir)
        self._supernet_memo = state
        return state

    def _supernet_loss(self, model: Any, widest: Mapping[str, float]) -> tuple[Any, Any]:
        """The loss of sandwich-rule supernet training and its channel mask; (None, None) for the paper's."""
        if self.supernet_training == "widest":
            return None, None
        import random

        from .backbones import layer_channels
        from .supernet import ChannelMask, sandwich_loss

        rng = random.Random(self.seed)

        def widths(ratios: Mapping[str, float]) -> list[int]:
            return list(layer_channels(self.backbone, ratios, self.width_scale).values())

        mask = ChannelMask(model, self.backbone)
        loss = sandwich_loss(mask, widths(widest), widths({n: min(self.space.ratios) for n in self.space.names}),
                             lambda: widths({n: rng.choice(self.space.ratios) for n in self.space.names}))
        return loss, mask

    def _bn_loader(self) -> Any:
        """Shuffled training batches for batch-norm re-estimation, on a generator of their own
        (so the training order of the candidate stays what it is without re-estimation)."""
        from .data import make_train_loader

        _, train = self._data
        return make_train_loader(train, self.train_config.batch_size, seed=self.seed + 1)

    def initial_network(self, arch: Architecture) -> Any:
        """The candidate's network before training: freshly initialised, or with ``supernet`` the
        first channels of the trained supernet, with batch-norm statistics re-estimated for this
        width unless ``supernet_bn`` is ``inherit``."""
        from .backbones import slice_state_dict
        from .training import pick_device, reestimate_batch_norm

        ratios = {name: float(value) for name, value in self.space.validate(arch).items()}
        model = self._build(ratios)
        if self.supernet:
            model.load_state_dict(slice_state_dict(self.supernet_state(), model))
            if self.supernet_bn == "reestimate":
                reestimate_batch_norm(model, self._bn_loader(), pick_device(self.device_name))
        return model

    def prepare(self) -> None:
        """Load what every candidate needs, so that no candidate's time includes it: the data set,
        the reference FLOPs, torch's optimiser machinery (its first optimiser imports
        ``torch._dynamo``, about 1 s) and, with ``supernet``, the trained supernet."""
        import torch

        if self.threads is not None:
            torch.set_num_threads(self.threads)
        _ = self._reference_flops  # loads the data too
        torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        if self.supernet:
            self.supernet_state()

    # -------------------------------------------------------------- evaluation
    def evaluate(self, arch: Architecture, reporter: Reporter = null_reporter) -> Metrics:
        import torch

        from .training import TrainingDiverged, fit, pick_device

        if self.threads is not None:
            torch.set_num_threads(self.threads)
        ratios = {name: float(value) for name, value in self.space.validate(arch).items()}
        cost = self._cost(ratios)
        flops_norm = cost.flops / self._reference_flops
        if self.supernet:
            self.supernet_state()  # trained or read once; not part of this candidate's time
        started = time.perf_counter()  # from here: slicing, batch-norm re-estimation and training
        model = self.initial_network(ratios)
        train_loader, val_loader = self._loaders()

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            reporter(epoch, {"accuracy": metrics["accuracy"], "flops_norm": flops_norm, "loss": metrics["loss"]})

        try:
            last = fit(model, train_loader, val_loader, self.train_config, pick_device(self.device_name),
                       on_epoch=on_epoch)
        except TrainingDiverged as err:
            raise CandidateFailed(f"diverged: {err}") from None
        return {
            "accuracy": last.get("accuracy", 0.0),
            "flops": cost.flops,
            "flops_norm": flops_norm,
            "memory_bits": cost.memory_bits,
            "params": float(cost.params),
            "loss": last.get("loss", math.nan) if self.train_config.epochs else 0.0,
            "train_seconds": time.perf_counter() - started,
        }
