"""Neuron rankings kept on the server's disk, so the same ranking of the same model is computed once.

Why: the Compare page grades every defender ranking, and ANP's takes about 30 s on one torch thread
here. `st.cache_resource` keeps a ranking only in the process that computed it, so a restarted
server, a second server on the same machine and every test process paid it again. A ranking is
kept when the model's weights and architecture, the clean images, the ranking and its settings,
the trigger (for the evaluator's TAC only), the library's code and torch's thread count are the
same (`scores_key`). What is kept is a safetensors file per ranking (nothing is unpickled),
written atomically, and computed once while others wait (a lock file per ranking, so two servers sharing
the folder do not both compute it); the folder is bounded (`MAX_FILES`, least recently used dropped first). A file
that cannot be read, or does not hold a ranking of this model's layers, is computed again.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from purify_core.attacks.base import Attack
from purify_core.data.image_set import ImageSet
from purify_core.method.neurons import NeuronScores, neuron_layers
from purify_core.method.rankings import RANKINGS, rank_neurons
from purify_core.store.checkpoints import atomic_write

from .replay import code_version, kept_folder

__all__ = ["MAX_FILES", "ranking_dir", "scores_key", "kept_scores"]

MAX_FILES = 256
FORMAT = 1


def ranking_dir() -> Path | None:
    """`$PURIFY_LAB_RANKINGS`, else `$PURIFY_LAB_CACHE/rankings`; None (keep nothing) when it is `off`."""
    return kept_folder("PURIFY_LAB_RANKINGS", "rankings")


def _tensor_digest(digest: "hashlib._Hash", name: str, tensor: torch.Tensor) -> None:
    digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
    if tensor.numel():
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())


def scores_key(model: nn.Module, clean: ImageSet, metric: str, options: dict[str, Any], attack: Attack | None = None) -> str:
    """The ranking's identity: every weight and buffer, the architecture, the clean images and labels,
    the ranking and its settings, the trigger when the ranking reads it, the code and the thread count."""
    digest = hashlib.sha256()
    digest.update(repr(model).encode())
    for name, tensor in model.state_dict().items():
        _tensor_digest(digest, f"model.{name}", tensor)
    _tensor_digest(digest, "clean.x", clean.x)
    _tensor_digest(digest, "clean.y", clean.y)
    trigger = f"{type(attack).__qualname__}:{attack.config!r}" if attack is not None and RANKINGS[metric].needs_trigger else None
    digest.update(json.dumps({"metric": metric, "options": options, "trigger": trigger, "code": code_version(),
                              "threads": torch.get_num_threads(), "format": FORMAT}, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _read(path: Path, model: nn.Module) -> NeuronScores | None:
    """The kept ranking in its layers' order, or None when it is missing, unreadable or not a ranking of `model`'s layers."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as kept:
            order = json.loads((kept.metadata() or {}).get("layers", "null"))
            if not isinstance(order, list) or sorted(order) != sorted(kept.keys()):
                return None
            scores = {name: kept.get_tensor(name) for name in order}
        os.utime(path)  # used: dropped last
    except Exception:  # noqa: BLE001 - missing, half-removed or foreign file: compute it instead
        return None
    widths = {layer.name: layer.width for layer in neuron_layers(model)}
    if not scores or any(widths.get(name) != t.numel() or t.dim() != 1 or not t.is_floating_point() for name, t in scores.items()):
        return None
    return scores


def _write(path: Path, scores: NeuronScores) -> None:
    """Write atomically (`atomic_write`: a reader sees the whole file or none); a failed write only means no reuse.
    The layers' order goes in the file's metadata: safetensors itself keeps tensors sorted by name."""
    from safetensors.torch import save

    try:
        atomic_write(path, save({k: v.detach().cpu().contiguous() for k, v in scores.items()}, metadata={"layers": json.dumps(list(scores))}))
        _prune(path.parent)
    except OSError:
        return


def _prune(folder: Path) -> None:
    """Drop the least recently used rankings beyond `MAX_FILES`, and temporary files (`.*.tmp`, left by a writer that
    was killed) and lock files an hour old (a lock file dropped while held only means that a third asker may
    compute the ranking again)."""
    import time

    try:
        files = [(p.stat().st_mtime, p) for p in folder.iterdir()]
    except OSError:
        return
    kept = sorted((f for f in files if f[1].suffix == ".safetensors" and not f[1].name.startswith(".")), reverse=True)
    stale = [p for mtime, p in files if (p.name.startswith(".lock-") or (p.name.startswith(".") and p.suffix == ".tmp"))
             and time.time() - mtime > 3600]
    for path in [p for _, p in kept[MAX_FILES:]] + stale:
        try:
            path.unlink()
        except OSError:
            pass


def kept_scores(model: nn.Module, clean: ImageSet, metric: str, options: dict[str, Any] | None = None,
                attack: Attack | None = None, folder: Path | None = None) -> NeuronScores:
    """`rank_neurons(model, clean, metric, attack=attack, **options)`, read from the server's disk when
    the same ranking was computed before (by any process), and kept there when it was not."""
    options = dict(options or {})
    folder = folder or ranking_dir()
    if folder is None:
        return rank_neurons(model, clean, metric, attack=attack, **options)
    key = scores_key(model, clean, metric, options, attack)
    path = folder / f"{key}.safetensors"
    kept = _read(path, model)
    if kept is not None:
        return kept
    with _computing(folder, key):  # a second process (or session) asking meanwhile waits here, then reads the file
        kept = _read(path, model)
        if kept is not None:
            return kept
        scores = rank_neurons(model, clean, metric, attack=attack, **options)
        _write(path, scores)
    return scores


@contextmanager
def _computing(folder: Path, key: str) -> Iterator[None]:
    """Hold the key's lock file (`flock`, released by the kernel if the holder dies) while the ranking is computed,
    so two servers sharing the folder compute it once. Without a lock file (an unwritable folder) nobody waits."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle: int | None = os.open(folder / f".lock-{key}", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        handle = None
    if handle is None:
        yield
        return
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # closing releases the lock; the empty lock file stays until `_prune` (removing it now could race a waiter)
