"""Choosing how much to prune from clean data alone: the rule Fine-Pruning uses.

Prune more and more of the lowest-scored neurons while accuracy on the clean defense set stays
within `margin` of the unpruned model's; the trigger and ASR are never looked at.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Iterator, Sequence

from torch import nn

from ..data.image_set import ImageSet
from ..models.evaluate import accuracy
from ..method.marking import mark
from ..method.neurons import NeuronMask, NeuronScores, pruned_copies
from ..method.purify import PurifyConfig, PurifyResult, StepMetrics, fine_tune
from ..params import ParamSpec

__all__ = ["largest_safe_mask", "prune_then_fine_tune", "MARGIN"]

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


def prune_then_fine_tune(
    model: nn.Module,
    clean: ImageSet,
    scores: NeuronScores,
    metric: str,
    margin: float,
    fractions: Sequence[float],
    config: PurifyConfig,
    evaluator,
    should_stop: Callable[[], bool] | None,
    layers: Sequence[str] | None = None,
) -> Iterator[StepMetrics | PurifyResult]:
    """The pruning defenses' one shape: prune the largest safe share of the lowest `scores`,
    then fine-tune with those neurons held at zero (the run's config records what was pruned)."""
    mask, fraction = largest_safe_mask(model, scores, clean, margin, fractions, layers)
    config = replace(config, regularizer="prune", threshold=fraction, metric=metric, direction="lowest",
                     **({"layers": tuple(layers)} if layers is not None else {}))
    yield from fine_tune(model, clean, mask, config, evaluator, None, should_stop)
