"""One neuron up close: its filters, where on the image it fires, and which neuron a click or a fresh
close-up means (Salience Maps page)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import nn

from .._utils import eval_mode, model_device, private_copy
from ..errors import UserInputError
from ..method.hooks import capture_outputs
from ..method.marking import suspicion_order
from ..method.neurons import NeuronLayer, neuron_layers

__all__ = ["find_layer", "neuron_filters", "mean_activation_map", "picked_neuron", "first_neuron"]


def find_layer(model: nn.Module, name: str) -> NeuronLayer:
    for layer in neuron_layers(model):
        if layer.name == name:
            return layer
    raise UserInputError(f"no neuron layer named {name!r}")


def neuron_filters(model: nn.Module, layer_name: str, index: int, limit: int = 16) -> torch.Tensor:
    """The incoming weights of one neuron: (inputs, kH, kW) for a conv (first `limit` inputs), (1, 1, n) for a linear."""
    layer = find_layer(model, layer_name)
    if not 0 <= index < layer.width:
        raise UserInputError(f"{layer_name} has neurons 0..{layer.width - 1}, not {index}")
    weight = model.get_submodule(layer_name).weight.detach().cpu()[index]
    return weight[:limit] if weight.ndim == 3 else weight.view(1, 1, -1)


@torch.no_grad()
def mean_activation_map(model: nn.Module, images: torch.Tensor, layer_name: str, index: int, batch_size: int = 256) -> torch.Tensor:
    """The neuron's post-ReLU activation averaged over `images`: (h, w) for a conv, (1, 1) for a linear."""
    layer = find_layer(model, layer_name)
    if not 0 <= index < layer.width:
        raise UserInputError(f"{layer_name} has neurons 0..{layer.width - 1}, not {index}")
    model = private_copy(model)  # the hook goes on a copy: others may be using this model right now
    device, total = model_device(model), None
    with eval_mode(model), capture_outputs(model, [layer.output_module]) as outputs:
        for i in range(0, len(images), batch_size):
            model(images[i : i + batch_size].to(device))
            a = torch.relu(outputs[layer.output_module][:, index]).sum(0)
            total = a if total is None else total + a
    if total is None:
        raise UserInputError("no images to average over")
    mean = (total / len(images)).cpu()
    return mean if mean.ndim == 2 else mean.view(1, 1)


def picked_neuron(points: Sequence[Mapping[str, Any]], scores: Mapping[str, torch.Tensor]) -> tuple[str, int] | None:
    """The (layer, neuron) a chart selection names: its last point whose y is a layer of `scores` and
    whose x is a neuron index of that layer. None for an empty selection (a click that deselects) or a
    point that names no neuron: the selection comes from the browser, so nothing in it is trusted."""
    for point in reversed(points):
        layer, x = point.get("y"), point.get("x")
        if not isinstance(layer, str) or layer not in scores or isinstance(x, bool) or not isinstance(x, (int, float)):
            continue
        if float(x).is_integer() and 0 <= int(x) < len(scores[layer]):
            return layer, int(x)
    return None


def first_neuron(scores: torch.Tensor, direction: str = "lowest") -> int:
    """The neuron a layer's close-up opens on: the most suspicious in the marking's direction (the first
    one marked), passing over neurons whose score is exactly 0. A neuron that never fires on the clean
    images scores 0 and its activation maps are blank, so opening on it shows nothing."""
    order = suspicion_order(scores, direction).tolist()
    return next((i for i in order if float(scores[i]) != 0.0), order[0])
