"""Per-neuron scores before and after purification, for one picture of the infected neurons going quiet.

Benign salience (the defender's ranking) and TAC (the evaluator's ground truth: it uses the
trigger) are computed on the backdoored and the purified model with the same clean images.
Every ranking works on a private copy (`rank_neurons`), so neither model is changed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..attacks import Attack
from ..data.image_set import ImageSet
from ..method.neurons import NeuronMask, NeuronScores
from ..method.rankings import rank_neurons

__all__ = ["NeuronChange", "neuron_change", "neuron_scores_of", "infected"]


@dataclass(frozen=True, eq=False)
class NeuronChange:
    """Scores per layer before and after, for each metric ("salience", "tac")."""

    before: dict[str, NeuronScores]
    after: dict[str, NeuronScores]

    def layer_means(self, metric: str) -> list[dict[str, float | str]]:
        """Mean score of each layer before and after (a table beside the strips)."""
        return [{"layer": name, "before": float(self.before[metric][name].mean()), "after": float(self.after[metric][name].mean())}
                for name in self.before[metric]]


def neuron_scores_of(model: nn.Module, clean: ImageSet, attack: Attack, variant: str = "abs") -> dict[str, NeuronScores]:
    """Benign salience and TAC of every neuron of one model (the app caches the backdoored model's)."""
    return {"salience": rank_neurons(model, clean, "salience", variant=variant), "tac": rank_neurons(model, clean, "tac", attack=attack)}


def neuron_change(before: nn.Module, after: nn.Module, clean: ImageSet, attack: Attack, variant: str = "abs") -> NeuronChange:
    """Benign salience and TAC of every neuron of both models on the same clean images."""
    return NeuronChange(neuron_scores_of(before, clean, attack, variant), neuron_scores_of(after, clean, attack, variant))


def infected(tac: NeuronScores, top: float = 0.05) -> NeuronMask:
    """The evaluator's infected neurons: each layer's top `top` share by TAC (at least one)."""
    mask = {}
    for name, s in tac.items():
        k = max(1, round(top * len(s)))
        keep = torch.zeros(len(s), dtype=torch.bool)
        keep[torch.topk(s, k).indices] = True
        mask[name] = keep
    return mask
