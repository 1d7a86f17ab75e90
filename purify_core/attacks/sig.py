"""SIG (Barni et al. 2019): a horizontal sinusoid added to target-class images only (clean-label)."""

from __future__ import annotations

import math

import torch

from .base import Attack, ParamSpec

__all__ = ["Sig"]


class Sig(Attack):
    name = "sig"
    summary = "A faint vertical-stripe sinusoid added to images of the target class only; labels stay true."
    clean_label = True
    PARAMS = {
        "delta": ParamSpec(0.25, "amplitude of the sinusoid, in pixel units [0, 1]", low=0.001, high=1.0),
        "frequency": ParamSpec(6, "number of periods across the image width", low=1),
    }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _, h, w = self.input_shape
        columns = torch.arange(w, dtype=torch.float32)
        wave = float(self.params["delta"]) * torch.sin(2 * math.pi * columns * int(self.params["frequency"]) / w)
        self.signal = wave.expand(h, w).clone()  # v(i, j) = delta * sin(2 pi j f / W)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return (x + self.signal.to(x)).clamp(0.0, 1.0)
