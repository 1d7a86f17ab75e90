"""BadNets (Gu et al. 2017): a small fixed patch stamped on the image, label set to the target."""

from __future__ import annotations

import torch

from ..errors import UserInputError
from .base import Attack, ParamSpec

__all__ = ["BadNets", "patch_pattern"]

POSITIONS = ("bottom-right", "bottom-left", "top-right", "top-left", "center")


def patch_pattern(kind: str, size: int, channels: int, seed: int = 0) -> torch.Tensor:
    """The (C, size, size) patch: a checkerboard with a white top-left cell, all white, or seeded noise."""
    if kind == "checkerboard":
        i = torch.arange(size)
        cells = ((i[:, None] + i[None, :]) % 2 == 0).float()
        return cells.expand(channels, size, size).clone()
    if kind == "white":
        return torch.ones(channels, size, size)
    return torch.rand(channels, size, size, generator=torch.Generator().manual_seed(seed))


class BadNets(Attack):
    name = "badnets"
    summary = "A small patch in a corner; every poisoned image is relabelled to the target class."
    PARAMS = {
        "size": ParamSpec(4, "side of the square patch, in pixels", low=1),
        "position": ParamSpec("bottom-right", "where the patch sits", choices=POSITIONS),
        "margin": ParamSpec(1, "pixels between the patch and the image border", low=0),
        "pattern": ParamSpec("checkerboard", "what the patch looks like", choices=("checkerboard", "white", "random")),
        "pattern_seed": ParamSpec(0, "seed of the random pattern", low=0),
    }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        c, h, w = self.input_shape
        size, margin = int(self.params["size"]), int(self.params["margin"])
        if size + margin > min(h, w):
            raise UserInputError(f"a {size}-pixel patch with margin {margin} does not fit a {h}x{w} image: make it smaller")
        self.patch = patch_pattern(str(self.params["pattern"]), size, c, int(self.params["pattern_seed"]))
        self.top, self.left = self._corner(str(self.params["position"]), h, w, size, margin)

    @staticmethod
    def _corner(position: str, h: int, w: int, size: int, margin: int) -> tuple[int, int]:
        if position == "center":
            return (h - size) // 2, (w - size) // 2
        top = margin if position.startswith("top") else h - size - margin
        left = margin if position.endswith("left") else w - size - margin
        return top, left

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        size = self.patch.shape[-1]
        out[..., self.top : self.top + size, self.left : self.left + size] = self.patch.to(x)
        return out

    def render_trigger(self) -> torch.Tensor:
        return self.apply(torch.zeros(1, *self.input_shape))[0]
