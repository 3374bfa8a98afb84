"""FLOPs and memory of a (binary) network, from the architecture alone.

Two counting conventions (see docs/cost_accounting.md for the derivation and why no single rule
reproduces both of the paper's tables):

``table1`` (the default, for every backbone)
    Reproduces the paper's Table 1 within 0.21 % and Table 2 within 2.2 %.

    * FLOPs are multiply-accumulates (MACs).  A conv / FC layer costs
      ``outputs * (fan_in + 1)``: ``fan_in`` (= k*k*C_in, or the FC's input
      features) MACs per output value plus one for its additive term -- the FC's
      bias, or, for a conv, the shift of the BatchNorm that follows it and folds
      into a per-channel bias at inference.  This is the usual per-layer
      "MACs with bias" count.
    * A binary layer's whole count is divided by 64 (Bi-Real Net's convention,
      followed by the paper); full-precision layers (first conv, FC, or everything
      with ``full_precision=True``) count fully.
    * Nothing else is counted: activations, clipping/rounding, pooling, residual
      additions and the per-layer scale ``mean(|w|)`` are negligible element-wise
      work that Table 1 does not include.
``table2``
    ``table1`` plus full-precision element-wise work: one operation per output of every binary
    conv (its BatchNorm, not divided by 64) and k² per output of every k×k max-pool.  For
    ResNet-18 (whose only max-pool is the stem's 3×3) this reproduces Table 2's four uniform
    binary rows (149 / 352 / 607 / 915 M) to the printed digit; applied to VGG-small it misses
    Table 1's Uniform-1× row by 4.2 %.

Memory (both conventions) is in bits: 32 per full-precision weight and 1 per binary weight, for
conv and FC *weight tensors* only.  BatchNorm parameters, biases and the per-layer binarisation
scalars are not counted (Table 1 excludes them: with BN the Uniform-2x row would read 24.0M
instead of 23.7M).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from nas_core.arguments import check_choice

from evaluators.backbones import PoolLayer, WeightLayer, network_layers, searchable_layers

__all__ = ["Cost", "BINARY_OPS_DIVISOR", "CONVENTIONS", "DEFAULT_CONVENTION", "network_cost", "uniform_ratios"]

BINARY_OPS_DIVISOR = 64
"""One binary MAC costs 1/64 of a full-precision one (Bi-Real Net)."""

CONVENTIONS: dict[str, str] = {
    "table1": "MACs with bias, binary layers / 64 (fits Table 1 and, within 2.2 %, Table 2)",
    "table2": "table1 plus one op per binary-conv output (its BatchNorm) and k² per max-pool output (fits Table 2)",
}
"""The counting conventions by name, each with a one-line description."""

DEFAULT_CONVENTION = "table1"


@dataclass(frozen=True)
class Cost:
    """Cost of one network for one image.

    ``flops`` = ``fp_macs + binary_macs / 64 + elementwise_ops``; ``memory_bits`` = 32 *
    ``fp_weights`` + ``binary_weights``; ``params`` counts every parameter of
    the built module (weights, biases, BatchNorm affine) for reference.
    ``elementwise_ops`` is the full-precision element-wise work the convention counts
    (0 under ``table1``).
    """

    flops: float
    memory_bits: float
    fp_macs: float
    binary_macs: float
    fp_weights: int
    binary_weights: int
    params: int
    elementwise_ops: float = 0.0


def uniform_ratios(backbone: str, r: float) -> dict[str, float]:
    """Every searchable layer of ``backbone`` at the same expansion ratio ``r``."""
    return {spec.name: float(r) for spec in searchable_layers(backbone)}


def network_cost(
    backbone: str,
    ratios: Mapping[str, float],
    *,
    width_scale: float = 1.0,
    full_precision: bool = False,
    image_size: int | tuple[int, int] | None = None,
    num_classes: int | None = None,
    in_channels: int | None = None,
    convention: str = DEFAULT_CONVENTION,
) -> Cost:
    """FLOPs and memory (bits) of ``build_network(backbone, ratios, ...)`` under ``convention``.

    ``None`` settings mean the backbone's paper setting: 32x32x3 and 10 classes
    for vgg_small / resnet18_cifar, 224x224x3 and 1000 classes for resnet18.
    Raises ``ValueError`` for the same bad inputs as ``layer_channels`` and for an
    unknown convention (one of ``CONVENTIONS``).
    """
    check_choice("convention", convention, CONVENTIONS)
    layers = network_layers(
        backbone,
        ratios,
        width_scale=width_scale,
        full_precision=full_precision,
        image_size=image_size,
        num_classes=num_classes,
        in_channels=in_channels,
    )
    weights = [layer for layer in layers if isinstance(layer, WeightLayer)]
    fp_macs = bin_macs = 0
    fp_w = bin_w = 0
    params = 0
    for layer in weights:
        macs = layer.outputs * (layer.fan_in + 1)
        if layer.binary:
            bin_macs += macs
            bin_w += layer.weights
        else:
            fp_macs += macs
            fp_w += layer.weights
        params += layer.weights + (layer.out_channels if layer.has_bias else 0)
    # Every conv is followed by a BatchNorm with 2 affine parameters per channel.
    params += 2 * sum(layer.out_channels for layer in weights if not layer.has_bias)
    elementwise = 0
    if convention == "table2":
        elementwise += sum(layer.outputs for layer in weights if layer.binary)
        elementwise += sum(layer.outputs * layer.kernel_size**2 for layer in layers if isinstance(layer, PoolLayer))
    return Cost(
        flops=fp_macs + bin_macs / BINARY_OPS_DIVISOR + elementwise,
        memory_bits=32.0 * fp_w + float(bin_w),
        fp_macs=float(fp_macs),
        binary_macs=float(bin_macs),
        fp_weights=fp_w,
        binary_weights=bin_w,
        params=params,
        elementwise_ops=float(elementwise),
    )
