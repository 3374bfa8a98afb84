"""Cost model: the default convention fits the paper's Table 1 (and Table 2 within 3 %); ``table2`` fits Table 2."""

from __future__ import annotations

import json

import pytest

from evaluators.backbones import BACKBONES, searchable_layers
from evaluators.cost import CONVENTIONS, Cost, network_cost, uniform_ratios
from nas_core.cli import main

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


def test_uniform_ratios_and_errors():
    assert uniform_ratios("vgg_small", 3) == {f"conv{i}": 3.0 for i in range(1, 7)}
    with pytest.raises(ValueError, match="conv9"):
        network_cost("vgg_small", dict(uniform_ratios("vgg_small", 1), conv9=1))
    with pytest.raises(ValueError, match="resnet50"):
        uniform_ratios("resnet50", 1)
    with pytest.raises(ValueError, match="too small"):
        network_cost("vgg_small", uniform_ratios("vgg_small", 1), image_size=4)


# --------------------------------------------------------------------------- Table 2's convention

TABLE2_BINARY_PRINTED = {1: 149, 2: 352, 3: 607, 4: 915}
"""Table 2's uniform binary rows as printed, in M."""


@pytest.mark.parametrize("ratio", list(TABLE2_BINARY_PRINTED))
def test_table2_convention_gives_the_printed_resnet18_rows(ratio):
    c = network_cost("resnet18", uniform_ratios("resnet18", ratio), convention="table2")
    assert round(c.flops / 1e6) == TABLE2_BINARY_PRINTED[ratio], c.flops


def test_table2_convention_keeps_the_full_precision_row():
    c = network_cost("resnet18", uniform_ratios("resnet18", 1), full_precision=True, convention="table2")
    assert round(c.flops / 1e7) * 10 == 1820  # printed with three significant digits
    assert c.elementwise_ops == 64 * 56 * 56 * 9  # only the stem's max-pool: no binary conv


def test_table2_convention_adds_one_op_per_binary_conv_output_and_nine_per_stem_pool_output():
    ratios = uniform_ratios("resnet18", 1)
    t1 = network_cost("resnet18", ratios)
    t2 = network_cost("resnet18", ratios, convention="table2")
    # binary convs at 224x224: stage 1 four 64x56x56; stages 2-4 four 3x3 plus one 1x1 shortcut each
    binary_outputs = 4 * 64 * 56 * 56 + 5 * 128 * 28 * 28 + 5 * 256 * 14 * 14 + 5 * 512 * 7 * 7
    stem_pool = 9 * 64 * 56 * 56
    assert t2.elementwise_ops == binary_outputs + stem_pool
    assert t2.flops == pytest.approx(t1.flops + binary_outputs + stem_pool)
    assert (t2.fp_macs, t2.binary_macs, t2.memory_bits, t2.params) == (t1.fp_macs, t1.binary_macs, t1.memory_bits,
                                                                         t1.params)


def test_default_convention_is_table1_and_counts_no_elementwise_work():
    assert set(CONVENTIONS) == {"table1", "table2"}
    for backbone in BACKBONES:
        ratios = uniform_ratios(backbone, 2)
        assert network_cost(backbone, ratios) == network_cost(backbone, ratios, convention="table1")
        assert network_cost(backbone, ratios).elementwise_ops == 0


def test_no_single_convention_reproduces_both_tables():
    def printed(flops: float) -> float:  # three significant digits, as both tables print them
        return float(f"{flops:.3g}")

    table1_rows = {r: flops for r, fp, flops, _ in TABLE1.values() if not fp}
    for convention in CONVENTIONS:
        fits1 = all(printed(network_cost("vgg_small", uniform_ratios("vgg_small", r), convention=convention).flops)
                    == flops for r, flops in table1_rows.items())
        fits2 = all(round(network_cost("resnet18", uniform_ratios("resnet18", r), convention=convention).flops / 1e6)
                    == m for r, m in TABLE2_BINARY_PRINTED.items())
        assert (fits1, fits2) == ((True, False) if convention == "table1" else (False, True)), convention


def test_unknown_convention_is_refused():
    with pytest.raises(ValueError, match="convention must be one of 'table1', 'table2'; got 'table3'"):
        network_cost("resnet18", uniform_ratios("resnet18", 1), convention="table3")


# --------------------------------------------------------------------------- the authors' codes

def test_resnet18_code_is_stage_widths_then_block_inner_widths(capsys):
    """A 12-ratio code as the authors publish it: the 4 stage widths, then the 8 inner widths in block order."""
    code = [0.5, 1, 2, 4, 3, 3, 4, 4, 2, 3, 0.25, 1]
    assert main(["cost", "resnet18", "--ratios", ",".join(map(str, code)), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    stages = {f"stage{s}.out": code[s - 1] for s in range(1, 5)}
    inner = {f"stage{s}.block{b}.inner": code[4 + 2 * (s - 1) + (b - 1)] for s in range(1, 5) for b in (1, 2)}
    assert out["ratios"] == {**stages, **inner}
    assert list(out["ratios"]) == [s.name for s in searchable_layers("resnet18")]
    assert out["flops"] == network_cost("resnet18", {**stages, **inner}).flops
    assert main(["cost", "resnet18", "--ratios", ",".join(map(str, code)), "--json", "--convention", "table2"]) == 0
    table2 = json.loads(capsys.readouterr().out)
    assert table2["convention"] == "table2"
    assert table2["flops"] == network_cost("resnet18", {**stages, **inner}, convention="table2").flops


def test_cost_command_refuses_a_bad_convention(capsys):
    assert main(["cost", "resnet18", "--convention", "paper"]) == 2
    assert "convention must be one of 'table1', 'table2'; got 'paper'" in capsys.readouterr().err


@pytest.mark.parametrize("convention", list(CONVENTIONS))
def test_the_evaluator_counts_flops_under_its_convention(convention):
    from evaluators.fitness import BinaryWidthEvaluator

    evaluator = BinaryWidthEvaluator(backbone="resnet18_cifar", dataset="digits", cost_convention=convention)
    ratios = uniform_ratios("resnet18_cifar", 2)
    expected = network_cost("resnet18_cifar", ratios, width_scale=0.125, image_size=8, num_classes=10, in_channels=1,
                            convention=convention)
    assert evaluator._cost(ratios) == expected
    with pytest.raises(ValueError, match="cost_convention must be one of 'table1', 'table2'; got 'paper'"):
        BinaryWidthEvaluator(cost_convention="paper")


def test_the_paper_report_computes_baselines_under_the_searched_convention():
    from evaluators.fitness import BinaryWidthEvaluator
    from evaluators.paper_report import setting_of

    description = BinaryWidthEvaluator(backbone="resnet18_cifar", dataset="digits", cost_convention="table2").describe()
    setting, why = setting_of(description)
    assert why is None and setting.cost_convention == "table2"
    ratios = uniform_ratios("resnet18_cifar", 1)
    assert setting.cost(ratios) == network_cost("resnet18_cifar", ratios, width_scale=0.125, image_size=8,
                                                num_classes=10, in_channels=1, convention="table2")
