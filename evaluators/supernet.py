"""The paper's "Initialization": one trained uniformly-widest network seeds every candidate.

The widest network (every layer at the largest ratio, 4× in the paper) is trained once per
experiment setting on the search subset; each candidate then starts from the *first* channels
of every layer of it (:func:`evaluators.backbones.slice_state_dict`).

What is the paper's and what is ours: the widest network, its training on the search subset and
the first-channel slicing are the paper's. Its length is ours by default: ``supernet_epochs``
defaults to 3× the candidate epochs, where the paper's ImageNet setting is 150 supernet epochs
for 10-epoch candidates (15×; pass ``supernet_epochs=15 * epochs`` for that). Its recipe is the
candidates' (Adam, see :mod:`evaluators.training`; the paper does not give one). Re-estimating
each candidate's batch-norm statistics after slicing (:data:`SUPERNET_BN`) and sandwich-rule
training (:data:`SUPERNET_TRAINING`) are ours, beyond the paper.

Trained once, cached on disk under a key made of everything that changes it (backbone, data,
width scale, training recipe, seed), and safe when several trials start at once: the first
takes an exclusive file lock and trains, the others wait on the lock and then load the file,
which is written to a temporary name and atomically renamed.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

DEFAULT_CACHE = Path(os.environ.get("NAS_CORE_CACHE", Path.home() / ".cache" / "nas_core")) / "supernets"


def cache_key(setting: Mapping[str, Any]) -> str:
    return hashlib.sha1(json.dumps(setting, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cached_state(
    setting: Mapping[str, Any],
    train: Callable[[], tuple[dict[str, torch.Tensor], dict[str, float]]],
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[dict[str, torch.Tensor], Path]:
    """The trained state for ``setting``: loaded from the cache, or trained once by ``train``.

    ``train`` returns the state dict and a few metrics, stored beside it in a JSON file.
    """
    directory = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE
    directory.mkdir(parents=True, exist_ok=True)
    key = cache_key(setting)
    path = directory / f"supernet-{key}.pt"
    if path.exists():
        return torch.load(path, map_location="cpu", weights_only=True), path
    with open(directory / f"supernet-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not path.exists():
                state, metrics = train()
                fd, tmp = tempfile.mkstemp(prefix=f".supernet-{key}.", suffix=".tmp", dir=directory)
                os.close(fd)
                try:
                    torch.save({k: v.detach().cpu() for k, v in state.items()}, tmp)
                    os.replace(tmp, path)
                finally:
                    if os.path.exists(tmp):
                        os.unlink(tmp)
                info = {"setting": dict(setting), "metrics": metrics}
                (directory / f"supernet-{key}.json").write_text(json.dumps(info, indent=1, default=str))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return torch.load(path, map_location="cpu", weights_only=True), path


# ------------------------------------------------------------ sandwich-rule training

SUPERNET_TRAINING = ("widest", "sandwich")
"""``widest``: the paper's supernet, only the widest network is trained. ``sandwich``: every
step also trains the narrowest and two random first-channel sub-networks (the "sandwich rule"
of slimmable networks), so that every slice a candidate inherits has been trained as such."""


SUPERNET_BN = ("reestimate", "inherit")
"""Batch-norm statistics of a candidate sliced from the supernet. ``reestimate`` (default): measured
again on a few training batches for the candidate's own widths (as slimmable and once-for-all
networks do; beyond the paper, which does not say). ``inherit``: the supernet's stored statistics,
sliced like the weights; they were measured on the widest network's inputs (or, sandwich-trained,
on a mixture of sub-networks') and fit a narrower candidate's layers poorly."""


class ChannelMask:
    """Runs a widest VGG-small as any of its first-channel sub-networks.

    The output channels of every searchable layer beyond the sub-network's width are zeroed
    after the layer's BatchNorm. A binary layer quantises a zero input to 0 and a full-precision
    classifier multiplies it away, so the zeroed channels contribute nothing downstream, as in
    the narrow network; the binary weight scale, the one difference, is a per-layer constant
    that the BatchNorm after each layer normalises away.
    """

    def __init__(self, model: torch.nn.Module, backbone: str) -> None:
        if backbone != "vgg_small":
            raise ValueError(f"sandwich supernet training supports backbone 'vgg_small' only, got {backbone!r}")
        self._widths: list[int] | None = None
        self._handles = [getattr(model, f"bn{i}").register_forward_hook(self._hook(i - 1)) for i in range(1, 7)]

    def _hook(self, index: int) -> Callable[..., torch.Tensor | None]:
        def hook(module: torch.nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor | None:
            if self._widths is None or self._widths[index] >= output.shape[1]:
                return None
            keep = torch.zeros(output.shape[1], dtype=output.dtype, device=output.device)
            keep[: self._widths[index]] = 1
            return output * keep.view(1, -1, 1, 1)

        return hook

    def set(self, widths: list[int] | None) -> None:
        """Channels kept per searchable layer (conv1..conv6); None runs the whole network."""
        self._widths = None if widths is None else list(widths)

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def sandwich_loss(mask: ChannelMask, widest: list[int], narrowest: list[int],
                  sample: Callable[[], list[int]], samples: int = 2) -> Callable[..., torch.Tensor]:
    """A loss over the widest, the narrowest and ``samples`` random sub-networks (mean of the losses)."""
    criterion = torch.nn.CrossEntropyLoss()

    def loss(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        total = torch.zeros((), device=images.device)
        widths = [widest, narrowest, *(sample() for _ in range(samples))]
        try:
            for channels in widths:
                mask.set(channels)
                total = total + criterion(model(images), labels)
        finally:
            mask.set(None)
        return total / len(widths)

    return loss
