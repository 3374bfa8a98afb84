"""Datasets for the search (train / val) and the final evaluation (test).

``load_dataset(name, ...)`` looks ``name`` up in the data set registry
(:mod:`evaluators.datasets`, where a new data set is one ``register_dataset`` call) and returns a
``DataSplits`` whose ``val`` split is always carved from the training data by a seeded,
class-balanced hold-out, so search never looks at the test set. The built-in loaders:

``digits``    scikit-learn's bundled 8x8 digits (1797 images, no files needed):
              pixels scaled to [0, 1], then normalised with the training
              split's mean/std; stratified 60/20/20 train/val/test split, the
              test part the same for every seed; kept
              as in-memory ``TensorDataset``s (the embedded default, fast). The
              images and each seed's split are cached under ``$NAS_CORE_CACHE/digits``,
              so later runs need neither scikit-learn nor SciPy.
``cifar10``   ``root/cifar-10-batches-py`` in torchvision's CIFAR-10 python
              pickle format (read here directly: torchvision's reader insists
              on the official MD5 sums, and nothing is ever downloaded).  Train
              minus ``val_size`` (default 5000) images with random-crop-32
              (padding 4) + horizontal flip; val = the held-out images; test =
              ``test_batch``.  Standard CIFAR-10 mean/std normalisation.
``imagenet``  ``root/train`` and ``root/val`` ImageFolder trees.  Train uses
              RandomResizedCrop(image_size) + flip; val/test use
              Resize(image_size*256/224) + CenterCrop(image_size).  val =
              ``val_size`` images held out of train (default 10 per class);
              test = ``root/val``.

Missing or malformed data raise ``DataError`` (a ``ValueError``) with one line
naming the path and what was expected.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import os
import pickle
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset, TensorDataset

from nas_core.arguments import check_int, check_optional_int

from evaluators.datasets import DataError, dataset_names, get_dataset

__all__ = [
    "DataError",
    "DataSplits",
    "load_dataset",
    "class_balanced_subset",
    "dataset_labels",
    "make_loader",
    "make_train_loader",
    "TensorBatchLoader",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_CIFAR_DIR = "cifar-10-batches-py"
_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST = "test_batch"


def __getattr__(name: str) -> Any:
    # Kept for callers written before the registry: always the current registrations.
    if name == "DATASETS":
        return dataset_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class DataSplits:
    """Train / validation / test datasets plus what a backbone needs to know."""

    train: Dataset
    val: Dataset
    test: Dataset
    num_classes: int
    in_channels: int
    image_size: int
    class_names: tuple[str, ...] = field(default=())

    def train_and_val(self) -> Dataset:
        """The training and validation images together (retraining's data), every one with the
        training transform: a validation split carrying a ``transform`` (ours: CIFAR-10, ImageNet)
        is viewed again with the training split's, so its images are augmented too; in-memory
        tensors (digits) have no transform and are joined as they are."""
        val = self.val
        transform = getattr(self.train, "transform", None)
        if transform is not None and hasattr(val, "transform"):
            val = copy.copy(val)  # the same images and indices; only the transform differs
            val.transform = transform
        return ConcatDataset([self.train, val])


# ------------------------------------------------------------------ labels / subsets


def dataset_labels(dataset: Dataset) -> list[int]:
    """Labels of every item, read without loading images where possible.

    Uses ``dataset.targets`` (torchvision datasets, ours), the last tensor of a
    ``TensorDataset``, and follows ``Subset`` indices; only as a last resort is
    every item loaded.
    """
    if isinstance(dataset, Subset):
        parent = dataset_labels(dataset.dataset)
        return [parent[int(i)] for i in dataset.indices]
    targets = getattr(dataset, "targets", None)
    if targets is not None:
        return [int(t) for t in (targets.tolist() if torch.is_tensor(targets) else targets)]
    if isinstance(dataset, TensorDataset):
        return [int(t) for t in dataset.tensors[-1].tolist()]
    return [int(dataset[i][1]) for i in range(len(dataset))]  # type: ignore[arg-type]


def _per_class_indices(labels: Sequence[int]) -> dict[int, np.ndarray]:
    arr = np.asarray(labels, dtype=np.int64)
    return {int(c): np.flatnonzero(arr == c) for c in np.unique(arr)}


def _balanced_pick(labels: Sequence[int], counts: dict[int, int], seed: int) -> np.ndarray:
    """Seeded pick of ``counts[c]`` indices of every class c (sorted result)."""
    rng = np.random.default_rng(seed)
    by_class = _per_class_indices(labels)
    picked = []
    for c in sorted(by_class):
        idx = by_class[c]
        n = counts.get(c, 0)
        if n > len(idx):
            raise ValueError(f"class {c} has {len(idx)} items, {n} requested")
        picked.append(rng.permutation(idx)[:n])
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)


def class_balanced_subset(
    dataset: Dataset, per_class: int, *, seed: int, labels: Sequence[int] | None = None
) -> Subset:
    """A seeded ``Subset`` with ``per_class`` items of every class.

    The paper's ImageNet search subset is 50 images per class.  ``labels`` may
    be passed to skip label discovery (see ``dataset_labels``).  Raises
    ``ValueError`` if some class has fewer than ``per_class`` items.
    """
    per_class = check_int("per_class", per_class, minimum=0)
    labels = dataset_labels(dataset) if labels is None else list(labels)
    if len(labels) != len(dataset):  # type: ignore[arg-type]
        raise ValueError(f"{len(labels)} labels for a dataset of {len(dataset)} items")  # type: ignore[arg-type]
    counts = {c: per_class for c in _per_class_indices(labels)}
    return Subset(dataset, _balanced_pick(labels, counts, seed).tolist())


def _holdout(labels: Sequence[int], val_size: int, seed: int, what: str) -> tuple[list[int], list[int]]:
    """Split indices into (train, val) with a class-balanced val of ``val_size`` items.

    Each class gives ``val_size // C`` items; the remainder goes one each to
    the lowest-numbered classes.
    """
    by_class = _per_class_indices(labels)
    classes = sorted(by_class)
    if val_size < 0 or val_size >= len(labels):
        raise ValueError(f"{what}: val_size must be in [0, {len(labels) - 1}], got {val_size}")
    base, rem = divmod(val_size, len(classes))
    counts = {c: base + (1 if i < rem else 0) for i, c in enumerate(classes)}
    for c in classes:
        if counts[c] >= len(by_class[c]):
            raise ValueError(
                f"{what}: val_size {val_size} would take all {len(by_class[c])} items of class {c}"
            )
    val = _balanced_pick(labels, counts, seed)
    mask = np.ones(len(labels), dtype=bool)
    mask[val] = False
    return np.flatnonzero(mask).tolist(), val.tolist()


# ------------------------------------------------------------------ digits


DIGITS_SIZE = 1797
"""Images in scikit-learn's digits (fixed: it is bundled with scikit-learn)."""
DIGITS_TEST_SEED = 0
"""The one seed of the digits test split (0: the split every seed-0 run has always used)."""
DIGITS_CACHE_FORMAT = 2
"""Version of the cached digits files; bump it when what :func:`_digits_from_sklearn` computes changes
(2: the test split fixed by :data:`DIGITS_TEST_SEED`)."""


def digits_cache_dir() -> Path:
    """Where the digits images and splits are cached: ``$NAS_CORE_CACHE/digits`` (default
    ``~/.cache/nas_core/digits``)."""
    return Path(os.environ.get("NAS_CORE_CACHE", Path.home() / ".cache" / "nas_core")) / "digits"


def _digits_from_sklearn(seed: int, test_n: int, val_n: int) -> dict[str, np.ndarray]:
    """The raw images (0..16), labels and the stratified train/val/test indices, from scikit-learn."""
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    bunch = sklearn_digits()
    y = bunch.target.astype(np.int64)
    # The test split is fixed (like CIFAR-10's test_batch and ImageNet's val): the seed only moves
    # the train/val hold-out, so no seed's test images were ever trained or validated on.
    rest, test_idx = train_test_split(np.arange(len(y)), test_size=test_n, random_state=DIGITS_TEST_SEED,
                                      stratify=y)
    train_idx, val_idx = train_test_split(rest, test_size=val_n, random_state=seed + 1, stratify=y[rest])
    return {"images": bunch.images.astype(np.uint8), "labels": y, "train": train_idx, "val": val_idx,
            "test": test_idx}


def _save_atomically(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` so that a concurrent reader sees the whole file or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, staging = tempfile.mkstemp(dir=path.parent, suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as file:
            np.savez(file, **arrays)
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise


@functools.lru_cache(maxsize=4)
def digits_arrays(seed: int, test_n: int, val_n: int) -> dict[str, np.ndarray]:
    """:func:`_digits_from_sklearn`, cached on disk (:func:`digits_cache_dir`).

    Importing scikit-learn (and the SciPy it pulls in) takes 1-1.5 s, paid by every resident trial
    worker's first trial; the cached arrays load in milliseconds with numpy alone. A missing,
    unreadable or unwritable cache only means computing them again.
    """
    path = digits_cache_dir() / f"digits-v{DIGITS_CACHE_FORMAT}-seed{seed}-test{test_n}-val{val_n}.npz"
    try:
        with np.load(path) as cached:
            arrays = {name: cached[name] for name in ("images", "labels", "train", "val", "test")}
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        arrays = _digits_from_sklearn(seed, test_n, val_n)
        with contextlib.suppress(OSError):
            _save_atomically(path, arrays)
    for array in arrays.values():
        array.setflags(write=False)
    return arrays


def load_digits(root: str | os.PathLike | None = None, *, seed: int, val_size: int | None,
                image_size: int | None = None) -> DataSplits:
    """scikit-learn's 8x8 digits (``root`` and ``image_size`` unused: bundled, fixed size)."""
    n = DIGITS_SIZE
    test_n = round(0.2 * n)
    val_n = round(0.2 * n) if val_size is None else int(val_size)
    if not 0 < val_n < n - test_n:
        raise ValueError(f"digits: val_size must be in [1, {n - test_n - 1}], got {val_size}")
    arrays = digits_arrays(seed, test_n, val_n)
    x = arrays["images"].astype(np.float32) / 16.0  # pixel values are 0..16
    y = arrays["labels"]
    train_idx, val_idx, test_idx = arrays["train"], arrays["val"], arrays["test"]
    mean = float(x[train_idx].mean())
    std = float(x[train_idx].std())

    def part(ix: np.ndarray) -> TensorDataset:
        ix = np.sort(ix)
        xs = torch.from_numpy((x[ix] - mean) / std).unsqueeze(1).contiguous()
        return TensorDataset(xs, torch.from_numpy(y[ix]))

    return DataSplits(
        part(train_idx), part(val_idx), part(test_idx), 10, 1, 8,
        tuple(str(i) for i in range(10)),
    )


# ------------------------------------------------------------------ CIFAR-10


class ArrayImageDataset(Dataset):
    """uint8 images ``[N, C, H, W]`` with labels, a subset view and a transform.

    Keeps ``targets`` (labels of the view) so label lookups never touch pixels.
    """

    def __init__(self, images: torch.Tensor, labels: Sequence[int], indices: Sequence[int], transform) -> None:
        self.images = images
        self.indices = list(indices)
        all_labels = list(labels)
        self.targets = [int(all_labels[i]) for i in self.indices]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = self.images[self.indices[i]]
        return self.transform(img), self.targets[i]


def _cifar_transform(train: bool):
    from torchvision import transforms as T

    steps = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()] if train else []
    steps += [T.ConvertImageDtype(torch.float32), T.Normalize(CIFAR10_MEAN, CIFAR10_STD)]
    return T.Compose(steps)


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, list[int]]:
    if not path.is_file():
        raise DataError(
            f"cifar10: {path} is missing (expected torchvision's CIFAR-10 python format)"
        )
    try:
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="latin1")
        entry = {k.decode() if isinstance(k, bytes) else k: v for k, v in entry.items()}
        data = np.asarray(entry["data"], dtype=np.uint8)
        labels = [int(v) for v in entry["labels"]]
        data = data.reshape(-1, 3, 32, 32)
    except Exception as exc:  # any unpickling/shape problem is a malformed file
        raise DataError(
            f"cifar10: {path} is not a CIFAR-10 python batch "
            f"(expected a pickled dict with 'data' Nx3072 uint8 and 'labels'): "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None
    if len(labels) != len(data):
        raise DataError(f"cifar10: {path} has {len(data)} images but {len(labels)} labels")
    return data, labels


def load_cifar10(root: str | os.PathLike | None, *, seed: int, val_size: int | None,
                 image_size: int | None = None) -> DataSplits:
    """CIFAR-10 from ``root/cifar-10-batches-py`` (``image_size`` unused: 32x32)."""
    if root is None:
        raise DataError("cifar10: no root given (expected a directory containing cifar-10-batches-py/)")
    base = Path(root).expanduser() / _CIFAR_DIR
    if not base.is_dir():
        raise DataError(
            f"cifar10: {Path(root)} has no {_CIFAR_DIR}/ (expected torchvision's CIFAR-10 python format)"
        )
    parts = [_read_cifar_batch(base / name) for name in _CIFAR_TRAIN]
    train_x = torch.from_numpy(np.concatenate([p[0] for p in parts]))
    train_y = [label for p in parts for label in p[1]]
    test_np, test_y = _read_cifar_batch(base / _CIFAR_TEST)
    names: tuple[str, ...] = tuple(str(i) for i in range(10))
    meta = base / "batches.meta"
    if meta.is_file():
        try:
            with open(meta, "rb") as f:
                m = pickle.load(f, encoding="latin1")
            names = tuple(str(n) for n in m["label_names"])
        except Exception:
            raise DataError(f"cifar10: {meta} is not a pickled dict with 'label_names'") from None
    bad = sorted({y for y in train_y + test_y if not 0 <= y < 10})
    if bad:
        raise DataError(f"cifar10: {base} has labels outside 0..9: {bad[:5]}")
    vs = 5000 if val_size is None else int(val_size)
    try:
        tr_idx, va_idx = _holdout(train_y, vs, seed, "cifar10")
    except ValueError as exc:
        raise DataError(f"{exc} (data in {base})") from None
    return DataSplits(
        train=ArrayImageDataset(train_x, train_y, tr_idx, _cifar_transform(True)),
        val=ArrayImageDataset(train_x, train_y, va_idx, _cifar_transform(False)),
        test=ArrayImageDataset(
            torch.from_numpy(test_np), test_y, range(len(test_y)), _cifar_transform(False)
        ),
        num_classes=10,
        in_channels=3,
        image_size=32,
        class_names=names,
    )


# ------------------------------------------------------------------ ImageNet


class _TransformedSubset(Dataset):
    """Indices of an ImageFolder with their own transform (train vs val view)."""

    def __init__(self, folder, indices: Sequence[int], transform) -> None:
        self.folder = folder
        self.indices = list(indices)
        self.targets = [int(folder.targets[i]) for i in self.indices]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path, _ = self.folder.samples[self.indices[i]]
        return self.transform(self.folder.loader(path)), self.targets[i]


def _image_folder(path: Path):
    from torchvision.datasets import ImageFolder

    if not path.is_dir():
        raise DataError(f"imagenet: {path} is missing (expected an ImageFolder tree: {path}/<class>/<image>)")
    try:
        return ImageFolder(str(path))
    except (FileNotFoundError, RuntimeError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            f"imagenet: {path} is not an ImageFolder tree ({path}/<class>/<image>): {msg}"
        ) from None


def load_imagenet(
    root: str | os.PathLike | None, *, seed: int, val_size: int | None, image_size: int | None
) -> DataSplits:
    """ImageNet from ``root/train`` and ``root/val`` ImageFolder trees, at ``image_size`` (default 224)."""
    from torchvision import transforms as T

    if root is None:
        raise DataError("imagenet: no root given (expected a directory with train/ and val/ ImageFolder trees)")
    root_p = Path(root).expanduser()
    if not root_p.is_dir():
        raise DataError(f"imagenet: {root_p} is missing (expected a directory with train/ and val/)")
    train_f = _image_folder(root_p / "train")
    test_f = _image_folder(root_p / "val")
    if test_f.classes != train_f.classes:
        raise DataError(
            f"imagenet: {root_p / 'val'} classes differ from {root_p / 'train'} "
            f"({len(test_f.classes)} vs {len(train_f.classes)} class folders)"
        )
    size = get_dataset("imagenet").image_size if image_size is None else check_int("image_size", image_size, minimum=1)
    norm = [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    train_tf = T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(), *norm])
    eval_tf = T.Compose([T.Resize(int(math.floor(size * 256 / 224 + 0.5))), T.CenterCrop(size), *norm])
    ncls = len(train_f.classes)
    vs = 10 * ncls if val_size is None else int(val_size)
    try:
        tr_idx, va_idx = _holdout(train_f.targets, vs, seed, "imagenet")
    except ValueError as exc:
        raise DataError(f"{exc} (data in {root_p / 'train'})") from None
    return DataSplits(
        train=_TransformedSubset(train_f, tr_idx, train_tf),
        val=_TransformedSubset(train_f, va_idx, eval_tf),
        test=_TransformedSubset(test_f, range(len(test_f)), eval_tf),
        num_classes=ncls,
        in_channels=3,
        image_size=size,
        class_names=tuple(train_f.classes),
    )


def load_dataset(
    name: str,
    *,
    root: str | os.PathLike | None = None,
    seed: int = 0,
    val_size: int | None = None,
    image_size: int | None = None,
) -> DataSplits:
    """Load the registered data set ``name`` as seeded train/val/test splits.

    ``val_size`` is the number of training images held out for validation
    (defaults: digits 20% of all, cifar10 5000, imagenet 10 per class);
    ``image_size`` may differ from the data set's own only where it is ``resizable``
    (imagenet, default 224).  The same seed always gives the same split.
    """
    info = get_dataset(name)
    seed = check_int("seed", seed)
    val_size = check_optional_int("val_size", val_size, minimum=0)
    image_size = check_optional_int("image_size", image_size, minimum=1)
    if image_size is not None and not info.resizable and image_size != info.image_size:
        raise ValueError(f"{name}: image_size must be {info.image_size} (its images are not resized), got {image_size}")
    return info.loader()(root, seed=seed, val_size=val_size, image_size=image_size if info.resizable else None)


# ------------------------------------------------------------------ loaders


def _as_tensor_view(dataset: Dataset) -> tuple[tuple[torch.Tensor, ...], torch.Tensor | None] | None:
    """(tensors, indices) if ``dataset`` is a TensorDataset or a Subset chain of one."""
    idx: torch.Tensor | None = None
    while isinstance(dataset, Subset):
        sub = torch.as_tensor(list(dataset.indices), dtype=torch.long)
        idx = sub if idx is None else sub[idx]
        dataset = dataset.dataset
    if isinstance(dataset, TensorDataset):
        return dataset.tensors, idx
    return None


class TensorBatchLoader:
    """Minimal re-iterable batch loader over in-memory tensors (no DataLoader overhead).

    Every pass draws a fresh permutation from a generator seeded once with
    ``seed``, so a run is reproducible and epochs differ.
    """

    def __init__(
        self,
        tensors: Sequence[torch.Tensor],
        batch_size: int,
        *,
        shuffle: bool,
        seed: int,
        indices: torch.Tensor | None = None,
        drop_last: bool = False,
    ) -> None:
        batch_size = check_int("batch_size", batch_size, minimum=1)
        self.tensors = tuple(tensors)
        self.indices = indices
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.generator = torch.Generator().manual_seed(seed)
        self.dataset_len = len(indices) if indices is not None else len(self.tensors[0])

    def __len__(self) -> int:
        if self.drop_last:
            return self.dataset_len // self.batch_size
        return math.ceil(self.dataset_len / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        n = self.dataset_len
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        if self.indices is not None:
            order = self.indices[order]
        for b in range(len(self)):
            sel = order[b * self.batch_size : (b + 1) * self.batch_size]
            yield tuple(t[sel] for t in self.tensors)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    num_workers: int = 0,
    drop_last: bool = False,
) -> TensorBatchLoader | DataLoader:
    """Batches of ``dataset`` as ``(x, y)`` tuples, reproducible from ``seed``.

    In-memory tensors (a ``TensorDataset`` or ``Subset`` chain of one, e.g.
    digits) get a ``TensorBatchLoader`` -- plain tensor indexing, no per-item
    overhead, ``num_workers`` ignored; anything else a ``DataLoader`` whose
    shuffling generator is seeded.
    """
    view = _as_tensor_view(dataset)
    if view is not None:
        tensors, idx = view
        return TensorBatchLoader(tensors, batch_size, shuffle=shuffle, seed=seed, indices=idx, drop_last=drop_last)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        drop_last=drop_last,
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=num_workers > 0,
    )


def make_train_loader(dataset: Dataset, batch_size: int, *, seed: int, num_workers: int = 0) -> TensorBatchLoader | DataLoader:
    """Shuffled training batches (:func:`make_loader`), without a last batch of one image.

    Train-mode batch norm cannot normalise a single value per channel, which a one-image batch
    gives on 1×1 feature maps (VGG-small's last block): it would fail every candidate. Only that
    batch is dropped (one image an epoch, a different one each epoch); other partial batches are
    kept. Every training loader (candidates, supernet, batch-norm re-estimation, retraining) is
    made here.
    """
    batch_size = check_int("batch_size", batch_size, minimum=1)
    size = len(dataset)  # type: ignore[arg-type]
    single_last = size > batch_size and size % batch_size == 1
    return make_loader(dataset, batch_size, shuffle=True, seed=seed, num_workers=num_workers, drop_last=single_last)
