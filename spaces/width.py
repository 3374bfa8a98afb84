"""The paper's search space: one expansion ratio per searchable layer of a backbone.

Dimensions are named after the layers they widen (``conv3`` for VGG-small,
``stage2.out`` / ``stage2.block1.inner`` for ResNet-18: stage widths shared with the shortcut,
plus each block's inner width, as in the paper). Choices default to the paper's
{0.25, 0.5, 1, 2, 3, 4}. Channel counts are ``max(1, floor(base × scale × ratio + 0.5))``
(see :func:`evaluators.backbones.layer_channels`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from nas_core.space import Dimension, InvalidSpaceError, SearchSpace

PAPER_RATIOS: tuple[float, ...] = (0.25, 0.5, 1, 2, 3, 4)


def _check_ratios(ratios: Sequence[float]) -> tuple[float, ...]:
    if isinstance(ratios, (str, bytes)) or not isinstance(ratios, Sequence) or len(ratios) == 0:
        raise InvalidSpaceError(f"ratios must be a non-empty list of positive numbers, got {ratios!r}")
    for r in ratios:
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not math.isfinite(r) or r <= 0:
            raise InvalidSpaceError(f"ratio {r!r} must be a positive number (in ratios {list(ratios)!r})")
    return tuple(ratios)


class BinaryWidthSpace(SearchSpace):
    """Expansion ratio per searchable layer of ``backbone``."""

    def __init__(self, *, backbone: str = "vgg_small", ratios: Sequence[float] = PAPER_RATIOS) -> None:
        from evaluators.backbones import searchable_layers

        try:
            layers = searchable_layers(backbone)
        except ValueError as err:
            raise InvalidSpaceError(str(err)) from None
        choices = _check_ratios(ratios)
        super().__init__([Dimension(layer.name, choices) for layer in layers])
        self.backbone = backbone
        self.ratios = choices

    def uniform(self, ratio: float) -> dict[str, float]:
        """The architecture widening every layer by ``ratio`` (the paper's Uniform-k×)."""
        return self.validate({name: ratio for name in self.names})
