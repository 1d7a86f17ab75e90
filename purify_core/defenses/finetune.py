"""Fine-tuning: the simplest baseline, the whole model trained on the clean defense set."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from ..data.image_set import ImageSet
from ..method.neurons import neuron_layers
from ..method.purify import PurifyConfig, fine_tune
from .base import Defense, Settings, ShouldStop, Steps


def run(model: nn.Module, clean: ImageSet, settings: Settings, config: PurifyConfig, evaluator, should_stop: ShouldStop | None) -> Steps:
    """No neuron is marked and nothing is penalised: the loop alone."""
    mask = {l.name: torch.zeros(l.width, dtype=torch.bool) for l in neuron_layers(model)}
    yield from fine_tune(model, clean, mask, replace(config, regularizer="none", threshold=0.0), evaluator, None, should_stop)


DEFENSE = Defense(
    name="finetune",
    label="Fine-tuning",
    summary="fine-tune the whole model on the clean defense set",
    source="baseline (as in Liu et al., RAID 2018)",
    selection="no setting of its own; the shared fine-tuning settings",
    params={},
    run=run,
)
