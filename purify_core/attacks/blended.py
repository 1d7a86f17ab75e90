"""Blended (Chen et al. 2017): a full-image pattern mixed in with weight alpha, label set to the target."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import UserInputError
from ..data.images import open_image
from .base import Attack, ParamSpec

__all__ = ["Blended"]


def _pattern_from_file(path: str, shape: tuple[int, int, int]) -> torch.Tensor:
    from PIL import Image

    c, h, w = shape
    if not Path(path).is_file():
        raise UserInputError(f"blend pattern file {path!r} does not exist")
    with open_image(path, "blend pattern file") as image:  # bounded: a decompression bomb is refused from its header
        image = image.convert("L" if c == 1 else "RGB").resize((w, h), Image.BILINEAR)
        pixels = np.asarray(image, dtype=np.float32) / 255.0
    pixels = pixels[None] if c == 1 else pixels.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(pixels))


class Blended(Attack):
    name = "blended"
    summary = "A faint full-image pattern blended into the picture; poisoned images are relabelled."
    PARAMS = {
        "pattern": ParamSpec("noise", "'noise' (seeded uniform noise), 'stripes', or a path to an image file",
                             offered=("noise", "stripes")),
        "alpha": ParamSpec(0.2, "blend weight of the pattern: x' = (1 - alpha) x + alpha pattern", low=0.01, high=1.0),
        "pattern_seed": ParamSpec(0, "seed of the noise pattern", low=0),
    }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        c, h, w = self.input_shape
        kind = str(self.params["pattern"])
        if kind == "noise":
            generator = torch.Generator().manual_seed(int(self.params["pattern_seed"]))
            self.pattern = torch.rand(c, h, w, generator=generator)
        elif kind == "stripes":
            self.pattern = (torch.arange(w) % 4 < 2).float().expand(c, h, w).clone()
        else:
            self.pattern = _pattern_from_file(kind, self.input_shape)
        self.alpha = float(self.params["alpha"])

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return (1.0 - self.alpha) * x + self.alpha * self.pattern.to(x)

    def render_trigger(self) -> torch.Tensor:
        return self.pattern.clone()
