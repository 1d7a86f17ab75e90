"""Every bad input gets a clear message, in the app and the CLI, and breaks nothing.

`BAD_INPUTS` is the table the README's "Bad inputs" section shows: each row names where the input
goes, what it is, and a fragment of the message the user gets. App rows run in AppTest and also
assert no exception reached the page; CLI rows assert exit code 1 or 2 and one `error:` line.
The upload and link parsers are fuzzed with hypothesis.
"""

from __future__ import annotations

import io
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import torch
from hypothesis import given, settings, strategies as st
from safetensors.torch import save
from streamlit.testing.v1 import AppTest

from purify_core.checkpoints import weights_bytes
from purify_core.cli import main
from purify_core.config import ModelConfig
from purify_core.errors import UserInputError
from purify_core.models import build_model
from purify_core.uploads import MAX_UPLOAD_MB, read_state_dict
from purify_core.zoo import ZOO_DIR, open_model
from ui.links import from_link

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = "mnist5k-smallcnn-badnets"


class _Marker:
    """Unpickling this creates the file: proof that a pickle ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _weights(arch: str = "smallcnn", shape=(1, 8, 8), classes: int = 10) -> bytes:
    return weights_bytes(build_model(ModelConfig(arch), shape, classes))[0]


def _nan_weights() -> bytes:
    state = build_model(ModelConfig("smallcnn"), (1, 8, 8), 10).state_dict()
    state["net.conv1.weight"] = torch.full_like(state["net.conv1.weight"], float("nan"))
    return save({k: v.contiguous() for k, v in state.items()})


def _pickle(marker: Path) -> bytes:
    buffer = io.BytesIO()
    torch.save({"weight": torch.zeros(1), "payload": _Marker(str(marker))}, buffer)
    return buffer.getvalue()


UPLOADS: dict[str, Callable[[Path], tuple[str, bytes]]] = {
    "weights for another architecture (smallvgg for smallcnn)": lambda tmp: ("vgg.safetensors", _weights("smallvgg")),
    "wrong number of classes (3 for 10)": lambda tmp: ("three.safetensors", _weights(classes=3)),
    "wrong input channels (3 for grey images)": lambda tmp: ("rgb.safetensors", _weights(shape=(3, 8, 8))),
    "truncated safetensors": lambda tmp: ("cut.safetensors", _weights()[:5000]),
    "NaN weights": lambda tmp: ("nan.safetensors", _nan_weights()),
    "crafted pickle that would write a file": lambda tmp: ("evil.pt", _pickle(tmp / "pwned")),
    "not a weights file": lambda tmp: ("notes.txt", b"hello"),
    f"file over the {MAX_UPLOAD_MB} MiB limit": lambda tmp: ("big.safetensors", b"\0" * ((MAX_UPLOAD_MB + 1) * 2**20)),
}
#: The app's uploader accepts only .safetensors/.pt/.pth names (Streamlit refuses other types itself).
APP_UPLOADS = [what for what in UPLOADS if what != "not a weights file"]
UPLOAD_MESSAGES = {
    "weights for another architecture (smallvgg for smallcnn)": "does not fit smallcnn",
    "wrong number of classes (3 for 10)": "has shape (3, 128) in the file but (10, 128) in the model",
    "wrong input channels (3 for grey images)": "has shape (1, 3, 1, 1) in the file but (1, 1, 1, 1) in the model",
    "truncated safetensors": "is not a readable safetensors file",
    "NaN weights": "holds NaN or infinite values",
    "crafted pickle that would write a file": "was refused: only plain state dicts of tensors are loaded",
    "not a weights file": "weights must be a .safetensors file or a .pt/.pth state dict",
    f"file over the {MAX_UPLOAD_MB} MiB limit": f"the limit is {MAX_UPLOAD_MB} MiB",
}


@dataclass(frozen=True)
class Bad:
    """One row of the table: where, what, and the message fragment the user reads."""

    where: str
    what: str
    message: str
    argv: tuple[str, ...] = ()


def _cli_rows() -> list[Bad]:
    train = ("train", "--dataset", "digits", "--no-clean-reference", "--out")
    return [
        Bad("CLI train", "empty ImageFolder", "is not an image folder", ("train", "--dataset", "imagefolder", "--data-root", "{empty}", "--out")),
        Bad("CLI train", "one-class ImageFolder", "needs at least two classes", ("train", "--dataset", "imagefolder", "--data-root", "{one_class}", "--out")),
        Bad("CLI train", "a CIFAR-10 root without the batches", "no CIFAR-10 batches in", ("train", "--dataset", "cifar10", "--data-root", "{empty}", "--out")),
        Bad("CLI train", "poison rate 0", "poison rate must be in (0, 0.5]", (*train[:3], "--poison-rate", "0", "--out")),
        Bad("CLI train", "poison rate above 50%", "poison rate must be in (0, 0.5]", (*train[:3], "--poison-rate", "0.6", "--out")),
        Bad("CLI train", "target class out of range", "target class 12 is out of range", (*train[:3], "--target", "12", "--out")),
        Bad("CLI train", "patch larger than the image", "does not fit a 8x8 image", (*train[:3], "--attack-param", "size=20", "--out")),
        Bad("CLI train", "a trigger parameter the attack does not have", "badnets has no parameter foo", (*train[:3], "--attack-param", "foo=1", "--out")),
        Bad("CLI train", "a learning rate that makes training explode", "training diverged", (*train, "{out}", "--lr", "10", "--epochs", "2")),
        Bad("CLI purify", "threshold out of range", "the pruning threshold must be in [0, 0.5]", ("purify", "--scenario", "badnets", "--threshold", "0.7")),
        Bad("CLI purify", "negative AR strength", "the regularization strength must be a finite number >= 0", ("purify", "--scenario", "badnets", "--strength", "-1")),
        Bad("CLI purify", "a learning rate that makes the loss explode", "the run diverged: the loss became", ("purify", "--scenario", "badnets", "--lr", "1000", "--epochs", "1")),
        Bad("CLI rank", "unknown scenario", "no shipped scenario matches 'nope'", ("rank", "--scenario", "nope")),
        Bad("CLI evaluate", "a zoo card whose sha256 does not match", "but its card says", ("evaluate", "--checkpoint", "{tampered}", "--card", "{tampered_card}")),
    ] + [Bad("CLI import", what, UPLOAD_MESSAGES[what], ("import", "--dataset", "digits", "--weights", "{upload:" + what + "}"))
         for what in UPLOADS]


def _app_rows() -> list[Bad]:
    return [Bad("app Attack lab upload", what, UPLOAD_MESSAGES[what]) for what in APP_UPLOADS] + [
        Bad("app Attack lab", "patch larger than the image", "does not fit a 8x8 image"),
        Bad("app link", "threshold out of range (?purify_threshold=0.7)", "Ignored `purify_threshold=0.7` in the link"),
        Bad("app link", "negative AR strength (?purify_strength=-1)", "Ignored `purify_strength=-1` in the link"),
        Bad("app link", "nonsense value (?purify_epochs=banana)", "Ignored `purify_epochs=banana` in the link"),
        Bad("app link", "unknown or path-like model (?scenario=../../etc/passwd)", "Unknown model '../../etc/passwd' in the link"),
        Bad("app sidebar", "a cached model whose file no longer matches its card's sha256", "but its card says"),
    ]


BAD_INPUTS = _cli_rows() + _app_rows()


@pytest.fixture
def files(tmp_path, monkeypatch):
    """Paths the CLI rows name: empty and one-class folders, a tampered zoo copy, each upload on disk."""
    monkeypatch.setenv("PURIFY_LAB_CACHE", str(tmp_path / "cache"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "one" / "cat").mkdir(parents=True)
    from PIL import Image

    for i in range(3):
        Image.new("RGB", (8, 8)).save(tmp_path / "one" / "cat" / f"{i}.png")
    tampered = tmp_path / "tampered.safetensors"
    data = bytearray((ZOO_DIR / f"{SHIPPED}.safetensors").read_bytes())
    data[-1] ^= 0xFF
    tampered.write_bytes(bytes(data))
    shutil.copy(ZOO_DIR / f"{SHIPPED}.json", tmp_path / "tampered.json")
    paths = {"empty": tmp_path / "empty", "one_class": tmp_path / "one", "out": tmp_path / "out", "tampered": tampered,
             "tampered_card": tmp_path / "tampered.json"}
    for what, make in UPLOADS.items():
        name, content = make(tmp_path)
        (tmp_path / "uploads").mkdir(exist_ok=True)
        (tmp_path / "uploads" / name).write_bytes(content)
        paths[f"upload:{what}"] = tmp_path / "uploads" / name
    return paths


@pytest.mark.parametrize("row", _cli_rows(), ids=lambda r: f"{r.where}: {r.what}")
def test_the_cli_answers_a_bad_input_with_one_line(row, files, capsys, tmp_path):
    argv = [str(files[a[1:-1]]) if a.startswith("{") else a for a in row.argv]
    if argv[-1] == "--out":
        argv.append(str(files["out"]))
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code in (1, 2), code
    assert err[-1].startswith("error: ") and row.message in err[-1], err
    assert "Traceback" not in "\n".join(err)
    assert not (tmp_path / "pwned").exists(), "a pickle ran"


def _attack_lab(at: AppTest) -> AppTest:
    at.run()
    at.switch_page("app_pages/attack_lab.py").run()
    return at.selectbox(key="attack_dataset").select("digits").run()


@pytest.mark.parametrize("what", APP_UPLOADS)
def test_the_app_refuses_a_bad_upload_with_a_message_and_keeps_the_session(what, tmp_path, monkeypatch):
    monkeypatch.setenv("PURIFY_LAB_CACHE", str(tmp_path / "cache"))
    at = _attack_lab(AppTest.from_file(str(ROOT / "app.py"), default_timeout=300))
    at.session_state["purify_runs"] = [{"label": "#1 kept", "status": "finished"}]  # a finished run must survive
    name, content = UPLOADS[what](tmp_path)
    at.file_uploader(key="attack_file").upload(name, content).run()
    at.button(key="attack_upload").click().run()
    assert not at.exception
    assert [e.value for e in at.error if UPLOAD_MESSAGES[what] in e.value], [e.value for e in at.error]
    assert at.session_state["purify_runs"] == [{"label": "#1 kept", "status": "finished"}]
    assert not (tmp_path / "pwned").exists() and not list((tmp_path / "cache").glob("zoo/*.safetensors"))


@pytest.mark.parametrize("query, message", [
    ({"purify_threshold": "0.7"}, "Ignored `purify_threshold=0.7` in the link"),
    ({"purify_strength": "-1"}, "Ignored `purify_strength=-1` in the link"),
    ({"purify_epochs": "banana"}, "Ignored `purify_epochs=banana` in the link"),
    ({"scenario": "../../etc/passwd"}, "Unknown model '../../etc/passwd' in the link"),
])
def test_nonsense_in_a_link_is_ignored_with_a_warning(query, message):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    warnings = [w.value for w in at.warning]  # the sidebar's, on the first run
    at.switch_page("app_pages/purify.py").run()
    assert not at.exception
    warnings += [w.value for w in at.warning]
    assert any(message in w for w in warnings), warnings


def test_a_patch_larger_than_the_image_is_explained_in_the_attack_lab(tmp_path, monkeypatch):
    monkeypatch.setenv("PURIFY_LAB_CACHE", str(tmp_path / "cache"))
    at = _attack_lab(AppTest.from_file(str(ROOT / "app.py"), default_timeout=300))
    at.number_input(key="attack_param_badnets_size").set_value(20).run()
    assert not at.exception and "does not fit a 8x8 image" in at.error[0].value


def test_a_tampered_cached_model_is_refused_in_the_sidebar(tmp_path, monkeypatch, tiny_backdoored):
    from purify_core.uploads import import_weights
    from purify_core.config import scenario_preset

    monkeypatch.setenv("PURIFY_LAB_CACHE", str(tmp_path / "cache"))
    saved = import_weights(weights_bytes(tiny_backdoored.model)[0], "mine.safetensors", scenario_preset("tiny"), prefix="import")
    weights = tmp_path / "cache" / "zoo" / f"{saved.card.name}.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.query_params["scenario"] = saved.card.name
    at.run()
    assert not at.exception
    assert any("but its card says" in e.value and saved.card.name in e.value for e in at.error), [e.value for e in at.error]


def test_the_readme_table_lists_every_bad_input():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Bad inputs", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith(("| where", "| ---"))]
    assert len(BAD_INPUTS) >= 20 and len(rows) == len(BAD_INPUTS), (len(rows), len(BAD_INPUTS))
    for row in BAD_INPUTS:
        assert any(row.where in line and row.what in line and row.message in line for line in rows), row


def readme_table() -> str:
    """The README rows, generated from this table (python -c 'from tests.test_bad_inputs import readme_table; print(readme_table())')."""
    lines = ["| where | bad input | the message says |", "| --- | --- | --- |"]
    lines += [f"| {r.where} | {r.what} | {r.message.replace('|', '/')} |" for r in BAD_INPUTS]
    return "\n".join(lines)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=2048), name=st.sampled_from(["w.safetensors", "w.pt", "w.pth", "w.bin", "w"]))
def test_fuzzed_uploads_give_tensors_or_a_clear_refusal(data, name):
    try:
        state = read_state_dict(data, name)
    except UserInputError as error:
        assert str(error)
    else:
        assert all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())


@settings(max_examples=200, deadline=None)
@given(data=st.binary(min_size=8, max_size=512))
def test_fuzzed_bytes_behind_a_valid_safetensors_header_are_refused_or_read(data):
    header = b'{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
    blob = len(header).to_bytes(8, "little") + header + data
    try:
        read_state_dict(blob, "w.safetensors")
    except UserInputError:
        pass


@settings(max_examples=300, deadline=None)
@given(raw=st.text(max_size=40))
def test_fuzzed_link_values_are_valid_or_ignored(raw):
    threshold = from_link(raw, float, bounds=(0.0, 0.5))
    assert threshold is None or 0.0 <= threshold <= 0.5
    epochs = from_link(raw, int, bounds=(1, 60))
    assert epochs is None or (isinstance(epochs, int) and 1 <= epochs <= 60)
    choice = from_link(raw, choices=("ar", "l2"))
    assert choice in (None, "ar", "l2")


@settings(max_examples=200, deadline=None)
@given(key=st.text(max_size=60))
def test_fuzzed_model_names_from_a_link_open_a_model_or_are_refused(key, tmp_path_factory):
    try:
        open_model(key, cache_dir=tmp_path_factory.getbasetemp() / "no-cache")
    except UserInputError:
        pass
    else:
        assert re.fullmatch(r"[A-Za-z0-9._-]+", key) and (ZOO_DIR / f"{key}.json").is_file()
