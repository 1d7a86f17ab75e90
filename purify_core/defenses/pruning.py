"""Choosing how much to prune from clean data alone: the rule Fine-Pruning uses.

Prune more and more of the lowest-scored neurons while accuracy on the clean defense set stays
within `margin` of the unpruned model's; the trigger and ASR are never looked at.
"""

from __future__ import annotations

from typing import Sequence

from torch import nn

from ..data.image_set import ImageSet
from ..models.evaluate import accuracy
from ..method.marking import mark
from ..method.neurons import NeuronMask, NeuronScores, pruned_copies
from ..params import ParamSpec

__all__ = ["largest_safe_mask", "MARGIN"]

#: The pruning defenses' one setting: defense-set accuracy they may give up (Fine-Pruning's paper used 4%).
MARGIN = ParamSpec(0.04, "clean defense-set accuracy the pruning may give up (a fraction)", low=0.0, high=1.0)


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
    base = accuracy(model, defense)
    best = mark(scores, 0.0, "layer", layers)
    best_fraction = 0.0
    candidates = (mark(scores, fraction, "layer", layers) for fraction in fractions)  # lazy: stops with the loop
    for fraction, (candidate, pruned) in zip(fractions, pruned_copies(model, candidates)):
        if accuracy(pruned, defense) < base - margin:
            break
        best, best_fraction = candidate, float(fraction)
    return best, best_fraction
