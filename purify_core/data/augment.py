"""Light augmentation for fine-tuning on a small clean set: random shifts of a few pixels, and small
random rotations and scalings.

With a defense set of a few hundred images, fine-tuning overfits quickly; shifting each image by
up to `pixels` (zero padding) is the standard remedy and needs no extra data. `random_affine`
rotates and scales each image a little more; the purification loop gives it to the student only
(the teacher answers the image before it: a rotation is a warp, and a warp-triggered teacher
answers warped digits with its target class).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["random_shift", "random_affine"]


def random_shift(x: torch.Tensor, pixels: int, generator: torch.Generator) -> torch.Tensor:
    """Each image moved by its own random offset in [-pixels, pixels] on both axes."""
    if pixels <= 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (pixels, pixels, pixels, pixels))
    dy, dx = torch.randint(0, 2 * pixels + 1, (2, n), generator=generator).tolist()
    return torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])


def random_affine(x: torch.Tensor, degrees: float, scale: float, generator: torch.Generator) -> torch.Tensor:
    """Each image rotated by its own angle in [-degrees, degrees] and scaled by a factor in
    [1 - scale, 1 + scale] about its centre (bilinear, zero padding); `x` itself when both are 0,
    drawing nothing from `generator` (so a run without it is the run it was before)."""
    if degrees <= 0 and scale <= 0:
        return x
    n = x.shape[0]
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(degrees)
    factor = 1 + (torch.rand(n, generator=generator) * 2 - 1) * scale
    theta = torch.zeros(n, 2, 3)  # where each output pixel samples from (both draws are symmetric about 0)
    theta[:, 0, 0] = torch.cos(angle) / factor
    theta[:, 0, 1] = -torch.sin(angle) / factor
    theta[:, 1, 0] = torch.sin(angle) / factor
    theta[:, 1, 1] = torch.cos(angle) / factor
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")
