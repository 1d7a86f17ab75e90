"""Choosing how much to prune from clean data alone: the rule Fine-Pruning uses.

Prune more and more of the lowest-scored neurons while accuracy on the clean defense set stays
within `margin` of the unpruned model's; the trigger and ASR are never looked at.
"""

from __future__ import annotations

import copy
from typing import Sequence

from torch import nn

from ..data import ImageSet
from ..evaluate import accuracy
from ..marking import mark
from ..neurons import NeuronMask, NeuronScores, zero_neurons

__all__ = ["largest_safe_mask"]


def largest_safe_mask(
    model: nn.Module,
    scores: NeuronScores,
    defense: ImageSet,
    margin: float,
    fractions: Sequence[float],
    layers: Sequence[str] | None = None,
) -> tuple[NeuronMask, float]:
    """The largest fraction (in `fractions` order) whose pruning keeps defense ACC within `margin`.

    Returns that mask and its fraction; stops at the first fraction that breaks the margin.
    """
    work = copy.deepcopy(model)
    original = copy.deepcopy(model.state_dict())
    base = accuracy(model, defense)
    best = mark(scores, 0.0, "layer", layers)
    best_fraction = 0.0
    for fraction in fractions:
        candidate = mark(scores, fraction, "layer", layers)
        work.load_state_dict(original)
        zero_neurons(work, candidate)
        if accuracy(work, defense) < base - margin:
            break
        best, best_fraction = candidate, float(fraction)
    return best, best_fraction
