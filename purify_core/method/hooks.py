"""Forward hooks that are always removed, even when the body raises."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

__all__ = ["capture_outputs"]


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
