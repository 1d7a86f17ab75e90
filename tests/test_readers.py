"""Dataset readers on small files written in the real on-disk formats (nothing is downloaded)."""

from __future__ import annotations

import os
import pathlib
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from purify_core.config import DataConfig
from purify_core.data.splits import load_splits
from purify_core.errors import UserInputError
from purify_core.data.readers import read_cifar10, read_gtsrb, read_image_folder
from purify_core.data.safe_pickle import safe_load

PER_BATCH = 6
PY_NAMES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
BIN_NAMES = [f"{name}.bin" for name in PY_NAMES]
CLASS_NAMES = [f"class{i}" for i in range(10)]


# ---------------------------------------------------------------- CIFAR-10


def cifar_content() -> list[tuple[np.ndarray, list[int]]]:
    """Six batches (5 train + test). Image i of batch b: red plane all 10*b + i except byte 5 (row 0,
    column 5) = 255; green plane = 8 * row; blue plane = 8 * column. Label (6*b + i) % 10."""
    rows, cols = np.divmod(np.arange(1024), 32)
    batches = []
    for b in range(6):
        data = np.zeros((PER_BATCH, 3072), dtype=np.uint8)
        for i in range(PER_BATCH):
            data[i, :1024] = 10 * b + i
            data[i, 5] = 255
            data[i, 1024:2048] = 8 * rows
            data[i, 2048:] = 8 * cols
        batches.append((data, [(PER_BATCH * b + i) % 10 for i in range(PER_BATCH)]))
    return batches


def write_cifar_python(root: Path) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, (data, labels) in zip(PY_NAMES, cifar_content()):
        with open(folder / name, "wb") as out:
            batch = {"batch_label": f"batch {name}", "labels": labels, "data": data, "filenames": [f"img_{k}.png" for k in range(len(labels))]}
            pickle.dump(batch, out, protocol=2)
    with open(folder / "batches.meta", "wb") as out:
        pickle.dump({"label_names": CLASS_NAMES, "num_cases_per_batch": PER_BATCH, "num_vis": 3072}, out, protocol=2)
    return folder


def write_cifar_binary(root: Path) -> Path:
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    for name, (data, labels) in zip(BIN_NAMES, cifar_content()):
        records = np.concatenate([np.asarray(labels, dtype=np.uint8)[:, None], data], axis=1)
        (folder / name).write_bytes(records.tobytes())
    (folder / "batches.meta.txt").write_text("\n".join(CLASS_NAMES) + "\n\n")
    return folder


def check_cifar(train, test, classes) -> None:
    assert train.x.shape == (30, 3, 32, 32) and test.x.shape == (6, 3, 32, 32)
    assert train.x.dtype == torch.float32 and train.y.dtype == torch.int64
    assert classes == tuple(CLASS_NAMES)
    assert train.y.tolist() == [k % 10 for k in range(30)] and test.y.tolist() == [0, 1, 2, 3, 4, 5]
    # red plane: image identity, in file order; byte 5 is row 0, column 5
    assert (train.x[:, 0, 31, 31] * 255).round().tolist() == [10 * b + i for b in range(5) for i in range(6)]
    assert (test.x[:, 0, 17, 3] * 255).round().tolist() == [50, 51, 52, 53, 54, 55]
    assert train.x[7, 0, 0, 5].item() == 1.0 and train.x[7, 0, 0, 4].item() == pytest.approx(11 / 255) and train.x[7, 0, 5, 0].item() == pytest.approx(11 / 255)
    # green = 8 * row, blue = 8 * column (row-major planes, channel-major image)
    assert train.x[3, 1, 2, 30].item() == pytest.approx(16 / 255) and train.x[3, 2, 2, 30].item() == pytest.approx(240 / 255)
    assert torch.equal(test.x[0, 1], (8 * torch.arange(32.0)[:, None]).expand(32, 32) / 255)
    assert torch.equal(test.x[0, 2], (8 * torch.arange(32.0)[None, :]).expand(32, 32) / 255)
    assert float(train.x.min()) == 0.0 and float(train.x.max()) == 1.0


def test_cifar10_python_batches_load_with_exact_pixels(tmp_path):
    write_cifar_python(tmp_path)
    check_cifar(*read_cifar10(str(tmp_path)))


def test_cifar10_root_may_be_the_batches_folder_itself(tmp_path):
    folder = write_cifar_python(tmp_path)
    check_cifar(*read_cifar10(str(folder)))


def test_cifar10_binary_batches_equal_the_python_ones(tmp_path):
    write_cifar_python(tmp_path / "py")
    folder = write_cifar_binary(tmp_path / "bin")
    py, binary = read_cifar10(str(tmp_path / "py")), read_cifar10(str(tmp_path / "bin"))
    check_cifar(*binary)
    assert torch.equal(py[0].x, binary[0].x) and torch.equal(py[0].y, binary[0].y)
    assert torch.equal(py[1].x, binary[1].x) and torch.equal(py[1].y, binary[1].y) and py[2] == binary[2]
    check_cifar(*read_cifar10(str(folder)))


def test_cifar10_without_meta_uses_the_official_class_names(tmp_path):
    folder = write_cifar_python(tmp_path)
    (folder / "batches.meta").unlink()
    assert read_cifar10(str(tmp_path))[2] == ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def test_cifar10_through_load_splits(tmp_path):
    write_cifar_python(tmp_path)
    splits = load_splits(DataConfig(dataset="cifar10", root=str(tmp_path), defense_fraction=0.2))
    assert splits.input_shape == (3, 32, 32) and splits.num_classes == 10 and len(splits.test) == 6
    assert len(splits.train) == 24 and len(splits.clean) == 6


class _SystemExploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _TouchExploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


@pytest.mark.parametrize("exploit, refused", [(_SystemExploit, r"(posix|nt)\.system"), (_TouchExploit, r"__builtin__\.getattr")])
def test_a_malicious_cifar_pickle_is_refused_and_never_executed(tmp_path, exploit, refused):
    folder = write_cifar_python(tmp_path)
    marker = tmp_path / "pwned"
    with open(folder / "data_batch_1", "wb") as out:
        pickle.dump({"data": exploit(marker), "labels": [0]}, out, protocol=2)
    with pytest.raises(UserInputError, match=f"refuses to load {refused} from {re.escape(str(folder / 'data_batch_1'))}: only plain arrays"):
        read_cifar10(str(tmp_path))
    assert not marker.exists()


def test_a_malicious_meta_file_is_refused_too(tmp_path):
    folder = write_cifar_python(tmp_path)
    marker = tmp_path / "pwned"
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": _SystemExploit(marker)}, protocol=2))
    with pytest.raises(UserInputError, match="refuses to load"):
        read_cifar10(str(tmp_path))
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_safe_load_round_trips_plain_arrays(protocol):
    value = {"u8": np.arange(12, dtype=np.uint8).reshape(3, 4), "f": np.array([0.5, -2.0]), "n": [1, "a", (2.5, None)], "s": np.float64(3.25)}
    out = safe_load(pickle.dumps(value, protocol=protocol))
    assert out["u8"].dtype == np.uint8 and out["u8"].tolist() == value["u8"].tolist() and out["f"].tolist() == [0.5, -2.0]
    assert out["n"] == [1, "a", (2.5, None)] and out["s"] == 3.25


def test_safe_load_refuses_keys_that_are_not_text_bytes_or_numbers_before_hashing_them():
    shallow = b"\x80\x02})" + b"q\x00h\x00\x86" * 3 + b"K\x01s."  # {t3: 1}, t_k = (t_(k-1), t_(k-1)) through the memo
    with pytest.raises(UserInputError, match="a dict key is a tuple"):
        safe_load(shallow)
    # 40 levels: hashing this key visits 2**40 tuples with the GIL held (the C unpickler froze the server)
    with pytest.raises(UserInputError, match="a dict key is a tuple"):
        safe_load(b"\x80\x02})" + b"q\x00h\x00\x86" * 40 + b"K\x01s.")
    with pytest.raises(UserInputError, match="sets are not allowed"):
        safe_load(pickle.dumps({"labels": frozenset({1, 2})}, protocol=4))
    assert safe_load(pickle.dumps({"a": 1, b"b": 2, 3: [4]}, protocol=2)) == {"a": 1, b"b": 2, 3: [4]}


def test_safe_load_reads_old_numpy_core_names_without_warnings(recwarn):
    # files pickled before numpy 2 (CIFAR-10's own) name numpy.core.multiarray, a deprecated alias now
    old = pickle.dumps({"data": np.array([[1, 2], [3, 255]], dtype=np.uint8)}, protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"cnumpy.core.multiarray\n_reconstruct" in old
    assert safe_load(old)["data"].tolist() == [[1, 2], [3, 255]] and len(recwarn) == 0


def test_safe_load_refuses_other_codecs_and_garbage(tmp_path):
    zlib_call = b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x04\x00\x00\x00zlib\x86R."  # _codecs.encode("abc", "zlib")
    latin1_call = zlib_call.replace(b"\x04\x00\x00\x00zlib", b"\x06\x00\x00\x00latin1")
    assert safe_load(latin1_call) == b"abc"
    with pytest.raises(UserInputError, match="_codecs.encode is only allowed on text with latin1, not str with 'zlib'"):
        safe_load(zlib_call)
    with pytest.raises(UserInputError, match=f"{re.escape(str(tmp_path / 'junk'))} is not a readable pickle"):
        (tmp_path / "junk").write_bytes(b"\x80\x02}q\x00")
        with open(tmp_path / "junk", "rb") as handle:
            safe_load(handle)


def test_a_missing_cifar_root_names_the_folder_and_download(tmp_path):
    missing = tmp_path / "nothing"
    with pytest.raises(UserInputError, match=re.escape(f"no CIFAR-10 batches in {missing}")) as info:
        read_cifar10(str(missing))
    assert "data_batch_1" in str(info.value) and "test_batch" in str(info.value) and "--download" in str(info.value)


def test_cifar10_download_goes_through_torchvision_then_the_safe_reader(tmp_path, monkeypatch):
    import urllib.error

    import torchvision

    calls = []

    def fake_cifar10(root, train, download):  # stands in for the real download + md5 check
        calls.append((root, train, download))
        write_cifar_python(Path(root))

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", fake_cifar10)
    check_cifar(*read_cifar10(str(tmp_path / "new"), download=True))
    check_cifar(*read_cifar10(str(tmp_path / "new"), download=True))  # found on disk: no second download
    assert calls == [(str(tmp_path / "new"), True, True)]

    def offline(root, train, download):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(UserInputError, match=re.escape(f"could not download CIFAR-10 into {tmp_path / 'offline'}: <urlopen error no route to host>")):
        read_cifar10(str(tmp_path / "offline"), download=True)


def test_an_incomplete_cifar_folder_names_the_missing_batch(tmp_path):
    folder = write_cifar_python(tmp_path)
    (folder / "data_batch_3").unlink()
    with pytest.raises(UserInputError, match=re.escape(f"the CIFAR-10 folder {folder} is incomplete: data_batch_3 missing")):
        read_cifar10(str(tmp_path))


def test_a_truncated_binary_batch_is_refused(tmp_path):
    folder = write_cifar_binary(tmp_path)
    (folder / "test_batch.bin").write_bytes((folder / "test_batch.bin").read_bytes()[:-1])
    with pytest.raises(UserInputError, match="not a whole number of 3073-byte records"):
        read_cifar10(str(tmp_path))


# ---------------------------------------------------------------- images


def save_image(path: Path, size: tuple[int, int], value: int, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value if mode == "L" else (value, value // 2, 0)).save(path)


def test_gtsrb_in_torchvision_layout(tmp_path):
    base = tmp_path / "gtsrb"
    for cls in (0, 2):  # class 1 left out: training labels must still be the folder ids the csv uses
        folder = base / "GTSRB" / "Training" / f"{cls:05d}"
        for k, size in enumerate([(30, 30), (45, 40)]):
            save_image(folder / f"00000_{k:05d}.ppm", size, 100 + cls)
        (folder / f"GT-{cls:05d}.csv").write_text("Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\n")
    rows = ["Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId"]
    for k, (cls, size) in enumerate([(2, (50, 52)), (0, (29, 33)), (2, (64, 64))]):
        save_image(base / "GTSRB" / "Final_Test" / "Images" / f"{k:05d}.ppm", size, 200 + k)
        rows.append(f"{k:05d}.ppm;{size[0]};{size[1]};5;5;20;20;{cls}")
    (base / "GT-final_test.csv").write_text("\n".join(rows) + "\n")
    train, test, classes = read_gtsrb(str(tmp_path), image_size=16)
    assert train.x.shape == (4, 3, 16, 16) and test.x.shape == (3, 3, 16, 16) and classes == ("0", "1", "2")
    assert train.y.tolist() == [0, 0, 2, 2] and test.y.tolist() == [2, 0, 2]
    assert (train.x[:, 0, 8, 8] * 255).round().tolist() == [100, 100, 102, 102]
    assert (test.x[:, :, 3, 11] * 255).round().tolist() == [[200, 100, 0], [201, 100, 0], [202, 101, 0]]


def test_missing_gtsrb_is_a_user_error(tmp_path):
    with pytest.raises(UserInputError, match=re.escape(f"no readable GTSRB train split under {tmp_path / 'gtsrb'}")):
        read_gtsrb(str(tmp_path))


def test_image_folder_with_train_and_test_of_mixed_sizes(tmp_path):
    for split, n in (("train", 3), ("test", 2)):
        for cls, value in (("cat", 50), ("dog", 150)):
            for k in range(n):
                save_image(tmp_path / split / cls / f"{k}.png", (20 + 7 * k, 24 - 5 * k), value)
    train, test, classes = read_image_folder(str(tmp_path), image_size=12)
    assert classes == ("cat", "dog") and train.x.shape == (6, 3, 12, 12) and test.x.shape == (4, 3, 12, 12)
    assert train.y.tolist() == [0, 0, 0, 1, 1, 1] and test.y.tolist() == [0, 0, 1, 1]
    assert (train.x[:, :, 6, 6] * 255).round().tolist() == [[50, 25, 0]] * 3 + [[150, 75, 0]] * 3
    assert (test.x[3] * 255).round().unique().tolist() == [0, 75, 150]


def test_image_folder_pool_only_and_greyscale(tmp_path):
    for cls, value in (("a", 80), ("b", 160)):
        for k in range(5):
            save_image(tmp_path / cls / f"{k}.png", (10 + k, 10), value, mode="L")
    train, test, classes = read_image_folder(str(tmp_path), image_size=8)
    assert test is None and train.x.shape == (10, 1, 8, 8) and classes == ("a", "b")
    assert train.y.tolist() == [0] * 5 + [1] * 5 and (train.x[:, 0, 4, 4] * 255).round().tolist() == [80] * 5 + [160] * 5


def test_image_folder_resizes_bilinearly(tmp_path):
    stripes = np.zeros((4, 16), dtype=np.uint8)
    stripes[:, 8:] = 200
    (tmp_path / "a").mkdir()
    Image.fromarray(stripes).save(tmp_path / "a" / "0.png")
    save_image(tmp_path / "b" / "0.png", (3, 3), 10, mode="L")
    train, _, _ = read_image_folder(str(tmp_path), image_size=8)
    expected = np.array(Image.fromarray(stripes).resize((8, 8), Image.Resampling.BILINEAR))
    assert torch.equal((train.x[0, 0] * 255).round().to(torch.uint8), torch.from_numpy(expected))
    assert (train.x[0, 0, 0] * 255).round().tolist() == [0, 0, 0, 25, 175, 200, 200, 200]


def test_image_folder_mixed_grey_and_colour_is_rgb(tmp_path):
    save_image(tmp_path / "a" / "0.png", (9, 9), 90, mode="L")
    save_image(tmp_path / "b" / "0.jpg", (9, 9), 200)
    train, test, _ = read_image_folder(str(tmp_path), image_size=9)
    assert test is None and train.x.shape == (2, 3, 9, 9)
    assert (train.x[0, :, 4, 4] * 255).round().tolist() == [90, 90, 90]


def test_image_folder_through_load_splits(tmp_path):
    for cls in ("a", "b"):
        for k in range(10):
            save_image(tmp_path / cls / f"{k}.png", (10, 10), 30 * k, mode="L")
    splits = load_splits(DataConfig(dataset="imagefolder", root=str(tmp_path), image_size=8, test_fraction=0.2, defense_fraction=0.25))
    assert splits.input_shape == (1, 8, 8) and splits.classes == ("a", "b")
    assert len(splits.test) == 4 and len(splits.clean) == 4 and len(splits.train) == 12


def _mismatch(root: Path) -> None:
    save_image(root / "train" / "a" / "0.png", (8, 8), 1)
    save_image(root / "train" / "b" / "0.png", (8, 8), 1)
    save_image(root / "test" / "a" / "0.png", (8, 8), 1)
    save_image(root / "test" / "c" / "0.png", (8, 8), 1)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda root: root.mkdir(), "is not an image folder: it needs one sub-folder of images per class"),
        (lambda root: save_image(root / "only" / "0.png", (8, 8), 1), r"needs at least two classes .* found 1"),
        (lambda root: (save_image(root / "a" / "0.png", (8, 8), 1), (root / "b").mkdir()), "class folder\\(s\\) b in .* hold no images"),
        (lambda root: (save_image(root / "a" / "0.png", (8, 8), 1), (root / "b").mkdir(), (root / "b" / "x.png").write_bytes(b"not a png")), r"cannot read image \S*b[/\\]x\.png"),
        (lambda root: None, "does not exist"),
        (_mismatch, r"test has classes \['a', 'c'\] but .*train has \['a', 'b'\]: they must match"),
        (lambda root: save_image(root / "train" / "a" / "0.png", (8, 8), 1), "has a train/ folder but no test/ folder"),
    ],
    ids=["empty", "one-class", "empty-class", "corrupt-image", "missing", "class-mismatch", "train-without-test"],
)
def test_bad_image_folders_get_clear_messages(tmp_path, make, message):
    root = tmp_path / "data"
    make(root)
    with pytest.raises(UserInputError, match=message):
        read_image_folder(str(root))


def test_a_symlink_loop_in_an_image_folder_counts_each_image_once(tmp_path):
    root = tmp_path / "loop"
    for cls in ("a", "b"):
        for i in range(3):
            save_image(root / cls / f"{i}.png", (8, 8), 40 * i)
    save_image(root / "a" / "sub" / "x.png", (8, 8), 90)
    (root / "a" / "sub" / "up").symlink_to(root / "a", target_is_directory=True)  # a/sub/up/sub/up/...: once read ~375 times
    (root / "b" / "self").symlink_to(root / "b", target_is_directory=True)
    save_image(tmp_path / "elsewhere" / "extra.png", (8, 8), 200)
    (root / "b" / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)  # a linked folder of new images counts
    train, test, classes = read_image_folder(str(root), image_size=8)
    assert test is None and classes == ("a", "b")
    assert torch.bincount(train.y).tolist() == [4, 4]
