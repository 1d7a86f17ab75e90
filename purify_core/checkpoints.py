"""Checkpoints on disk: weights as safetensors, described by a JSON card.

Weights load only through safetensors (no pickle, so a file cannot run code), and only after
their sha256 matches the card: a corrupted or swapped file is refused with a clear message
instead of silently giving different numbers. Files are written atomically (temporary file,
then rename), so an interrupted save never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

from .config import Scenario
from .errors import ChecksumMismatchError, UserInputError
from .models import ImageClassifier, build_model

__all__ = ["Card", "weights_bytes", "save_checkpoint", "load_checkpoint", "read_card", "write_card", "sha256_file", "library_versions", "state_mismatch"]

CARD_VERSION = 1


@dataclass(frozen=True)
class Card:
    """What a checkpoint is: its scenario, the trigger, and what it measured when it was built.

    ACC and ASR are percentages on the scenario's clean test split; `clean_acc` / `clean_asr`
    come from a model trained the same way without poisoning (the price and effect of the attack).
    """

    name: str
    scenario: dict[str, Any]
    input_shape: tuple[int, int, int]
    num_classes: int
    classes: tuple[str, ...]
    trigger: dict[str, Any]
    acc: float
    asr: float
    clean_acc: float | None
    clean_asr: float | None
    train_seconds: float
    clean_train_seconds: float | None
    n_train: int
    n_poisoned: int
    sha256: str
    versions: dict[str, str] = field(default_factory=dict)
    card_version: int = CARD_VERSION

    @property
    def scenario_config(self) -> Scenario:
        return Scenario.from_dict(self.scenario)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Card":
        names = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(n for n in names if n not in d and n not in ("versions", "card_version"))
        if missing:
            raise UserInputError(f"model card is missing {', '.join(missing)}")
        values = {k: v for k, v in d.items() if k in names}
        values["input_shape"] = tuple(int(v) for v in values["input_shape"])
        values["classes"] = tuple(str(c) for c in values["classes"])
        return cls(**values)


def library_versions() -> dict[str, str]:
    """The versions that decide whether a rebuild gives the same bytes."""
    import safetensors

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "safetensors": safetensors.__version__,
        "machine": platform.machine(),
        "torch_threads": str(torch.get_num_threads()),
    }


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temporary, 0o644)  # mkstemp makes it private; a checkpoint is an ordinary file
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def weights_bytes(model: torch.nn.Module) -> tuple[bytes, str]:
    """The model's state dict as safetensors bytes (CPU, contiguous) and their sha256."""
    data = save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, metadata={"format": "pt"})
    return data, hashlib.sha256(data).hexdigest()


def save_checkpoint(model: torch.nn.Module, path: str | Path) -> str:
    """Write the model's state dict as safetensors (CPU, contiguous) and return the file's sha256."""
    data, sha = weights_bytes(model)
    _atomic_write(Path(path), data)
    return sha


def write_card(card: Card, path: str | Path) -> None:
    _atomic_write(Path(path), (json.dumps(card.to_dict(), indent=2) + "\n").encode())


def read_card(path: str | Path) -> Card:
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"model card {path} does not exist")
    try:
        return Card.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserInputError(f"model card {path} is not valid JSON: {exc}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise UserInputError(f"model card {path} is not a valid card: {exc}") from None


def load_checkpoint(path: str | Path, card: Card, map_location: str | torch.device = "cpu") -> ImageClassifier:
    """Build the card's architecture and load the weights, after checking their sha256."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"checkpoint {path} does not exist")
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != card.sha256:
        raise ChecksumMismatchError(
            f"checkpoint {path.name} has sha256 {actual[:12]}… but its card says {card.sha256[:12]}…: "
            "the file is corrupted or is not the model the card describes; rebuild it (zoo build) or fetch it again"
        )
    try:
        state = load(data)
    except (SafetensorError, ValueError) as exc:
        raise UserInputError(f"checkpoint {path.name} is not a readable safetensors file: {exc}") from None
    scenario = card.scenario_config
    model = build_model(scenario.model, card.input_shape, card.num_classes)
    problem = state_mismatch(model.state_dict(), state)
    if problem:
        raise UserInputError(f"checkpoint {path.name} does not fit architecture {scenario.model.arch}: {problem}")
    model.load_state_dict(state, strict=True)
    return model.to(map_location).eval()


def state_mismatch(expected: dict[str, torch.Tensor], given: dict[str, torch.Tensor]) -> str | None:
    """Why `given` weights cannot load into a model with `expected` ones, in one line (None if they can)."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} tensors missing (first: {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensors (first: {unexpected[0]})")
        return "; ".join(parts)
    for key, tensor in expected.items():
        if tuple(given[key].shape) != tuple(tensor.shape):
            return f"{key} has shape {tuple(given[key].shape)} in the file but {tuple(tensor.shape)} in the model"
    for key, tensor in given.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            return f"{key} holds NaN or infinite values"
    return None
