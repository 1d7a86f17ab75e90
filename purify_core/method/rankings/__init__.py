"""Neuron rankings: one score per neuron per layer, all behind one contract.

`rank_neurons(model, loader, metric)` -> {layer name: 1-D tensor}. Every ranking leaves the model
exactly as it was given: parameters, `.grad`, train/eval mode and hooks.
"""

from __future__ import annotations

from typing import Any, Callable, Union

from torch import nn

from ...attacks import Attack
from ...data.image_set import ImageSet
from ..._utils import private_copy
from ...errors import UserInputError
from ..neurons import NeuronScores
from .activation import mean_activation, trigger_activated_change
from .base import Batches, as_batches, batches
from .gradxact import gradient_x_activation
from .magnitude import magnitude
from .salience import SALIENCE_VARIANTS, benign_salience

__all__ = [
    "METRICS",
    "DEFENDER_METRICS",
    "METRIC_LABELS",
    "SALIENCE_VARIANTS",
    "Batches",
    "batches",
    "rank_neurons",
    "benign_salience",
    "magnitude",
    "mean_activation",
    "gradient_x_activation",
    "trigger_activated_change",
]

METRICS: dict[str, Callable[..., NeuronScores]] = {
    "salience": benign_salience,
    "activation": mean_activation,
    "magnitude": magnitude,
    "gradxact": gradient_x_activation,
    "tac": trigger_activated_change,
}
#: The rankings a defender can compute (TAC needs the trigger).
DEFENDER_METRICS = ("salience", "activation", "magnitude", "gradxact")
METRIC_LABELS = {
    "salience": "benign salience",
    "activation": "activation",
    "magnitude": "magnitude",
    "gradxact": "gradient x activation",
    "tac": "TAC (oracle)",
}


def rank_neurons(
    model: nn.Module,
    loader: Union[ImageSet, Batches],
    metric: str = "salience",
    *,
    attack: Attack | None = None,
    batch_size: int = 64,
    **options: Any,
) -> NeuronScores:
    """Score every neuron of `model` on clean data with the named metric (on a private copy of it).

    `options` go to the metric (`variant`, `eta` for salience); `attack` only to TAC.
    """
    if metric not in METRICS:
        raise UserInputError(f"unknown ranking {metric!r}; choose one of {', '.join(METRICS)}")
    data = as_batches(loader, batch_size)
    model = private_copy(model)  # hooks and functional_call touch the module: never on one that others use
    if metric == "tac":
        return trigger_activated_change(model, data, attack=attack)
    if options and metric != "salience":
        raise UserInputError(f"the {metric} ranking takes no options (got {', '.join(options)})")
    return METRICS[metric](model, data, **options)
