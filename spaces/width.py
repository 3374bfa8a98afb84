"""The paper's search space: one expansion ratio per searchable layer of a backbone.

Dimensions are the backbone's searchable layers (:mod:`spaces.layouts`): ``conv1`` … ``conv6`` for
VGG-small; for ResNet-18 the four stage widths ``stage{s}.out`` first, then the eight block-inner
widths ``stage{s}.block{b}.inner`` in block order, the order in which the authors publish their
12-ratio codes. Choices default to the paper's {0.25, 0.5, 1, 2, 3, 4}. Channel counts are
``max(1, floor(base × scale × ratio + 0.5))`` (:func:`spaces.layouts.layer_channels`).
Building the space imports neither torch nor ``evaluators``.
"""

from __future__ import annotations

from collections.abc import Sequence

from nas_core.arguments import check_positive
from nas_core.space import Dimension, InvalidSpaceError, SearchSpace

from spaces.layouts import searchable_layers

PAPER_RATIOS: tuple[float, ...] = (0.25, 0.5, 1, 2, 3, 4)


def _check_ratios(ratios: Sequence[float]) -> tuple[float, ...]:
    """The ratios as given (ints stay ints, so the NNI JSON keeps ``1``, not ``1.0``)."""
    if isinstance(ratios, (str, bytes)) or not isinstance(ratios, Sequence) or len(ratios) == 0:
        raise InvalidSpaceError(f"ratios must be a non-empty list of positive numbers, got {ratios!r}")
    for r in ratios:
        try:
            check_positive(f"ratio {r!r} (in ratios {list(ratios)!r})", r)
        except ValueError as err:
            raise InvalidSpaceError(str(err)) from None
    return tuple(ratios)


class BinaryWidthSpace(SearchSpace):
    """Expansion ratio per searchable layer of ``backbone``."""

    def __init__(self, *, backbone: str = "vgg_small", ratios: Sequence[float] = PAPER_RATIOS) -> None:
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
