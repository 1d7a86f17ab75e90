"""Dataset readers on small files written in the real on-disk formats (nothing is downloaded)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from purify_core.config import DataConfig
from purify_core.data import load_splits
from purify_core.errors import UserInputError
from purify_core.readers import read_cifar10, read_gtsrb, read_image_folder

PER_BATCH = 4


def cifar_content() -> list[tuple[np.ndarray, list[int]]]:
    """Six batches (5 train + test) of known pixels: image k of batch b has every byte = (b * 16 + k * 3 + channel) % 256."""
    batches = []
    for b in range(6):
        data = np.zeros((PER_BATCH, 3072), dtype=np.uint8)
        for k in range(PER_BATCH):
            for c in range(3):
                data[k, c * 1024 : (c + 1) * 1024] = (b * 16 + k * 3 + c) % 256
            data[k, 5] = 255  # red plane, row 0, column 5
        batches.append((data, [(b + k) % 10 for k in range(PER_BATCH)]))
    return batches


def write_cifar_python(root: Path) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name, (data, labels) in zip(names, cifar_content()):
        with open(folder / name, "wb") as out:
            pickle.dump({"batch_label": name, "labels": labels, "data": data, "filenames": [f"{i}.png" for i in labels]}, out, protocol=2)
    with open(folder / "batches.meta", "wb") as out:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)], "num_vis": 3072}, out, protocol=2)
    return folder


def write_cifar_binary(root: Path) -> None:
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    for name, (data, labels) in zip(names, cifar_content()):
        records = np.concatenate([np.asarray(labels, dtype=np.uint8)[:, None], data], axis=1)
        records.tofile(folder / name)
    (folder / "batches.meta.txt").write_text("\n".join(f"class{i}" for i in range(10)) + "\n")


def test_cifar10_python_batches_load_with_exact_pixels(tmp_path):
    write_cifar_python(tmp_path)
    train, test, classes = read_cifar10(str(tmp_path))
    assert train.x.shape == (5 * PER_BATCH, 3, 32, 32) and test.x.shape == (PER_BATCH, 3, 32, 32)
    assert classes == tuple(f"class{i}" for i in range(10))
    assert train.x[1, 2, 10, 10].item() == pytest.approx(((0 * 16 + 1 * 3 + 2) % 256) / 255)
    assert train.x[5, 0, 0, 5].item() == 1.0 and train.x[5, 0, 0, 4].item() == pytest.approx((16 + 3) / 255)
    assert train.y.tolist()[:8] == [0, 1, 2, 3, 1, 2, 3, 4] and test.y.tolist() == [5, 6, 7, 8]


def test_cifar10_binary_batches_equal_the_python_ones(tmp_path):
    write_cifar_python(tmp_path / "py")
    write_cifar_binary(tmp_path / "bin")
    py, bin_ = read_cifar10(str(tmp_path / "py")), read_cifar10(str(tmp_path / "bin"))
    assert torch.equal(py[0].x, bin_[0].x) and torch.equal(py[1].y, bin_[1].y) and py[2] == bin_[2]


def test_cifar10_through_load_splits(tmp_path):
    write_cifar_python(tmp_path)
    splits = load_splits(DataConfig(dataset="cifar10", root=str(tmp_path), defense_fraction=0.25))
    assert splits.input_shape == (3, 32, 32) and len(splits.test) == PER_BATCH
    assert len(splits.train) + len(splits.defense) == 5 * PER_BATCH and len(splits.defense) == 5


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_cifar_pickle_is_refused_and_never_executed(tmp_path):
    folder = write_cifar_python(tmp_path)
    marker = tmp_path / "pwned"
    with open(folder / "data_batch_1", "wb") as out:
        pickle.dump({"data": _Exploit(marker), "labels": [0]}, out, protocol=2)
    with pytest.raises(UserInputError, match="refused to load"):
        read_cifar10(str(tmp_path))
    assert not marker.exists()


def test_a_missing_cifar_root_names_the_folder(tmp_path):
    with pytest.raises(UserInputError, match=str(tmp_path / "nothing")):
        read_cifar10(str(tmp_path / "nothing"))


def save_image(path: Path, size: tuple[int, int], value: int, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value if mode == "L" else (value, value // 2, 0)).save(path)


def test_gtsrb_in_torchvision_layout(tmp_path):
    base = tmp_path / "gtsrb"
    for cls in (0, 2):
        for k, size in enumerate([(30, 30), (45, 40)]):
            save_image(base / "GTSRB" / "Training" / f"{cls:05d}" / f"{k:05d}_00000.ppm", size, 100 + cls)
    rows = ["Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId"]
    for k, cls in enumerate([2, 0, 2]):
        save_image(base / "GTSRB" / "Final_Test" / "Images" / f"{k:05d}.ppm", (50, 52), 200)
        rows.append(f"{k:05d}.ppm;50;52;5;5;45;47;{cls}")
    (base / "GT-final_test.csv").write_text("\n".join(rows) + "\n")
    train, test, classes = read_gtsrb(str(tmp_path), image_size=16)
    assert train.x.shape == (4, 3, 16, 16) and test.x.shape == (3, 3, 16, 16)
    assert sorted(train.y.tolist()) == [0, 0, 2, 2] and test.y.tolist() == [2, 0, 2] and classes == ("0", "1", "2")
    assert train.x[0, 0, 3, 3].item() == pytest.approx(100 / 255) and train.x[0, 2].max() == 0


def test_image_folder_with_train_and_test_of_mixed_sizes(tmp_path):
    for split, n in (("train", 3), ("test", 2)):
        for cls, value in (("cat", 50), ("dog", 150)):
            for k in range(n):
                save_image(tmp_path / split / cls / f"{k}.png", (20 + 7 * k, 24), value)
    train, test, classes = read_image_folder(str(tmp_path), image_size=12)
    assert classes == ("cat", "dog") and train.x.shape == (6, 3, 12, 12) and test.x.shape == (4, 3, 12, 12)
    assert train.y.tolist() == [0, 0, 0, 1, 1, 1] and train.x[3, 0, 6, 6].item() == pytest.approx(150 / 255)


def test_image_folder_pool_only_and_greyscale(tmp_path):
    for cls in ("a", "b"):
        for k in range(5):
            save_image(tmp_path / cls / f"{k}.png", (10, 10), 80, mode="L")
    train, test, classes = read_image_folder(str(tmp_path), image_size=8)
    assert test is None and train.x.shape == (10, 1, 8, 8) and classes == ("a", "b")
    splits = load_splits(DataConfig(dataset="imagefolder", root=str(tmp_path), image_size=8, test_fraction=0.2, defense_fraction=0.25))
    assert len(splits.test) == 2 and len(splits.train) + len(splits.defense) == 8


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda root: root.mkdir(), "not an image folder"),
        (lambda root: save_image(root / "only" / "0.png", (8, 8), 1), "at least two classes"),
        (lambda root: (save_image(root / "a" / "0.png", (8, 8), 1), (root / "b").mkdir()), "hold no images"),
        (lambda root: (save_image(root / "a" / "0.png", (8, 8), 1), (root / "b").mkdir(), (root / "b" / "x.png").write_bytes(b"not a png")), "cannot read image"),
        (lambda root: None, "does not exist"),
    ],
    ids=["empty", "one-class", "empty-class", "corrupt-image", "missing"],
)
def test_bad_image_folders_get_clear_messages(tmp_path, make, message):
    root = tmp_path / "data"
    make(root)
    with pytest.raises(UserInputError, match=message):
        read_image_folder(str(root))
