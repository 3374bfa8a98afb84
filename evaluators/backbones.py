"""Backbones whose searchable layers each get their own output width.

The paper (Sec. 2, "Search Space") searches one expansion ratio per layer; a
candidate is a mapping ``{layer name: ratio}`` and the layer gets
``max(1, floor(base * width_scale * ratio + 0.5))`` output channels (round half
up; ``width_scale`` shrinks the whole family for small data, e.g. 0.125 for the
8x8 digits demo).

Backbones (``BACKBONES``)
-------------------------
``vgg_small``  (CIFAR-10, 32x32)
    conv1 128 (full precision) -> conv2 128 -> maxpool -> conv3 256 -> conv4 256
    -> maxpool -> conv5 512 -> conv6 512 -> maxpool -> adaptive-avg-pool 4x4 ->
    FC (full precision).  3x3 convs, padding 1, each followed by BatchNorm and
    ReLU (pooled layers: conv -> maxpool -> BN -> ReLU).  At 32x32 the pool is
    the identity and the FC sees the paper's 512*4*4 features; smaller inputs
    (>= 8x8) are average-pooled / replicated to 4x4 so the FC shape never
    depends on the image size.  Searchable: ``conv1`` ... ``conv6`` (6 dims;
    the full-precision first conv is widened too, which Table 1's FLOPs and
    memory confirm).
``resnet18``  (ImageNet, 224x224)
    7x7/2 full-precision stem + 3x3/2 maxpool, 4 stages of 2 BasicBlocks with
    binary 3x3 convs and binary 1x1 stride-2 downsample shortcuts (stages 2-4),
    global average pool, full-precision FC.
``resnet18_cifar``
    The same with a 3x3/1 stem and no maxpool.

ResNet width granularity (Fig. 2 of the paper: per-stage widths and per-block
"middle feature maps"): ``stage{s}.out`` is the output width of every block of
stage ``s`` and of its shortcut (for stage 1 it is also the stem's width,
because stage 1's shortcuts are identities -- a separate stem width would force
an extra projection conv, changing the architecture); ``stage{s}.block{b}.inner``
is the output width of the first conv of block ``b``.  12 dims in total.

Every network is an ordinary ``nn.Module``.  ``full_precision=True`` builds the
same graph with plain ``nn.Conv2d``/``nn.Linear`` everywhere.
"""

from __future__ import annotations

import math
import numbers
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from evaluators.binary import BinaryConv2d

__all__ = [
    "BACKBONES",
    "LayerSpec",
    "InputSetting",
    "PAPER_SETTINGS",
    "WeightLayer",
    "searchable_layers",
    "layer_channels",
    "build_network",
    "weight_layers",
    "slice_state_dict",
    "VGGSmall",
    "ResNet18",
    "BasicBlock",
]

BACKBONES: tuple[str, ...] = ("vgg_small", "resnet18", "resnet18_cifar")


@dataclass(frozen=True)
class LayerSpec:
    """One searchable layer: its name and its output width at ratio 1, scale 1."""

    name: str
    base_channels: int


@dataclass(frozen=True)
class InputSetting:
    """The input a backbone is designed for: square image side, classes, channels."""

    image_size: int
    num_classes: int
    in_channels: int


PAPER_SETTINGS: dict[str, InputSetting] = {
    "vgg_small": InputSetting(32, 10, 3),
    "resnet18": InputSetting(224, 1000, 3),
    "resnet18_cifar": InputSetting(32, 10, 3),
}

_VGG_BASE = (128, 128, 256, 256, 512, 512)
_VGG_POOL_AFTER = (False, True, False, True, False, True)
_VGG_FC_SPATIAL = (4, 4)
_RESNET_STAGE_BASE = (64, 128, 256, 512)
_RESNET_BLOCKS = 2


def _resnet_specs() -> tuple[LayerSpec, ...]:
    specs: list[LayerSpec] = []
    for s, base in enumerate(_RESNET_STAGE_BASE, start=1):
        specs.append(LayerSpec(f"stage{s}.out", base))
        for b in range(1, _RESNET_BLOCKS + 1):
            specs.append(LayerSpec(f"stage{s}.block{b}.inner", base))
    return tuple(specs)


_SPECS: dict[str, tuple[LayerSpec, ...]] = {
    "vgg_small": tuple(LayerSpec(f"conv{i}", c) for i, c in enumerate(_VGG_BASE, start=1)),
    "resnet18": _resnet_specs(),
    "resnet18_cifar": _resnet_specs(),
}


def _check_backbone(backbone: str) -> None:
    if backbone not in _SPECS:
        raise ValueError(f"unknown backbone {backbone!r}; expected one of {BACKBONES}")


def _check_positive(what: str, value: object) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        value_f = float(value)  # type: ignore[arg-type]
        if math.isfinite(value_f) and value_f > 0:
            return value_f
    raise ValueError(f"{what} must be a positive finite number, got {value!r}")


def _check_count(what: str, value: object) -> int:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) > 0:
        return int(value)
    raise ValueError(f"{what} must be a positive integer, got {value!r}")


def searchable_layers(backbone: str) -> list[LayerSpec]:
    """The searchable layers of ``backbone`` in network order (one ratio each)."""
    _check_backbone(backbone)
    return list(_SPECS[backbone])


def _check_ratios(backbone: str, ratios: Mapping[str, float]) -> dict[str, float]:
    _check_backbone(backbone)
    if not isinstance(ratios, Mapping):
        raise TypeError(f"ratios must be a mapping layer name -> ratio, got {type(ratios).__name__}")
    names = [s.name for s in _SPECS[backbone]]
    missing = [n for n in names if n not in ratios]
    extra = sorted(str(k) for k in ratios if k not in names)
    if extra:
        raise ValueError(
            f"unknown layer key(s) {', '.join(repr(k) for k in extra)} for backbone "
            f"{backbone!r}; expected {names}"
        )
    if missing:
        raise ValueError(
            f"missing ratio for layer(s) {', '.join(repr(k) for k in missing)} of backbone {backbone!r}"
        )
    return {n: _check_positive(f"ratio for layer {n!r}", ratios[n]) for n in names}


def _round_half_up(x: float) -> int:
    # 1e-9 guards against products such as 2.4999999999 caused by float noise.
    return int(math.floor(x + 0.5 + 1e-9))


def layer_channels(
    backbone: str, ratios: Mapping[str, float], width_scale: float = 1.0
) -> dict[str, int]:
    """Output channels of every searchable layer.

    ``channels = max(1, floor(base * width_scale * ratio + 0.5))`` -- round half
    up (Python's ``round`` would round 2.5 to 2), never below one channel.
    Missing, extra or unknown keys, an unknown backbone, or a non-positive
    ratio / width scale raise ``ValueError`` naming the offending key or value.
    """
    checked = _check_ratios(backbone, ratios)
    scale = _check_positive("width_scale", width_scale)
    return {
        s.name: max(1, _round_half_up(s.base_channels * scale * checked[s.name]))
        for s in _SPECS[backbone]
    }


# --------------------------------------------------------------------------- models


class VGGSmall(nn.Module):
    """VGG-small with per-layer widths ``channels`` (6 ints, conv1..conv6)."""

    def __init__(
        self,
        channels: list[int],
        *,
        full_precision: bool = False,
        num_classes: int = 10,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if len(channels) != 6:
            raise ValueError(f"VGGSmall needs 6 widths, got {len(channels)}")
        conv_cls = nn.Conv2d if full_precision else BinaryConv2d
        prev = in_channels
        for i, (c, pool) in enumerate(zip(channels, _VGG_POOL_AFTER), start=1):
            cls = nn.Conv2d if i == 1 else conv_cls  # first layer stays full precision
            setattr(self, f"conv{i}", cls(prev, c, 3, padding=1, bias=False))
            setattr(self, f"pool{i}", nn.MaxPool2d(2) if pool else nn.Identity())
            setattr(self, f"bn{i}", nn.BatchNorm2d(c))
            prev = c
        self.relu = nn.ReLU(inplace=True)
        # A binary conv quantises its input with round(clip(x, 0, 1)), which already zeroes
        # negatives: the ReLU before it changes nothing (its gradient differs only at exactly 0)
        # and costs a pass over the activations, so it is skipped there (bench B3).
        self._relu_after = [full_precision or i == 6 for i in range(1, 7)]
        self.avgpool = nn.AdaptiveAvgPool2d(_VGG_FC_SPATIAL)
        spatial = _VGG_FC_SPATIAL[0] * _VGG_FC_SPATIAL[1]
        self.classifier = nn.Linear(prev * spatial, num_classes)
        # state-dict key -> spatial positions per input channel of a flattened
        # C*H*W input (used by slice_state_dict to slice per channel).
        self.flattened_inputs: dict[str, int] = {"classifier.weight": spatial}

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        for i in range(1, 7):
            x = getattr(self, f"conv{i}")(x)
            x = getattr(self, f"pool{i}")(x)
            x = getattr(self, f"bn{i}")(x)
            if self._relu_after[i - 1]:
                x = self.relu(x)
        x = self.avgpool(x)
        return self.classifier(torch.flatten(x, 1))


class BasicBlock(nn.Module):
    """ResNet BasicBlock: conv3x3(stride) -> BN -> ReLU -> conv3x3 -> BN, + shortcut, ReLU."""

    def __init__(
        self, in_ch: int, inner: int, out_ch: int, stride: int, conv_cls: type[nn.Conv2d]
    ) -> None:
        super().__init__()
        self.conv1 = conv_cls(in_ch, inner, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(inner)
        self.conv2 = conv_cls(inner, out_ch, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                conv_cls(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """ResNet-18 with per-stage output widths and per-block inner widths."""

    def __init__(
        self,
        stage_out: list[int],
        inner: list[list[int]],
        *,
        imagenet_stem: bool,
        full_precision: bool = False,
        num_classes: int = 10,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        conv_cls = nn.Conv2d if full_precision else BinaryConv2d
        s1 = stage_out[0]
        if imagenet_stem:
            self.conv1 = nn.Conv2d(in_channels, s1, 7, stride=2, padding=3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(3, stride=2, padding=1)
        else:
            self.conv1 = nn.Conv2d(in_channels, s1, 3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(s1)
        self.relu = nn.ReLU(inplace=True)
        prev = s1
        for s, (out_c, inners) in enumerate(zip(stage_out, inner), start=1):
            blocks = OrderedDict()
            for b, mid in enumerate(inners, start=1):
                stride = 2 if (s > 1 and b == 1) else 1
                blocks[f"block{b}"] = BasicBlock(prev, mid, out_c, stride, conv_cls)
                prev = out_c
            setattr(self, f"stage{s}", nn.Sequential(blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(prev, num_classes)
        self.flattened_inputs: dict[str, int] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for s in range(1, 5):
            x = getattr(self, f"stage{s}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _resnet_widths(ch: Mapping[str, int]) -> tuple[list[int], list[list[int]]]:
    stage_out = [ch[f"stage{s}.out"] for s in range(1, 5)]
    inner = [[ch[f"stage{s}.block{b}.inner"] for b in range(1, _RESNET_BLOCKS + 1)] for s in range(1, 5)]
    return stage_out, inner


def build_network(
    backbone: str,
    ratios: Mapping[str, float],
    *,
    width_scale: float = 1.0,
    full_precision: bool = False,
    num_classes: int = 10,
    in_channels: int = 3,
) -> nn.Module:
    """Build ``backbone`` with the widths given by ``ratios`` (see ``layer_channels``).

    Binary by default (first conv and FC stay full precision, as in the paper);
    ``full_precision=True`` gives the same graph with plain layers everywhere.
    """
    ch = layer_channels(backbone, ratios, width_scale)
    num_classes = _check_count("num_classes", num_classes)
    in_channels = _check_count("in_channels", in_channels)
    if backbone == "vgg_small":
        return VGGSmall(
            [ch[s.name] for s in _SPECS[backbone]],
            full_precision=full_precision,
            num_classes=num_classes,
            in_channels=in_channels,
        )
    stage_out, inner = _resnet_widths(ch)
    return ResNet18(
        stage_out,
        inner,
        imagenet_stem=(backbone == "resnet18"),
        full_precision=full_precision,
        num_classes=num_classes,
        in_channels=in_channels,
    )


# ------------------------------------------------------------- analytic layer list


@dataclass(frozen=True)
class WeightLayer:
    """A conv/FC layer as the cost model sees it.

    ``fan_in`` is the multiply-accumulates per output value (k*k*C_in or the FC's
    input features); ``outputs`` = out_channels * out_positions values are
    produced; ``weights`` is the weight-tensor size.  ``name`` is the module's
    state-dict prefix in the built network.
    """

    name: str
    binary: bool
    in_channels: int
    out_channels: int
    kernel_size: int
    out_positions: int
    fan_in: int
    weights: int
    has_bias: bool

    @property
    def outputs(self) -> int:
        """Number of output values the layer produces for one image."""
        return self.out_channels * self.out_positions


def _conv_out(size: int, k: int, s: int, p: int, where: str) -> int:
    out = (size + 2 * p - k) // s + 1
    if out < 1:
        raise ValueError(f"input too small: feature map vanishes at {where}")
    return out


def _conv(name: str, binary: bool, cin: int, cout: int, k: int, hw: tuple[int, int]) -> WeightLayer:
    return WeightLayer(name, binary, cin, cout, k, hw[0] * hw[1], k * k * cin, k * k * cin * cout, False)


def weight_layers(
    backbone: str,
    ratios: Mapping[str, float],
    *,
    width_scale: float = 1.0,
    full_precision: bool = False,
    image_size: int | tuple[int, int] | None = None,
    num_classes: int | None = None,
    in_channels: int | None = None,
) -> list[WeightLayer]:
    """Every conv/FC layer of the network ``build_network`` would build, analytically.

    Mirrors the modules exactly (tests check it against forward hooks), so cost
    accounting needs no model.  ``None`` settings default to ``PAPER_SETTINGS``.
    """
    ch = layer_channels(backbone, ratios, width_scale)
    paper = PAPER_SETTINGS[backbone]
    size = paper.image_size if image_size is None else image_size
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if h < 1 or w < 1:
        raise ValueError(f"image_size must be positive, got {size!r}")
    ncls = paper.num_classes if num_classes is None else _check_count("num_classes", num_classes)
    cin = paper.in_channels if in_channels is None else _check_count("in_channels", in_channels)
    binary = not full_precision
    layers: list[WeightLayer] = []

    if backbone == "vgg_small":
        prev = cin
        for i, spec in enumerate(_SPECS[backbone], start=1):
            c = ch[spec.name]
            h, w = _conv_out(h, 3, 1, 1, spec.name), _conv_out(w, 3, 1, 1, spec.name)
            layers.append(_conv(f"conv{i}", binary and i > 1, prev, c, 3, (h, w)))
            if _VGG_POOL_AFTER[i - 1]:
                h, w = _conv_out(h, 2, 2, 0, f"pool{i}"), _conv_out(w, 2, 2, 0, f"pool{i}")
            prev = c
        feat = prev * _VGG_FC_SPATIAL[0] * _VGG_FC_SPATIAL[1]
        layers.append(WeightLayer("classifier", False, feat, ncls, 1, 1, feat, feat * ncls, True))
        return layers

    stage_out, inner = _resnet_widths(ch)
    if backbone == "resnet18":
        h, w = _conv_out(h, 7, 2, 3, "conv1"), _conv_out(w, 7, 2, 3, "conv1")
        layers.append(_conv("conv1", False, cin, stage_out[0], 7, (h, w)))
        h, w = _conv_out(h, 3, 2, 1, "maxpool"), _conv_out(w, 3, 2, 1, "maxpool")
    else:
        h, w = _conv_out(h, 3, 1, 1, "conv1"), _conv_out(w, 3, 1, 1, "conv1")
        layers.append(_conv("conv1", False, cin, stage_out[0], 3, (h, w)))
    prev = stage_out[0]
    for s in range(1, 5):
        out_c = stage_out[s - 1]
        for b, mid in enumerate(inner[s - 1], start=1):
            stride = 2 if (s > 1 and b == 1) else 1
            pre = f"stage{s}.block{b}"
            h2, w2 = _conv_out(h, 3, stride, 1, pre), _conv_out(w, 3, stride, 1, pre)
            layers.append(_conv(f"{pre}.conv1", binary, prev, mid, 3, (h2, w2)))
            layers.append(_conv(f"{pre}.conv2", binary, mid, out_c, 3, (h2, w2)))
            if stride != 1 or prev != out_c:
                layers.append(_conv(f"{pre}.downsample.0", binary, prev, out_c, 1, (h2, w2)))
            h, w, prev = h2, w2, out_c
    layers.append(WeightLayer("fc", False, prev, ncls, 1, 1, prev, prev * ncls, True))
    return layers


# ------------------------------------------------------------- weight inheritance


def slice_state_dict(wide_state: Mapping[str, torch.Tensor], narrow_model: nn.Module) -> dict[str, torch.Tensor]:
    """State dict for ``narrow_model`` made of the FIRST channels of ``wide_state``.

    The paper's "Initialization": every candidate starts from a trained
    uniformly-4x network by taking the leading slice along every dimension
    (conv weight ``[:out, :in]``, BN vectors ``[:c]``, FC weight ``[:, :in]``).
    A flattened C*H*W FC input (VGG-small) is sliced per channel -- the first
    ``c`` channels at every spatial position (the model's ``flattened_inputs``
    names such tensors; with PyTorch's channel-major flatten this equals the
    first c*H*W features, but it is done explicitly so it never depends on that).
    Raises ``ValueError`` if keys differ or a narrow dimension exceeds the wide one.
    """
    narrow_state = narrow_model.state_dict()
    missing = [k for k in narrow_state if k not in wide_state]
    extra = [k for k in wide_state if k not in narrow_state]
    if missing or extra:
        raise ValueError(
            "state dicts are not of the same backbone: "
            f"missing in wide {missing[:5]}, unexpected in wide {extra[:5]}"
        )
    flat: Mapping[str, int] = getattr(narrow_model, "flattened_inputs", {})
    out: dict[str, torch.Tensor] = {}
    for key, target in narrow_state.items():
        src = wide_state[key]
        if src.dim() != target.dim():
            raise ValueError(f"{key}: wide tensor has {src.dim()} dims, narrow has {target.dim()}")
        if src.dim() == 0:
            out[key] = src.detach().clone().to(target.dtype)
            continue
        if key in flat:
            s = flat[key]
            if src.shape[1] % s or target.shape[1] % s:
                raise ValueError(f"{key}: input features not a multiple of {s} spatial positions")
            src = src.reshape(src.shape[0], src.shape[1] // s, s)
            shape = (target.shape[0], target.shape[1] // s, s)
        else:
            shape = tuple(target.shape)
        for d, (n, m) in enumerate(zip(shape, src.shape)):
            if n > m:
                raise ValueError(f"{key}: narrow size {n} exceeds wide size {m} in dim {d}")
        sliced = src[tuple(slice(0, n) for n in shape)].reshape(target.shape)
        out[key] = sliced.detach().clone().to(target.dtype)
    return out
