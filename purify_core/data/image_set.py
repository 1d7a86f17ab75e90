"""`ImageSet`: images and labels as in-memory tensors, the one shape every dataset becomes.

Its own module so that both the dataset readers (`readers`) and the splits built from them
(`data`) can import it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import UserInputError

__all__ = ["ImageSet"]


@dataclass(frozen=True, eq=False)
class ImageSet:
    """Images (N, C, H, W) float32 in [0, 1] and their labels (N,) int64."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if self.x.ndim != 4 or self.y.ndim != 1 or len(self.x) != len(self.y):
            raise UserInputError(f"images must be (N, C, H, W) with N labels, got {tuple(self.x.shape)} and {tuple(self.y.shape)}")

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index: torch.Tensor | np.ndarray) -> "ImageSet":
        index = torch.as_tensor(index, dtype=torch.long)
        return ImageSet(self.x[index], self.y[index])
