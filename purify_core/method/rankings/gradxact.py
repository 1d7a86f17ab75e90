"""Gradient x activation through captum: the activation-space first-order estimate.

For each image, a neuron's attribution summed over its positions is the first-order change of
that image's clean loss when the neuron is removed; the score is its mean absolute value.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import UserInputError
from ..neurons import NeuronScores, neuron_layers
from .base import Batches, per_channel, ranking_context
from .base import Ranking

__all__ = ["gradient_x_activation"]


def gradient_x_activation(model: nn.Module, loader: Batches) -> NeuronScores:
    """mean over images of |sum over positions of a * dL/da| at each neuron's (normalised) output."""
    from captum.attr import LayerGradientXActivation  # captum is slow to import; only this ranking needs it

    def per_image_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(x), y, reduction="none")

    layers = neuron_layers(model)
    sums: dict[str, torch.Tensor] = {}
    n = 0
    with ranking_context(model) as device:
        # one captum call covers every layer: one forward and one backward pass per batch
        method = LayerGradientXActivation(per_image_loss, [model.get_submodule(l.output_module) for l in layers])
        for x, y in loader:
            attributions = method.attribute(x.to(device), additional_forward_args=(y.to(device),))
            for layer, attribution in zip(layers, attributions):
                sums[layer.name] = sums.get(layer.name, 0) + per_channel(attribution.detach()).abs().sum(0)
            n += len(x)
    if n == 0:
        raise UserInputError("gradient x activation needs at least one clean image")
    return {name: (s / n).cpu() for name, s in sums.items()}


RANKING = Ranking("gradxact", "gradient x activation", "mean |activation x gradient of the clean loss| per neuron", "lowest",
                  gradient_x_activation)
