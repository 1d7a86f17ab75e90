"""Does it stay erased? The re-activation check (the evaluator's view: it uses the trigger).

Min et al. (NeurIPS 2024, arXiv 2410.09838, "superficial safety") show that a purified model can
regain its backdoor after a few epochs of fine-tuning on a handful of poisoned images mixed with
clean ones, much faster than a clean model learns it from scratch. This check does that to
private copies of the purified, the backdoored and a clean model, with the same small poisoned
set, the same optimiser and the same shuffle seed, and reports the ASR each bounces back to.

It needs the trigger and poisoned data, so it is an evaluator's tool only: nothing in a defense
reads it. The models given are never changed.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from typing import Any, Iterator

import torch
from torch import nn

from ..attacks import Attack
from ..config import TrainConfig, check_seed
from ..data.image_set import ImageSet
from ..errors import UserInputError
from ..models.evaluate import Metrics, evaluate
from ..models.train import TrainProgress, train_model

__all__ = ["ReactivateConfig", "ReactivateProgress", "ReactivationRow", "ReactivationReport",
           "reactivation_set", "reactivate", "run_reactivation"]

#: The most images a re-tuning set may hold: the check is meant to be brief.
MAX_IMAGES = 5000


@dataclass(frozen=True)
class ReactivateConfig:
    """The re-tuning attack: `poisoned` triggered images among `images`, then `epochs` of SGD.

    Defaults follow the spirit of Min et al.'s retuning attack, scaled to the lab's 3,800-image
    training sets: a small set (100 images, about 2.6% of the training data) of which 10 carry
    the trigger, 5 epochs, SGD lr 0.01 with momentum 0.9 and a cosine schedule (the lab's
    training loop), batch 32.
    """

    images: int = 100
    poisoned: int = 10
    epochs: int = 5
    lr: float = 0.01
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [
            (_whole(self.images) and 1 <= self.images <= MAX_IMAGES, f"the re-tuning set must hold 1 to {MAX_IMAGES} images, got {self.images}"),
            (_whole(self.poisoned) and 1 <= self.poisoned, f"the number of poisoned images must be a whole number >= 1, got {self.poisoned}"),
            (not _whole(self.poisoned) or not _whole(self.images) or self.poisoned <= self.images,
             f"{self.poisoned} poisoned images do not fit in a re-tuning set of {self.images}"),
            (_whole(self.epochs) and 1 <= self.epochs <= 100, f"re-tuning epochs must be a whole number from 1 to 100, got {self.epochs}"),
            (isinstance(self.lr, (int, float)) and 0.0 < self.lr <= 1.0, f"the re-tuning learning rate must be in (0, 1], got {self.lr}"),
            (_whole(self.batch_size) and 1 <= self.batch_size <= 4096, f"the re-tuning batch size must be 1 to 4096, got {self.batch_size}"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserInputError(message)
        check_seed(self.seed, "the re-tuning seed")  # the one seed rule, as for training and cards

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def reactivation_set(train: ImageSet, attack: Attack, config: ReactivateConfig) -> ImageSet:
    """`config.images` training images, `config.poisoned` of them triggered the way the attack poisons.

    A dirty-label attack triggers non-target images and relabels them to the target; a clean-label
    one (SIG) triggers target-class images and keeps their labels. Drawn with `config.seed`.
    """
    eligible = (train.y == attack.target) if attack.clean_label else (train.y != attack.target)
    pool_poison, pool_clean = torch.nonzero(eligible).flatten(), torch.nonzero(~eligible).flatten()
    which = "target-class" if attack.clean_label else "non-target"
    if config.poisoned > len(pool_poison):
        raise UserInputError(f"{config.poisoned} poisoned images asked for, but the training set has only {len(pool_poison)} {which} images")
    if config.images > len(train):
        raise UserInputError(f"a re-tuning set of {config.images} images asked for, but the training set has only {len(train)}")
    generator = torch.Generator().manual_seed(config.seed)
    poison = pool_poison[torch.randperm(len(pool_poison), generator=generator)]
    chosen = poison[: config.poisoned]
    # The clean images come from every class, the unused eligible ones included.
    rest = torch.cat([poison[config.poisoned :], pool_clean])
    clean = rest[torch.randperm(len(rest), generator=generator)[: config.images - config.poisoned]]
    x = torch.cat([attack.apply(train.x[chosen]), train.x[clean]])
    y = torch.cat([train.y[chosen] if attack.clean_label else torch.full((len(chosen),), attack.target, dtype=torch.long), train.y[clean]])
    return ImageSet(x, y)


@dataclass(frozen=True)
class ReactivationRow:
    """One model before and after the re-tuning attack (ACC and ASR in [0, 1])."""

    model: str
    before: Metrics
    after: Metrics
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        before, after = self.before.as_percent(), self.after.as_percent()
        return {"model": self.model, "acc_before": before["acc"], "asr_before": before["asr"],
                "acc_after": after["acc"], "asr_after": after["asr"], "seconds": round(self.seconds, 2)}


@dataclass(frozen=True)
class ReactivationReport:
    """Every model's bounce-back under the same attack and the same re-tuning."""

    config: ReactivateConfig
    rows: tuple[ReactivationRow, ...]
    n_poisoned: int
    n_images: int

    def row(self, model: str) -> ReactivationRow | None:
        return next((r for r in self.rows if r.model == model), None)

    def to_dict(self) -> dict[str, Any]:
        return {"oracle": "the re-tuning set and ASR use the trigger: the evaluator's view",
                "config": self.config.to_dict(), "rows": [r.to_dict() for r in self.rows]}


@dataclass(frozen=True)
class ReactivateProgress:
    """One re-tuning batch of one model (`index` of `count`); the last item carries the report."""

    model: str
    index: int
    count: int
    step: TrainProgress | None = None
    report: ReactivationReport | None = None

    @property
    def fraction(self) -> float:
        inner = self.step.fraction if self.step is not None else 0.0
        return 1.0 if self.report is not None else (self.index + inner) / max(1, self.count)


def reactivate(
    models: dict[str, nn.Module], train: ImageSet, test: ImageSet, attack: Attack, config: ReactivateConfig = ReactivateConfig()
) -> Iterator[ReactivateProgress]:
    """Re-tune a private copy of every model on the same poisoned set; yield progress, then the report.

    `models` maps a label ("purified", "backdoored", "clean") to a model; none of them is changed.
    Each copy sees the same images in the same order (the same seed), so only the starting
    weights differ. Closing the generator stops after the current batch.
    """
    if not models:
        raise UserInputError("no model to re-tune")
    retune = reactivation_set(train, attack, config)
    schedule = TrainConfig(epochs=config.epochs, batch_size=config.batch_size, lr=config.lr)
    rows = []
    for index, (label, model) in enumerate(models.items()):
        start = time.perf_counter()
        before = evaluate(model, test, attack)
        work = copy.deepcopy(model)
        for step in train_model(work, retune, schedule, seed=config.seed):
            yield ReactivateProgress(label, index, len(models), step)
        if not all(bool(torch.isfinite(p).all()) for p in work.parameters()):
            raise UserInputError(f"re-tuning the {label} model diverged: lower the re-tuning learning rate ({config.lr})")
        rows.append(ReactivationRow(label, before, evaluate(work, test, attack), time.perf_counter() - start))
    report = ReactivationReport(config, tuple(rows), config.poisoned, config.images)
    yield ReactivateProgress("done", len(models), len(models), report=report)


def run_reactivation(models: dict[str, nn.Module], train: ImageSet, test: ImageSet, attack: Attack,
                     config: ReactivateConfig = ReactivateConfig()) -> ReactivationReport:
    """`reactivate` driven to its report (the CLI and the benchmark)."""
    item = None
    for item in reactivate(models, train, test, attack, config):
        pass
    assert item is not None and item.report is not None
    return item.report
