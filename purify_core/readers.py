"""Readers for datasets on disk: CIFAR-10, GTSRB and any ImageFolder.

Each returns `(train, test or None, classes)` as `ImageSet`s of pixels in [0, 1]; `None` means
the dataset has no official test split and the caller splits one off. torchvision is imported
only here, inside the functions, because it takes seconds to import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .data import ImageSet
from .errors import UserInputError
from .safe_pickle import safe_load

__all__ = ["read_cifar10", "read_gtsrb", "read_image_folder"]

_CIFAR_PY = ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], "test_batch", "batches.meta")
_CIFAR_BIN = ("cifar-10-batches-bin", [f"data_batch_{i}.bin" for i in range(1, 6)], "test_batch.bin", "batches.meta.txt")
_CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _find_cifar(root: Path) -> tuple[Path, bool] | None:
    """The batches folder and whether it is the python (pickle) version."""
    for folder, is_python in ((root / _CIFAR_PY[0], True), (root / _CIFAR_BIN[0], False), (root, True), (root, False)):
        layout = _CIFAR_PY if is_python else _CIFAR_BIN
        if all((folder / name).is_file() for name in (*layout[1], layout[2])):
            return folder, is_python
    return None


def _python_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = safe_load(path.read_bytes(), source=str(path))
    try:
        data, labels = np.asarray(batch["data"], dtype=np.uint8), np.asarray(batch["labels"], dtype=np.int64)
    except (KeyError, TypeError, ValueError) as exc:
        raise UserInputError(f"{path} is not a CIFAR-10 batch (needs 'data' and 'labels'): {exc}") from None
    return data, labels


def _binary_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % 3073:
        raise UserInputError(f"{path} is not a CIFAR-10 binary batch (records of 1 label byte + 3072 pixel bytes)")
    records = raw.reshape(-1, 3073)
    return records[:, 1:], records[:, 0].astype(np.int64)


def _cifar_images(parts: Sequence[tuple[np.ndarray, np.ndarray]], source: Path) -> ImageSet:
    data = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels) or labels.min() < 0 or labels.max() > 9:
        raise UserInputError(f"{source} does not hold 32x32 colour images with labels 0..9")
    x = torch.from_numpy(data.reshape(-1, 3, 32, 32).astype(np.float32) / 255.0)
    return ImageSet(x, torch.from_numpy(labels))


def read_cifar10(root: str | None, download: bool = False) -> tuple[ImageSet, ImageSet, tuple[str, ...]]:
    """CIFAR-10 from its python (pickle, read safely) or binary batches under `root`."""
    base = Path(root or ".").expanduser()
    found = _find_cifar(base)
    if found is None and download:
        import torchvision

        torchvision.datasets.CIFAR10(str(base), train=True, download=True)  # fetches and md5-checks the archive
        found = _find_cifar(base)
    if found is None:
        raise UserInputError(
            f"no CIFAR-10 batches in {base}: expected {_CIFAR_PY[0]}/ (data_batch_1..5, test_batch) or "
            f"{_CIFAR_BIN[0]}/ (data_batch_1..5.bin, test_batch.bin); pass --download if this machine has internet"
        )
    folder, is_python = found
    layout, read = (_CIFAR_PY, _python_batch) if is_python else (_CIFAR_BIN, _binary_batch)
    train = _cifar_images([read(folder / name) for name in layout[1]], folder)
    test = _cifar_images([read(folder / layout[2])], folder)
    return train, test, _cifar_classes(folder, is_python)


def _cifar_classes(folder: Path, is_python: bool) -> tuple[str, ...]:
    meta = folder / (_CIFAR_PY[3] if is_python else _CIFAR_BIN[3])
    if not meta.is_file():
        return _CIFAR_CLASSES
    if is_python:
        names = safe_load(meta.read_bytes(), source=str(meta)).get("label_names", _CIFAR_CLASSES)
    else:
        names = [line.strip() for line in meta.read_text().splitlines() if line.strip()]
    return tuple(str(n) for n in names) if len(names) == 10 else _CIFAR_CLASSES


def _load_images(paths: Sequence[str], image_size: int, grey: bool) -> torch.Tensor:
    from PIL import Image, UnidentifiedImageError

    out = np.empty((len(paths), image_size, image_size, 1 if grey else 3), dtype=np.uint8)
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as image:
                image = image.convert("L" if grey else "RGB").resize((image_size, image_size), Image.BILINEAR)
                out[i] = np.asarray(image).reshape(image_size, image_size, -1)
        except (UnidentifiedImageError, OSError) as exc:
            raise UserInputError(f"cannot read image {path}: {exc}") from None
    return torch.from_numpy(out).permute(0, 3, 1, 2).float() / 255.0


def _all_grey(paths: Sequence[str]) -> bool:
    from PIL import Image, UnidentifiedImageError

    try:
        for path in paths:
            with Image.open(path) as image:
                if image.mode not in ("L", "1", "I;16", "I"):
                    return False
    except (UnidentifiedImageError, OSError) as exc:
        raise UserInputError(f"cannot read image {path}: {exc}") from None
    return True


def read_gtsrb(root: str | None, image_size: int = 32, download: bool = False) -> tuple[ImageSet, ImageSet, tuple[str, ...]]:
    """GTSRB in torchvision's layout (`<root>/gtsrb/GTSRB/...`), resized to `image_size` squares."""
    import torchvision

    base = Path(root or ".").expanduser()
    sets = []
    for split in ("train", "test"):
        try:
            dataset = torchvision.datasets.GTSRB(str(base), split=split, download=download)
        except (RuntimeError, FileNotFoundError) as exc:
            raise UserInputError(
                f"no GTSRB {split} split under {base}/gtsrb ({exc}); pass --download if this machine has internet"
            ) from None
        samples = dataset._samples
        if not samples:
            raise UserInputError(f"the GTSRB {split} split under {base}/gtsrb has no images")
        x = _load_images([p for p, _ in samples], image_size, grey=False)
        # training folders are named by class id; torchvision numbers them by position instead
        labels = [int(Path(p).parent.name) if split == "train" else c for p, c in samples]
        sets.append(ImageSet(x, torch.tensor(labels, dtype=torch.long)))
    classes = tuple(str(i) for i in range(int(max(s.y.max() for s in sets)) + 1))
    return sets[0], sets[1], classes


def _image_folder(folder: Path) -> tuple[list[tuple[str, int]], list[str]]:
    import torchvision

    try:
        dataset = torchvision.datasets.ImageFolder(str(folder), allow_empty=True)
    except (FileNotFoundError, RuntimeError) as exc:
        raise UserInputError(f"{folder} is not an image folder with one sub-folder per class: {exc}") from None
    counts = np.bincount([c for _, c in dataset.samples], minlength=len(dataset.classes))
    if len(dataset.classes) < 2:
        raise UserInputError(f"{folder} needs at least two classes (one sub-folder of images each), found {len(dataset.classes)}")
    empty = [dataset.classes[i] for i in np.flatnonzero(counts == 0)]
    if empty:
        raise UserInputError(f"class folder(s) {', '.join(empty)} in {folder} hold no images")
    return dataset.samples, dataset.classes


def read_image_folder(root: str | None, image_size: int = 32) -> tuple[ImageSet, ImageSet | None, tuple[str, ...]]:
    """`<root>/<class>/*` (test split made by the caller) or `<root>/train/<class>` + `<root>/test/<class>`.

    Images are resized to `image_size` squares, so mixed sizes are fine; they stay one-channel
    when every image is greyscale, RGB otherwise.
    """
    base = Path(root or ".").expanduser()
    if not base.is_dir():
        raise UserInputError(f"image folder {base} does not exist")
    split_roots = [base / "train", base / "test"] if (base / "train").is_dir() and (base / "test").is_dir() else [base]
    listed = [_image_folder(folder) for folder in split_roots]
    classes = listed[0][1]
    if len(listed) == 2 and listed[1][1] != classes:
        raise UserInputError(f"{base}/test has classes {listed[1][1]} but {base}/train has {classes}: they must match")
    grey = all(_all_grey([p for p, _ in samples]) for samples, _ in listed)
    sets = [
        ImageSet(_load_images([p for p, _ in samples], image_size, grey), torch.tensor([c for _, c in samples], dtype=torch.long))
        for samples, _ in listed
    ]
    return sets[0], (sets[1] if len(sets) == 2 else None), tuple(classes)
