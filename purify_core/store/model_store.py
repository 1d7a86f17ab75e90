"""The model store: models trained on request, uploaded or imported, kept on disk and opened by key.

A model's key is the name the app's links and the CLI use: a shipped scenario's name, else
`<scenario>-<fingerprint>` for a model trained on request and `upload-…` / `import-…` for
uploaded and imported weights. The store is the folder `default_cache_dir()`; each model is a
`<key>.safetensors` + `<key>.json` pair written both-or-neither by `checkpoints.save_pair`, so the
same settings train once and an interrupted save leaves no half model behind.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable

import torch

from .backdoored import BackdooredModel, BuildProgress, Runner, load_pair, train_and_save
from .cards import Card
from .checkpoints import check_writable, read_card
from ..config import Scenario
from ..errors import UserInputError
from .zoo import ZOO_DIR, load_shipped, shipped_card_for

__all__ = ["default_cache_dir", "key_for", "load_or_train", "list_built", "open_model"]

_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,160}")


def default_cache_dir() -> Path:
    """Where models trained on request are kept: `$PURIFY_LAB_CACHE` (when set and not empty) or `~/.cache/purify_lab`."""
    return Path(os.environ.get("PURIFY_LAB_CACHE", "").strip() or Path.home() / ".cache" / "purify_lab").expanduser() / "zoo"


def _cache_stem(scenario: Scenario) -> str:
    return f"{scenario.name}-{scenario.fingerprint}"


def key_for(scenario: Scenario, zoo_dir: Path = ZOO_DIR) -> str:
    """The name `open_model` finds this scenario's model by: shipped name, else `<name>-<fingerprint>`."""
    return scenario.name if shipped_card_for(scenario, zoo_dir) else _cache_stem(scenario)


def load_or_train(
    scenario: Scenario,
    cache_dir: Path | None = None,
    zoo_dir: Path = ZOO_DIR,
    on_progress: Callable[[BuildProgress], None] | None = None,
    device: torch.device | str | None = None,
    run: Runner | None = None,
) -> BackdooredModel:
    """The shipped checkpoint for this exact scenario, else the cached one, else train (where `run` says) and cache it."""
    shipped = shipped_card_for(scenario, zoo_dir)
    if shipped is not None:
        return load_pair(shipped.with_suffix(".safetensors"), shipped, device)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    stem = _cache_stem(scenario)  # not shipped: checked above
    weights, card_path = cache_dir / f"{stem}.safetensors", cache_dir / f"{stem}.json"
    if weights.is_file() and card_path.is_file():
        return load_pair(weights, card_path, device)
    check_writable(cache_dir, "the model cache")  # before training, not after
    return train_and_save(scenario, weights, card_path, with_clean_reference=False, on_progress=on_progress, device=device, run=run)


def list_built(cache_dir: Path | None = None) -> list[Card]:
    """Models trained on request, uploaded or imported on this server (kept on disk), newest first.

    A card's `name` is its key: `<scenario>-<fingerprint>` for a trained one, `upload-<sha>-<fingerprint>`
    for an upload (`import-…` for the CLI's imports). Unreadable files are skipped: a half-copied cache never breaks the list.
    """
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    found = []
    for path in folder.glob("*.json"):
        try:
            found.append((path.stat().st_mtime, path))
        except OSError:
            continue  # removed since the listing
    cards = []
    for _, path in sorted(found, reverse=True):
        try:
            card = read_card(path)
            if path.with_suffix(".safetensors").is_file():
                cards.append(Card.from_dict({**card.to_dict(), "name": path.stem}))  # a file name that is no model name: skipped too
        except UserInputError:
            continue
    return cards


def open_model(key: str, cache_dir: Path | None = None, zoo_dir: Path = ZOO_DIR,
               device: torch.device | str | None = None) -> BackdooredModel:
    """A model by key: a shipped scenario's name, or a model trained, uploaded or imported into the store."""
    if not isinstance(key, str) or not _KEY.fullmatch(key) or ".." in key:
        raise UserInputError(f"{key!r} is not a model name")
    if (Path(zoo_dir) / f"{key}.json").is_file():
        return load_shipped(key, zoo_dir, device)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    card_path = folder / f"{key}.json"
    if not card_path.is_file():
        raise UserInputError(f"no model named {key!r} here: it is neither shipped nor trained or uploaded on this server")
    loaded = load_pair(card_path.with_suffix(".safetensors"), card_path, device)
    card = Card.from_dict({**loaded.card.to_dict(), "name": key})
    return BackdooredModel(loaded.scenario, loaded.model, card, loaded.attack)
