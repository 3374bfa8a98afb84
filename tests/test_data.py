"""Datasets: digits split, fake CIFAR-10 / ImageFolder on disk, hold-outs, subsets, loaders, errors."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from evaluators.data import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    DataError,
    DataSplits,
    TensorBatchLoader,
    class_balanced_subset,
    dataset_labels,
    load_dataset,
    make_loader,
    make_train_loader,
)

try:
    from tests.fakedata import CIFAR_LABEL_NAMES, write_fake_cifar10, write_fake_imagefolder
except ImportError:  # tests/ itself on sys.path
    from fakedata import CIFAR_LABEL_NAMES, write_fake_cifar10, write_fake_imagefolder


def counts(labels) -> dict[int, int]:
    return dict(collections.Counter(int(v) for v in labels))


# ------------------------------------------------------------------ digits


def test_digits_splits_sizes_stratified_and_deterministic():
    d = load_dataset("digits", seed=0)
    assert (d.num_classes, d.in_channels, d.image_size) == (10, 1, 8)
    sizes = [len(d.train), len(d.val), len(d.test)]
    assert sum(sizes) == 1797 and sizes == [1079, 359, 359]
    assert d.train.tensors[0].shape == (1079, 1, 8, 8) and d.train.tensors[0].dtype == torch.float32
    assert d.train.tensors[1].dtype == torch.int64
    # normalised with train statistics
    assert abs(d.train.tensors[0].mean().item()) < 1e-4
    assert abs(d.train.tensors[0].std().item() - 1) < 1e-2
    # stratified: every class within 1-2 items of its expected share
    full = counts(np.concatenate([dataset_labels(s) for s in (d.train, d.val, d.test)]))
    for split, frac in ((d.train, 0.6), (d.val, 0.2), (d.test, 0.2)):
        for c, n in counts(dataset_labels(split)).items():
            assert abs(n - frac * full[c]) <= 2, (c, n)
    again = load_dataset("digits", seed=0)
    assert torch.equal(again.val.tensors[0], d.val.tensors[0])
    other = load_dataset("digits", seed=1)
    assert not torch.equal(other.val.tensors[1], d.val.tensors[1])


def test_digits_splits_partition_the_raw_data():
    from sklearn.datasets import load_digits

    d = load_dataset("digits", seed=3)
    z = torch.cat([s.tensors[0].reshape(len(s), -1) for s in (d.train, d.val, d.test)])
    y = torch.cat([s.tensors[1] for s in (d.train, d.val, d.test)])
    # undo the (shared, affine) normalisation: raw pixel values are 0..16
    pix = torch.round((z - z.min()) / (z.max() - z.min()) * 16).long()
    got = sorted(map(tuple, torch.cat([pix, y.unsqueeze(1)], 1).tolist()))
    raw = load_digits()
    want = sorted(map(tuple, np.concatenate([raw.data.astype(int), raw.target[:, None]], 1).tolist()))
    assert got == want


def test_digits_val_size_and_unknown_name():
    d = load_dataset("digits", seed=0, val_size=100)
    assert len(d.val) == 100 and len(d.train) == 1797 - 359 - 100
    with pytest.raises(ValueError, match="mnist"):
        load_dataset("mnist")


def test_a_data_set_is_one_registration():
    from evaluators.datasets import DatasetInfo, dataset_names, get_dataset, register_dataset, unregister_dataset

    def load_noise(root, *, seed, val_size, image_size):
        g = torch.Generator().manual_seed(seed)
        part = lambda n: TensorDataset(torch.randn(n, 2, 4, 4, generator=g), torch.arange(n) % 3)  # noqa: E731
        return DataSplits(part(12), part(val_size or 6), part(6), num_classes=3, in_channels=2, image_size=4)

    register_dataset(DatasetInfo(name="noise_test", load=load_noise, image_size=4, num_classes=3, in_channels=2,
                                 width_scale=0.5))
    try:
        d = load_dataset("noise_test", seed=1, val_size=3, image_size=4)
        assert (len(d.train), len(d.val), d.num_classes) == (12, 3, 3)
        assert torch.equal(d.train.tensors[0], load_dataset("noise_test", seed=1).train.tensors[0])
        with pytest.raises(ValueError, match="noise_test: image_size must be 4 .*got 8"):
            load_dataset("noise_test", image_size=8)
        assert "noise_test" in dataset_names() and get_dataset("noise_test").width_scale == 0.5
        from evaluators.fitness import BinaryWidthEvaluator

        setting = BinaryWidthEvaluator(dataset="noise_test").describe()["setting"]
        assert (setting["width_scale"], setting["image_size"], setting["in_channels"]) == (0.5, 4, 2)
    finally:
        unregister_dataset("noise_test")
    with pytest.raises(ValueError, match="unknown dataset 'noise_test'"):
        load_dataset("noise_test")


def test_built_in_data_sets_carry_the_evaluator_defaults():
    from evaluators.datasets import dataset_settings, get_dataset

    assert dataset_settings() == {
        "digits": {"width_scale": 0.125, "image_size": 8, "num_classes": 10, "in_channels": 1},
        "cifar10": {"width_scale": 1.0, "image_size": 32, "num_classes": 10, "in_channels": 3},
        "imagenet": {"width_scale": 1.0, "image_size": 224, "num_classes": 1000, "in_channels": 3},
    }
    assert [get_dataset(n).backbone for n in ("digits", "cifar10", "imagenet")] == ["vgg_small", "vgg_small",
                                                                                      "resnet18"]
    assert [get_dataset(n).resizable for n in ("digits", "cifar10", "imagenet")] == [False, False, True]


def test_data_directory_checks_read_no_file(tmp_path):
    from evaluators.datasets import get_dataset

    get_dataset("digits").check_root(None)
    with pytest.raises(DataError, match="cifar10: data_dir is required"):
        get_dataset("cifar10").check_root(None)
    with pytest.raises(DataError, match="does not exist"):
        get_dataset("cifar10").check_root(str(tmp_path / "nope"))
    with pytest.raises(DataError, match="has no cifar-10-batches-py/data_batch_1 .*CIFAR-10 python format"):
        get_dataset("cifar10").check_root(str(tmp_path))
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match="has no val .*needs train/ and val/"):
        get_dataset("imagenet").check_root(str(tmp_path))
    (tmp_path / "val").mkdir()
    get_dataset("imagenet").check_root(str(tmp_path))


def test_bad_registration_names_the_field():
    from evaluators.datasets import DatasetInfo, register_dataset

    with pytest.raises(ValueError, match="already registered"):
        register_dataset(DatasetInfo(name="digits", load=lambda *a, **k: None, image_size=8, num_classes=10,
                                     in_channels=1))
    with pytest.raises(ValueError, match="bad: num_classes must be an integer >= 1, got 0"):
        DatasetInfo(name="bad", load="x:y", image_size=8, num_classes=0, in_channels=1)


# ------------------------------------------------------------------ CIFAR-10


def test_fake_cifar_loads_with_holdout_and_matches_raw(tmp_path):
    fake = write_fake_cifar10(tmp_path, train_per_batch=20, test_size=20)
    d = load_dataset("cifar10", root=tmp_path, seed=0, val_size=30)
    assert (d.num_classes, d.in_channels, d.image_size) == (10, 3, 32)
    assert d.class_names == CIFAR_LABEL_NAMES
    assert (len(d.train), len(d.val), len(d.test)) == (70, 30, 20)
    assert counts(d.val.targets) == {c: 3 for c in range(10)}
    assert sorted(d.train.indices + d.val.indices) == list(range(100))
    x, y = d.test[5]
    assert x.shape == (3, 32, 32) and y == fake.test_labels[5]
    mean = torch.tensor(CIFAR10_MEAN).view(3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(3, 1, 1)
    raw = torch.from_numpy(fake.test_data[5]).float() / 255
    assert torch.allclose(x * std + mean, raw, atol=1e-5)
    i = d.val.indices[0]
    xv, yv = d.val[0]
    assert yv == fake.train_labels[i]
    assert torch.allclose(xv * std + mean, torch.from_numpy(fake.train_data[i]).float() / 255, atol=1e-5)
    xt, yt = d.train[0]  # augmented: same shape, label kept
    assert xt.shape == (3, 32, 32) and yt == fake.train_labels[d.train.indices[0]]
    # deterministic hold-out
    d2 = load_dataset("cifar10", root=tmp_path, seed=0, val_size=30)
    assert d2.val.indices == d.val.indices
    assert load_dataset("cifar10", root=tmp_path, seed=1, val_size=30).val.indices != d.val.indices


def test_train_and_val_gives_the_validation_images_the_training_augmentation(tmp_path):
    fake = write_fake_cifar10(tmp_path, train_per_batch=20, test_size=20)
    d = load_dataset("cifar10", root=tmp_path, seed=0, val_size=30)
    both = d.train_and_val()
    assert len(both) == 100
    assert sorted(y for _, y in both) == sorted(fake.train_labels)
    torch.manual_seed(0)
    held_out = [both[len(d.train) + j] for j in range(len(d.val))]
    plain = [d.val[j] for j in range(len(d.val))]
    assert [y for _, y in held_out] == [y for _, y in plain]
    assert sum(not torch.equal(a, b) for (a, _), (b, _) in zip(held_out, plain)) > len(plain) // 2  # cropped, flipped
    assert all(torch.equal(d.val[j][0], plain[j][0]) for j in range(3))  # the validation split itself unchanged
    digits = load_dataset("digits", seed=0)
    joined = digits.train_and_val()
    assert len(joined) == len(digits.train) + len(digits.val)
    assert torch.equal(joined[len(digits.train)][0], digits.val[0][0])


def test_fake_cifar_is_the_format_torchvision_reads(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    # the fake files cannot match the official MD5 sums; everything else is torchvision's reader
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)
    monkeypatch.setattr(tv_cifar.CIFAR10, "_check_integrity", lambda self: True)
    fake = write_fake_cifar10(tmp_path, train_per_batch=10, test_size=10)
    tv = tv_cifar.CIFAR10(str(tmp_path), train=True, download=False)
    assert tv.targets == fake.train_labels
    assert np.array_equal(tv.data, fake.train_data.transpose(0, 2, 3, 1))
    assert tv.classes == list(CIFAR_LABEL_NAMES)


def test_cifar_errors_are_one_line_and_name_the_path(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset("cifar10", root=tmp_path / "nowhere")
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path / "nowhere") in msg and "cifar-10-batches-py" in msg
    write_fake_cifar10(tmp_path, train_per_batch=10, test_size=10)
    batch3 = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    batch3.unlink()
    with pytest.raises(DataError) as e:
        load_dataset("cifar10", root=tmp_path, val_size=10)
    assert "\n" not in str(e.value) and str(batch3) in str(e.value)
    batch3.write_bytes(b"this is not a pickle")
    with pytest.raises(DataError) as e:
        load_dataset("cifar10", root=tmp_path, val_size=10)
    assert "\n" not in str(e.value) and str(batch3) in str(e.value)
    with pytest.raises(DataError, match="no root"):
        load_dataset("cifar10")


def test_cifar_val_size_too_large(tmp_path):
    write_fake_cifar10(tmp_path, train_per_batch=10, test_size=10)  # 5 per class
    with pytest.raises(DataError, match="val_size"):
        load_dataset("cifar10", root=tmp_path, val_size=50)


# ------------------------------------------------------------------ ImageFolder


def test_fake_imagenet_tree_loads(tmp_path):
    write_fake_imagefolder(tmp_path, train_per_class=6, val_per_class=2)
    d = load_dataset("imagenet", root=tmp_path, seed=0, val_size=6, image_size=16)
    assert (d.num_classes, d.in_channels, d.image_size) == (3, 3, 16)
    assert d.class_names == ("ant", "bee", "cat")
    assert (len(d.train), len(d.val), len(d.test)) == (12, 6, 6)
    assert counts(d.val.targets) == {0: 2, 1: 2, 2: 2}
    assert not set(d.train.indices) & set(d.val.indices)
    for split in (d.train, d.val, d.test):
        x, y = split[0]
        assert x.shape == (3, 16, 16) and x.dtype == torch.float32 and 0 <= y < 3
    assert counts(d.test.targets) == {0: 2, 1: 2, 2: 2}
    loader = make_loader(d.val, 4, shuffle=False, seed=0)
    assert isinstance(loader, DataLoader)
    xb, yb = next(iter(loader))
    assert xb.shape == (4, 3, 16, 16) and yb.tolist() == d.val.targets[:4]


def test_imagenet_errors(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset("imagenet", root=tmp_path / "missing")
    assert "\n" not in str(e.value) and str(tmp_path / "missing") in str(e.value)
    write_fake_imagefolder(tmp_path, train_per_class=3, val_per_class=1)
    import shutil

    shutil.rmtree(tmp_path / "val")
    with pytest.raises(DataError) as e:
        load_dataset("imagenet", root=tmp_path, val_size=3)
    assert "\n" not in str(e.value) and str(tmp_path / "val") in str(e.value)
    (tmp_path / "val").mkdir()  # empty: no class folders
    with pytest.raises(DataError) as e:
        load_dataset("imagenet", root=tmp_path, val_size=3)
    assert "\n" not in str(e.value) and str(tmp_path / "val") in str(e.value)
    (tmp_path / "val" / "ant").mkdir()
    (tmp_path / "val" / "ant" / "0.png").write_bytes((tmp_path / "train" / "ant" / "000.png").read_bytes())
    with pytest.raises(DataError, match="classes differ"):
        load_dataset("imagenet", root=tmp_path, val_size=3)


# ------------------------------------------------------------------ subsets and loaders


class NoPixels(Dataset):
    """Has targets; loading an item is an error (so label lookups must not load)."""

    def __init__(self, labels):
        self.targets = list(labels)

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        raise AssertionError("images must not be loaded to find labels")


def test_class_balanced_subset_counts_and_no_image_loading():
    ds = NoPixels([i % 7 for i in range(140)])
    sub = class_balanced_subset(ds, 5, seed=0)
    assert len(sub) == 35 and counts(dataset_labels(sub)) == {c: 5 for c in range(7)}
    assert class_balanced_subset(ds, 5, seed=0).indices == sub.indices
    assert class_balanced_subset(ds, 5, seed=1).indices != sub.indices
    nested = class_balanced_subset(Subset(ds, list(range(70))), 2, seed=0)
    assert counts(dataset_labels(nested)) == {c: 2 for c in range(7)}
    with pytest.raises(ValueError, match="class"):
        class_balanced_subset(ds, 21, seed=0)
    explicit = class_balanced_subset(TensorDataset(torch.zeros(6, 1)), 1, seed=0, labels=[0, 0, 1, 1, 2, 2])
    assert len(explicit) == 3


def test_class_balanced_subset_of_digits_tensor_dataset():
    d = load_dataset("digits", seed=0)
    sub = class_balanced_subset(d.train, 10, seed=0)
    assert counts(dataset_labels(sub)) == {c: 10 for c in range(10)}
    x, y = sub[0]
    assert x.shape == (1, 8, 8)


def test_tensor_loader_covers_epoch_and_is_seeded():
    x = torch.arange(10).float().unsqueeze(1)
    y = torch.arange(10)
    ds = TensorDataset(x, y)
    loader = make_loader(ds, 4, shuffle=True, seed=0)
    assert isinstance(loader, TensorBatchLoader) and len(loader) == 3
    e1 = [b[1].tolist() for b in loader]
    e2 = [b[1].tolist() for b in loader]
    assert sorted(sum(e1, [])) == list(range(10)) and e1 != e2  # new order every epoch
    assert [b[1].tolist() for b in make_loader(ds, 4, shuffle=True, seed=0)] == e1
    assert [b[1].tolist() for b in make_loader(ds, 4, shuffle=False, seed=0)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    sub = Subset(ds, [9, 7, 5, 3])
    batches = list(make_loader(sub, 3, shuffle=False, seed=0))
    assert [b[1].tolist() for b in batches] == [[9, 7, 5], [3]]
    assert len(make_loader(ds, 4, shuffle=False, seed=0, drop_last=True)) == 2


@pytest.mark.parametrize("size, batch_sizes", [(29, [14, 14]), (30, [14, 14, 2]), (28, [14, 14]), (1, [1])])
def test_training_loader_drops_only_a_last_batch_of_one_image(size, batch_sizes):
    tensors = TensorDataset(torch.arange(size).float().unsqueeze(1), torch.arange(size))
    other = TensorDataset(torch.zeros(0, 1), torch.zeros(0, dtype=torch.long))
    for dataset in (tensors, torch.utils.data.ConcatDataset([tensors, other])):  # in-memory and DataLoader paths
        batches = [len(b[1]) for b in make_train_loader(dataset, 14, seed=0)]
        assert batches == batch_sizes, type(dataset).__name__
        seen = [set(sum((b[1].tolist() for b in make_train_loader(dataset, 14, seed=0)), [])) for _ in range(2)]
        assert all(len(s) == sum(batch_sizes) for s in seen)  # shuffled: the image left out varies


@pytest.fixture()
def digits_cache(tmp_path, monkeypatch):
    """An empty digits cache of the test's own."""
    from evaluators.data import digits_arrays

    monkeypatch.setenv("NAS_CORE_CACHE", str(tmp_path))
    digits_arrays.cache_clear()
    yield tmp_path / "digits"
    digits_arrays.cache_clear()


def test_cached_digits_equal_scikit_learns(digits_cache):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from evaluators.data import DIGITS_TEST_SEED, digits_arrays

    fresh = load_dataset("digits", seed=2, val_size=300)
    (cached_file,) = digits_cache.glob("*.npz")
    with np.load(cached_file) as cached:
        raw = load_digits()
        assert np.array_equal(cached["images"], raw.images) and np.array_equal(cached["labels"], raw.target)
        rest, test = train_test_split(np.arange(1797), test_size=359, random_state=DIGITS_TEST_SEED,
                                      stratify=raw.target)
        train, val = train_test_split(rest, test_size=300, random_state=3, stratify=raw.target[rest])
        for name, want in (("train", train), ("val", val), ("test", test)):
            assert np.array_equal(cached[name], want), name
    digits_arrays.cache_clear()  # the next load reads the file
    again = load_dataset("digits", seed=2, val_size=300)
    for a, b in ((fresh.train, again.train), (fresh.val, again.val), (fresh.test, again.test)):
        assert all(torch.equal(x, y) for x, y in zip(a.tensors, b.tensors))


def test_cached_digits_load_without_scikit_learn_or_scipy(digits_cache):
    import os
    import subprocess
    import sys

    load_dataset("digits", seed=0)  # fills the cache
    script = ("import sys; from evaluators.data import load_dataset; d = load_dataset('digits', seed=0); "
              "print(len(d.train), 'sklearn' in sys.modules, 'scipy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "NAS_CORE_CACHE": str(digits_cache.parent)}, check=True).stdout
    assert out.split() == ["1079", "False", "False"]


def test_a_broken_or_unwritable_digits_cache_only_means_computing_again(digits_cache, monkeypatch, tmp_path):
    from evaluators.data import digits_arrays

    want = load_dataset("digits", seed=0).val.tensors[0]
    (cached_file,) = digits_cache.glob("*.npz")
    cached_file.write_bytes(b"not a zip file")
    digits_arrays.cache_clear()
    assert torch.equal(load_dataset("digits", seed=0).val.tensors[0], want)
    assert np.load(cached_file)["images"].shape == (1797, 8, 8)  # rewritten whole
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("NAS_CORE_CACHE", str(blocker))  # its digits folder cannot be created
    digits_arrays.cache_clear()
    assert torch.equal(load_dataset("digits", seed=0).val.tensors[0], want)


def test_digits_val_size_out_of_range_is_named(digits_cache):
    with pytest.raises(ValueError, match="got 1438"):
        load_dataset("digits", seed=0, val_size=1438)
    assert not digits_cache.exists()  # refused before any work
