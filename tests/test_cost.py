"""Cost model reproduces the paper's Table 1 (VGG-small) and Table 2 (ResNet-18)."""

from __future__ import annotations

import time

import pytest

from evaluators.backbones import BACKBONES, searchable_layers
from evaluators.cost import Cost, network_cost, uniform_ratios

# row -> (ratio, full_precision, FLOPs, memory bits) from the paper
TABLE1 = {
    "Full-Precision": (1, True, 608e6, 149e6),
    "Uniform-1x": (1, False, 13.2e6, 7.3e6),
    "Uniform-2x": (2, False, 45.3e6, 23.7e6),
    "Uniform-3x": (3, False, 96.2e6, 49.3e6),
    "Uniform-4x": (4, False, 166e6, 84.1e6),
}
TABLE2 = {
    "Full-Precision": (1, True, 1820e6),
    "Uniform-1x": (1, False, 149e6),
    "Uniform-2x": (2, False, 352e6),
    "Uniform-3x": (3, False, 607e6),
    "Uniform-4x": (4, False, 915e6),
}


def rel(a: float, b: float) -> float:
    return abs(a - b) / b


@pytest.mark.parametrize("row", list(TABLE1))
def test_table1_vgg_small_cifar10_within_1_percent(row):
    r, fp, flops, mem = TABLE1[row]
    c = network_cost("vgg_small", uniform_ratios("vgg_small", r), full_precision=fp)
    assert rel(c.flops, flops) < 0.01, (row, c.flops)
    assert rel(c.memory_bits, mem) < 0.01, (row, c.memory_bits)


@pytest.mark.parametrize("row", list(TABLE2))
def test_table2_resnet18_imagenet_within_3_percent(row):
    r, fp, flops = TABLE2[row]
    c = network_cost("resnet18", uniform_ratios("resnet18", r), full_precision=fp)
    assert rel(c.flops, flops) < 0.03, (row, c.flops)


def test_full_precision_resnet18_matches_known_counts():
    c = network_cost("resnet18", uniform_ratios("resnet18", 1), full_precision=True)
    assert c.params == 11_689_512  # torchvision resnet18
    assert c.binary_macs == 0 and c.flops == c.fp_macs
    assert c.memory_bits == 32 * c.fp_weights


def test_binary_is_cheaper_and_split_is_consistent():
    for backbone in BACKBONES:
        ratios = uniform_ratios(backbone, 2)
        b = network_cost(backbone, ratios)
        f = network_cost(backbone, ratios, full_precision=True)
        assert b.flops < f.flops and b.memory_bits < f.memory_bits
        assert b.flops == pytest.approx(b.fp_macs + b.binary_macs / 64)
        assert b.memory_bits == 32 * b.fp_weights + b.binary_weights
        assert b.fp_weights + b.binary_weights == f.fp_weights
        assert b.fp_macs + b.binary_macs == f.fp_macs  # same network, different accounting
        assert b.params == f.params


def test_vgg_uniform1_breakdown_by_hand():
    c = network_cost("vgg_small", uniform_ratios("vgg_small", 1))
    # first conv: 128*32*32 outputs x (27 + 1), classifier: 10 x (8192 + 1)
    assert c.fp_macs == 128 * 32 * 32 * 28 + 10 * 8193
    assert c.fp_weights == 3 * 128 * 9 + 8192 * 10
    conv = [(128, 128, 32), (128, 256, 16), (256, 256, 16), (256, 512, 8), (512, 512, 8)]
    assert c.binary_weights == sum(i * o * 9 for i, o, _ in conv)
    assert c.binary_macs == sum(o * s * s * (i * 9 + 1) for i, o, s in conv)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_every_layer_ratio_increases_cost(backbone):
    base = uniform_ratios(backbone, 1)
    c0 = network_cost(backbone, base)
    for spec in searchable_layers(backbone):
        c1 = network_cost(backbone, dict(base, **{spec.name: 2}))
        assert c1.flops > c0.flops and c1.memory_bits > c0.memory_bits, spec.name


def test_defaults_are_paper_settings_and_overrides_work():
    r = uniform_ratios("resnet18", 1)
    assert network_cost("resnet18", r) == network_cost("resnet18", r, image_size=224, num_classes=1000, in_channels=3)
    v = uniform_ratios("vgg_small", 1)
    assert network_cost("vgg_small", v) == network_cost("vgg_small", v, image_size=(32, 32), num_classes=10)
    small = network_cost("vgg_small", v, width_scale=0.125, image_size=8, in_channels=1)
    assert isinstance(small, Cost) and small.flops < network_cost("vgg_small", v).flops / 64


def test_cost_is_fast():
    r = uniform_ratios("resnet18", 4)
    t = time.perf_counter()
    for _ in range(20):
        network_cost("resnet18", r)
    assert (time.perf_counter() - t) / 20 < 0.01


def test_uniform_ratios_and_errors():
    assert uniform_ratios("vgg_small", 3) == {f"conv{i}": 3.0 for i in range(1, 7)}
    with pytest.raises(ValueError, match="conv9"):
        network_cost("vgg_small", dict(uniform_ratios("vgg_small", 1), conv9=1))
    with pytest.raises(ValueError, match="resnet50"):
        uniform_ratios("resnet50", 1)
    with pytest.raises(ValueError, match="too small"):
        network_cost("vgg_small", uniform_ratios("vgg_small", 1), image_size=4)
