"""Training as a generator: the caller sees every batch and may stop at any time."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .._utils import model_device
from ..config import TrainConfig
from ..data.image_set import ImageSet
from ..errors import UserInputError

__all__ = ["TrainProgress", "train_model"]


@dataclass(frozen=True)
class TrainProgress:
    """One finished batch: where training is, the batch loss, and seconds since the start."""

    epoch: int
    epochs: int
    batch: int
    batches: int
    loss: float
    elapsed: float

    @property
    def fraction(self) -> float:
        """Share of all batches done, for a progress bar."""
        return ((self.epoch - 1) * self.batches + self.batch) / (self.epochs * self.batches)


def train_model(model: nn.Module, data: ImageSet, config: TrainConfig, seed: int) -> Iterator[TrainProgress]:
    """Train `model` in place on `data` with cross-entropy, yielding after every batch.

    The shuffle order comes from a private generator seeded with `seed`, and the learning rate
    follows a cosine schedule to zero, so the same seed on the same machine gives the same
    weights. Closing the generator stops training after the current batch.
    """
    device = model_device(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    batches = (len(data) + config.batch_size - 1) // config.batch_size
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs * batches)
    generator = torch.Generator().manual_seed(seed)
    start, explode_at = time.perf_counter(), None
    model.train()
    try:
        for epoch in range(1, config.epochs + 1):
            order = torch.randperm(len(data), generator=generator)
            for batch in range(batches):
                index = order[batch * config.batch_size : (batch + 1) * config.batch_size]
                x, y = data.x[index].to(device), data.y[index].to(device)
                loss = F.cross_entropy(model(x), y)
                value = float(loss.detach())
                explode_at = explode_at or max(50.0, 20.0 * value)  # cross-entropy far above its start: it diverged
                if not math.isfinite(value) or value > explode_at:
                    raise UserInputError(f"training diverged (loss {value:.3g} in epoch {epoch}): lower the learning rate ({config.lr})")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                yield TrainProgress(epoch, config.epochs, batch + 1, batches, float(loss.detach()), time.perf_counter() - start)
    finally:
        optimizer.zero_grad(set_to_none=True)
        model.eval()
