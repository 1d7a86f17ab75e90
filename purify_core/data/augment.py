"""Light augmentation for fine-tuning on a small clean set: random shifts of a few pixels.

With a defense set of a few hundred images, fine-tuning overfits quickly; shifting each image by
up to `pixels` (zero padding) is the standard remedy and needs no extra data.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["random_shift"]


def random_shift(x: torch.Tensor, pixels: int, generator: torch.Generator) -> torch.Tensor:
    """Each image moved by its own random offset in [-pixels, pixels] on both axes."""
    if pixels <= 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (pixels, pixels, pixels, pixels))
    dy, dx = torch.randint(0, 2 * pixels + 1, (2, n), generator=generator).tolist()
    return torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])
