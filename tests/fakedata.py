"""Tiny on-disk fake datasets in the real formats, for tests (no downloads).

* ``write_fake_cifar10``: ``<root>/cifar-10-batches-py/`` with ``data_batch_1..5``,
  ``test_batch`` and ``batches.meta`` pickled exactly like the official python
  version (dicts with ``data`` [N, 3072] uint8 in CHW order, ``labels``,
  ``filenames``, ``batch_label``; meta with ``label_names``), so torchvision's
  own reader parses them too (bar its MD5 check).
* ``write_fake_imagefolder``: ``<root>/train/<class>/*.png`` and
  ``<root>/val/<class>/*.png`` small RGB PNGs.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CIFAR_LABEL_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)


@dataclass(frozen=True)
class FakeCifar:
    """What was written: the root to pass to load_dataset and the raw arrays."""

    root: Path
    train_data: np.ndarray  # [N, 3, 32, 32] uint8, batches 1..5 concatenated
    train_labels: list[int]
    test_data: np.ndarray
    test_labels: list[int]


def _cifar_batch(path: Path, name: str, data: np.ndarray, labels: list[int]) -> None:
    entry = {
        "batch_label": name,
        "labels": list(labels),
        "data": data.reshape(len(data), 3 * 32 * 32),
        "filenames": [f"img_{i:05d}.png" for i in range(len(data))],
    }
    with open(path, "wb") as f:
        pickle.dump(entry, f, protocol=2)


def write_fake_cifar10(
    root: str | Path, *, train_per_batch: int = 20, test_size: int = 20, seed: int = 0
) -> FakeCifar:
    """Write a class-balanced (labels cycle 0..9) fake CIFAR-10 under ``root``."""
    rng = np.random.default_rng(seed)
    base = Path(root) / "cifar-10-batches-py"
    base.mkdir(parents=True, exist_ok=True)
    datas, labels = [], []
    for b in range(1, 6):
        data = rng.integers(0, 256, size=(train_per_batch, 3, 32, 32), dtype=np.uint8)
        lab = [(i + b) % 10 for i in range(train_per_batch)]
        _cifar_batch(base / f"data_batch_{b}", f"training batch {b} of 5", data, lab)
        datas.append(data)
        labels.extend(lab)
    test = rng.integers(0, 256, size=(test_size, 3, 32, 32), dtype=np.uint8)
    test_labels = [i % 10 for i in range(test_size)]
    _cifar_batch(base / "test_batch", "testing batch 1 of 1", test, test_labels)
    meta = {"num_cases_per_batch": train_per_batch, "label_names": list(CIFAR_LABEL_NAMES), "num_vis": 3072}
    with open(base / "batches.meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return FakeCifar(Path(root), np.concatenate(datas), labels, test, test_labels)


def write_fake_imagefolder(
    root: str | Path,
    *,
    classes: tuple[str, ...] = ("ant", "bee", "cat"),
    train_per_class: int = 6,
    val_per_class: int = 2,
    size: tuple[int, int] = (24, 20),
    seed: int = 0,
) -> Path:
    """Write ``root/{train,val}/<class>/<i>.png`` RGB images of ``size`` (W, H)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root = Path(root)
    for split, n in (("train", train_per_class), ("val", val_per_class)):
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
                Image.fromarray(arr).save(d / f"{i:03d}.png")
    return root
