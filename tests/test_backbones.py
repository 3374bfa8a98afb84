"""Backbones: shapes, widths, rounding, analytic layer list, weight slicing, errors, learning."""

from __future__ import annotations

import random
import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from evaluators.backbones import (
    BACKBONES,
    LayerSpec,
    PoolLayer,
    WeightLayer,
    build_network,
    layer_channels,
    network_layers,
    searchable_layers,
    slice_state_dict,
)
from evaluators.binary import is_binary
from evaluators.cost import network_cost, uniform_ratios

CHOICES = (0.25, 0.5, 1.0, 2.0, 3.0, 4.0)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny nets gain nothing from intra-op threads, and on a busy 2-core box
    (parallel trials) oversubscribed OpenMP threads make them ~10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# (backbone, image size, in_channels) small enough for quick CPU tests.
SMALL_INPUT = {"vgg_small": (8, 1), "resnet18_cifar": (8, 1), "resnet18": (32, 3)}


def mixed(backbone: str, seed: int = 0) -> dict[str, float]:
    rng = random.Random(seed)
    return {s.name: rng.choice(CHOICES) for s in searchable_layers(backbone)}


def codes(backbone: str) -> list[dict[str, float]]:
    return [uniform_ratios(backbone, 0.25), uniform_ratios(backbone, 4), mixed(backbone, 0), mixed(backbone, 1)]


def test_searchable_layer_names():
    assert BACKBONES == ("vgg_small", "resnet18", "resnet18_cifar")
    assert searchable_layers("vgg_small") == [
        LayerSpec(f"conv{i}", c) for i, c in enumerate((128, 128, 256, 256, 512, 512), 1)
    ]
    # The authors' order: the 4 stage widths, then the 8 block-inner widths in block order.
    assert [s.name for s in searchable_layers("resnet18")] == [
        "stage1.out", "stage2.out", "stage3.out", "stage4.out",
        "stage1.block1.inner", "stage1.block2.inner", "stage2.block1.inner", "stage2.block2.inner",
        "stage3.block1.inner", "stage3.block2.inner", "stage4.block1.inner", "stage4.block2.inner",
    ]
    assert searchable_layers("resnet18") == searchable_layers("resnet18_cifar")
    assert [s.base_channels for s in searchable_layers("resnet18")] == [64, 128, 256, 512] + [
        64, 64, 128, 128, 256, 256, 512, 512]


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("code_idx", range(4))
def test_forward_backward_every_backbone_and_code(backbone, code_idx):
    torch.manual_seed(code_idx)
    size, cin = SMALL_INPUT[backbone]
    ratios = codes(backbone)[code_idx]
    net = build_network(backbone, ratios, width_scale=0.125, num_classes=7, in_channels=cin)
    x = torch.randn(2, cin, size, size)
    out = net(x)
    assert out.shape == (2, 7)
    F.cross_entropy(out, torch.tensor([0, 3])).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    ch = layer_channels(backbone, ratios, 0.125)
    if backbone == "vgg_small":
        for i in range(1, 7):
            assert getattr(net, f"conv{i}").out_channels == ch[f"conv{i}"]
    else:
        assert net.conv1.out_channels == ch["stage1.out"]
        for s in range(1, 5):
            for b in (1, 2):
                blk = getattr(net, f"stage{s}")[b - 1]
                assert blk.conv1.out_channels == ch[f"stage{s}.block{b}.inner"]
                assert blk.conv2.out_channels == ch[f"stage{s}.out"]


@pytest.mark.parametrize("backbone", ["vgg_small", "resnet18_cifar"])
def test_paper_input_size_and_fc_shape(backbone):
    net = build_network(backbone, uniform_ratios(backbone, 1), full_precision=True)
    assert net(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    if backbone == "vgg_small":
        assert net.classifier.in_features == 512 * 4 * 4  # the paper's 512x4x4 features


def test_resnet18_imagenet_shape_at_224():
    net = build_network("resnet18", uniform_ratios("resnet18", 0.25), width_scale=0.5, num_classes=1000)
    net.eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 224, 224)).shape == (1, 1000)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_binary_and_full_precision_layers(backbone):
    net = build_network(backbone, mixed(backbone), width_scale=0.125)
    layers = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    fp = [m for m in layers if not is_binary(m)]
    assert len(fp) == 2  # first conv and the classifier stay full precision
    assert fp[0] is layers[0] and isinstance(fp[1], nn.Linear)
    fp_net = build_network(backbone, mixed(backbone), width_scale=0.125, full_precision=True)
    assert not any(is_binary(m) for m in fp_net.modules())
    assert fp_net.state_dict().keys() == net.state_dict().keys()


def test_rounding_rule_half_up_and_minimum_one():
    ch = layer_channels("vgg_small", uniform_ratios("vgg_small", 0.25), 0.125)
    assert ch == {"conv1": 4, "conv2": 4, "conv3": 8, "conv4": 8, "conv5": 16, "conv6": 16}
    # 64 * 0.15625 * 0.25 = 2.5 -> 3 (Python's round would give 2)
    ch = layer_channels("resnet18", uniform_ratios("resnet18", 0.25), 0.15625)
    assert ch["stage1.out"] == 3 and ch["stage2.out"] == 5
    # 128 * 0.01 * 0.25 = 0.32 -> at least one channel
    assert set(layer_channels("vgg_small", uniform_ratios("vgg_small", 0.25), 0.01).values()) <= {1, 2}
    assert layer_channels("vgg_small", uniform_ratios("vgg_small", 0.25), 0.01)["conv1"] == 1
    assert layer_channels("vgg_small", uniform_ratios("vgg_small", 3))["conv6"] == 1536


@pytest.mark.parametrize("backbone", BACKBONES)
def test_analytic_layer_list_matches_model(backbone):
    """network_layers (what the cost model counts) equals what forward hooks see on the real module."""
    size, cin = SMALL_INPUT[backbone]
    ratios = mixed(backbone, 3)
    net = build_network(backbone, ratios, width_scale=0.125, num_classes=5, in_channels=cin)
    seen: dict[str, tuple] = {}

    def hook(name):
        def fn(mod, inp, out):
            pos = out.shape[2] * out.shape[3] if out.dim() == 4 else 1
            if isinstance(mod, nn.MaxPool2d):
                seen[name] = ("pool", out.shape[1], pos, mod.kernel_size)
            else:
                seen[name] = ("weights", out.shape[1], pos, mod.weight[0].numel(), is_binary(mod))
        return fn

    order = []
    for name, m in net.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.MaxPool2d)):
            m.register_forward_hook(hook(name))
            m.register_forward_pre_hook(lambda mod, inp, name=name: order.append(name))
    net.eval()
    with torch.no_grad():
        net(torch.randn(1, cin, size, size))
    plan = network_layers(backbone, ratios, width_scale=0.125, image_size=size, num_classes=5, in_channels=cin)
    expected = {}
    for p in plan:
        if isinstance(p, WeightLayer):
            expected[p.name] = ("weights", p.out_channels, p.out_positions, p.fan_in, p.binary)
        else:
            assert isinstance(p, PoolLayer)
            expected[p.name] = ("pool", p.channels, p.out_positions, p.kernel_size)
    assert expected == seen
    # in network order (a downsample shortcut runs before its block's convs, the plan lists it after)
    assert [p.name for p in plan if "downsample" not in p.name] == [n for n in order if "downsample" not in n]
    cost = network_cost(backbone, ratios, width_scale=0.125, image_size=size, num_classes=5, in_channels=cin)
    assert cost.params == sum(p.numel() for p in net.parameters())
    pools = [p for p in plan if isinstance(p, PoolLayer)]
    assert [p.name for p in pools] == {"vgg_small": ["pool2", "pool4", "pool6"], "resnet18": ["maxpool"],
                                       "resnet18_cifar": []}[backbone]


def test_a_backbone_of_a_known_family_is_one_registration():
    from nas_core.registry import SPACES
    from spaces.layouts import InputSetting, ResidualLayout, backbone_names, register_backbone, unregister_backbone

    register_backbone(ResidualLayout(name="resnet10_test", paper=InputSetting(32, 10, 3),
                                     stage_widths=(16, 32, 64), blocks=(1, 2, 1), stem="cifar"))
    try:
        space = SPACES.build("binary_width", {"backbone": "resnet10_test"})
        assert space.names == ("stage1.out", "stage2.out", "stage3.out", "stage1.block1.inner",
                               "stage2.block1.inner", "stage2.block2.inner", "stage3.block1.inner")
        ratios = {name: 2.0 for name in space.names}
        net = build_network("resnet10_test", ratios, num_classes=4)
        assert net(torch.randn(2, 3, 16, 16)).shape == (2, 4)
        assert net.stage2[1].conv1.out_channels == 64 and net.fc.in_features == 128
        cost = network_cost("resnet10_test", ratios, num_classes=4)
        assert cost.params == sum(p.numel() for p in net.parameters())
        assert "resnet10_test" in backbone_names()
    finally:
        unregister_backbone("resnet10_test")
    with pytest.raises(ValueError, match="resnet10_test"):
        build_network("resnet10_test", ratios)


def test_registering_a_bad_or_duplicate_backbone_names_the_problem():
    from spaces.layouts import InputSetting, PlainLayout, ResidualLayout, register_backbone

    with pytest.raises(ValueError, match="already registered"):
        register_backbone(PlainLayout(name="vgg_small", paper=InputSetting(32, 10, 3), widths=(8,), pool_after=(True,)))
    with pytest.raises(ValueError, match="pool_after has 1 entries for 2 convs"):
        PlainLayout(name="x", paper=InputSetting(32, 10, 3), widths=(8, 8), pool_after=(True,))
    with pytest.raises(ValueError, match="stem must be one of"):
        ResidualLayout(name="x", paper=InputSetting(32, 10, 3), stage_widths=(8,), blocks=(1,), stem="deep")
    with pytest.raises(ValueError, match="base width of layer 'conv1'"):
        register_backbone(PlainLayout(name="x", paper=InputSetting(32, 10, 3), widths=(0,), pool_after=(True,)))
    with pytest.raises(TypeError, match="BackboneLayout"):
        register_backbone("resnet50")


@pytest.mark.parametrize("backbone", BACKBONES)
def test_slice_state_dict_takes_first_channels(backbone):
    torch.manual_seed(0)
    size, cin = SMALL_INPUT[backbone]
    wide = build_network(backbone, uniform_ratios(backbone, 4), width_scale=0.125, in_channels=cin)
    # make BN running stats non-trivial
    wide.train()
    wide(torch.randn(4, cin, size, size))
    narrow = build_network(backbone, mixed(backbone, 5), width_scale=0.125, in_channels=cin)
    ws = wide.state_dict()
    sliced = slice_state_dict(ws, narrow)
    narrow.load_state_dict(sliced)  # strict
    for key, t in narrow.state_dict().items():
        src = ws[key]
        if t.dim() == 0:
            assert torch.equal(t, src)
        elif key in getattr(narrow, "flattened_inputs", {}):
            s = narrow.flattened_inputs[key]
            exp = src.view(src.shape[0], -1, s)[: t.shape[0], : t.shape[1] // s, :].reshape(t.shape)
            assert torch.equal(t, exp)
        else:
            assert torch.equal(t, src[tuple(slice(0, n) for n in t.shape)]), key
    # same widths -> same function
    same = build_network(backbone, uniform_ratios(backbone, 4), width_scale=0.125, in_channels=cin)
    same.load_state_dict(slice_state_dict(ws, same))
    wide.eval(), same.eval()
    x = torch.randn(2, cin, size, size)
    with torch.no_grad():
        assert torch.equal(wide(x), same(x))


def test_slice_vgg_fc_is_per_channel_not_first_flat_features():
    wide = build_network("vgg_small", uniform_ratios("vgg_small", 1), width_scale=0.125)  # conv6: 64 ch
    narrow = build_network("vgg_small", uniform_ratios("vgg_small", 0.5), width_scale=0.125)  # 32 ch
    w = torch.arange(10 * 64 * 16, dtype=torch.float32).view(10, 64 * 16)
    ws = dict(wide.state_dict(), **{"classifier.weight": w})
    got = slice_state_dict(ws, narrow)["classifier.weight"]
    assert got.shape == (10, 32 * 16)
    # channel c at spatial position p of the narrow net == same (c, p) of the wide one
    assert torch.equal(got.view(10, 32, 16), w.view(10, 64, 16)[:, :32, :])


def test_slice_state_dict_errors():
    small = build_network("vgg_small", uniform_ratios("vgg_small", 1), width_scale=0.125)
    big = build_network("vgg_small", uniform_ratios("vgg_small", 2), width_scale=0.125)
    with pytest.raises(ValueError, match="exceeds"):
        slice_state_dict(small.state_dict(), big)
    res = build_network("resnet18_cifar", uniform_ratios("resnet18_cifar", 1), width_scale=0.125)
    with pytest.raises(ValueError, match="same backbone"):
        slice_state_dict(res.state_dict(), small)


def test_bad_ratios_and_arguments_raise_value_error_naming_them():
    good = uniform_ratios("vgg_small", 1)
    with pytest.raises(ValueError, match="conv3"):
        layer_channels("vgg_small", {k: v for k, v in good.items() if k != "conv3"})
    with pytest.raises(ValueError, match="conv7"):
        layer_channels("vgg_small", dict(good, conv7=1.0))
    with pytest.raises(ValueError, match="'conv2'.*-1"):
        layer_channels("vgg_small", dict(good, conv2=-1))
    with pytest.raises(ValueError, match="'conv2'"):
        layer_channels("vgg_small", dict(good, conv2=0.0))
    with pytest.raises(ValueError, match="'conv4'.*nan"):
        layer_channels("vgg_small", dict(good, conv4=float("nan")))
    with pytest.raises(ValueError, match="width_scale.*0"):
        layer_channels("vgg_small", good, 0)
    with pytest.raises(ValueError, match="vgg_big"):
        searchable_layers("vgg_big")
    with pytest.raises(ValueError, match="vgg_big"):
        build_network("vgg_big", good)
    with pytest.raises(ValueError, match="stage2.out"):
        build_network("resnet18", {k: v for k, v in uniform_ratios("resnet18", 1).items() if k != "stage2.out"})
    with pytest.raises(ValueError, match="width_scale"):
        build_network("vgg_small", good, width_scale=-0.5)
    with pytest.raises(ValueError, match="num_classes"):
        build_network("vgg_small", good, num_classes=0)


def test_modules_are_plain_and_reloadable():
    net = build_network("resnet18_cifar", mixed("resnet18_cifar"), width_scale=0.125)
    again = build_network("resnet18_cifar", mixed("resnet18_cifar"), width_scale=0.125)
    again.load_state_dict(net.state_dict())
    assert any(k.startswith("stage2.block1.downsample.0") for k in net.state_dict())


@pytest.mark.slow
def test_binary_vgg_small_learns_digits():
    """Recipe: Adam lr 1e-3, batch 64, cosine decay, 5 epochs -> ~94% val acc (chance 10%)."""
    from evaluators.data import load_dataset, make_loader

    torch.manual_seed(0)
    data = load_dataset("digits", seed=0)
    net = build_network("vgg_small", uniform_ratios("vgg_small", 4), width_scale=0.125,
                        num_classes=10, in_channels=1)
    train = make_loader(data.train, 64, shuffle=True, seed=0)
    epochs = 5
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * len(train))
    t0 = time.perf_counter()
    for _ in range(epochs):
        net.train()
        for x, y in train:
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            opt.step()
            sched.step()
    net.eval()
    correct = 0
    with torch.no_grad():
        for x, y in make_loader(data.val, 256, shuffle=False, seed=0):
            correct += (net(x).argmax(1) == y).sum().item()
    acc = correct / len(data.val)
    print(f"binary VGG-small x4 @ width 1/8 on digits: val acc {acc:.3f} in {time.perf_counter() - t0:.1f}s")
    assert acc > 0.6


def test_binary_vgg_skips_the_relu_its_quantiser_makes_redundant():
    import torch

    torch.manual_seed(0)
    net = build_network("vgg_small", uniform_ratios("vgg_small", 1), width_scale=0.125, in_channels=1)
    net.eval()
    x = torch.randn(4, 1, 8, 8)
    relu = torch.nn.ReLU()
    reference = x
    for i in range(1, 7):  # the same network with a ReLU after every layer
        reference = relu(getattr(net, f"bn{i}")(getattr(net, f"pool{i}")(getattr(net, f"conv{i}")(reference))))
    reference = net.classifier(torch.flatten(net.avgpool(reference), 1))
    assert torch.allclose(net(x), reference)
