"""Marking: which neurons to purify, from any ranking (DESIGN 3.3)."""

from __future__ import annotations

from typing import Sequence

import torch

from ..errors import UserInputError
from .neurons import NeuronMask, NeuronScores

__all__ = ["SCOPES", "DIRECTIONS", "MAX_THRESHOLD", "check_threshold", "check_scope", "check_direction", "mark", "normalise_within_layer", "marked_count", "suspicion_order"]

SCOPES = ("layer", "global")
DIRECTIONS = ("lowest", "highest")


def normalise_within_layer(scores: torch.Tensor) -> torch.Tensor:
    """Min-max scale one layer's scores to [0, 1], so layers of different scale can be pooled."""
    s = scores.double()
    span = s.max() - s.min()
    return (s - s.min()) / span if span > 0 else torch.zeros_like(s)


def suspicion_order(scores: torch.Tensor, direction: str = "lowest") -> torch.Tensor:
    """Neuron indices from most to least suspicious (stable, so ties keep their index order)."""
    return torch.sort(scores.double(), descending=direction == "highest", stable=True).indices


#: The largest share of a layer that may be marked. The paper's premise (few neurons are infected)
#: needs at most half; pruning a layer's dormant channels (Fine-Pruning's premise, which the lab
#: default follows: 80% of the last conv layer's least active channels, this cap) goes further, and a
#: layer must keep some neurons.
MAX_THRESHOLD = 0.8


def check_threshold(threshold: float) -> None:
    """The share of neurons to mark: at most `MAX_THRESHOLD` of a layer (or of the pooled layers)."""
    if not 0.0 <= threshold <= MAX_THRESHOLD:
        raise UserInputError(f"the pruning threshold must be in [0, {MAX_THRESHOLD}], got {threshold}")


def check_scope(scope: str) -> None:
    if scope not in SCOPES:
        raise UserInputError(f"unknown marking scope {scope!r}; choose one of {', '.join(SCOPES)}")


def check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise UserInputError(f"unknown direction {direction!r}; choose one of {', '.join(DIRECTIONS)}")


def _check(threshold: float, scope: str, direction: str) -> None:
    check_threshold(threshold)
    check_scope(scope)
    check_direction(direction)


def mark(
    scores: NeuronScores,
    threshold: float,
    scope: str = "layer",
    layers: Sequence[str] | None = None,
    direction: str = "lowest",
) -> NeuronMask:
    """Mark the `threshold` fraction of neurons with the lowest (or highest) score.

    `layer` scope marks that fraction in each layer in scope; `global` pools the layers in scope
    after min-max scaling each one and marks that fraction of the pool. Layers out of scope get
    an all-False mask, so every mask has every layer of `scores`.
    """
    _check(threshold, scope, direction)
    in_scope = list(scores) if layers is None else list(layers)
    unknown = [n for n in in_scope if n not in scores]
    if unknown:
        raise UserInputError(f"no scores for layer {', '.join(unknown)}")
    mask = {name: torch.zeros(len(s), dtype=torch.bool) for name, s in scores.items()}
    if scope == "layer":
        for name in in_scope:
            k = round(threshold * len(scores[name]))
            mask[name][suspicion_order(scores[name], direction)[:k]] = True
        return mask
    pooled = torch.cat([normalise_within_layer(scores[name]) for name in in_scope])
    owners = [(name, i) for name in in_scope for i in range(len(scores[name]))]
    for j in suspicion_order(pooled, direction)[: round(threshold * len(pooled))].tolist():
        name, i = owners[j]
        mask[name][i] = True
    return mask


def marked_count(mask: NeuronMask) -> int:
    return int(sum(int(m.sum()) for m in mask.values()))
