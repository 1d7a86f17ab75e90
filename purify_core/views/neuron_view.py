"""One neuron up close: its filters and where on the image it fires (Salience Maps page)."""

from __future__ import annotations

import torch
from torch import nn

from .._utils import eval_mode, model_device, private_copy
from ..errors import UserInputError
from ..method.hooks import capture_outputs
from ..method.neurons import NeuronLayer, neuron_layers

__all__ = ["find_layer", "neuron_filters", "mean_activation_map"]


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
