"""ACC, ASR and robust accuracy: what every page and benchmark reports.

ASR counts only test images whose true class is not the target: an image of the target class
that is classified as the target says nothing about the backdoor. Robust accuracy (RA, as
BackdoorBench reports it) is read from the same triggered images: the share still classified as
their true class. ASR + RA <= 1; the rest went to some third class.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .._utils import eval_mode, model_device
from ..attacks import Attack
from ..data.image_set import ImageSet

__all__ = ["Metrics", "percent", "SamplePredictions", "predict", "accuracy", "attack_success_rate", "triggered_rates",
           "evaluate", "sample_predictions"]


@dataclass(frozen=True)
class Metrics:
    """Clean accuracy, attack success rate and robust accuracy, as fractions in [0, 1] (ASR and RA
    None without an attack; RA also None where only ACC and ASR were kept, e.g. a streamed step)."""

    acc: float
    asr: float | None
    n_clean: int
    n_triggered: int
    ra: float | None = None

    def as_percent(self) -> dict[str, float | None]:
        return {"acc": percent(self.acc), "asr": percent(self.asr), "ra": percent(self.ra)}


def percent(fraction: float | None) -> float | None:
    """A fraction in [0, 1] in percent, rounded to 2 decimals: how every table and card shows ACC and ASR."""
    return None if fraction is None else round(100 * fraction, 2)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    """Predicted classes (on the CPU) for images `x`, in batches, in eval mode, mode restored after.

    Batches of 128 measured twice as fast as 500 on two CPU cores (activations stay in cache).
    """
    device = model_device(model)
    with eval_mode(model):
        out = [model(x[i : i + batch_size].to(device)).argmax(1).cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long)


def accuracy(model: nn.Module, data: ImageSet) -> float:
    return float((predict(model, data.x) == data.y).float().mean())


def triggered_rates(model: nn.Module, data: ImageSet, attack: Attack) -> tuple[float, float]:
    """(ASR, RA) from one pass over the triggered non-target images: the shares classified as the
    target and as their true class (nan, nan when every image is of the target class)."""
    keep = data.y != attack.target
    if not keep.any():
        return float("nan"), float("nan")
    pred = predict(model, attack.apply(data.x[keep]))
    return float((pred == attack.target).float().mean()), float((pred == data.y[keep]).float().mean())


def attack_success_rate(model: nn.Module, data: ImageSet, attack: Attack) -> float:
    """Share of non-target-class images classified as the target once the trigger is applied."""
    return triggered_rates(model, data, attack)[0]


def evaluate(model: nn.Module, test: ImageSet, attack: Attack | None = None) -> Metrics:
    """ACC on the clean test set and, given an attack, ASR and RA on its triggered non-target images."""
    asr, ra = triggered_rates(model, test, attack) if attack is not None else (None, None)
    n_triggered = int((test.y != attack.target).sum()) if attack is not None else 0
    return Metrics(acc=accuracy(model, test), asr=asr, n_clean=len(test), n_triggered=n_triggered, ra=ra)


@dataclass(frozen=True, eq=False)
class SamplePredictions:
    """A few test images, clean and triggered, with the model's predictions: the model card's picture."""

    clean: torch.Tensor
    triggered: torch.Tensor
    labels: torch.Tensor
    clean_pred: torch.Tensor
    triggered_pred: torch.Tensor


def sample_predictions(model: nn.Module, test: ImageSet, attack: Attack, n: int = 8, seed: int = 0) -> SamplePredictions:
    """`n` seeded non-target test images, one per class where possible, clean and with the trigger."""
    keep = torch.nonzero(test.y != attack.target).flatten()
    order = keep[torch.randperm(len(keep), generator=torch.Generator().manual_seed(seed))]
    first_per_class, rest, seen = [], [], set()
    for i in order.tolist():
        label = int(test.y[i])
        (rest if label in seen else first_per_class).append(i)
        seen.add(label)
    index = torch.tensor((first_per_class + rest)[:n], dtype=torch.long)
    clean = test.x[index]
    triggered = attack.apply(clean)
    return SamplePredictions(clean, triggered, test.y[index], predict(model, clean), predict(model, triggered))
