"""Checkpoints on disk: weights as safetensors, described by a JSON card.

Weights load only through safetensors (no pickle, so a file cannot run code), and only after
their sha256 matches the card: a corrupted or swapped file is refused with a clear message
instead of silently giving different numbers. A card (`cards.Card`) is checked field by field
before anything is built from it, and the architecture it names is first built
on PyTorch's meta device (no memory) to compare its shapes and size with the weights.

Weights and card are saved as a pair (`save_pair`): both are written to hidden files first,
the card as a *pending* card; then the weights and the card are renamed into place, under a
lock. An interrupt at any point leaves either the old pair or, completed by the next reader
(`read_card` rolls a pending card forward when the weights already carry its sha256, and drops
it otherwise), the new pair: never a mismatched one. Several processes sharing one folder (app
servers on one `$PURIFY_LAB_CACHE`) take turns on that lock to write a pair, and a reader that
caught a pair being replaced between its two reads reads it again under the lock (`read_pair`).
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import math
import os
import platform
import tempfile
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Callable, Iterator, Mapping, TypeVar

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

from .cards import Card
from ..config import ModelConfig, shown
from ..errors import ChecksumMismatchError, UserInputError
from ..models.architectures import ImageClassifier, build_model

__all__ = ["Card", "atomic_write", "weights_bytes", "save_checkpoint", "load_checkpoint", "read_card", "write_card", "library_versions",
           "state_mismatch", "save_pair", "write_pair", "read_pair", "model_shapes", "check_writable", "MAX_PARAMETERS"]

T = TypeVar("T")

#: A card file is a few KB; anything past this is not a card (and is never parsed).
MAX_CARD_BYTES = 1 << 20
#: The largest model built, trained or loaded: 200 M parameters (800 MB of float32).
MAX_PARAMETERS = 200_000_000
#: The largest safetensors header read from a checkpoint (a large model's is about 100 KB).
MAX_HEADER_BYTES = 8 << 20


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
    """The weights file's hash, read in 1 MiB blocks: `_settle` checks a half-finished save against its card."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_writable(folder: str | Path, what: str = "the output folder") -> Path:
    """Prove `folder` can be written, before hours of training are spent, without creating it.

    The folder is made only when the model is saved, so a command refused for another reason
    (a bad target, a missing dataset) leaves no empty folder behind.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserInputError(f"{what} {folder} is a file, not a folder: name a folder")
    existing = next((p for p in (folder, *folder.absolute().parents) if p.exists()), None)
    if existing is None or not existing.is_dir():
        raise UserInputError(f"cannot write to {what} {folder}: {existing} is a file, not a folder")
    try:
        if existing == folder:
            with tempfile.TemporaryFile(dir=folder):
                pass
        elif not os.access(existing, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as exc:
        raise UserInputError(f"cannot write to {what} {folder}: {exc.strerror or exc}") from None
    return folder


def _write_temp(folder: Path, name: str, data: bytes) -> Path:
    """`data` in a new hidden file in `folder`, flushed to disk; the caller renames or removes it."""
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes it private; a checkpoint is an ordinary file
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return Path(temporary)


def atomic_write(path: Path, data: bytes) -> None:
    """`data` as `path`, all or nothing: written to a hidden temporary file beside it (`.<name>.*.tmp`, removed if
    the write fails), flushed to disk, then renamed over it, so a reader never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _write_temp(path.parent, path.name, data)
    try:
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _card_json(card: Card) -> bytes:
    """The card as JSON; `allow_nan=False` because NaN is not JSON (the card checks refuse it anyway)."""
    return (json.dumps(card.to_dict(), indent=2, allow_nan=False) + "\n").encode()


def weights_bytes(model: torch.nn.Module) -> tuple[bytes, str]:
    """The model's state dict as safetensors bytes (CPU, contiguous) and their sha256."""
    data = save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, metadata={"format": "pt"})
    return data, hashlib.sha256(data).hexdigest()


def save_checkpoint(model: torch.nn.Module, path: str | Path) -> str:
    """Write the model's state dict as safetensors (CPU, contiguous) and return the file's sha256."""
    data, sha = weights_bytes(model)
    atomic_write(Path(path), data)
    return sha


def write_card(card: Card, path: str | Path) -> None:
    atomic_write(Path(path), _card_json(card))


def _pending(card_path: Path) -> Path:
    return card_path.with_name(f".{card_path.name}.pending")


@contextmanager
def _locked(card_path: Path, *, create: bool = True) -> Iterator[None]:
    """One writer (or recovering reader) of a pair at a time, across processes.

    A reader passes `create=False`: it locks only a lock file a writer made (every writer makes
    it before it renames anything), so reading a folder nobody writes to (the shipped zoo, a
    read-only mount) leaves no file there; a missing lock file raises `FileNotFoundError`.
    """
    with open(card_path.with_name(f".{card_path.stem}.lock"), "a" if create else "r") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _settle(card_path: Path) -> None:
    """Finish or undo a `save_pair` that stopped between its two renames (call with the lock held)."""
    pending = _pending(card_path)
    if not pending.exists():
        return
    weights = card_path.with_suffix(".safetensors")
    try:
        sha = json.loads(pending.read_bytes()[:MAX_CARD_BYTES]).get("sha256")
    except (ValueError, AttributeError, RecursionError):
        sha = None
    if sha and weights.is_file() and sha256_file(weights) == sha:
        os.replace(pending, card_path)  # the new weights are in place: complete the pair
    else:
        pending.unlink(missing_ok=True)  # the old weights are still there: keep the old pair


def _recover(card_path: Path) -> None:
    if not _pending(card_path).exists():
        return  # the usual case: no save was interrupted
    try:
        with _locked(card_path, create=False):
            _settle(card_path)
    except OSError:
        pass  # a read-only folder or no writer's lock: the sha256 check still refuses a mismatched pair


def write_pair(weights_path: str | Path, card_path: str | Path, weights: bytes, card: bytes) -> None:
    """Write weights and the JSON card naming their sha256 (its "sha256" key) as one pair, both or neither.

    Any JSON beside a weights file works (a model card, the clean control's metadata). Two
    processes writing the same pair at once take turns on the pair's lock, so the last one wins
    whole; a reader never sees one's card with the other's weights for long (`read_pair`).
    """
    weights_path, card_path = Path(weights_path), Path(card_path)
    folder = check_writable(card_path.parent, "the model folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserInputError(f"cannot write to the model folder {folder}: {exc.strerror or exc}") from None
    written: list[Path] = []
    try:
        with _locked(card_path):
            _settle(card_path)  # an earlier interrupted save, first
            written.append(_write_temp(folder, weights_path.name, weights))
            temporary_card = _write_temp(folder, card_path.name, card)
            written.append(temporary_card)
            os.replace(temporary_card, _pending(card_path))  # from here on a reader can complete the pair
            os.replace(written[0], weights_path)
            os.replace(_pending(card_path), card_path)
    except OSError as exc:
        raise UserInputError(f"cannot save the model in {folder}: {exc.strerror or exc}; nothing there was changed") from None
    finally:
        for path in written:
            path.unlink(missing_ok=True)
        if _pending(card_path).exists():  # interrupted between the renames: settle it now if we still can
            _recover(card_path)


def save_pair(model: torch.nn.Module, card: Card, weights_path: str | Path, card_path: str | Path) -> Card:
    """Save weights and card so that an interrupt at any point leaves the old pair or the new one.

    Returns the card with the weights' sha256. A folder that cannot be written (read-only, full)
    is one `UserInputError`, and leaves what was there untouched.
    """
    data, sha = weights_bytes(model)
    card = dataclasses.replace(card, sha256=sha)
    write_pair(weights_path, card_path, data, _card_json(card))
    return card


def read_pair(card_path: str | Path, read: Callable[[], T]) -> T:
    """`read()`, which reads a card and then the weights it names; on a sha256 mismatch, once more under the pair's lock.

    Reading takes no lock, so another process (a second app server on the same cache) may
    replace the pair between the two reads: the weights then fail the old card's sha256. The
    second read waits for any writer to finish, so only a truly corrupted pair is refused.
    """
    card_path = Path(card_path)
    try:
        return read()
    except ChecksumMismatchError as exc:
        mismatch = exc
    with ExitStack() as stack:
        try:
            stack.enter_context(_locked(card_path, create=False))
        except OSError:
            raise mismatch from None  # no writer's lock (or none we may open): nobody writes here, the mismatch is real
        _settle(card_path)
        return read()


def read_card(path: str | Path) -> Card:
    """A checked card from disk (completing an interrupted save first); any problem is one `UserInputError`."""
    path = Path(path)
    _recover(path)
    if not path.is_file():
        raise UserInputError(f"model card {path} does not exist")
    try:
        size = path.stat().st_size
        if size > MAX_CARD_BYTES:
            raise UserInputError(f"model card {path} is {size / 2**20:.1f} MiB; a card is a few KB (at most {MAX_CARD_BYTES >> 20} MiB)")
        return Card.from_dict(json.loads(path.read_bytes()))
    except RecursionError:
        raise UserInputError(f"model card {path} is nested too deeply to be a card") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserInputError(f"model card {path} is not valid JSON: {exc}") from None
    except OSError as exc:
        raise UserInputError(f"cannot read model card {path}: {exc.strerror or exc}") from None
    except UserInputError as exc:
        raise UserInputError(f"model card {path}: {exc}") from None


def model_shapes(config: ModelConfig, input_shape: tuple[int, int, int], num_classes: int) -> dict[str, tuple[int, ...]]:
    """The state dict's names and shapes for this architecture, or a refusal if it is too large to build.

    The model is built on PyTorch's meta device: no memory and next to no time, even for a
    name or a declared size that would need gigabytes.
    """
    with torch.device("meta"):
        model = build_model(config, input_shape, num_classes)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    count = sum(math.prod(shape) for shape in shapes.values())
    if count > MAX_PARAMETERS:
        raise UserInputError(f"{config.arch} for {'x'.join(map(str, input_shape))} images and {num_classes} classes has "
                             f"{count / 1e6:,.0f} M parameters; the limit is {MAX_PARAMETERS / 1e6:,.0f} M")
    return shapes


def _header_shapes(data: bytes, name: str) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes from a safetensors header (bounded), without reading any tensor."""
    try:
        length = int.from_bytes(data[:8], "little")
        if len(data) < 8 or length > min(MAX_HEADER_BYTES, len(data) - 8):
            raise ValueError(f"a header of {length} bytes")
        header = json.loads(data[8 : 8 + length])
        return {k: tuple(int(n) for n in v["shape"]) for k, v in header.items() if k != "__metadata__"}
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        raise UserInputError(f"checkpoint {name} is not a readable safetensors file ({shown(exc, 100)})") from None


def load_checkpoint(path: str | Path, card: Card, map_location: str | torch.device = "cpu") -> ImageClassifier:
    """Build the card's architecture and load the weights, after checking their sha256, names and shapes.

    Names, shapes and size are compared on a meta-device model first, so a card naming a huge
    model (or a class count the weights do not have) is refused before any memory is spent.
    """
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"checkpoint {path} does not exist")
    scenario = card.scenario_config
    expected = model_shapes(scenario.model, card.input_shape, card.num_classes)
    limit = 8 * MAX_PARAMETERS + MAX_HEADER_BYTES
    if path.stat().st_size > limit:
        raise UserInputError(f"checkpoint {path.name} is {path.stat().st_size / 2**30:.1f} GiB; the limit is {limit / 2**30:.1f} GiB")
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != card.sha256:
        raise ChecksumMismatchError(
            f"checkpoint {path.name} has sha256 {actual[:12]}… but its card says {card.sha256[:12]}…: "
            "the file is corrupted or is not the model the card describes; rebuild it (zoo build) or fetch it again"
        )
    problem = shape_mismatch(expected, _header_shapes(data, path.name))
    if problem:
        raise UserInputError(f"checkpoint {path.name} does not fit architecture {scenario.model.arch}: {problem}")
    try:
        state = load(data)
    except (SafetensorError, ValueError) as exc:
        raise UserInputError(f"checkpoint {path.name} is not a readable safetensors file: {exc}") from None
    model = build_model(scenario.model, card.input_shape, card.num_classes)
    problem = state_mismatch(model.state_dict(), state)
    if problem:
        raise UserInputError(f"checkpoint {path.name} does not fit architecture {scenario.model.arch}: {problem}")
    model.load_state_dict(state, strict=True)
    return model.to(map_location).eval()


def shape_mismatch(expected: Mapping[str, tuple[int, ...]], given: Mapping[str, tuple[int, ...]]) -> str | None:
    """Why tensors named and shaped `given` cannot load where `expected` ones belong, in one line (None if they can)."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} tensors missing (first: {shown(missing[0], 80)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensors (first: {shown(unexpected[0], 80)})")
        return "; ".join(parts)
    for key, shape in expected.items():
        if tuple(given[key]) != tuple(shape):
            return f"{key} has shape {tuple(given[key])} in the file but {tuple(shape)} in the model"
    return None


def state_mismatch(expected: dict[str, torch.Tensor], given: dict[str, torch.Tensor]) -> str | None:
    """Why `given` weights cannot load into a model with `expected` ones, in one line (None if they can)."""
    problem = shape_mismatch({k: tuple(v.shape) for k, v in expected.items()}, {k: tuple(v.shape) for k, v in given.items()})
    if problem:
        return problem
    for key, tensor in given.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            return f"{key} holds NaN or infinite values"
    return None
