"""Activation (Fine-Pruning's criterion) and TAC (the oracle ground truth).

Both read a neuron's post-activation: ReLU of the output of its layer, or of the BatchNorm that
follows it, recorded by forward hooks that are removed when the ranking ends.
"""

from __future__ import annotations

import torch
from torch import nn

from ..attacks import Attack
from ..errors import UserInputError
from ..hooks import capture_outputs
from ..neurons import NeuronScores, neuron_layers
from .base import Batches, per_channel, ranking_context

__all__ = ["mean_activation", "trigger_activated_change"]


def _post_activations(model: nn.Module, x: torch.Tensor, outputs: dict[str, torch.Tensor], layers) -> dict[str, torch.Tensor]:
    model(x)
    return {l.name: torch.relu(outputs[l.output_module]) for l in layers}


def _spatial_mean(t: torch.Tensor) -> torch.Tensor:
    """(N, C, ...) -> (N, C): the mean over positions of each channel."""
    return per_channel(t) / (t[0, 0].numel() if t.ndim > 2 else 1)


@torch.no_grad()
def mean_activation(model: nn.Module, loader: Batches) -> NeuronScores:
    """Each neuron's mean post-activation over the clean images and positions."""
    layers = neuron_layers(model)
    sums: dict[str, torch.Tensor] = {}
    n = 0
    with ranking_context(model) as device, capture_outputs(model, [l.output_module for l in layers]) as outputs:
        for x, _ in loader:
            acts = _post_activations(model, x.to(device), outputs, layers)
            for name, a in acts.items():
                sums[name] = sums.get(name, 0) + _spatial_mean(a).sum(0)
            n += len(x)
    if n == 0:
        raise UserInputError("the activation ranking needs at least one clean image")
    return {name: (s / n).cpu() for name, s in sums.items()}


@torch.no_grad()
def trigger_activated_change(model: nn.Module, loader: Batches, attack: Attack | None = None) -> NeuronScores:
    """TAC: the mean absolute change of each neuron's post-activation when the trigger is added.

    It needs the attack, which a defender does not have: it only grades the other rankings.
    """
    if attack is None:
        raise UserInputError("TAC is the evaluator's ground truth: it needs the scenario's attack")
    layers = neuron_layers(model)
    sums: dict[str, torch.Tensor] = {}
    n = 0
    with ranking_context(model) as device, capture_outputs(model, [l.output_module for l in layers]) as outputs:
        for x, _ in loader:
            clean = _post_activations(model, x.to(device), outputs, layers)
            triggered = _post_activations(model, attack.apply(x).to(device), outputs, layers)
            for name in clean:
                sums[name] = sums.get(name, 0) + _spatial_mean((triggered[name] - clean[name]).abs()).sum(0)
            n += len(x)
    if n == 0:
        raise UserInputError("TAC needs at least one image")
    return {name: (s / n).cpu() for name, s in sums.items()}
