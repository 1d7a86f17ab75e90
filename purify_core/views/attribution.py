"""Attributions through captum: which pixels a prediction rests on (the Explain page).

On a backdoored model the trigger should light up for triggered images; after purification it
should fade. Every method runs in eval mode on the given model and leaves it as it was.
"""

from __future__ import annotations

import torch
from torch import nn

from .._utils import eval_mode, model_device, private_copy
from ..errors import UserInputError
from ..method.neurons import neuron_layers

__all__ = ["ATTRIBUTIONS", "attribute"]

ATTRIBUTIONS = ("integrated-gradients", "saliency", "gradcam")


def attribute(model: nn.Module, images: torch.Tensor, method: str = "integrated-gradients", target: torch.Tensor | None = None) -> torch.Tensor:
    """(N, H, W) non-negative attribution maps for each image's `target` class (default: its prediction).

    `gradcam` uses the last conv layer and is upsampled to the image size.
    """
    from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Saliency  # slow import: only here

    if method not in ATTRIBUTIONS:
        raise UserInputError(f"unknown attribution {method!r}; choose one of {', '.join(ATTRIBUTIONS)}")
    model = private_copy(model)  # Grad-CAM hooks the model: a copy, so sessions sharing it never see them
    device = model_device(model)
    x = images.to(device)
    with eval_mode(model):
        if target is None:
            with torch.no_grad():
                target = model(x).argmax(1)
        target = target.to(device)
        if method == "integrated-gradients":
            maps = IntegratedGradients(model).attribute(x, baselines=torch.zeros_like(x), target=target, n_steps=32).abs().sum(1)
        elif method == "saliency":
            maps = Saliency(model).attribute(x, target=target, abs=True).sum(1)
        else:
            convs = [l for l in neuron_layers(model) if l.kind == "conv"]
            if not convs:
                raise UserInputError("Grad-CAM needs a conv layer; this model has none")
            layer = model.get_submodule(convs[-1].output_module)
            cam = LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True)
            maps = LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), interpolate_mode="bilinear").squeeze(1).clamp_min(0)
    return maps.detach().cpu()
