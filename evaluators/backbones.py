"""Backbones as torch modules, built from their torch-free layouts (:mod:`spaces.layouts`).

A candidate is a mapping ``{layer name: ratio}`` over a backbone's searchable layers; the layer gets
``max(1, floor(base * width_scale * ratio + 0.5))`` output channels
(:func:`spaces.layouts.layer_channels`; ``width_scale`` shrinks the whole family for small data,
e.g. 0.125 for the 8x8 digits demo). Binary by default (paper Sec. 2): every conv but the first is
a :class:`~evaluators.binary.BinaryConv2d`, the first conv and the FC stay full precision;
``full_precision=True`` builds the same graph with plain ``nn.Conv2d``/``nn.Linear`` everywhere.

Each layout family has one registered :class:`BackboneFamily` (``register_family``): a function
building its ``nn.Module`` and one listing its layers analytically (:func:`network_layers`, what the
cost model counts; a test checks it against forward hooks on the built module).

``PlainLayout`` (``vgg_small``)
    convs 3x3, padding 1, each followed by BatchNorm and ReLU (pooled layers: conv -> maxpool ->
    BN -> ReLU), then adaptive-avg-pool to ``fc_spatial`` and the FC. At 32x32 the pool is the
    identity and the FC sees the paper's 512*4*4 features; smaller inputs (>= 8x8) are
    average-pooled / replicated to 4x4 so the FC shape never depends on the image size.
``ResidualLayout`` (``resnet18``, ``resnet18_cifar``)
    stem conv + BN + ReLU (+ 3x3/2 max-pool for the ImageNet stem), stages of BasicBlocks with
    binary 3x3 convs and binary 1x1 strided downsample shortcuts, global average pool, FC.

A new backbone of one of these families needs only ``spaces.layouts.register_backbone``; a new
family needs its layout class there and one ``register_family`` call here.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nas_core.arguments import check_int
from spaces.layouts import (
    BackboneLayout,
    InputSetting,
    LayerSpec,
    PlainLayout,
    ResidualLayout,
    backbone_names,
    get_backbone,
    layer_channels,
    searchable_layers,
)

from evaluators.binary import BinaryConv2d

__all__ = [
    "BackboneFamily",
    "register_family",
    "LayerSpec",
    "InputSetting",
    "WeightLayer",
    "PoolLayer",
    "backbone_names",
    "searchable_layers",
    "layer_channels",
    "build_network",
    "network_layers",
    "weight_layers",
    "slice_state_dict",
    "VGGSmall",
    "ResNet18",
    "BasicBlock",
]


def __getattr__(name: str) -> Any:
    # Names kept for callers written before the registries; each access reads the registry now.
    if name == "BACKBONES":
        return backbone_names()
    if name == "PAPER_SETTINGS":
        return {n: get_backbone(n).paper for n in backbone_names()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------- models


class VGGSmall(nn.Module):
    """A plain chain of 3x3 convs with per-layer widths ``channels`` (VGG-small: 6, conv1..conv6)."""

    def __init__(
        self,
        channels: Sequence[int],
        *,
        pool_after: Sequence[bool] = (False, True, False, True, False, True),
        fc_spatial: tuple[int, int] = (4, 4),
        full_precision: bool = False,
        num_classes: int = 10,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if len(channels) != len(pool_after):
            raise ValueError(f"VGGSmall needs {len(pool_after)} widths, got {len(channels)}")
        self.depth = len(channels)
        conv_cls = nn.Conv2d if full_precision else BinaryConv2d
        prev = in_channels
        for i, (c, pool) in enumerate(zip(channels, pool_after), start=1):
            cls = nn.Conv2d if i == 1 else conv_cls  # first layer stays full precision
            setattr(self, f"conv{i}", cls(prev, c, 3, padding=1, bias=False))
            setattr(self, f"pool{i}", nn.MaxPool2d(2) if pool else nn.Identity())
            setattr(self, f"bn{i}", nn.BatchNorm2d(c))
            prev = c
        self.relu = nn.ReLU(inplace=True)
        # A binary conv quantises its input with round(clip(x, 0, 1)), which already zeroes
        # negatives: the ReLU before it changes nothing (its gradient differs only at exactly 0)
        # and costs a pass over the activations, so it is skipped there (bench B3).
        self._relu_after = [full_precision or i == self.depth for i in range(1, self.depth + 1)]
        self.avgpool = nn.AdaptiveAvgPool2d(fc_spatial)
        spatial = fc_spatial[0] * fc_spatial[1]
        self.classifier = nn.Linear(prev * spatial, num_classes)
        # state-dict key -> spatial positions per input channel of a flattened
        # C*H*W input (used by slice_state_dict to slice per channel).
        self.flattened_inputs: dict[str, int] = {"classifier.weight": spatial}

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        for i in range(1, self.depth + 1):
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
    """ResNet-18 (or any BasicBlock ResNet) with per-stage output widths and per-block inner widths."""

    def __init__(
        self,
        stage_out: Sequence[int],
        inner: Sequence[Sequence[int]],
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
        self.stages = len(stage_out)
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
        for s in range(1, self.stages + 1):
            x = getattr(self, f"stage{s}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


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


@dataclass(frozen=True)
class PoolLayer:
    """A max-pool: ``kernel_size``² comparisons per output value (counted by some conventions only)."""

    name: str
    channels: int
    kernel_size: int
    out_positions: int

    @property
    def outputs(self) -> int:
        """Number of output values the pool produces for one image."""
        return self.channels * self.out_positions


Layer = WeightLayer | PoolLayer


def _conv_out(size: int, k: int, s: int, p: int, where: str) -> int:
    out = (size + 2 * p - k) // s + 1
    if out < 1:
        raise ValueError(f"input too small: feature map vanishes at {where}")
    return out


def _conv(name: str, binary: bool, cin: int, cout: int, k: int, hw: tuple[int, int]) -> WeightLayer:
    return WeightLayer(name, binary, cin, cout, k, hw[0] * hw[1], k * k * cin, k * k * cin * cout, False)


def _plain_layers(layout: PlainLayout, ch: Mapping[str, int], *, binary: bool, size: tuple[int, int],
                  num_classes: int, in_channels: int) -> list[Layer]:
    h, w = size
    layers: list[Layer] = []
    prev = in_channels
    for i, (spec, pool) in enumerate(zip(layout.layers, layout.pool_after), start=1):
        c = ch[spec.name]
        h, w = _conv_out(h, 3, 1, 1, spec.name), _conv_out(w, 3, 1, 1, spec.name)
        layers.append(_conv(f"conv{i}", binary and i > 1, prev, c, 3, (h, w)))
        if pool:
            h, w = _conv_out(h, 2, 2, 0, f"pool{i}"), _conv_out(w, 2, 2, 0, f"pool{i}")
            layers.append(PoolLayer(f"pool{i}", c, 2, h * w))
        prev = c
    feat = prev * layout.fc_spatial[0] * layout.fc_spatial[1]
    layers.append(WeightLayer("classifier", False, feat, num_classes, 1, 1, feat, feat * num_classes, True))
    return layers


def _residual_widths(layout: ResidualLayout, ch: Mapping[str, int]) -> tuple[list[int], list[list[int]]]:
    return [ch[n] for n in layout.stage_names()], [[ch[n] for n in names] for names in layout.inner_names()]


def _residual_layers(layout: ResidualLayout, ch: Mapping[str, int], *, binary: bool, size: tuple[int, int],
                     num_classes: int, in_channels: int) -> list[Layer]:
    h, w = size
    stage_out, inner = _residual_widths(layout, ch)
    layers: list[Layer] = []
    if layout.stem == "imagenet":
        h, w = _conv_out(h, 7, 2, 3, "conv1"), _conv_out(w, 7, 2, 3, "conv1")
        layers.append(_conv("conv1", False, in_channels, stage_out[0], 7, (h, w)))
        h, w = _conv_out(h, 3, 2, 1, "maxpool"), _conv_out(w, 3, 2, 1, "maxpool")
        layers.append(PoolLayer("maxpool", stage_out[0], 3, h * w))
    else:
        h, w = _conv_out(h, 3, 1, 1, "conv1"), _conv_out(w, 3, 1, 1, "conv1")
        layers.append(_conv("conv1", False, in_channels, stage_out[0], 3, (h, w)))
    prev = stage_out[0]
    for s, (out_c, mids) in enumerate(zip(stage_out, inner), start=1):
        for b, mid in enumerate(mids, start=1):
            stride = 2 if (s > 1 and b == 1) else 1
            pre = f"stage{s}.block{b}"
            h2, w2 = _conv_out(h, 3, stride, 1, pre), _conv_out(w, 3, stride, 1, pre)
            layers.append(_conv(f"{pre}.conv1", binary, prev, mid, 3, (h2, w2)))
            layers.append(_conv(f"{pre}.conv2", binary, mid, out_c, 3, (h2, w2)))
            if stride != 1 or prev != out_c:
                layers.append(_conv(f"{pre}.downsample.0", binary, prev, out_c, 1, (h2, w2)))
            h, w, prev = h2, w2, out_c
    layers.append(WeightLayer("fc", False, prev, num_classes, 1, 1, prev, prev * num_classes, True))
    return layers


# ------------------------------------------------------------- the family registry


@dataclass(frozen=True)
class BackboneFamily:
    """How the evaluators build and count every backbone of one layout class.

    ``build(layout, channels, *, full_precision, num_classes, in_channels)`` returns the module;
    ``layers(layout, channels, *, binary, size, num_classes, in_channels)`` lists its conv/FC layers
    and max-pools in network order, exactly as the module has them. ``channels`` maps every
    searchable layer to its width.
    """

    build: Callable[..., nn.Module]
    layers: Callable[..., list[Layer]]


_FAMILIES: dict[type[BackboneLayout], BackboneFamily] = {}


def register_family(layout_type: type[BackboneLayout], *, build: Callable[..., nn.Module],
                    layers: Callable[..., list[Layer]]) -> None:
    """Teach the evaluators to build and count the backbones described by ``layout_type``."""
    if not (isinstance(layout_type, type) and issubclass(layout_type, BackboneLayout)):
        raise TypeError(f"register_family needs a BackboneLayout subclass, got {layout_type!r}")
    if layout_type in _FAMILIES:
        raise ValueError(f"a family for {layout_type.__name__} is already registered")
    _FAMILIES[layout_type] = BackboneFamily(build, layers)


def _family(layout: BackboneLayout) -> BackboneFamily:
    for cls in type(layout).__mro__:
        if cls in _FAMILIES:
            return _FAMILIES[cls]
    raise ValueError(f"backbone {layout.name!r}: no family registered for {type(layout).__name__} "
                     "(evaluators.backbones.register_family)")


def _build_plain(layout: PlainLayout, ch: Mapping[str, int], **cfg: Any) -> nn.Module:
    return VGGSmall([ch[s.name] for s in layout.layers], pool_after=layout.pool_after,
                    fc_spatial=layout.fc_spatial, **cfg)


def _build_residual(layout: ResidualLayout, ch: Mapping[str, int], **cfg: Any) -> nn.Module:
    stage_out, inner = _residual_widths(layout, ch)
    return ResNet18(stage_out, inner, imagenet_stem=layout.stem == "imagenet", **cfg)


register_family(PlainLayout, build=_build_plain, layers=_plain_layers)
register_family(ResidualLayout, build=_build_residual, layers=_residual_layers)


def build_network(
    backbone: str,
    ratios: Mapping[str, float],
    *,
    width_scale: float = 1.0,
    full_precision: bool = False,
    num_classes: int = 10,
    in_channels: int = 3,
) -> nn.Module:
    """Build the registered ``backbone`` with the widths given by ``ratios`` (see ``layer_channels``).

    Binary by default (first conv and FC stay full precision, as in the paper);
    ``full_precision=True`` gives the same graph with plain layers everywhere.
    """
    ch = layer_channels(backbone, ratios, width_scale)
    num_classes = check_int("num_classes", num_classes, minimum=1)
    in_channels = check_int("in_channels", in_channels, minimum=1)
    layout = get_backbone(backbone)
    return _family(layout).build(layout, ch, full_precision=full_precision, num_classes=num_classes,
                                 in_channels=in_channels)


def _image_size(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        side = check_int("image_size", value, minimum=1)
        return side, side
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        return check_int("image_size[0]", value[0], minimum=1), check_int("image_size[1]", value[1], minimum=1)
    raise ValueError(f"image_size must be a positive integer or (height, width), got {value!r}")


def network_layers(
    backbone: str,
    ratios: Mapping[str, float],
    *,
    width_scale: float = 1.0,
    full_precision: bool = False,
    image_size: int | tuple[int, int] | None = None,
    num_classes: int | None = None,
    in_channels: int | None = None,
) -> list[Layer]:
    """Every conv/FC layer and max-pool of the network ``build_network`` would build, analytically.

    Mirrors the modules exactly (tests check it against forward hooks), so cost accounting needs
    no model. ``None`` settings default to the backbone's paper input (``layout.paper``).
    """
    ch = layer_channels(backbone, ratios, width_scale)
    layout = get_backbone(backbone)
    paper = layout.paper
    size = _image_size(paper.image_size if image_size is None else image_size)
    ncls = paper.num_classes if num_classes is None else check_int("num_classes", num_classes, minimum=1)
    cin = paper.in_channels if in_channels is None else check_int("in_channels", in_channels, minimum=1)
    return _family(layout).layers(layout, ch, binary=not full_precision, size=size, num_classes=ncls,
                                  in_channels=cin)


def weight_layers(backbone: str, ratios: Mapping[str, float], **settings: Any) -> list[WeightLayer]:
    """The conv/FC layers of :func:`network_layers` (same arguments), in network order."""
    return [layer for layer in network_layers(backbone, ratios, **settings) if isinstance(layer, WeightLayer)]


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
