"""FLOPs and memory of a (binary) network, from the architecture alone.

Counting rule (reproduces the paper's Table 1 within 0.1% and Table 2 within
2.2%; see docs/cost_accounting.md for the derivation and the comparison):

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
  work that the paper's numbers do not include.
* Memory is in bits: 32 per full-precision weight and 1 per binary weight, for
  conv and FC *weight tensors* only.  BatchNorm parameters, biases and the
  per-layer binarisation scalars are not counted (Table 1 excludes them: with
  BN the Uniform-2x row would read 24.0M instead of 23.7M).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from evaluators.backbones import searchable_layers, weight_layers

__all__ = ["Cost", "BINARY_OPS_DIVISOR", "network_cost", "uniform_ratios"]

BINARY_OPS_DIVISOR = 64
"""One binary MAC costs 1/64 of a full-precision one (Bi-Real Net)."""


@dataclass(frozen=True)
class Cost:
    """Cost of one network for one image.

    ``flops`` = ``fp_macs + binary_macs / 64``; ``memory_bits`` = 32 *
    ``fp_weights`` + ``binary_weights``; ``params`` counts every parameter of
    the built module (weights, biases, BatchNorm affine) for reference.
    """

    flops: float
    memory_bits: float
    fp_macs: float
    binary_macs: float
    fp_weights: int
    binary_weights: int
    params: int


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
) -> Cost:
    """FLOPs (MACs, binary / 64) and memory (bits) of ``build_network(backbone, ratios, ...)``.

    ``None`` settings mean the backbone's paper setting: 32x32x3 and 10 classes
    for vgg_small / resnet18_cifar, 224x224x3 and 1000 classes for resnet18.
    Raises ``ValueError`` for the same bad inputs as ``layer_channels``.
    """
    layers = weight_layers(
        backbone,
        ratios,
        width_scale=width_scale,
        full_precision=full_precision,
        image_size=image_size,
        num_classes=num_classes,
        in_channels=in_channels,
    )
    fp_macs = bin_macs = 0
    fp_w = bin_w = 0
    params = 0
    for layer in layers:
        macs = layer.outputs * (layer.fan_in + 1)
        if layer.binary:
            bin_macs += macs
            bin_w += layer.weights
        else:
            fp_macs += macs
            fp_w += layer.weights
        params += layer.weights + (layer.out_channels if layer.has_bias else 0)
    # Every conv is followed by a BatchNorm with 2 affine parameters per channel.
    params += 2 * sum(layer.out_channels for layer in layers if not layer.has_bias)
    return Cost(
        flops=fp_macs + bin_macs / BINARY_OPS_DIVISOR,
        memory_bits=32.0 * fp_w + float(bin_w),
        fp_macs=float(fp_macs),
        binary_macs=float(bin_macs),
        fp_weights=fp_w,
        binary_weights=bin_w,
        params=params,
    )

