"""WaNet (Nguyen & Tran 2021): an imperceptible smooth warp of the image, label set to the target.

The warping field is a random k x k grid of displacements (seeded), upsampled bicubically to the
image size, scaled by `strength / H` in grid_sample's [-1, 1] coordinates, as in the paper.
With `cross_ratio > 0`, training also gets "noise mode" images: warped by a randomly perturbed
field but keeping their true label, so the model learns the exact warp, not any warp.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data.image_set import ImageSet
from ..errors import UserInputError
from .base import Attack, ParamSpec, PoisonedSet

__all__ = ["WaNet", "warp", "identity_grid"]


def identity_grid(h: int, w: int) -> torch.Tensor:
    """The (1, H, W, 2) sampling grid that leaves an image unchanged (x first, as grid_sample wants)."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    return torch.stack((xs, ys), dim=-1)[None]


def warp(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Sample `x` (N, C, H, W) at `grid` (1 or N, H, W, 2), bilinear, corners aligned, clamped to the image."""
    grid = grid.to(x).clamp(-1, 1).expand(len(x), -1, -1, -1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


class WaNet(Attack):
    name = "wanet"
    summary = "A smooth, nearly invisible warp of the whole image; poisoned images are relabelled."
    PARAMS = {
        "grid_size": ParamSpec(4, "k: the warp is drawn on a k x k control grid", low=2),
        "strength": ParamSpec(1.0, "s: displacement scale (the paper uses 0.5)", low=0.0, high=10.0),
        "cross_ratio": ParamSpec(0.0, "noise-mode images per poisoned image (paper: 2)", low=0.0, high=5.0),
        "pattern_seed": ParamSpec(0, "seed of the warping field", low=0),
    }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _, h, w = self.input_shape
        k = int(self.params["grid_size"])
        if k > min(h, w):
            raise UserInputError(f"warp grid_size {k} is larger than the {h}x{w} image")
        generator = torch.Generator().manual_seed(int(self.params["pattern_seed"]))
        control = torch.rand(1, 2, k, k, generator=generator) * 2 - 1
        control = control / control.abs().mean()
        field = F.interpolate(control, size=(h, w), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
        self.grid = (identity_grid(h, w) + float(self.params["strength"]) * field / h).clamp(-1, 1)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return warp(x, self.grid)

    def render_trigger(self) -> torch.Tensor:
        """A chequered grid warped by the field: the lines bend where the trigger moves pixels."""
        c, h, w = self.input_shape
        lines = ((torch.arange(h)[:, None] % 4 == 0) | (torch.arange(w)[None, :] % 4 == 0)).float()
        return self.apply(lines.expand(1, c, h, w).clone())[0]

    def poison(self, train: ImageSet, seed: int) -> PoisonedSet:
        poisoned = super().poison(train, seed)
        cross = round(float(self.params["cross_ratio"]) * len(poisoned.poisoned_index))
        if cross == 0:
            return poisoned
        generator = torch.Generator().manual_seed(seed + 1)
        free = torch.ones(len(train), dtype=torch.bool)
        free[poisoned.poisoned_index] = False
        candidates = torch.nonzero(free).flatten()
        chosen = candidates[torch.randperm(len(candidates), generator=generator)[:cross]]
        _, h, w = self.input_shape
        jitter = (torch.rand(len(chosen), h, w, 2, generator=generator) * 2 - 1) / h
        x = poisoned.images.x.clone()
        x[chosen] = warp(train.x[chosen], self.grid + jitter)
        return PoisonedSet(ImageSet(x, poisoned.images.y), poisoned.poisoned_index)
