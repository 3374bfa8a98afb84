"""Retraining over seeds: one fixed test split, the seed varying only initialisation and batch order."""

import collections

import torch

from evaluators import retrain as retrain_module
from evaluators.data import load_dataset

SMALL = {f"conv{i}": 0.25 for i in range(1, 7)}


def raw_images(splits):
    """Every split's images as raw 0..16 pixel rows with their label (undoing the seed's normalisation)."""
    parts = [splits.train, splits.val, splits.test]
    z = torch.cat([p.tensors[0].reshape(len(p), -1) for p in parts])
    lo, hi = z.min(), z.max()
    out = []
    for part in parts:
        pixels = torch.round((part.tensors[0].reshape(len(part), -1) - lo) / (hi - lo) * 16).long()
        out.append(collections.Counter(map(tuple, torch.cat([pixels, part.tensors[1][:, None]], 1).tolist())))
    return out


def test_digits_test_split_is_the_same_for_every_seed_and_apart_from_any_seeds_search_data():
    train0, val0, test0 = raw_images(load_dataset("digits", seed=0))
    for seed in (1, 2, 7):
        train, val, test = raw_images(load_dataset("digits", seed=seed))
        assert test == test0
        assert train + val == train0 + val0  # the search's images: the same set, split otherwise
        assert val != val0
        assert not set(test) & set(train + val) - set(test0 & (train0 + val0))  # no image crosses over


def test_retrain_seed_changes_initialisation_not_data(tmp_path):
    config = retrain_module.TrainConfig(epochs=1, batch_size=64, optimizer="adam", lr=2e-3, schedule="cosine")
    runs = [retrain_module.retrain(SMALL, backbone="vgg_small", dataset="digits", output_dir=tmp_path / str(seed),
                                   config=config, seed=seed, progress=False).metrics for seed in (0, 1)]
    assert [m["split_seed"] for m in runs] == [0, 0]
    assert [m["seed"] for m in runs] == [0, 1]
    assert runs[0]["history"][0]["loss"] != runs[1]["history"][0]["loss"]
    again = retrain_module.retrain(SMALL, backbone="vgg_small", dataset="digits", output_dir=tmp_path / "again",
                                   config=config, seed=1, progress=False).metrics
    assert again["history"] == runs[1]["history"] and again["test_accuracy"] == runs[1]["test_accuracy"]


def test_retrain_trains_on_train_and_val_with_the_training_augmentation(tmp_path, monkeypatch):
    from evaluators import data

    try:
        from tests.fakedata import write_fake_cifar10
    except ImportError:  # tests/ itself on sys.path
        from fakedata import write_fake_cifar10

    write_fake_cifar10(tmp_path / "cifar", train_per_batch=1010, test_size=20)  # retraining holds out 5000
    seen = []

    class Stop(Exception):
        pass

    def capture(dataset, batch_size, *, seed, num_workers=0):
        seen.append(dataset)
        raise Stop

    monkeypatch.setattr(data, "make_train_loader", capture)
    try:
        retrain_module.retrain(SMALL, backbone="vgg_small", dataset="cifar10", data_dir=str(tmp_path / "cifar"),
                               output_dir=tmp_path / "out", progress=False, overrides={"epochs": 1})
    except Stop:
        pass
    splits = load_dataset("cifar10", root=tmp_path / "cifar", seed=0)
    (dataset,) = seen
    assert len(dataset) == len(splits.train) + len(splits.val)
    assert [type(t).__name__ for t in dataset.datasets[1].transform.transforms[:2]] == ["RandomCrop", "RandomHorizontalFlip"]
