"""A user's own weights, read without running any code from the file.

Two formats are accepted: `.safetensors` (plain tensors, no code at all) and a PyTorch state dict
saved with `torch.save`, read with `torch.load(..., weights_only=True)`: its unpickler builds only
tensors and containers and refuses any other object, so a crafted pickle fails instead of running.
The weights are checked against the architecture they claim to be (names, shapes, finite values)
before a model is built from them.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors

from .checkpoints import state_mismatch
from .config import ModelConfig, Scenario
from .data import load_splits
from .errors import UserInputError
from .models import ImageClassifier, build_model
from .zoo import BackdooredModel, save_upload

__all__ = ["MAX_UPLOAD_MB", "WEIGHT_SUFFIXES", "check_size", "read_state_dict", "model_from_weights", "import_weights"]

#: The largest weights file accepted, in MiB; `.streamlit/config.toml` sets the same upload limit.
MAX_UPLOAD_MB = 50
WEIGHT_SUFFIXES = ("safetensors", "pt", "pth")


def _tensors_only(state: object, filename: str) -> dict[str, torch.Tensor]:
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]  # the common {"state_dict": ..., "epoch": ...} training checkpoint
    if not isinstance(state, dict) or not state:
        raise UserInputError(f"{filename} holds no state dict (a mapping of parameter names to tensors)")
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise UserInputError(f"{filename}: entry {bad[0]!r} is not a named tensor; save model.state_dict(), not the model")
    return dict(state)


def check_size(size: int, filename: str, max_mb: int = MAX_UPLOAD_MB) -> None:
    """Refuse a weights file over the limit (callers holding only a path check before reading it)."""
    if size > max_mb * 1024 * 1024:
        raise UserInputError(f"{filename} is {size / 2**20:.1f} MiB; the limit is {max_mb} MiB")


def read_state_dict(data: bytes, filename: str, max_mb: int = MAX_UPLOAD_MB) -> dict[str, torch.Tensor]:
    """Tensors from an uploaded file, by its suffix; never unpickles an arbitrary object."""
    suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if suffix not in WEIGHT_SUFFIXES:
        raise UserInputError(f"{filename}: weights must be a .safetensors file or a .pt/.pth state dict")
    check_size(len(data), filename, max_mb)
    if not data:
        raise UserInputError(f"{filename} is empty")
    if suffix == "safetensors":
        try:
            return _tensors_only(load_safetensors(data), filename)
        except (SafetensorError, ValueError, RuntimeError) as exc:
            raise UserInputError(f"{filename} is not a readable safetensors file (truncated or corrupt?): {exc}") from None
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else "it holds objects other than tensors"
        raise UserInputError(f"{filename} was refused: only plain state dicts of tensors are loaded, and {reason[:200]}") from None
    except Exception as exc:  # noqa: BLE001 - a malformed pickle fails in many ways (IndexError, KeyError, ...); none ran code
        raise UserInputError(f"{filename} is not a readable PyTorch state dict (truncated or corrupt?): {str(exc)[:200]}") from None
    return _tensors_only(state, filename)


def model_from_weights(state: dict[str, torch.Tensor], arch: str, input_shape: tuple[int, int, int], num_classes: int,
                       filename: str = "the weights") -> ImageClassifier:
    """Build `arch` for this data and load `state` into it, or say in one line why it does not fit.

    Accepts our own exports (with `normalize.*`) and a bare network's state dict (keys without
    the `net.` prefix), whose inputs are then the [0, 1] pixels unnormalised.
    """
    model = build_model(ModelConfig(arch), input_shape, num_classes)
    expected = model.state_dict()
    state = dict(state)  # the caller's dict stays as it was
    if not any(k.startswith(("net.", "normalize.")) for k in state):
        state = {f"net.{k}": v for k, v in state.items()}  # a bare network's state dict, trained elsewhere
    for key in ("normalize.mean", "normalize.std"):  # without them, inputs reach the network as [0, 1] pixels
        state.setdefault(key, expected[key])
    problem = state_mismatch(expected, state)
    if problem:
        raise UserInputError(f"{filename} does not fit {arch} for {input_shape[0]}x{input_shape[1]}x{input_shape[2]} "
                             f"images and {num_classes} classes: {problem}")
    model.load_state_dict(state, strict=True)
    return model.eval()


def import_weights(data: bytes, filename: str, scenario: Scenario, cache_dir: Path | None = None,
                   prefix: str = "upload") -> BackdooredModel:
    """Read, check, evaluate and keep an uploaded model for `scenario`'s data, architecture and trigger.

    Returns the `BackdooredModel` saved as `<prefix>-<sha>` in the disk cache; raises `UserInputError`
    with a one-line reason for anything that does not fit, before anything is written.
    """
    state = read_state_dict(data, filename)
    splits = load_splits(scenario.data)
    model = model_from_weights(state, scenario.model.arch, splits.input_shape, splits.num_classes, filename)
    return save_upload(model, scenario, filename, cache_dir, prefix)
