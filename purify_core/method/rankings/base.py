"""What every ranking shares: batches of clean data, a model left exactly as it was given, and
the `Ranking` record each ranking module registers itself with (`RANKING = Ranking(...)`)."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Union

import torch
from torch import nn

from ..._utils import eval_mode, model_device
from ...data.image_set import ImageSet
from ...params import ParamSpec
from ..neurons import NeuronScores

__all__ = ["Batches", "Ranking", "batches", "as_batches", "ranking_context", "per_channel"]

#: A re-iterable source of (images, labels) batches, like a DataLoader without shuffling.
Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class Ranking:
    """One ranking: what it is, which end its paper calls infected, and how to compute it.

    `score(model, batches, **settings)` -> {layer: scores}; a trigger-needing ranking (TAC) also
    gets `attack=` and is the evaluator's ground truth only: never offered to mark neurons.
    """

    name: str  # the CLI value (`rank --metric NAME`), lower-case
    label: str  # what charts and menus call it
    summary: str  # one line: what it measures
    expects: str  # "lowest" or "highest": which end its paper calls infected
    score: Callable[..., NeuronScores]
    params: dict[str, ParamSpec] = field(default_factory=dict)
    needs_trigger: bool = False


def batches(data: ImageSet, batch_size: int = 64) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`data` cut into batches in a fixed order (rankings must be reproducible)."""
    return [(data.x[i : i + batch_size], data.y[i : i + batch_size]) for i in range(0, len(data), batch_size)]


def as_batches(loader: Union[ImageSet, Batches], batch_size: int = 64) -> Batches:
    return batches(loader, batch_size) if isinstance(loader, ImageSet) else loader


@contextmanager
def ranking_context(model: nn.Module) -> Iterator[torch.device]:
    """Eval mode (BatchNorm statistics frozen) for the body, the caller's mode restored after."""
    with eval_mode(model):
        yield model_device(model)


def per_channel(t: torch.Tensor) -> torch.Tensor:
    """Sum a (N, C, ...) tensor over everything after the channel axis: (N, C)."""
    return t.flatten(2).sum(2) if t.ndim > 2 else t
