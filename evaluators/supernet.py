"""The paper's "Initialization": one trained uniformly-widest network seeds every candidate.

The widest network (every layer at the largest ratio, 4× in the paper) is trained once per
experiment setting on the search subset; each candidate then starts from the *first* channels
of every layer of it (:func:`evaluators.backbones.slice_state_dict`).

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
