"""The backdoored-model zoo: shipped checkpoints, training on request, and a disk cache.

A shipped scenario lives in `assets/zoo/<name>.safetensors` beside its card `<name>.json`.
A scenario that is not shipped is trained on request (`train_scenario` yields progress) and
cached as `<cache>/<name>-<fingerprint>.{safetensors,json}`, so the same settings train once.
`build` remakes a checkpoint from its card deterministically: same seed, same machine, same bytes.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch

from ._utils import seeded
from .attacks import Attack, build_attack
from .checkpoints import Card, check_writable, library_versions, load_checkpoint, model_shapes, read_card, save_pair, weights_bytes
from .config import Scenario, scenario_preset
from .data import Splits, load_splits
from .errors import UserInputError
from .evaluate import Metrics, evaluate
from .models import ImageClassifier, build_model, pick_device
from .train import TrainProgress, train_model

__all__ = [
    "ZOO_DIR",
    "SHIPPED_ATTACKS",
    "shipped_scenarios",
    "BackdooredModel",
    "BuildProgress",
    "default_cache_dir",
    "list_zoo",
    "load_shipped",
    "check_scenario",
    "train_scenario",
    "build",
    "load_or_train",
    "VerifyResult",
    "verify",
    "list_built",
    "key_for",
    "open_model",
    "save_upload",
]

ZOO_DIR = Path(__file__).resolve().parent.parent / "assets" / "zoo"
SHIPPED_ATTACKS = ("badnets", "blended", "wanet", "sig")


def shipped_scenarios() -> list[Scenario]:
    """The scenarios the zoo ships: the demo preset under every attack, seed 0."""
    return [scenario_preset("demo", attack) for attack in SHIPPED_ATTACKS]


def default_cache_dir() -> Path:
    """Where models trained on request are kept: `$PURIFY_LAB_CACHE` (when set and not empty) or `~/.cache/purify_lab`."""
    return Path(os.environ.get("PURIFY_LAB_CACHE", "").strip() or Path.home() / ".cache" / "purify_lab").expanduser() / "zoo"


@dataclass(frozen=True, eq=False)
class BackdooredModel:
    """A scenario, its trained weights, its card, and the attack that evaluates it."""

    scenario: Scenario
    model: ImageClassifier
    card: Card
    attack: Attack

    @property
    def name(self) -> str:
        return self.card.name

    def splits(self) -> Splits:
        return load_splits(self.scenario.data)


@dataclass(frozen=True)
class BuildProgress:
    """One step of building a scenario; the last one carries the result."""

    stage: str
    fraction: float
    step: TrainProgress | None = None
    result: BackdooredModel | None = None


def list_zoo(zoo_dir: Path = ZOO_DIR) -> list[Card]:
    """The cards of every checkpoint in a zoo folder, by name."""
    return [read_card(p) for p in sorted(Path(zoo_dir).glob("*.json"))]


def _attack_for(scenario: Scenario, splits: Splits) -> Attack:
    return build_attack(scenario.attack, splits.input_shape, splits.num_classes)


def _load(weights: Path, card_path: Path, device: torch.device | str | None) -> BackdooredModel:
    card = read_card(card_path)
    scenario = card.scenario_config
    model = load_checkpoint(weights, card, map_location=device or pick_device())
    attack = build_attack(scenario.attack, card.input_shape, card.num_classes)
    return BackdooredModel(scenario, model, card, attack)


def load_shipped(name: str, zoo_dir: Path = ZOO_DIR, device: torch.device | str | None = None) -> BackdooredModel:
    """A shipped checkpoint by name, sha256-checked against its card."""
    card_path = Path(zoo_dir) / f"{name}.json"
    if not card_path.is_file():
        known = ", ".join(c.name for c in list_zoo(zoo_dir)) or "none"
        raise UserInputError(f"no shipped scenario named {name!r}; shipped: {known}")
    return _load(card_path.with_suffix(".safetensors"), card_path, device)


def _fresh_model(scenario: Scenario, splits: Splits, device: torch.device) -> ImageClassifier:
    x = splits.train.x
    mean, std = x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    with seeded(scenario.seed):
        model = build_model(scenario.model, splits.input_shape, splits.num_classes, mean, std)
    return model.to(device)


def _percent(metrics: Metrics) -> tuple[float, float]:
    return round(100 * metrics.acc, 2), round(100 * (metrics.asr or 0.0), 2)


def check_scenario(scenario: Scenario) -> None:
    """Raise `UserInputError` now for anything that would stop training later (data, trigger, model size)."""
    splits = load_splits(scenario.data)
    attack = _attack_for(scenario, splits)
    attack.poison_indices(splits.train.y, scenario.seed)
    model_shapes(scenario.model, splits.input_shape, splits.num_classes)  # on the meta device: a huge model costs nothing to refuse


def train_scenario(
    scenario: Scenario, with_clean_reference: bool = True, device: torch.device | str | None = None
) -> Iterator[BuildProgress]:
    """Poison the training set, train the backdoored model (and a clean one the same way), evaluate.

    Yields progress after every batch; the last item's `result` is the backdoored model, its card
    still without a sha256 (that comes with saving). Stop early by closing the generator.
    """
    device = torch.device(device) if device is not None else pick_device()
    splits = load_splits(scenario.data)
    attack = _attack_for(scenario, splits)
    model_shapes(scenario.model, splits.input_shape, splits.num_classes)  # refuse a model too large to build, before building it
    poisoned = attack.poison(splits.train, seed=scenario.seed)
    stages = [("backdoored model", poisoned.images)] + ([("clean reference model", splits.train)] if with_clean_reference else [])
    trained: list[tuple[ImageClassifier, float]] = []
    for number, (stage, data) in enumerate(stages):
        model = _fresh_model(scenario, splits, device)
        start = time.perf_counter()
        for step in train_model(model, data, scenario.train, seed=scenario.seed):
            yield BuildProgress(stage, (number + step.fraction) / len(stages), step)
        trained.append((model, round(time.perf_counter() - start, 1)))
    (model, seconds), clean = trained[0], (trained[1] if len(trained) > 1 else None)
    acc, asr = _percent(evaluate(model, splits.test, attack))
    clean_acc, clean_asr = _percent(evaluate(clean[0], splits.test, attack)) if clean else (None, None)
    card = Card(
        name=scenario.name,
        scenario=scenario.to_dict(),
        input_shape=splits.input_shape,
        num_classes=splits.num_classes,
        classes=splits.classes,
        trigger=attack.describe(),
        acc=acc,
        asr=asr,
        clean_acc=clean_acc,
        clean_asr=clean_asr,
        train_seconds=seconds,
        clean_train_seconds=clean[1] if clean else None,
        n_train=len(splits.train),
        n_poisoned=len(poisoned.poisoned_index),
        sha256="",
        versions=library_versions(),
    )
    yield BuildProgress("done", 1.0, result=BackdooredModel(scenario, model.eval(), card, attack))


def _save(result: BackdooredModel, weights: Path, card_path: Path) -> BackdooredModel:
    card = save_pair(result.model, result.card, weights, card_path)  # both or neither; a read-only or full folder: one message
    return BackdooredModel(result.scenario, result.model, card, result.attack)


def _check_destination(scenario: Scenario, out_dir: Path) -> None:
    """Before training: the folder can be written, and holds no other model under this scenario's name."""
    check_writable(out_dir)
    card_path = out_dir / f"{scenario.name}.json"
    if not card_path.exists():
        return
    try:
        same = read_card(card_path).scenario == scenario.to_dict()
    except UserInputError:
        same = False
    if not same:
        raise UserInputError(
            f"{out_dir} already holds a model named {scenario.name} trained with other settings: choose another output "
            f"folder, or delete {card_path.name} and {card_path.with_suffix('.safetensors').name} to replace it"
        )


def build(
    scenario: Scenario,
    out_dir: Path = ZOO_DIR,
    with_clean_reference: bool = True,
    on_progress: Callable[[BuildProgress], None] | None = None,
) -> BackdooredModel:
    """Train a scenario and write `<out_dir>/<name>.safetensors` and its card.

    Refused before training if `out_dir` cannot be written or already holds another model under
    the same name (same name and settings: a rebuild, which replaces it).
    """
    out_dir = Path(out_dir)
    _check_destination(scenario, out_dir)
    result = None
    for item in train_scenario(scenario, with_clean_reference):
        if on_progress is not None:
            on_progress(item)
        result = item.result or result
    assert result is not None
    return _save(result, out_dir / f"{scenario.name}.safetensors", out_dir / f"{scenario.name}.json")


def _shipped_match(scenario: Scenario, zoo_dir: Path) -> Path | None:
    card_path = Path(zoo_dir) / f"{scenario.name}.json"
    if card_path.is_file() and read_card(card_path).scenario == scenario.to_dict():
        return card_path
    return None


def _cache_stem(scenario: Scenario) -> str:
    return f"{scenario.name}-{scenario.fingerprint}"


def key_for(scenario: Scenario, zoo_dir: Path = ZOO_DIR) -> str:
    """The name `open_model` finds this scenario's model by: shipped name, else `<name>-<fingerprint>`."""
    return scenario.name if _shipped_match(scenario, zoo_dir) else _cache_stem(scenario)


def load_or_train(
    scenario: Scenario,
    cache_dir: Path | None = None,
    zoo_dir: Path = ZOO_DIR,
    on_progress: Callable[[BuildProgress], None] | None = None,
    device: torch.device | str | None = None,
) -> BackdooredModel:
    """The shipped checkpoint for this exact scenario, else the cached one, else train and cache it."""
    shipped = _shipped_match(scenario, zoo_dir)
    if shipped is not None:
        return _load(shipped.with_suffix(".safetensors"), shipped, device)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    stem = _cache_stem(scenario)  # not shipped: checked above
    weights, card_path = cache_dir / f"{stem}.safetensors", cache_dir / f"{stem}.json"
    if weights.is_file() and card_path.is_file():
        return _load(weights, card_path, device)
    check_writable(cache_dir, "the model cache")  # before training, not after
    result = None
    for item in train_scenario(scenario, with_clean_reference=False, device=device):
        if on_progress is not None:
            on_progress(item)
        result = item.result or result
    assert result is not None
    return _save(result, weights, card_path)


@dataclass(frozen=True)
class VerifyResult:
    """A shipped checkpoint re-evaluated here, next to what its card says."""

    name: str
    card_acc: float
    card_asr: float
    acc: float
    asr: float
    ok: bool
    message: str


def verify(zoo_dir: Path = ZOO_DIR, tolerance: float = 0.5) -> list[VerifyResult]:
    """Load every checkpoint (sha256 checked) and re-measure ACC and ASR; ok within `tolerance` points."""
    if not (isinstance(tolerance, (int, float)) and 0 <= tolerance <= 100):  # NaN fails this too
        raise UserInputError(f"the tolerance must be a number of points in [0, 100], got {tolerance}")
    results = []
    for card in list_zoo(zoo_dir):
        try:
            loaded = load_shipped(card.name, zoo_dir)
        except UserInputError as exc:
            results.append(VerifyResult(card.name, card.acc, card.asr, float("nan"), float("nan"), False, str(exc)))
            continue
        acc, asr = _percent(evaluate(loaded.model, loaded.splits().test, loaded.attack))
        ok = abs(acc - card.acc) <= tolerance and abs(asr - card.asr) <= tolerance
        message = "matches its card" if ok else f"differs from its card by more than {tolerance} points"
        results.append(VerifyResult(card.name, card.acc, card.asr, acc, asr, ok, message))
    return results


_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,160}")


def list_built(cache_dir: Path | None = None) -> list[Card]:
    """Models trained on request or uploaded on this server (cached on disk), newest first.

    A card's `name` is its key: `<scenario>-<fingerprint>` for a trained one, `upload-<sha>` for
    an upload. Unreadable files are skipped: a half-copied cache never breaks the list.
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
    """A model by key: a shipped scenario name, or a trained / uploaded model in the disk cache."""
    if not isinstance(key, str) or not _KEY.fullmatch(key) or ".." in key:
        raise UserInputError(f"{key!r} is not a model name")
    if (Path(zoo_dir) / f"{key}.json").is_file():
        return load_shipped(key, zoo_dir, device)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    card_path = folder / f"{key}.json"
    if not card_path.is_file():
        raise UserInputError(f"no model named {key!r} here: it is neither shipped nor trained or uploaded on this server")
    loaded = _load(card_path.with_suffix(".safetensors"), card_path, device)
    card = Card.from_dict({**loaded.card.to_dict(), "name": key})
    return BackdooredModel(loaded.scenario, loaded.model, card, loaded.attack)


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
    attack = _attack_for(scenario, splits)
    acc, asr = _percent(evaluate(model, splits.test, attack))
    card = Card(
        name=scenario.name, scenario=scenario.to_dict(), input_shape=splits.input_shape, num_classes=splits.num_classes,
        classes=splits.classes, trigger={**attack.describe(), "source": f"uploaded as {filename}"}, acc=acc, asr=asr,
        clean_acc=None, clean_asr=None, train_seconds=0.0, clean_train_seconds=None, n_train=len(splits.train),
        n_poisoned=0, sha256="", versions=library_versions(),
    )
    saved = _save(BackdooredModel(scenario, model, card, attack), folder / f"{key}.safetensors", folder / f"{key}.json")
    return BackdooredModel(scenario, model, Card.from_dict({**saved.card.to_dict(), "name": key}), attack)
