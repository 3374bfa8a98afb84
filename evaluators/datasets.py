"""The data sets the evaluators know, by name, with what each gives and needs (torch-free).

Each :class:`DatasetInfo` says what a network trained on the data set must take (image side,
channels, classes), the defaults an evaluator uses for it (the width scale of the backbone, the
backbone itself), whether it reads files (and how to check its directory before any trial starts),
and where its loader is. The loader, imported on first use, is a function
``load(root, seed=..., val_size=..., image_size=...) -> evaluators.data.DataSplits`` whose ``val``
split is held out of the training data (search never sees the test set).

Adding a data set
-----------------
Write its loader, then make one call::

    register_dataset(DatasetInfo(name="svhn", load="my_pkg.svhn:load", image_size=32, num_classes=10,
                                 in_channels=3, backbone="vgg_small", needs_root=True))

``load_dataset("svhn", ...)``, the evaluator's ``dataset: svhn``, ``retrain --dataset svhn`` and the
report's settings then all know it (a retraining recipe for ``retrain`` is the one other thing it
may want: ``evaluators.retrain.RETRAIN_DEFAULTS``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas_core.arguments import check_bool, check_int, check_positive
from nas_core.errors import DataUnavailableError, UserError

__all__ = ["DataError", "DatasetInfo", "register_dataset", "unregister_dataset", "get_dataset", "dataset_names", "dataset_settings"]


class DataError(DataUnavailableError, ValueError):
    """Missing or malformed dataset files (one-line message naming the path)."""


@dataclass(frozen=True, kw_only=True)
class DatasetInfo:
    """A named data set: its input, its evaluator defaults and its loader.

    ``load`` is the loader or its ``"module:function"`` path. ``resizable`` says the loader takes
    ``image_size`` (resizing every image); otherwise only the native ``image_size`` is accepted.
    ``required_files`` are paths under the data directory that must exist (checked, with
    ``layout`` naming the expected format in the error, before any trial starts).
    """

    name: str
    load: str | Callable[..., Any]
    image_size: int
    num_classes: int
    in_channels: int
    width_scale: float = 1.0
    backbone: str = "vgg_small"
    needs_root: bool = False
    resizable: bool = False
    required_files: tuple[str, ...] = ()
    layout: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"data set name must be a non-empty string, got {self.name!r}")
        for field in ("image_size", "num_classes", "in_channels"):
            check_int(f"{self.name}: {field}", getattr(self, field), minimum=1)
        check_positive(f"{self.name}: width_scale", self.width_scale)
        check_bool(f"{self.name}: needs_root", self.needs_root)
        check_bool(f"{self.name}: resizable", self.resizable)

    def loader(self) -> Callable[..., Any]:
        """The loading function (imported from ``load`` if given as a path)."""
        if callable(self.load):
            return self.load
        module, _, attr = self.load.partition(":")
        return getattr(importlib.import_module(module), attr)

    def check_root(self, data_dir: str | None) -> None:
        """Raise :class:`DataError` (one line) if ``data_dir`` cannot hold this data set; no file is read."""
        if not self.needs_root:
            return
        if not data_dir:
            raise DataError(f"{self.name}: data_dir is required (no download here); point it at the data set's directory")
        root = Path(data_dir)
        if not root.is_dir():
            raise DataError(f"{self.name}: data_dir {str(root)!r} does not exist")
        missing = [p for p in self.required_files if not (root / p).exists()]
        if missing:
            raise DataError(f"{self.name}: {root} has no {' or '.join(missing)} ({self.layout})")


_DATASETS: dict[str, DatasetInfo] = {}


def register_dataset(info: DatasetInfo) -> DatasetInfo:
    """Make ``info`` known by its name to ``load_dataset``, the evaluator and the commands."""
    if not isinstance(info, DatasetInfo):
        raise TypeError(f"register_dataset needs a DatasetInfo, got {type(info).__name__}")
    if info.name in _DATASETS:
        raise ValueError(f"data set {info.name!r} is already registered")
    _DATASETS[info.name] = info
    return info


def unregister_dataset(name: str) -> None:
    """Forget the data set ``name`` (for tests and interactive use); unknown names are ignored."""
    _DATASETS.pop(name, None)


def dataset_names() -> tuple[str, ...]:
    """Every registered data set, in registration order."""
    return tuple(_DATASETS)


def get_dataset(name: str) -> DatasetInfo:
    """The data set registered as ``name``; ``ValueError`` naming it if there is none."""
    if not isinstance(name, str) or name not in _DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {dataset_names()}")
    return _DATASETS[name]


def dataset_settings() -> dict[str, dict[str, float | int]]:
    """Per data set: the default width scale and input size, and the classes and input channels."""
    return {
        info.name: {"width_scale": info.width_scale, "image_size": info.image_size,
                    "num_classes": info.num_classes, "in_channels": info.in_channels}
        for info in _DATASETS.values()
    }


# ----------------------------------------------------------------------------- built-in data sets

register_dataset(DatasetInfo(name="digits", load="evaluators.data:load_digits", image_size=8, num_classes=10,
                             in_channels=1, width_scale=0.125, backbone="vgg_small"))
register_dataset(DatasetInfo(name="cifar10", load="evaluators.data:load_cifar10", image_size=32, num_classes=10,
                             in_channels=3, backbone="vgg_small", needs_root=True,
                             required_files=("cifar-10-batches-py/data_batch_1",),
                             layout="expected torchvision's CIFAR-10 python format"))
register_dataset(DatasetInfo(name="imagenet", load="evaluators.data:load_imagenet", image_size=224, num_classes=1000,
                             in_channels=3, backbone="resnet18", needs_root=True, resizable=True,
                             required_files=("train", "val"),
                             layout="needs train/ and val/ ImageFolder trees, one folder per class"))
