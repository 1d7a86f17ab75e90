"""The backdoored-model zoo: shipped checkpoints, training on request, and a disk cache.

A shipped scenario lives in `assets/zoo/<name>.safetensors` beside its card `<name>.json`.
A scenario that is not shipped is trained on request (`train_scenario` yields progress) and
cached as `<cache>/<name>-<fingerprint>.{safetensors,json}`, so the same settings train once.
`build` remakes a checkpoint from its card deterministically: same seed, same machine, same bytes.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch

from ._utils import seeded
from .attacks import Attack, build_attack
from .checkpoints import Card, library_versions, load_checkpoint, read_card, save_checkpoint, write_card
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
]

ZOO_DIR = Path(__file__).resolve().parent.parent / "assets" / "zoo"
SHIPPED_ATTACKS = ("badnets", "blended", "wanet", "sig")


def shipped_scenarios() -> list[Scenario]:
    """The scenarios the zoo ships: the demo preset under every attack, seed 0."""
    return [scenario_preset("demo", attack) for attack in SHIPPED_ATTACKS]


def default_cache_dir() -> Path:
    """Where models trained on request are kept: `$PURIFY_LAB_CACHE` or `~/.cache/purify_lab`."""
    return Path(os.environ.get("PURIFY_LAB_CACHE", Path.home() / ".cache" / "purify_lab")) / "zoo"


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
    """Raise `UserInputError` now for anything that would stop training later (data, trigger, model)."""
    splits = load_splits(scenario.data)
    attack = _attack_for(scenario, splits)
    attack.poison_indices(splits.train.y, scenario.seed)
    build_model(scenario.model, splits.input_shape, splits.num_classes)


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
    sha = save_checkpoint(result.model, weights)
    card = Card.from_dict({**result.card.to_dict(), "sha256": sha})
    write_card(card, card_path)
    return BackdooredModel(result.scenario, result.model, card, result.attack)


def build(
    scenario: Scenario,
    out_dir: Path = ZOO_DIR,
    with_clean_reference: bool = True,
    on_progress: Callable[[BuildProgress], None] | None = None,
) -> BackdooredModel:
    """Train a scenario and write `<out_dir>/<name>.safetensors` and its card."""
    result = None
    for item in train_scenario(scenario, with_clean_reference):
        if on_progress is not None:
            on_progress(item)
        result = item.result or result
    assert result is not None
    out_dir = Path(out_dir)
    return _save(result, out_dir / f"{scenario.name}.safetensors", out_dir / f"{scenario.name}.json")


def _shipped_match(scenario: Scenario, zoo_dir: Path) -> Path | None:
    card_path = Path(zoo_dir) / f"{scenario.name}.json"
    if card_path.is_file() and read_card(card_path).scenario == scenario.to_dict():
        return card_path
    return None


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
    stem = f"{scenario.name}-{scenario.fingerprint}"
    weights, card_path = cache_dir / f"{stem}.safetensors", cache_dir / f"{stem}.json"
    if weights.is_file() and card_path.is_file():
        return _load(weights, card_path, device)
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
