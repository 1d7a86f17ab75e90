"""Magnitude: the mean absolute incoming weight of each neuron (no data needed)."""

from __future__ import annotations

import torch
from torch import nn

from ..neurons import NeuronScores, neuron_layers
from .base import Ranking

__all__ = ["magnitude"]


@torch.no_grad()
def magnitude(model: nn.Module, loader: object = None) -> NeuronScores:
    """L1 norm of each neuron's incoming weights divided by their count; `loader` is ignored."""
    return {
        layer.name: model.get_submodule(layer.name).weight.detach().abs().flatten(1).mean(1).cpu()
        for layer in neuron_layers(model)
    }


RANKING = Ranking("magnitude", "magnitude", "mean |weight| of each neuron's incoming weights (reads no data)", "lowest", magnitude)
