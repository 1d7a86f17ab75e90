"""Forward hooks that are always removed, even when the body raises."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from torch import nn

__all__ = ["capture_outputs", "before_forward"]


@contextmanager
def capture_outputs(model: nn.Module, names: list[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Record the latest output of each named submodule while the body runs.

    The dict is refilled on every forward pass; hooks are removed in `finally`.
    """
    outputs: dict[str, torch.Tensor] = {}
    handles = []
    try:
        for name in names:
            def hook(_module, _inputs, output, name=name):
                outputs[name] = output
            handles.append(model.get_submodule(name).register_forward_hook(hook))
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def before_forward(model: nn.Module, name: str, action: Callable[[nn.Module], None]) -> Iterator[None]:
    """Call `action(module)` before every forward pass of the named submodule while the body runs.

    Why: a defense that constrains a layer's weights after each optimiser step (FST keeps its head's
    norm) can apply the constraint just before the weights are next used; the hook is removed in `finally`.
    """
    handle = model.get_submodule(name).register_forward_pre_hook(lambda module, _inputs: action(module))
    try:
        yield
    finally:
        handle.remove()
