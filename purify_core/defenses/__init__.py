"""Baseline defenses, run on the same model, clean defense set, loop and evaluation as ours.

- `finetune`: plain fine-tuning of the whole model on the defense set.
- `fine-pruning` (Liu et al. 2018): prune the least active channels of the last conv layer while
  defense-set accuracy stays within a margin, then fine-tune with them held at zero.
- `magnitude-pruning`: the same, with the smallest-weight neurons of every layer.

Each is a generator like `purify`: `StepMetrics` items, then a `PurifyResult`. None reads the
trigger or ASR to choose its settings; the evaluator only reports.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Callable, Iterator

import torch
from torch import nn

from ..data.image_set import ImageSet
from ..errors import UserInputError
from ..method.neurons import neuron_layers
from ..method.purify import Evaluator, PurifyConfig, PurifyResult, StepMetrics, fine_tune
from ..method.rankings import magnitude, mean_activation
from ..method.rankings.base import batches
from .pruning import largest_safe_mask

__all__ = ["DEFENSES", "run_defense", "largest_safe_mask"]

DEFENSES = ("finetune", "fine-pruning", "magnitude-pruning")
#: Defense-set accuracy a pruning defense may give up (Fine-Pruning's paper used 4%).
DEFAULT_MARGIN = 0.04


def run_defense(
    name: str,
    model: nn.Module,
    defense: ImageSet,
    config: PurifyConfig | None = None,
    evaluator: Evaluator | None = None,
    margin: float = DEFAULT_MARGIN,
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[StepMetrics | PurifyResult]:
    """Run a baseline defense on a private copy of `model`; `config` sets the fine-tuning."""
    if name not in DEFENSES:
        raise UserInputError(f"unknown defense {name!r}; choose one of {', '.join(DEFENSES)}")
    if not 0.0 <= margin <= 1.0:
        raise UserInputError(f"the accuracy margin must be in [0, 1], got {margin}")
    config = replace(config or PurifyConfig(), dynamic=False)
    work = copy.deepcopy(model)
    layers = neuron_layers(work)
    if name == "finetune":
        mask = {l.name: torch.zeros(l.width, dtype=torch.bool) for l in layers}
        config = replace(config, regularizer="none", threshold=0.0)
    elif name == "fine-pruning":
        last = ([l for l in layers if l.kind == "conv"] or layers)[-1]
        scores = mean_activation(work, batches(defense))
        fractions = [k / last.width for k in range(1, last.width // 2 + 1)]  # one channel more each time, up to half
        mask, fraction = largest_safe_mask(work, scores, defense, margin, fractions, [last.name])
        config = replace(config, regularizer="prune", threshold=fraction, metric="activation", direction="lowest", layers=(last.name,))
    else:
        scores = magnitude(work)
        fractions = [f / 100 for f in range(5, 51, 5)]
        mask, fraction = largest_safe_mask(work, scores, defense, margin, fractions)
        config = replace(config, regularizer="prune", threshold=fraction, metric="magnitude", direction="lowest")
    yield from fine_tune(work, defense, mask, config, evaluator, None, should_stop)

