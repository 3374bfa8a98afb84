"""DoReFa-style 1-bit layers (paper Sec. 2, Eq. 1).

Forward rules
-------------
* Weights: ``w_b = sign(w) * mean(|w|)`` with ONE scalar per layer (the mean of
  the absolute values of the whole weight tensor).  We define ``sign(0) = +1``
  so that every binarised weight is exactly ``+mean`` or ``-mean`` (a true
  1-bit code; ``torch.sign`` would map 0 to 0 and create a third level).
* Activations: ``x_b = round(clip(x, 0, 1))`` in {0, 1}.  Rounding is
  "half up" (``clip(x) >= 0.5`` gives 1), not Python/PyTorch's half-to-even, so
  that exactly 0.5 is unsurprisingly mapped to 1.

Backward rules (straight-through estimator, STE)
------------------------------------------------
* Weights: identity, ``dL/dw = dL/dw_b`` (the scalar ``mean(|w|)`` is treated
  as a constant, as DoReFa-Net does for 1-bit weights).
* Activations: ``dL/dx = dL/dx_b`` where ``0 <= x <= 1`` (both ends
  inclusive) and 0 elsewhere -- the derivative of the clip, with the rounding
  treated as the identity.

``BinaryConv2d`` / ``BinaryLinear`` binarise both their weights and their
*input* activations on every forward pass; the latent full-precision weights
are what the optimiser updates and what the state_dict stores.  Layers that the
paper keeps in full precision (first conv, last FC) are plain ``nn.Conv2d`` /
``nn.Linear``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "binarize_weight",
    "binarize_activation",
    "BinaryConv2d",
    "BinaryLinear",
    "is_binary",
]


def binarize_weight(w: torch.Tensor) -> torch.Tensor:
    """Return ``sign(w) * mean(|w|)`` (sign(0)=+1) with an identity STE gradient."""
    scale = w.detach().abs().mean()
    w_b = torch.where(w.detach() >= 0, scale, -scale)
    # Forward value is w_b; gradient w.r.t. w is the identity.
    return w + (w_b - w).detach()


class _BinaryActivation(torch.autograd.Function):
    """round(clip(x, 0, 1)) forward; gradient passed where 0 <= x <= 1.

    The forward pass keeps the pass-through mask (one byte per element) rather than ``x``
    itself, so the backward pass is a single multiplication (bench B3).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward((x >= 0) & (x <= 1))
        return (x >= 0.5).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (inside,) = ctx.saved_tensors
        return grad_out * inside


def binarize_activation(x: torch.Tensor) -> torch.Tensor:
    """Return ``round(clip(x, 0, 1))`` in {0, 1} (half up) with the clipped STE."""
    return _BinaryActivation.apply(x)


class BinaryConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose weights and input activations are binarised (Eq. 1)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if self.padding_mode != "zeros":
            raise ValueError(
                f"BinaryConv2d supports padding_mode='zeros' only, got {self.padding_mode!r}"
            )
        return F.conv2d(
            binarize_activation(x),
            binarize_weight(self.weight),
            self.bias,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
        )


class BinaryLinear(nn.Linear):
    """``nn.Linear`` whose weights and input activations are binarised (Eq. 1)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return F.linear(binarize_activation(x), binarize_weight(self.weight), self.bias)


def is_binary(module: nn.Module) -> bool:
    """True if ``module`` is a 1-bit layer (its MACs cost 1/64, its weights 1 bit)."""
    return isinstance(module, (BinaryConv2d, BinaryLinear))
