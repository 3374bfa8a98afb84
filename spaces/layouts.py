"""Backbones described without torch: their layers, base widths, and which layers a search widens.

A search space needs only a backbone's *description* (the names of its searchable layers and their
widths at ratio 1); building the network is the evaluators' business
(:mod:`evaluators.backbones` turns a layout into an ``nn.Module`` and into the analytic layer list
the cost model reads). Keeping the description here lets ``spaces`` be imported, and every space
built, without importing ``evaluators`` or torch.

Backbones are registered by name (like timm's or torchvision's model registries):
:func:`register_backbone` adds a layout, :func:`get_backbone` returns it, :func:`backbone_names`
lists them. Two families are described:

:class:`PlainLayout`
    A chain of 3×3 convs, each optionally followed by a 2×2 max-pool, then an adaptive average
    pool and a full-precision FC. One searchable width per conv (``conv1`` … ``convN``).
    ``vgg_small`` (CIFAR-10, 32×32): 128, 128, pool, 256, 256, pool, 512, 512, pool, FC on 512×4×4.
:class:`ResidualLayout`
    A stem conv (``"imagenet"``: 7×7/2 plus a 3×3/2 max-pool; ``"cifar"``: 3×3/1, no pool), stages
    of BasicBlocks (stride 2 and a binary 1×1 downsample shortcut at the start of every stage but
    the first), global average pool, full-precision FC. Searchable widths (Fig. 2 of the paper):
    ``stage{s}.out``, the output width of every block of stage ``s`` and of its shortcut (for
    stage 1 also the stem's width, since stage 1's shortcuts are identities), and
    ``stage{s}.block{b}.inner``, the output width of block ``b``'s first conv. The dimensions are
    in the authors' order: every stage width first, then every block's inner width in block order
    (``resnet18``: 4 + 8 = 12, so a published 12-ratio code pastes in as it is).
    ``resnet18`` (ImageNet, 224×224, ImageNet stem) and ``resnet18_cifar`` (32×32, CIFAR stem).

A layer of base width ``c`` at expansion ratio ``r`` and width scale ``s`` gets
``max(1, floor(c · s · r + 0.5))`` channels (:func:`layer_channels`; round half up, never fewer
than one channel).

Adding a backbone
-----------------
One of an existing family is one call, e.g. a ResNet-34-like network::

    register_backbone(ResidualLayout(name="resnet34", paper=InputSetting(224, 1000, 3),
                                     stage_widths=(64, 128, 256, 512), blocks=(3, 4, 6, 3), stem="imagenet"))

Every space, evaluator, cost count and command then knows it by name. A new *family* is a frozen
dataclass subclassing :class:`BackboneLayout` (giving ``layers``) plus one
``evaluators.backbones.register_family`` call with the functions that build its module and list
its layers.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass

from nas_core.arguments import check_choice, check_int, check_positive

__all__ = [
    "LayerSpec",
    "InputSetting",
    "BackboneLayout",
    "PlainLayout",
    "ResidualLayout",
    "register_backbone",
    "unregister_backbone",
    "get_backbone",
    "backbone_names",
    "searchable_layers",
    "layer_channels",
]


@dataclass(frozen=True)
class LayerSpec:
    """One searchable layer: its name (the search dimension) and its output width at ratio 1, scale 1."""

    name: str
    base_channels: int


@dataclass(frozen=True)
class InputSetting:
    """The input a backbone is designed for: square image side, classes, channels."""

    image_size: int
    num_classes: int
    in_channels: int


@dataclass(frozen=True, kw_only=True)
class BackboneLayout:
    """A named backbone's description: its paper input setting and its searchable layers."""

    name: str
    paper: InputSetting

    @property
    def layers(self) -> tuple[LayerSpec, ...]:
        """The searchable layers, in the order of the search space's dimensions."""
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class PlainLayout(BackboneLayout):
    """A chain of 3×3 convs (``conv1`` … ``convN``), 2×2 max-pools where ``pool_after`` says, then an FC."""

    widths: tuple[int, ...]
    pool_after: tuple[bool, ...]
    fc_spatial: tuple[int, int] = (4, 4)

    def __post_init__(self) -> None:
        if len(self.pool_after) != len(self.widths):
            raise ValueError(f"{self.name}: pool_after has {len(self.pool_after)} entries for {len(self.widths)} convs")

    @property
    def layers(self) -> tuple[LayerSpec, ...]:
        return tuple(LayerSpec(f"conv{i}", c) for i, c in enumerate(self.widths, start=1))


RESNET_STEMS = ("imagenet", "cifar")
"""``imagenet``: 7×7/2 conv and 3×3/2 max-pool; ``cifar``: 3×3/1 conv, no pool."""


@dataclass(frozen=True, kw_only=True)
class ResidualLayout(BackboneLayout):
    """Stages of BasicBlocks: ``blocks[s]`` blocks of width ``stage_widths[s]`` in stage ``s + 1``."""

    stage_widths: tuple[int, ...]
    blocks: tuple[int, ...]
    stem: str

    def __post_init__(self) -> None:
        if len(self.blocks) != len(self.stage_widths):
            raise ValueError(f"{self.name}: blocks has {len(self.blocks)} entries for {len(self.stage_widths)} stages")
        check_choice("stem", self.stem, RESNET_STEMS)

    def stage_names(self) -> list[str]:
        """``stage{s}.out`` for every stage."""
        return [f"stage{s}.out" for s in range(1, len(self.stage_widths) + 1)]

    def inner_names(self) -> list[list[str]]:
        """``stage{s}.block{b}.inner`` per stage, per block."""
        return [[f"stage{s}.block{b}.inner" for b in range(1, n + 1)] for s, n in enumerate(self.blocks, start=1)]

    @property
    def layers(self) -> tuple[LayerSpec, ...]:
        stages = [LayerSpec(name, c) for name, c in zip(self.stage_names(), self.stage_widths)]
        inner = [LayerSpec(name, c) for names, c in zip(self.inner_names(), self.stage_widths) for name in names]
        return (*stages, *inner)


_BACKBONES: dict[str, BackboneLayout] = {}


def register_backbone(layout: BackboneLayout) -> BackboneLayout:
    """Make ``layout`` known by its name to every space, evaluator and command."""
    if not isinstance(layout, BackboneLayout):
        raise TypeError(f"register_backbone needs a BackboneLayout, got {type(layout).__name__}")
    if not isinstance(layout.name, str) or not layout.name:
        raise ValueError(f"backbone name must be a non-empty string, got {layout.name!r}")
    if layout.name in _BACKBONES:
        raise ValueError(f"backbone {layout.name!r} is already registered")
    names = [spec.name for spec in layout.layers]
    if len(set(names)) != len(names):
        raise ValueError(f"backbone {layout.name!r}: searchable layer names repeat: {names}")
    for spec in layout.layers:
        check_int(f"base width of layer {spec.name!r}", spec.base_channels, minimum=1)
    _BACKBONES[layout.name] = layout
    return layout


def unregister_backbone(name: str) -> None:
    """Forget the backbone ``name`` (for tests and interactive use); unknown names are ignored."""
    _BACKBONES.pop(name, None)


def backbone_names() -> tuple[str, ...]:
    """Every registered backbone, in registration order."""
    return tuple(_BACKBONES)


def get_backbone(name: str) -> BackboneLayout:
    """The layout registered as ``name``; ``ValueError`` naming it if there is none."""
    if not isinstance(name, str) or name not in _BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; expected one of {backbone_names()}")
    return _BACKBONES[name]


def searchable_layers(backbone: str) -> list[LayerSpec]:
    """The searchable layers of ``backbone`` in dimension order (one ratio each)."""
    return list(get_backbone(backbone).layers)


def _positive(name: str, value: object) -> float:
    # numbers.Real admits numpy scalars, which check_positive (int/float only) would refuse.
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, int, float)):
        value = float(value)
    return check_positive(name, value)


def check_ratios(backbone: str, ratios: Mapping[str, float]) -> dict[str, float]:
    """``ratios`` as floats in dimension order; ``ValueError`` naming a missing, extra or bad key."""
    layout = get_backbone(backbone)
    if not isinstance(ratios, Mapping):
        raise TypeError(f"ratios must be a mapping layer name -> ratio, got {type(ratios).__name__}")
    names = [spec.name for spec in layout.layers]
    extra = sorted(str(k) for k in ratios if k not in names)
    if extra:
        raise ValueError(
            f"unknown layer key(s) {', '.join(repr(k) for k in extra)} for backbone {backbone!r}; expected {names}"
        )
    missing = [n for n in names if n not in ratios]
    if missing:
        raise ValueError(f"missing ratio for layer(s) {', '.join(repr(k) for k in missing)} of backbone {backbone!r}")
    return {n: _positive(f"ratio for layer {n!r}", ratios[n]) for n in names}


def _round_half_up(x: float) -> int:
    # 1e-9 guards against products such as 2.4999999999 caused by float noise.
    return int(math.floor(x + 0.5 + 1e-9))


def layer_channels(backbone: str, ratios: Mapping[str, float], width_scale: float = 1.0) -> dict[str, int]:
    """Output channels of every searchable layer, in dimension order.

    ``channels = max(1, floor(base * width_scale * ratio + 0.5))`` -- round half up (Python's
    ``round`` would round 2.5 to 2), never below one channel. Missing, extra or unknown keys, an
    unknown backbone, or a non-positive ratio / width scale raise ``ValueError`` naming them.
    """
    checked = check_ratios(backbone, ratios)
    scale = _positive("width_scale", width_scale)
    return {
        spec.name: max(1, _round_half_up(spec.base_channels * scale * checked[spec.name]))
        for spec in get_backbone(backbone).layers
    }


# ----------------------------------------------------------------------------- the paper's backbones

register_backbone(PlainLayout(name="vgg_small", paper=InputSetting(32, 10, 3),
                              widths=(128, 128, 256, 256, 512, 512),
                              pool_after=(False, True, False, True, False, True)))
register_backbone(ResidualLayout(name="resnet18", paper=InputSetting(224, 1000, 3),
                                 stage_widths=(64, 128, 256, 512), blocks=(2, 2, 2, 2), stem="imagenet"))
register_backbone(ResidualLayout(name="resnet18_cifar", paper=InputSetting(32, 10, 3),
                                 stage_widths=(64, 128, 256, 512), blocks=(2, 2, 2, 2), stem="cifar"))
