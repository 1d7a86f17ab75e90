"""A backdoored model: its scenario, weights, card and attack; trained from a scenario or loaded from a pair.

Every model the lab works on, shipped, trained on request, uploaded or imported, is a
`BackdooredModel`. Where its files live (the shipped zoo, the on-disk model store) is the business
of `zoo` and `model_store`; this module only trains one (`train_scenario` yields progress) and
reads or writes one weights + card pair.
"""

from __future__ import annotations

import time
from contextlib import closing
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Iterator

import torch

from .._utils import run_to_end, seeded
from ..attacks import Attack, build_attack
from .cards import Card
from .checkpoints import library_versions, load_checkpoint, model_shapes, read_card, read_pair, save_pair
from ..config import Scenario
from ..data.splits import Splits, load_splits
from ..models.evaluate import Metrics, evaluate, percent
from ..models.architectures import ImageClassifier, build_model, pick_device
from ..models.train import TrainProgress, train_model

__all__ = ["BackdooredModel", "BuildProgress", "Runner", "attack_for", "check_scenario", "train_scenario", "load_pair", "save_model",
           "train_and_save", "acc_asr_percent"]


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


def attack_for(scenario: Scenario, splits: Splits) -> Attack:
    """The scenario's attack, built for its data's image shape and classes."""
    return build_attack(scenario.attack, splits.input_shape, splits.num_classes)


def load_pair(weights: Path, card_path: Path, device: torch.device | str | None) -> BackdooredModel:
    """A model from its weights file and card, sha256-checked against the card (read again if another process replaced the pair meanwhile)."""
    def read() -> BackdooredModel:
        card = read_card(card_path)
        scenario = card.scenario_config
        model = load_checkpoint(weights, card, map_location=device or pick_device())
        attack = build_attack(scenario.attack, card.input_shape, card.num_classes)
        return BackdooredModel(scenario, model, card, attack)

    return read_pair(card_path, read)


def save_model(result: BackdooredModel, weights: Path, card_path: Path) -> BackdooredModel:
    """Write the weights and card (both or neither), and return the model with its card's sha256 filled in."""
    card = save_pair(result.model, result.card, weights, card_path)  # both or neither; a read-only or full folder: one message
    return BackdooredModel(result.scenario, result.model, card, result.attack)


def _fresh_model(scenario: Scenario, splits: Splits, device: torch.device) -> ImageClassifier:
    x = splits.train.x
    mean, std = x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    with seeded(scenario.seed):
        model = build_model(scenario.model, splits.input_shape, splits.num_classes, mean, std)
    return model.to(device)


def acc_asr_percent(metrics: Metrics) -> tuple[float, float]:
    """ACC and ASR in percent as a card holds them (a card's ASR is a number: 0 when there was none to measure)."""
    return float(percent(metrics.acc)), float(percent(metrics.asr or 0.0))


def check_scenario(scenario: Scenario) -> None:
    """Raise `UserInputError` now for anything that would stop training later (data, trigger, model size)."""
    splits = load_splits(scenario.data)
    attack = attack_for(scenario, splits)
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
    attack = attack_for(scenario, splits)
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
    acc, asr = acc_asr_percent(evaluate(model, splits.test, attack))
    clean_acc, clean_asr = acc_asr_percent(evaluate(clean[0], splits.test, attack)) if clean else (None, None)
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


#: Runs a job (a `functools.partial` of a generator function) and yields its items: where the training runs (the app's Ray pool).
Runner = Callable[[Callable[[], Iterator[BuildProgress]]], Iterator[BuildProgress]]


def train_and_save(scenario: Scenario, weights: Path, card_path: Path, with_clean_reference: bool = True,
                   on_progress: Callable[[BuildProgress], None] | None = None,
                   device: torch.device | str | None = None, run: Runner | None = None) -> BackdooredModel:
    """Train a scenario to its end (`on_progress` sees every step) and write its weights and card, both or neither.

    `run` decides where the training runs (default: here); the weights come back with the last item and are saved here.
    """
    job = partial(train_scenario, scenario, with_clean_reference, device)
    with closing(run(job) if run is not None else job()) as items:  # closed on an error or a Stop, which ends a remote job too
        result = run_to_end(items, on_progress).result
    assert result is not None, "train_scenario's last item carries the model"
    return save_model(result, weights, card_path)
