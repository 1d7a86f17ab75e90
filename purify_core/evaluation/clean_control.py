"""A clean control: the scenario's architecture trained the same way on unpoisoned data.

The re-activation check compares a purified model's bounce-back with a model that never had the
backdoor. That model depends on the data, architecture, training settings and seed, not on the
attack, so one clean model serves every attack of a dataset. It is trained on request (the
same init, seed and loop as the zoo's clean reference behind a card's `clean_acc`: 97.3% here for
the shipped MNIST models, whose cards say 97.2%) and kept in `<cache>/clean/`, outside the model
list the app shows.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch

from .._utils import seeded
from ..store.checkpoints import (MAX_CARD_BYTES, Card, library_versions, load_checkpoint, read_pair, weights_bytes,
                                 write_pair)
from ..config import Scenario
from ..data.splits import load_splits
from ..errors import UserInputError
from ..models.evaluate import accuracy
from ..models.architectures import ImageClassifier, build_model, pick_device
from ..models.train import TrainProgress, train_model
from ..store.model_store import default_cache_dir

__all__ = ["clean_cache_dir", "clean_key", "CleanProgress", "train_clean", "clean_model", "cached_clean_model", "save_clean"]


def clean_cache_dir() -> Path:
    """`<$PURIFY_LAB_CACHE or ~/.cache/purify_lab>/clean`: beside the zoo cache, never listed as a model."""
    return default_cache_dir().parent / "clean"


def clean_key(scenario: Scenario) -> str:
    """`<dataset>-<arch>-clean-<hash of data, model, training and seed>`: the attack plays no part."""
    parts = {k: v for k, v in scenario.to_dict().items() if k != "attack"}
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]
    return f"{scenario.data.dataset}-{scenario.model.arch.replace('tv:', 'tv-')}-clean-{digest}"


@dataclass(frozen=True)
class CleanProgress:
    """One training batch of the clean control; the last item carries the model."""

    step: TrainProgress | None
    model: ImageClassifier | None = None

    @property
    def fraction(self) -> float:
        return 1.0 if self.model is not None else (self.step.fraction if self.step else 0.0)


def train_clean(scenario: Scenario, device: torch.device | str | None = None) -> Iterator[CleanProgress]:
    """Train the clean control from scratch as the zoo trains its clean reference (same init, seed and loop)."""
    device = torch.device(device) if device is not None else pick_device()
    splits = load_splits(scenario.data)
    x = splits.train.x
    mean, std = x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3)).clamp_min(1e-3)  # as backdoored._fresh_model
    with seeded(scenario.seed):
        model = build_model(scenario.model, splits.input_shape, splits.num_classes, mean, std).to(device)
    for step in train_model(model, splits.train, scenario.train, seed=scenario.seed):
        yield CleanProgress(step)
    yield CleanProgress(None, model.eval())


def _paths(scenario: Scenario, cache_dir: Path | None) -> tuple[Path, Path]:
    folder = Path(cache_dir) if cache_dir is not None else clean_cache_dir()
    key = clean_key(scenario)
    return folder / f"{key}.safetensors", folder / f"{key}.json"


def _card(scenario: Scenario, meta: dict) -> Card:
    """An in-memory card, so the weights load through the same sha256 and shape checks as any checkpoint."""
    return Card(name=clean_key(scenario), scenario=scenario.to_dict(), input_shape=tuple(meta["input_shape"]),
                num_classes=int(meta["num_classes"]), classes=tuple(meta["classes"]), trigger={}, acc=float(meta["acc"]),
                asr=0.0, clean_acc=None, clean_asr=None, train_seconds=float(meta["train_seconds"]), clean_train_seconds=None,
                n_train=0, n_poisoned=0, sha256=str(meta["sha256"]))


def cached_clean_model(scenario: Scenario, cache_dir: Path | None = None,
                       device: torch.device | str | None = None) -> ImageClassifier | None:
    """The cached clean control, or None when it was never trained here (or its file is unreadable)."""
    weights, meta_path = _paths(scenario, cache_dir)
    if not (weights.is_file() and meta_path.is_file()):
        return None

    def read() -> ImageClassifier:
        meta = json.loads(meta_path.read_bytes()[:MAX_CARD_BYTES])
        return load_checkpoint(weights, _card(scenario, meta), map_location=device or pick_device())

    try:
        return read_pair(meta_path, read)  # read again if another process replaced the pair between the two reads
    except (UserInputError, ValueError, KeyError, TypeError, AttributeError, OSError):
        return None  # a damaged cache entry is retrained, never trusted


def save_clean(scenario: Scenario, model: torch.nn.Module, meta: dict, cache_dir: Path | None = None) -> None:
    """Cache a clean control: weights and `meta` (plus their sha256 and library versions) as one pair.

    Two sessions or app servers may train the same control at once; the pair's lock and renames
    (`write_pair`) keep the weights and their metadata from two different trainings apart.
    """
    weights, meta_path = _paths(scenario, cache_dir)
    data, sha = weights_bytes(model)
    meta = {**meta, "sha256": sha, "versions": library_versions()}
    write_pair(weights, meta_path, data, (json.dumps(meta, indent=2) + "\n").encode())


def clean_model(scenario: Scenario, cache_dir: Path | None = None, device: torch.device | str | None = None,
                on_progress: Callable[[CleanProgress], None] | None = None) -> ImageClassifier:
    """The clean control for `scenario`: from the cache, else trained now and cached."""
    cached = cached_clean_model(scenario, cache_dir, device)
    if cached is not None:
        return cached
    start, model = time.perf_counter(), None
    for item in train_clean(scenario, device):
        if on_progress is not None:
            on_progress(item)
        model = item.model or model
    assert model is not None
    splits = load_splits(scenario.data)
    meta = {"name": clean_key(scenario), "about": "a clean control for the re-activation check: trained without poisoning",
            "training": {k: v for k, v in scenario.to_dict().items() if k != "attack"},
            "input_shape": list(splits.input_shape), "num_classes": splits.num_classes, "classes": list(splits.classes),
            "acc": round(100 * accuracy(model, splits.test), 2), "train_seconds": round(time.perf_counter() - start, 1)}
    save_clean(scenario, model, meta, cache_dir)
    return model
