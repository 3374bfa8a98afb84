"""Sandwich-rule supernet training: one widest VGG-small trained as all its first-channel slices."""

from __future__ import annotations

import pytest
import torch

from evaluators.backbones import build_network, layer_channels, slice_state_dict
from evaluators.fitness import BinaryWidthEvaluator
from evaluators.supernet import ChannelMask, sandwich_loss
from evaluators.training import accuracy, reestimate_batch_norm

WIDEST = {f"conv{i}": 4 for i in range(1, 7)}
NARROW = {"conv1": 0.5, "conv2": 1, "conv3": 2, "conv4": 0.25, "conv5": 3, "conv6": 0.25}


def test_masked_widest_network_computes_what_the_sliced_narrow_network_computes():
    torch.manual_seed(0)
    wide = build_network("vgg_small", WIDEST, width_scale=0.125, num_classes=10, in_channels=1)
    narrow = build_network("vgg_small", NARROW, width_scale=0.125, num_classes=10, in_channels=1)
    narrow.load_state_dict(slice_state_dict(wide.state_dict(), narrow))
    images = torch.randn(16, 1, 32, 32)
    mask = ChannelMask(wide, "vgg_small")
    mask.set(list(layer_channels("vgg_small", NARROW, 0.125).values()))
    wide.train(), narrow.train()  # batch statistics: the per-layer binary weight scale cancels
    assert torch.allclose(wide(images), narrow(images), atol=1e-4)
    mask.set(None)
    full = wide(images)
    mask.remove()
    assert torch.equal(full, wide(images))


def test_sandwich_loss_is_the_mean_over_widest_narrowest_and_sampled_networks():
    torch.manual_seed(0)
    wide = build_network("vgg_small", WIDEST, width_scale=0.125, num_classes=10, in_channels=1)
    wide.train()  # batch statistics, as in training: each sub-network's output depends on its widths only
    mask = ChannelMask(wide, "vgg_small")
    widths = lambda ratios: list(layer_channels("vgg_small", ratios, 0.125).values())  # noqa: E731
    widest, narrowest, sampled = widths(WIDEST), widths({f"conv{i}": 0.25 for i in range(1, 7)}), widths(NARROW)
    images, labels = torch.randn(8, 1, 32, 32), torch.randint(0, 10, (8,))

    def alone(channels):
        mask.set(channels)
        try:
            return torch.nn.functional.cross_entropy(wide(images), labels)
        finally:
            mask.set(None)

    each = {name: alone(c) for name, c in (("widest", widest), ("narrowest", narrowest), ("sampled", sampled))}
    assert len({round(float(v.detach()), 4) for v in each.values()}) == 3  # three different networks
    value = sandwich_loss(mask, widest, narrowest, lambda: sampled)(wide, images, labels)
    # the widest, the narrowest and two samples: a loss without the narrowest would differ
    expected = (each["widest"] + each["narrowest"] + 2 * each["sampled"]) / 4
    assert torch.allclose(value, expected, atol=1e-6)
    value.backward()
    assert torch.isfinite(value) and wide.conv1.weight.grad is not None


def test_reestimated_batch_norm_statistics_are_the_average_over_the_batches():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 1), torch.nn.BatchNorm2d(3))
    model[1].running_mean.fill_(50.0)
    model[1].running_var.fill_(0.01)
    model.eval()
    weight = model[0].weight.detach().clone()
    batches = [(torch.randn(4, 1, 2, 2) * 3 + 1, torch.zeros(4)) for _ in range(5)]
    assert reestimate_batch_norm(model, batches, torch.device("cpu"), batches=3) == 3
    with torch.no_grad():
        outputs = [model[0](images) for images, _ in batches[:3]]
    means = torch.stack([o.mean(dim=(0, 2, 3)) for o in outputs])
    variances = torch.stack([o.var(dim=(0, 2, 3), unbiased=True) for o in outputs])
    assert torch.allclose(model[1].running_mean, means.mean(0), atol=1e-5)
    assert torch.allclose(model[1].running_var, variances.mean(0), atol=1e-4)
    assert torch.equal(model[0].weight, weight) and not model.training and model[1].momentum == 0.1
    with pytest.raises(ValueError, match="batches must be a positive integer, got 0"):
        reestimate_batch_norm(model, batches, torch.device("cpu"), batches=0)


def test_bad_supernet_training_is_named():
    with pytest.raises(ValueError, match="supernet_training='slim'"):
        BinaryWidthEvaluator(supernet_training="slim")
    with pytest.raises(ValueError, match="backbone 'vgg_small' only, got 'resnet18_cifar'"):
        BinaryWidthEvaluator(backbone="resnet18_cifar", supernet_training="sandwich")
    with pytest.raises(ValueError, match="supernet_bn='keep' must be one of"):
        BinaryWidthEvaluator(supernet_bn="keep")


@pytest.mark.slow
def test_sandwich_supernet_is_cached_apart_and_initialises_candidates(tmp_path):
    paper = BinaryWidthEvaluator(epochs=1, supernet=True, supernet_epochs=1, cache_dir=str(tmp_path), threads=2)
    sandwich = BinaryWidthEvaluator(epochs=1, supernet=True, supernet_epochs=1, supernet_training="sandwich",
                                    cache_dir=str(tmp_path), threads=2)
    a, b = paper.supernet_state(), sandwich.supernet_state()
    assert len(list(tmp_path.glob("supernet-*.pt"))) == 2
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].dtype.is_floating_point)
    metrics = sandwich.evaluate({f"conv{i}": 0.25 for i in range(1, 7)})
    assert 0 <= metrics["accuracy"] <= 100


@pytest.mark.slow
def test_sliced_sandwich_networks_are_far_above_chance_before_any_training(tmp_path):
    """With re-estimated batch-norm statistics, the widest network and a network with a quarter of
    its channels, both cut from a sandwich-trained supernet, classify well before any training
    (inheriting the supernet's statistics, the narrow one scores 10.3 %, at chance)."""
    evaluator = BinaryWidthEvaluator(epochs=1, supernet=True, supernet_epochs=5, supernet_training="sandwich",
                                     cache_dir=str(tmp_path), threads=1)
    _, val = evaluator._loaders()
    cpu = torch.device("cpu")
    widest = accuracy(evaluator.initial_network(WIDEST), val, cpu)
    quarter = accuracy(evaluator.initial_network({f"conv{i}": 1 for i in range(1, 7)}), val, cpu)
    assert widest > 80 and quarter > 35, (widest, quarter)  # chance: 10 %; here about 96 and 51
