"""A user's own weights, read without running any code from the file, and without trusting its bytes.

Two formats are accepted: `.safetensors` (plain tensors, no code at all) and a PyTorch state dict
saved with `torch.save` (its zip format), read with `torch.load(..., weights_only=True)`: its
unpickler builds only tensors and containers and refuses any other object, so a crafted pickle
fails instead of running. The bytes can still make a reader hang or balloon, so cheap checks come
first (`weights_format`: what the file is, bounded headers and zip directories), then the parse
runs in a child process with a time and memory limit (`weights_sandbox`) that hands back plain
tensors. The weights are then checked against the architecture they claim to be (names, shapes,
finite values), and one forward pass must give finite outputs, before a model is kept.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .backdoored import BackdooredModel, acc_asr_percent, attack_for, save_model
from .cards import Card
from .checkpoints import library_versions, state_mismatch, weights_bytes
from ..config import ModelConfig, Scenario
from ..data.splits import load_splits
from ..errors import UserInputError
from ..models.evaluate import evaluate
from .model_store import default_cache_dir, open_model
from ..models.architectures import ImageClassifier, build_model
from .weights_format import check_safetensors, check_torch_zip, short
from .weights_sandbox import parse_in_child

__all__ = ["MAX_WEIGHTS_MB", "WEIGHT_SUFFIXES", "check_size", "read_state_dict", "model_from_weights", "import_weights",
           "check_finite_outputs", "save_upload"]

#: The largest weights file read into memory and handed to the parsing child, in MiB (any caller: the CLI's
#: import too). A web server sets its own upload limit (`ui/server.py`), at most this.
MAX_WEIGHTS_MB = 50
WEIGHT_SUFFIXES = ("safetensors", "pt", "pth")
#: Test images the forward check runs on before an upload is kept.
FORWARD_CHECK_IMAGES = 16


def check_size(size: int, filename: str, max_mb: int = MAX_WEIGHTS_MB) -> None:
    """Refuse a weights file over the limit (callers holding only a path check before reading it)."""
    if size > max_mb * 1024 * 1024:
        raise UserInputError(f"{short(filename, 80)} is {size / 2**20:.1f} MiB; the limit is {max_mb} MiB")


def read_state_dict(data: bytes, filename: str, max_mb: int = MAX_WEIGHTS_MB) -> dict[str, torch.Tensor]:
    """Tensors from an uploaded file, by its suffix; never unpickles an arbitrary object.

    The cheap checks refuse most bad files in this process; what passes them is parsed in a child
    process that is killed past its time or memory limit (`weights_sandbox`).
    """
    suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if suffix not in WEIGHT_SUFFIXES:
        raise UserInputError(f"{short(filename, 80)}: weights must be a .safetensors file or a .pt/.pth state dict")
    check_size(len(data), filename, max_mb)
    if not data:
        raise UserInputError(f"{short(filename, 80)} is empty")
    if suffix == "safetensors":
        check_safetensors(data, filename)
    else:
        check_torch_zip(data, filename)
    return parse_in_child(data, filename)


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
        raise UserInputError(f"{short(filename, 80)} does not fit {arch} for {input_shape[0]}x{input_shape[1]}x{input_shape[2]} "
                             f"images and {num_classes} classes: {problem[:300]}")
    model.load_state_dict(state, strict=True)
    return model.eval()


def import_weights(data: bytes, filename: str, scenario: Scenario, cache_dir: Path | None = None,
                   prefix: str = "upload", max_mb: int = MAX_WEIGHTS_MB) -> BackdooredModel:
    """Read, check, evaluate and keep an uploaded model for `scenario`'s data, architecture and trigger.

    Returns the `BackdooredModel` saved as `<prefix>-<sha>-<fingerprint>` in the model store; raises
    `UserInputError` with a one-line reason for anything that does not fit, before anything is written.
    """
    state = read_state_dict(data, filename, max_mb)
    splits = load_splits(scenario.data)
    model = model_from_weights(state, scenario.model.arch, splits.input_shape, splits.num_classes, filename)
    check_finite_outputs(model, splits.test.x[:FORWARD_CHECK_IMAGES], filename)
    return save_upload(model, scenario, filename, cache_dir, prefix)


def check_finite_outputs(model: ImageClassifier, images: torch.Tensor, filename: str = "the weights") -> None:
    """Refuse a model whose outputs on a few real images are NaN or infinite, before it gets a card.

    Finite weights are not enough: weights near the float32 limit overflow in the first layer, and
    a normalisation std of 0 divides by zero; such a model would be listed with ACC 10 / ASR 100.
    """
    with torch.no_grad():
        outputs = model(images)
    if not torch.isfinite(outputs).all():
        raise UserInputError(f"{short(filename, 80)} gives NaN or infinite outputs on {len(images)} test images (weights too "
                             "large, or a normalisation std of 0?): a model must give finite outputs to be measured")


def save_upload(model: ImageClassifier, scenario: Scenario, filename: str, cache_dir: Path | None = None,
                prefix: str = "upload") -> BackdooredModel:
    """Evaluate an uploaded model on the scenario's data and trigger, and keep it as `<prefix>-<sha>-<fingerprint>`.

    The app lists an `upload-` model only in the session that uploaded it; `import-` models (the
    CLI's, put there by whoever runs the server) are listed for everyone.

    The trigger is the evaluator's view of the attack the user says the model carries: ASR is
    only as meaningful as that claim, so the key holds the scenario's fingerprint too: the same
    bytes checked against another attack or data get their own card, and never rewrite another's.
    Same bytes and scenario: the upload already kept is reused as it is (card included).
    """
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = f"{prefix}-{weights_bytes(model)[1][:12]}-{scenario.fingerprint}"
    if (folder / f"{key}.safetensors").is_file() and (folder / f"{key}.json").is_file():
        try:
            return open_model(key, folder)
        except UserInputError:
            pass  # a damaged pair (e.g. its sha256 no longer matches): written anew below
    splits = load_splits(scenario.data)
    attack = attack_for(scenario, splits)
    acc, asr = acc_asr_percent(evaluate(model, splits.test, attack))
    card = Card(
        name=scenario.name, scenario=scenario.to_dict(), input_shape=splits.input_shape, num_classes=splits.num_classes,
        classes=splits.classes, trigger={**attack.describe(), "source": f"uploaded as {filename}"}, acc=acc, asr=asr,
        clean_acc=None, clean_asr=None, train_seconds=0.0, clean_train_seconds=None, n_train=len(splits.train),
        n_poisoned=0, sha256="", versions=library_versions(),
    )
    saved = save_model(BackdooredModel(scenario, model, card, attack), folder / f"{key}.safetensors", folder / f"{key}.json")
    return BackdooredModel(scenario, model, Card.from_dict({**saved.card.to_dict(), "name": key}), attack)
