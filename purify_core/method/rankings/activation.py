"""Activation (Fine-Pruning's criterion) and TAC (the oracle ground truth).

Both read a neuron's post-activation: ReLU of the output of its layer, or of the BatchNorm that
follows it, recorded by forward hooks that are removed when the ranking ends.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ...attacks import Attack
from ...errors import UserInputError
from ..hooks import capture_outputs
from ..neurons import NeuronScores, neuron_layers
from .base import Batches, per_channel, ranking_context
from .base import Ranking

__all__ = ["mean_activation", "trigger_activated_change"]


def _spatial_mean(t: torch.Tensor) -> torch.Tensor:
    """(N, C, ...) -> (N, C): the mean over positions of each channel."""
    return per_channel(t) / (t[0, 0].numel() if t.ndim > 2 else 1)


PerImage = Callable[[Callable[[torch.Tensor], dict[str, torch.Tensor]], torch.Tensor], dict[str, torch.Tensor]]


@torch.no_grad()
def _mean_over_images(model: nn.Module, loader: Batches, per_image: PerImage, what: str) -> NeuronScores:
    """Average `per_image(post_activations, x)` -> {layer: (N, C)} over every image of `loader`."""
    layers = neuron_layers(model)
    sums: dict[str, torch.Tensor] = {}
    n = 0
    with ranking_context(model) as device, capture_outputs(model, [l.output_module for l in layers]) as outputs:

        def post_activations(x: torch.Tensor) -> dict[str, torch.Tensor]:
            model(x.to(device))
            return {l.name: torch.relu(outputs[l.output_module]) for l in layers}

        for x, _ in loader:
            for name, values in per_image(post_activations, x).items():
                sums[name] = sums.get(name, 0) + values.sum(0)
            n += len(x)
    if n == 0:
        raise UserInputError(f"{what} needs at least one image")
    return {name: (s / n).cpu() for name, s in sums.items()}


def mean_activation(model: nn.Module, loader: Batches) -> NeuronScores:
    """Each neuron's mean post-activation over the clean images and positions."""
    return _mean_over_images(
        model, loader, lambda acts, x: {name: _spatial_mean(a) for name, a in acts(x).items()}, "the activation ranking"
    )


def trigger_activated_change(model: nn.Module, loader: Batches, attack: Attack | None = None) -> NeuronScores:
    """TAC: the mean absolute change of each neuron's post-activation when the trigger is added.

    It needs the attack, which a defender does not have: it only grades the other rankings.
    """
    if attack is None:
        raise UserInputError("TAC is the evaluator's ground truth: it needs the scenario's attack")

    def change(acts, x: torch.Tensor) -> dict[str, torch.Tensor]:
        clean, triggered = acts(x), acts(attack.apply(x))
        return {name: _spatial_mean((triggered[name] - clean[name]).abs()) for name in clean}

    return _mean_over_images(model, loader, change, "TAC")


RANKINGS = (
    Ranking("activation", "activation", "mean post-activation on clean images (Fine-Pruning's criterion)", "lowest", mean_activation),
    Ranking("tac", "TAC (oracle)", "trigger-activated change: the evaluator's ground truth, needs the trigger", "highest",
            trigger_activated_change, needs_trigger=True),
)
