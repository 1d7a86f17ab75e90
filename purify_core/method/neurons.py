"""Which modules hold neurons, and which parameters each neuron owns.

A neuron is an output channel of a `Conv2d` or an output unit of a hidden `Linear`; the last
`Linear` is the classifier, whose units are classes, not neurons. A neuron owns its incoming
weights, its bias, and the scale and shift of a BatchNorm that directly follows its layer
(found as the next registered module with a matching width: true for every architecture we
build, where modules are registered in the order they run).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Iterable, Iterator

import torch
from torch import nn

from ..errors import UserInputError

__all__ = [
    "NeuronLayer", "NeuronScores", "NeuronMask", "classifier_name", "neuron_layers", "owned_parameters", "LAYER_PRESETS", "select_layers",
    "zero_neurons", "pruned_copies",
]

#: One score per neuron, keyed by layer name: the contract every ranking returns.
NeuronScores = dict[str, torch.Tensor]
#: One bool per neuron (True = marked), keyed by layer name.
NeuronMask = dict[str, torch.Tensor]

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


@dataclass(frozen=True)
class NeuronLayer:
    """A layer of neurons: its module name, the BatchNorm after it (if any), and its width."""

    name: str
    kind: str  # "conv" or "linear"
    width: int
    norm: str | None

    @property
    def output_module(self) -> str:
        """The module whose output is the neuron's (normalised) pre-activation."""
        return self.norm or self.name


def classifier_name(model: nn.Module, needed_by: str = "this step") -> str:
    """The module name of the classifier head: the last `nn.Linear` (never a neuron layer)."""
    linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise UserInputError(f"{needed_by} needs a model whose classifier is a final nn.Linear layer; this one has none")
    return linears[-1]


def neuron_layers(model: nn.Module) -> list[NeuronLayer]:
    """Every conv and hidden linear layer of `model`, in registration order."""
    modules = list(model.named_modules())
    linears = [name for name, m in modules if isinstance(m, nn.Linear)]
    classifier = linears[-1] if linears else None
    layers = []
    for i, (name, module) in enumerate(modules):
        if isinstance(module, nn.Conv2d) and module.groups == 1:
            kind, width = "conv", module.out_channels
        elif isinstance(module, nn.Linear) and name != classifier:
            kind, width = "linear", module.out_features
        else:
            continue
        following = modules[i + 1] if i + 1 < len(modules) else None
        norm = following[0] if following and isinstance(following[1], _NORMS) and following[1].num_features == width else None
        layers.append(NeuronLayer(name, kind, width, norm))
    if not layers:
        raise UserInputError("this model has no conv or hidden linear layer: there are no neurons to rank")
    return layers


def owned_parameters(model: nn.Module, layer: NeuronLayer) -> dict[str, torch.Tensor]:
    """The parameters neuron k of `layer` owns, by full name; row k of each belongs to neuron k."""
    owned = {f"{layer.name}.{n}": p for n, p in model.get_submodule(layer.name).named_parameters(recurse=False)}
    if layer.norm:
        norm = model.get_submodule(layer.norm)
        owned.update({f"{layer.norm}.{n}": p for n, p in norm.named_parameters(recurse=False)})
    return owned


#: Named choices of layers in scope for marking.
LAYER_PRESETS = ("all", "conv", "last-conv", "final-linear")


def select_layers(layers: list[NeuronLayer], preset: str | list[str] | tuple[str, ...] = "all") -> list[NeuronLayer]:
    """The layers a preset (or an explicit list of names) puts in scope.

    `final-linear` is the last hidden linear layer: the authors' code purified only the weights
    into the final linear layer; here the neurons are that layer's inputs, the last hidden units.
    `last-conv` is the last conv layer (where Fine-Pruning prunes).
    """
    if isinstance(preset, str):
        if preset == "all":
            chosen = layers
        elif preset == "conv":
            chosen = [l for l in layers if l.kind == "conv"]
        elif preset == "last-conv":
            chosen = [l for l in layers if l.kind == "conv"][-1:]
        elif preset == "final-linear":
            chosen = [l for l in layers if l.kind == "linear"][-1:]
        else:
            raise UserInputError(f"unknown layer preset {preset!r}; choose one of {', '.join(LAYER_PRESETS)} or list layer names")
    else:
        by_name = {l.name: l for l in layers}
        unknown = [n for n in preset if n not in by_name]
        if unknown:
            raise UserInputError(f"no neuron layer named {', '.join(unknown)}; this model has {', '.join(by_name)}")
        chosen = [by_name[n] for n in preset]
    if not chosen:
        raise UserInputError(f"the layer choice {preset!r} selects no layer of this model")
    return chosen


def neuron_rows(param: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """A per-neuron bool (or float) vector shaped to broadcast over a parameter's rows."""
    return keep.view(-1, *([1] * (param.ndim - 1)))


@torch.no_grad()
def zero_neurons(model: nn.Module, mask: NeuronMask) -> None:
    """Set every parameter that a marked neuron owns to zero, in place: the neuron then outputs 0."""
    for layer in neuron_layers(model):
        marked = mask.get(layer.name)
        if marked is None or not marked.any():
            continue
        for param in owned_parameters(model, layer).values():
            param.masked_fill_(neuron_rows(param, marked.to(param.device)), 0.0)


def pruned_copies(model: nn.Module, masks: Iterable[NeuronMask]) -> Iterator[tuple[NeuronMask, nn.Module]]:
    """For each mask in turn (read lazily), that mask and one private copy of `model` with it zeroed.

    The copy is made once and reset to `model`'s weights before each mask, so `model` is never
    changed; use each yielded model before asking for the next.
    """
    work = copy.deepcopy(model)
    original = copy.deepcopy(model.state_dict())
    for mask in masks:
        work.load_state_dict(original)
        zero_neurons(work, mask)
        yield mask, work
