"""Readers for datasets on disk: CIFAR-10, GTSRB and any ImageFolder.

Each returns `(train, test or None, classes)` as `ImageSet`s of pixels in [0, 1]; `None` means
the dataset has no official test split and the caller splits one off. torchvision is imported
only inside the functions, because it takes seconds to import.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..config import MAX_CLASSES
from .image_set import ImageSet
from ..errors import UserInputError
from .images import open_image
from .safe_pickle import safe_load

__all__ = ["read_cifar10", "read_gtsrb", "read_image_folder"]

Result = tuple[ImageSet, ImageSet | None, tuple[str, ...]]

# (folder name, train batches, test batch, meta file) of the two official CIFAR-10 versions
_CIFAR_PY = ("cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta")
_CIFAR_BIN = ("cifar-10-batches-bin", tuple(f"data_batch_{i}.bin" for i in range(1, 6)), "test_batch.bin", "batches.meta.txt")
_CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_CIFAR_RECORD = 1 + 3072  # binary version: one label byte, then the red, green and blue 32x32 planes
_GREY_MODES = ("1", "L", "LA", "I", "I;16")
_Layout = tuple[str, tuple[str, ...], str, str]


def _base(root: str | None, what: str) -> Path:
    if not root:
        raise UserInputError(f"{what} needs a root folder (--data-root)")
    return Path(root).expanduser()


def _find_cifar(base: Path) -> tuple[Path, _Layout] | None:
    """The batches folder and its layout (python version first), or None when none is complete."""
    for folder, layout in _cifar_candidates(base):
        if all((folder / name).is_file() for name in (*layout[1], layout[2])):
            return folder, layout
    return None


def _cifar_candidates(base: Path) -> list[tuple[Path, _Layout]]:
    return [(base / _CIFAR_PY[0], _CIFAR_PY), (base / _CIFAR_BIN[0], _CIFAR_BIN), (base, _CIFAR_PY), (base, _CIFAR_BIN)]


def _cifar_missing(base: Path) -> UserInputError:
    """An error naming the folder and the expected files (the missing ones, if a folder is half there)."""
    hint = "pass download=True (--download) if this machine has internet, or copy the dataset there"
    for folder, layout in _cifar_candidates(base):
        needed = (*layout[1], layout[2])
        missing = [name for name in needed if not (folder / name).is_file()]
        if len(missing) < len(needed):
            return UserInputError(f"the CIFAR-10 folder {folder} is incomplete: {', '.join(missing)} missing; {hint}")
    return UserInputError(
        f"no CIFAR-10 batches in {base}: expected {base / _CIFAR_PY[0]} (data_batch_1 .. data_batch_5, test_batch, "
        f"batches.meta) or {base / _CIFAR_BIN[0]} (data_batch_1.bin .. data_batch_5.bin, test_batch.bin, batches.meta.txt); {hint}"
    )


def _python_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """`data` (N, 3072) uint8 and `labels` of one pickled batch, read without running code."""
    batch = safe_load(path.read_bytes(), source=str(path))
    try:
        data, labels = np.asarray(batch["data"]), np.asarray(batch["labels"], dtype=np.int64)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise UserInputError(f"{path} is not a CIFAR-10 batch (it needs 'data' and 'labels'): {exc!r}") from None
    if data.dtype != np.uint8:
        raise UserInputError(f"{path} is not a CIFAR-10 batch: its 'data' is {data.dtype}, not uint8 bytes")
    return data, labels


def _binary_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Records of 1 label byte + 3072 pixel bytes; the count comes from the file size."""
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % _CIFAR_RECORD:
        raise UserInputError(f"{path} is not a CIFAR-10 binary batch: {raw.size} bytes is not a whole number of 3073-byte records")
    records = raw.reshape(-1, _CIFAR_RECORD)
    return records[:, 1:], records[:, 0].astype(np.int64)


def _cifar_images(parts: Sequence[tuple[np.ndarray, np.ndarray]], folder: Path) -> ImageSet:
    data, labels = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels) or labels.min() < 0 or labels.max() > 9:
        raise UserInputError(f"{folder} does not hold CIFAR-10 batches: expected 3072 bytes per image and labels 0..9")
    x = torch.from_numpy(np.ascontiguousarray(data).reshape(-1, 3, 32, 32)).float().div_(255.0)  # channel-major rows
    return ImageSet(x, torch.from_numpy(labels))


def _cifar_classes(folder: Path, layout: _Layout) -> tuple[str, ...]:
    """Class names from the meta file; the official names when it is missing or odd."""
    meta = folder / layout[3]
    if not meta.is_file():
        return _CIFAR_CLASSES
    if layout is _CIFAR_PY:
        content = safe_load(meta.read_bytes(), source=str(meta))
        names = content.get("label_names", []) if isinstance(content, dict) else []
    else:
        names = [line.strip() for line in meta.read_text(encoding="latin1").splitlines() if line.strip()]
    return tuple(str(n) for n in names) if len(names) == 10 else _CIFAR_CLASSES


def read_cifar10(root: str, download: bool = False) -> Result:
    """CIFAR-10 from its python batches (pickles, read safely) or its binary batches.

    `root` may hold `cifar-10-batches-py/` or `cifar-10-batches-bin/`, or be that folder itself.
    With `download`, a missing dataset is fetched by torchvision, which checks the archive's md5.
    """
    base = _base(root, "dataset 'cifar10'")
    found = _find_cifar(base)
    if found is None and download:
        import torchvision

        try:
            torchvision.datasets.CIFAR10(str(base), train=True, download=True)
        except (OSError, RuntimeError) as exc:
            raise UserInputError(f"could not download CIFAR-10 into {base}: {exc}; check the internet connection or download it by hand") from None
        found = _find_cifar(base)
    if found is None:
        raise _cifar_missing(base)
    folder, layout = found
    read = _python_batch if layout is _CIFAR_PY else _binary_batch
    train = _cifar_images([read(folder / name) for name in layout[1]], folder)
    test = _cifar_images([read(folder / layout[2])], folder)
    return train, test, _cifar_classes(folder, layout)


def _load_images(paths: Sequence[str], image_size: int, grey: bool) -> torch.Tensor:
    """Open, convert (L or RGB) and bilinear-resize every image into one (N, C, S, S) tensor."""
    from PIL import Image

    out = np.empty((len(paths), image_size, image_size, 1 if grey else 3), dtype=np.uint8)
    for i, path in enumerate(paths):
        with open_image(path) as image:  # a decompression bomb or a broken file: one clear error
            image = image.convert("L" if grey else "RGB").resize((image_size, image_size), Image.Resampling.BILINEAR)
            out[i] = np.asarray(image).reshape(image_size, image_size, -1)
    return torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255.0)


def _all_grey(paths: Sequence[str]) -> bool:
    """Whether every image is greyscale (reads headers only)."""
    for path in paths:
        with open_image(path) as image:
            if image.mode not in _GREY_MODES:
                return False
    return True


def _check_size(image_size: int) -> None:
    if not isinstance(image_size, int) or image_size < 1:
        raise UserInputError(f"image_size must be a positive integer, got {image_size!r}")


def read_gtsrb(root: str, image_size: int = 32, download: bool = False) -> Result:
    """GTSRB in torchvision's layout, every image resized to `image_size` squares.

    Layout: `<root>/gtsrb/GTSRB/Training/<5-digit class id>/*.ppm`, `<root>/gtsrb/GTSRB/Final_Test/Images/*.ppm`
    and `<root>/gtsrb/GT-final_test.csv`. Training labels are the folder names read as numbers, the
    ids the test csv uses, so a tree with some classes left out still labels both splits alike.
    """
    import torchvision

    _check_size(image_size)
    base = _base(root, "dataset 'gtsrb'")
    training = base / "gtsrb" / "GTSRB" / "Training"
    sets = []
    for split in ("train", "test"):
        try:
            samples = torchvision.datasets.GTSRB(str(base), split=split, download=download)._samples
        except (OSError, RuntimeError, KeyError, ValueError) as exc:
            raise UserInputError(
                f"no readable GTSRB {split} split under {base / 'gtsrb'} ({exc}): expected {training}/<class id>/*.ppm, "
                f"{base / 'gtsrb' / 'GTSRB' / 'Final_Test' / 'Images'}/*.ppm and {base / 'gtsrb' / 'GT-final_test.csv'}; "
                "pass download=True (--download) if this machine has internet"
            ) from None
        if not samples:
            raise UserInputError(f"the GTSRB {split} split under {base / 'gtsrb'} has no .ppm images")
        paths = [path for path, _ in samples]
        if split == "train":
            try:
                labels = [int(Path(path).relative_to(training).parts[0]) for path in paths]
            except ValueError:
                raise UserInputError(f"the class folders in {training} must be numeric class ids such as 00000 .. 00042") from None
        else:
            labels = [label for _, label in samples]
        sets.append(ImageSet(_load_images(paths, image_size, grey=False), torch.tensor(labels, dtype=torch.long)))
    if int(sets[1].y.min()) < 0:
        raise UserInputError(f"{base / 'gtsrb' / 'GT-final_test.csv'} has a negative ClassId")
    classes = tuple(str(i) for i in range(int(max(s.y.max() for s in sets)) + 1))
    return sets[0], sets[1], classes


def _class_images(folder: Path, extensions: tuple[str, ...]) -> list[str]:
    """Image files under one class folder, in torchvision's order; each real folder is read once.

    Symlinked folders are followed (a class may live elsewhere), but a folder already read, such
    as a link back to a parent, is skipped: a symlink loop would otherwise count the same images
    again on every turn.
    """
    seen: set[str] = set()
    found: list[tuple[str, list[str]]] = []
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []  # a loop, or a second link to the same folder
            continue
        seen.add(real)
        found.append((root, sorted(f for f in files if f.lower().endswith(extensions))))
    return [os.path.join(root, name) for root, names in sorted(found) for name in names]


def _image_folder(folder: Path) -> tuple[list[tuple[str, int]], list[str]]:
    """The (path, label) list and class names of one `<class>/<image>` tree, or a clear error."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes

    try:
        classes, _ = find_classes(str(folder))
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise UserInputError(f"{folder} is not an image folder: it needs one sub-folder of images per class ({exc})") from None
    if len(classes) < 2:
        raise UserInputError(f"{folder} needs at least two classes (one sub-folder of images each), found {len(classes)}")
    if len(classes) > MAX_CLASSES:
        raise UserInputError(f"{folder} has {len(classes)} class folders; at most {MAX_CLASSES}")
    per_class = [_class_images(folder / name, IMG_EXTENSIONS) for name in classes]
    empty = [name for name, paths in zip(classes, per_class) if not paths]
    if empty:
        raise UserInputError(
            f"class folder(s) {', '.join(empty)} in {folder} hold no images (.png, .jpg, .jpeg, .bmp, .ppm, .pgm, .tif, .webp); "
            "add images or remove the folder"
        )
    return [(path, label) for label, paths in enumerate(per_class) for path in paths], classes


def read_image_folder(root: str, image_size: int = 32) -> Result:
    """`<root>/train/<class>/*` + `<root>/test/<class>/*`, or `<root>/<class>/*` (the caller splits a test set).

    Images are resized to `image_size` squares, so mixed sizes are fine; they stay one-channel
    when every image is greyscale, RGB otherwise.
    """
    _check_size(image_size)
    base = _base(root, "dataset 'imagefolder'")
    if not base.is_dir():
        raise UserInputError(f"image folder {base} does not exist; check --data-root")
    has_train, has_test = (base / "train").is_dir(), (base / "test").is_dir()
    if has_train != has_test:
        there, missing = ("train", "test") if has_train else ("test", "train")
        raise UserInputError(
            f"{base} has a {there}/ folder but no {missing}/ folder: add {base / missing} with the same class folders, "
            "or put the class folders directly in the root (a test split is then held out)"
        )
    listed = [_image_folder(folder) for folder in ([base / "train", base / "test"] if has_train else [base])]
    classes = listed[0][1]
    if len(listed) == 2 and listed[1][1] != classes:
        raise UserInputError(f"{base / 'test'} has classes {listed[1][1]} but {base / 'train'} has {classes}: they must match")
    grey = all(_all_grey([path for path, _ in samples]) for samples, _ in listed)
    sets = [
        ImageSet(_load_images([p for p, _ in samples], image_size, grey), torch.tensor([c for _, c in samples], dtype=torch.long))
        for samples, _ in listed
    ]
    return sets[0], (sets[1] if len(sets) == 2 else None), tuple(classes)
