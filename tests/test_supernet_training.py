"""Sandwich-rule supernet training: one widest VGG-small trained as all its first-channel slices."""

from __future__ import annotations

import pytest
import torch

from evaluators.backbones import build_network, layer_channels, slice_state_dict
from evaluators.fitness import BinaryWidthEvaluator
from evaluators.supernet import ChannelMask, sandwich_loss

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


def test_sandwich_loss_trains_the_narrowest_network_too():
    torch.manual_seed(0)
    wide = build_network("vgg_small", WIDEST, width_scale=0.125, num_classes=10, in_channels=1)
    mask = ChannelMask(wide, "vgg_small")
    widths = lambda ratios: list(layer_channels("vgg_small", ratios, 0.125).values())  # noqa: E731
    narrowest = widths({f"conv{i}": 0.25 for i in range(1, 7)})
    loss = sandwich_loss(mask, widths(WIDEST), narrowest, lambda: widths(NARROW))
    value = loss(wide, torch.randn(8, 1, 32, 32), torch.randint(0, 10, (8,)))
    value.backward()
    assert torch.isfinite(value)
    # the narrowest network's last channel of conv6 is used (and so trained) by every sub-network
    assert wide.conv6.weight.grad[: narrowest[5]].abs().sum() > 0


def test_bad_supernet_training_is_named():
    with pytest.raises(ValueError, match="supernet_training='slim'"):
        BinaryWidthEvaluator(supernet_training="slim")
    with pytest.raises(ValueError, match="backbone 'vgg_small' only, got 'resnet18_cifar'"):
        BinaryWidthEvaluator(backbone="resnet18_cifar", supernet_training="sandwich")


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
