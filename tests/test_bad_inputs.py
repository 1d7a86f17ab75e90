"""Every bad input gets a clear message, in the app and the CLI, and breaks nothing.

`BAD_INPUTS` is the table the README's "Bad inputs" section shows: each row names where the input
goes, what it is, and a fragment of the message the user gets. App rows run in AppTest and also
assert no exception reached the page; CLI rows assert exit code 1 or 2 and one `error:` line.
The parsers behind them are fuzzed in `tests/test_fuzz_inputs.py`.
"""

from __future__ import annotations

import functools
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import torch
from safetensors.torch import save
from streamlit.testing.v1 import AppTest

from purify_core.store.checkpoints import read_card
from purify_core.cli import main
from purify_core.config import ModelConfig
from purify_core.errors import MESSAGE_LIMIT, printable
from purify_core.models.architectures import build_model
from purify_core.store import weights_sandbox
from purify_core.study import RunRecord
from purify_core.store.zoo import ZOO_DIR
from ui import untrusted
from ui.server import MAX_UPLOAD_MB
from weight_files import nested_key, saved, size_balloon, torch_zip, untrained_weights

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = "mnist5k-smallcnn-badnets"


class _Marker:
    """Unpickling this creates the file: proof that a pickle ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _nan_weights() -> bytes:
    state = build_model(ModelConfig("smallcnn"), (1, 8, 8), 10).state_dict()
    state["net.conv1.weight"] = torch.full_like(state["net.conv1.weight"], float("nan"))
    return save({k: v.contiguous() for k, v in state.items()})


def _pickle(marker: Path) -> bytes:
    buffer = io.BytesIO()
    torch.save({"weight": torch.zeros(1), "payload": _Marker(str(marker))}, buffer)
    return buffer.getvalue()


def _changed_weights(**changes: torch.Tensor | float) -> bytes:
    """A digits smallcnn's weights with some tensors replaced, or every net.* float tensor filled with one number."""
    state = build_model(ModelConfig("smallcnn"), (1, 8, 8), 10).state_dict()
    fill = changes.pop("fill", None)
    if fill is not None:
        state = {k: torch.full_like(v, fill) if k.startswith("net.") and v.is_floating_point() else v for k, v in state.items()}
    state.update(changes)
    return save({k: v.contiguous() for k, v in state.items()})


@functools.cache
def _zip_bomb() -> bytes:
    """Built once (deflating 64 MiB takes a quarter second, and every CLI row's fixture writes every upload)."""
    return torch_zip(nested_key(1), compress=True, padding=2**26)


#: The time limit the upload rows run under (the app's is `weights_sandbox.PARSE_SECONDS`): shorter, yet long
#: enough for a good file's child on a busy 2-core machine (one took over 8 s).
HANG_SECONDS = 20
#: The rows whose file never finishes reading wait for the limit whatever it is: theirs is shorter still (same code
#: path, same message). tests/test_weights_sandbox.py shows the payload really hangs and the limit stops it on time.
SECONDS_FOR = {"a 562-byte .pt whose dict key takes hours to hash (nested tuples)": 4}


UPLOADS: dict[str, Callable[[Path], tuple[str, bytes]]] = {
    "weights for another architecture (smallvgg for smallcnn)": lambda tmp: ("vgg.safetensors", untrained_weights("smallvgg")),
    "wrong number of classes (3 for 10)": lambda tmp: ("three.safetensors", untrained_weights(classes=3)),
    "wrong input channels (3 for grey images)": lambda tmp: ("rgb.safetensors", untrained_weights(shape=(3, 8, 8))),
    "truncated safetensors": lambda tmp: ("cut.safetensors", untrained_weights()[:5000]),
    "NaN weights": lambda tmp: ("nan.safetensors", _nan_weights()),
    "crafted pickle that would write a file": lambda tmp: ("evil.pt", _pickle(tmp / "pwned")),
    "not a weights file": lambda tmp: ("notes.txt", b"hello"),
    f"file over the {MAX_UPLOAD_MB} MiB limit": lambda tmp: ("big.safetensors", b"\0" * ((MAX_UPLOAD_MB + 1) * 2**20)),
    "a 562-byte .pt whose dict key takes hours to hash (nested tuples)": lambda tmp: ("hang.pt", torch_zip(nested_key(40))),
    "a .pt whose pickle asks for gigabytes (torch.Size(bytearray(2e8)))": lambda tmp: ("balloon.pt", torch_zip(size_balloon(2 * 10**8))),
    "a .pt with a compressed record (64 KB inflating to 64 MiB)": lambda tmp: ("bomb.pt", _zip_bomb()),
    "a .pt whose dict key is not a string (a tuple whose repr is 4 M items)": lambda tmp: ("keys.pt", torch_zip(nested_key(22))),
    "complex NaN weights": lambda tmp: ("complex.pt", saved({"net.conv1.weight": torch.full((2,), complex(float("nan"), 0))})),
    "float8 NaN weights": lambda tmp: ("f8.pt", saved({"net.conv1.weight": torch.full((2,), float("nan")).to(torch.float8_e4m3fn)})),
    "a quantized tensor": lambda tmp: ("q.pt", saved({"net.conv1.weight": torch.quantize_per_tensor(torch.ones(2), 0.1, 0, torch.qint8)})),
    "a sparse tensor": lambda tmp: ("sparse.pt", saved({"net.conv1.weight": torch.eye(2).to_sparse()})),
    "a meta tensor": lambda tmp: ("meta.pt", saved({"net.conv1.weight": torch.empty(2, device="meta")})),
    "weights of 3e38 (finite, but the outputs overflow)": lambda tmp: ("huge.safetensors", _changed_weights(fill=3e38)),
    "a normalisation std of 0": lambda tmp: ("std0.safetensors", _changed_weights(**{"normalize.std": torch.zeros(1, 1, 1, 1)})),
    "a safetensors header listing 20,000 empty tensors": lambda tmp: ("many.safetensors", _many_tensors(20_000)),
    "a safetensors file named .pt": lambda tmp: ("named.pt", untrained_weights()),
    "a text file named .pt": lambda tmp: ("notes.pt", b"these are not weights\n"),
    "a .pt zip whose pickle is junk (once answered with the reader's own `KeyError: 101`)": lambda tmp: ("junk.pt", torch_zip(b"hello")),
}
#: The app's uploader accepts only .safetensors/.pt/.pth names (Streamlit refuses other types itself); the dtype
#: variants go through the same child and check as complex NaN, so the app runs that one.
APP_UPLOADS = [what for what in UPLOADS if what not in ("not a weights file", "float8 NaN weights", "a quantized tensor",
                                                        "a sparse tensor", "a meta tensor", "a text file named .pt")]
UPLOAD_MESSAGES = {
    "weights for another architecture (smallvgg for smallcnn)": "does not fit smallcnn",
    "wrong number of classes (3 for 10)": "has shape (3, 128) in the file but (10, 128) in the model",
    "wrong input channels (3 for grey images)": "has shape (1, 3, 1, 1) in the file but (1, 1, 1, 1) in the model",
    "truncated safetensors": "is not a readable safetensors file",
    "NaN weights": "holds NaN or infinite values",
    "crafted pickle that would write a file": "was refused: only plain state dicts of tensors are loaded",
    "not a weights file": "weights must be a .safetensors file or a .pt/.pth state dict",
    f"file over the {MAX_UPLOAD_MB} MiB limit": f"the limit is {MAX_UPLOAD_MB} MiB",
    "a 562-byte .pt whose dict key takes hours to hash (nested tuples)": "s to read and was stopped: a state dict reads in a second or two",
    # it fills the child's 512 MiB at about 10 M items a second: the memory limit stops it, or the time limit on a slow machine
    "a .pt whose pickle asks for gigabytes (torch.Size(bytearray(2e8)))": "to read and was stopped",
    "a .pt with a compressed record (64 KB inflating to 64 MiB)": "holds a compressed or encrypted zip record",
    "a .pt whose dict key is not a string (a tuple whose repr is 4 M items)": "has a key of type tuple; a state dict's keys are parameter names",
    "complex NaN weights": "(dtype complex64, layout strided): only dense real floating-point and integer tensors are loaded",
    "float8 NaN weights": "(dtype float8_e4m3fn, layout strided): only dense real floating-point and integer tensors",
    "a quantized tensor": "(dtype qint8, layout strided, quantized): only dense real",
    "a sparse tensor": "(dtype float32, layout sparse_coo): only dense real",
    "a meta tensor": "(dtype float32, layout strided, meta): only dense real",
    "weights of 3e38 (finite, but the outputs overflow)": "gives NaN or infinite outputs on 16 test images",
    "a normalisation std of 0": "gives NaN or infinite outputs on 16 test images",
    "a safetensors header listing 20,000 empty tensors": "lists 20000 tensors; the limit is 10000",
    "a safetensors file named .pt": "is a safetensors file, but a .pt/.pth file must be a state dict saved with torch.save",
    "a text file named .pt": "is text, but a .pt/.pth file must be a state dict saved with torch.save",
    "a .pt zip whose pickle is junk (once answered with the reader's own `KeyError: 101`)":
        "it is a zip file like those torch.save writes, but what is inside is damaged or was not written by torch.save",
}


def _many_tensors(count: int) -> bytes:
    header = ("{" + ",".join(f'"t{i}":{{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}' for i in range(count)) + "}").encode()
    return len(header).to_bytes(8, "little") + header


@dataclass(frozen=True)
class Bad:
    """One row of the table: where, what, and the message fragment the user reads."""

    where: str
    what: str
    message: str
    argv: tuple[str, ...] = ()
    #: A condition the CLI row runs under (see `_SETUPS`): an unwritable cache, a disk that fills up.
    setup: str = ""


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
        Bad("CLI purify", "threshold out of range", "the pruning threshold must be in [0, 0.8]", ("purify", "--scenario", "badnets", "--threshold", "0.9")),
        Bad("CLI purify", "negative AR strength", "the regularization strength must be a finite number >= 0", ("purify", "--scenario", "badnets", "--strength", "-1")),
        Bad("CLI purify", "a learning rate that makes the loss explode", "the run diverged: the loss became", ("purify", "--scenario", "badnets", "--lr", "1000", "--epochs", "1")),
        Bad("CLI rank", "unknown scenario", "no shipped scenario matches 'nope'", ("rank", "--scenario", "nope")),
        Bad("CLI purify", "both a shipped scenario and your own checkpoint", "not both", ("purify", "--scenario", "badnets", "--checkpoint", "{tampered}", "--card", "{tampered_card}")),
        Bad("CLI purify", "no model named", "which model? give --scenario NAME", ("purify",)),
        Bad("CLI rank", "--checkpoint without its --card", "--checkpoint and --card go together", ("rank", "--checkpoint", "{tampered}")),
        Bad("CLI purify", "your own checkpoint whose sha256 does not match its card", "but its card says", ("purify", "--checkpoint", "{tampered}", "--card", "{tampered_card}")),
        Bad("CLI purify", "an unknown re-initialisation (read as a layer name)", "no layer named everything to re-initialise: use none, dense, marked",
            ("purify", "--scenario", "badnets", "--reinit", "everything")),
        Bad("CLI purify", "a layer to re-initialise that the model lacks", "no layer named net.fc9 to re-initialise", ("purify", "--scenario", "badnets", "--reinit", "net.fc9", "--epochs", "1")),
        Bad("CLI purify", "a distillation weight above 1", "the distillation weight must be in [0, 1]", ("purify", "--scenario", "badnets", "--distill", "2")),
        Bad("CLI purify", "an unknown distillation view", "unknown distillation view 'mixup'", ("purify", "--scenario", "badnets", "--distill-view", "mixup")),
        Bad("CLI purify", "an unknown classifier init", "unknown classifier init 'ones'", ("purify", "--scenario", "badnets", "--classifier-init", "ones")),
        Bad("CLI purify", "a 5,000-character ranking name (echoed: its start and end shown, the rest cut)",
            "characters, cut) … ", ("purify", "--scenario", "badnets", "--metric", "x" * 5000)),
        Bad("CLI purify", "a 5,000-character number of epochs (a usage error, cut the same way)",
            "characters, cut) … ", ("purify", "--scenario", "badnets", "--epochs", "9" * 5000)),
        Bad("CLI evaluate", "a file name with a line break and a terminal escape code (one line; the code shown as a mark)",
            "a b\ufffd[2J does not exist", ("evaluate", "--checkpoint", "a\nb\x1b[2J", "--card", "a\nb\x1b[2J")),
        Bad("CLI purify", "a layer name with a line break (a usage error, one line the same way)",
            "no neuron layer named x y", ("purify", "--scenario", "badnets", "--layers", "x\ny")),
        Bad("CLI reactivate", "a negative number of poisoned images", "poisoned images must be a whole number >= 1", ("reactivate", "--scenario", "badnets", "--poisoned", "-5")),
        Bad("CLI reactivate", "more poisoned images than the re-tuning set holds", "1000000 poisoned images do not fit in a re-tuning set of 100", ("reactivate", "--scenario", "badnets", "--poisoned", "1000000")),
        Bad("CLI reactivate", "a huge re-tuning set", "the re-tuning set must hold 1 to 5000 images", ("reactivate", "--scenario", "badnets", "--images", "1000000000")),
        Bad("CLI reactivate", "zero or huge re-tuning epochs", "re-tuning epochs must be a whole number from 1 to 100", ("reactivate", "--scenario", "badnets", "--epochs", "100000")),
        Bad("CLI evaluate", "a zoo card whose sha256 does not match", "but its card says", ("evaluate", "--checkpoint", "{tampered}", "--card", "{tampered_card}")),
        Bad("CLI bench", "a negative number of sweep workers", "--workers must be >= 0", ("bench", "claims", "--workers", "-1", "--out", "{out}")),
        Bad("CLI bench", "GPUs per job without Ray", "--gpus-per-job asks Ray for GPUs", ("bench", "arena", "--gpus-per-job", "1", "--out", "{out}")),
    ] + [Bad("CLI import", what, UPLOAD_MESSAGES[what], ("import", "--dataset", "digits", "--weights", "{upload:" + what + "}"))
         for what in UPLOADS] + _limit_rows()


def _limit_rows() -> list[Bad]:
    """Issue 13's classes: cards, sizes, numbers, files and folders that once gave a traceback."""
    train = ("train", "--dataset", "digits", "--no-clean-reference", "--epochs", "1")
    evaluate = ("evaluate", "--checkpoint", "{shipped}", "--card")
    tiny_import = ("import", "--dataset", "digits", "--weights", "{tiny_weights}")
    return [
        Bad("CLI evaluate", "a card field of the wrong type (scenario seed \"abc\")", "seed must be a whole number in [0, 2147483647], got 'abc'", (*evaluate, "{card:seed_abc}")),
        Bad("CLI train", "a CIFAR-10 batch whose dict key would take 2^40 steps to hash", "a dict key is a tuple",
            ("train", "--dataset", "cifar10", "--data-root", "{cifar_hang}", "--out")),
        Bad("CLI evaluate", "a card nested 100,000 levels deep", "is nested too deeply to be a card", (*evaluate, "{card:deep}")),
        Bad("CLI evaluate", "a card declaring a 100000x100000 input", "input_shape's height must be a whole number in [1, 4096]", (*evaluate, "{card:huge_input}")),
        Bad("CLI evaluate", "a card declaring 10^12 classes", "num_classes must be a whole number in [2, 100000]", (*evaluate, "{card:huge_classes}")),
        Bad("CLI evaluate", "a card naming a huge torchvision model (tv:vit_h_14)", "M parameters; the limit is 200 M", (*evaluate, "{card:vit}")),
        Bad("CLI evaluate", "a card naming a model the weights do not fit (tv:resnet18)", "does not fit architecture tv:resnet18", (*evaluate, "{card:resnet}")),
        Bad("CLI evaluate", "a card holding NaN (not JSON)", "acc must be a number in [0.0, 100.0], got nan", (*evaluate, "{card:nan}")),
        Bad("CLI train", "a huge torchvision model (--model tv:vit_h_14), refused before building it", "M parameters; the limit is 200 M",
            (*train, "--model", "tv:vit_h_14", "--out")),
        Bad("CLI import", "weights for a huge torchvision model (--model tv:vit_h_14)", "M parameters; the limit is 200 M",
            (*tiny_import, "--model", "tv:vit_h_14")),
        Bad("CLI train", "a negative seed (--seed -1, refused by purify too)", "seed must be a whole number in [0, 2147483647], got -1", (*train, "--seed", "-1", "--out")),
        Bad("CLI purify", "a negative run seed (--run-seed -1)", "--run-seed must be a whole number in [0, 2147483647], got -1",
            ("purify", "--scenario", "badnets", "--epochs", "1", "--run-seed", "-1")),
        Bad("CLI defend", "one of purify's own steps given to a defense (--rotate 10 --distill 0.5), once silently dropped",
            "--distill, --rotate: purify's own steps, which a defense does not take", ("defend", "--scenario", "badnets", "--defense", "finetune", "--rotate", "10", "--distill", "0.5")),
        Bad("CLI purify", "a turn of the student's images past 45 degrees (--rotate 90: a 6 would read as a 9)",
            "rotate must be a number of degrees from 0 to 45, got 90.0", ("purify", "--scenario", "badnets", "--epochs", "1", "--rotate", "90")),
        Bad("CLI train", "a seed that overflows (--seed 2^64)", "seed must be a whole number in [0, 2147483647]", (*train, "--seed", str(2**64), "--out")),
        Bad("CLI train", "pattern_seed that overflows", "attack parameter pattern_seed=18446744073709551616 is out of range",
            (*train, "--attack", "blended", "--attack-param", f"pattern_seed={2**64}", "--out")),
        Bad("CLI train", "an infinite patch (size=inf)", "attack parameter size=inf must be a finite number", (*train, "--attack-param", "size=inf", "--out")),
        Bad("CLI train", "an infinite frequency (sig frequency=1e999)", "attack parameter frequency=inf must be a finite number",
            (*train, "--attack", "sig", "--attack-param", "frequency=1e999", "--out")),
        Bad("CLI train", "a NaN warp (wanet strength=nan), which once trained and wrote NaN into the card",
            "attack parameter strength=nan must be a finite number", (*train, "--attack", "wanet", "--attack-param", "strength=nan", "--out")),
        Bad("CLI train", "a NaN poison rate or learning rate", "poison rate must be a finite number, got nan", (*train, "--poison-rate", "nan", "--out")),
        Bad("CLI train", "a blend pattern that is a decompression bomb (6000x6000 declared)", "declares 6000x6000 pixels; the limit is",
            (*train, "--attack", "blended", "--attack-param", "pattern={bomb}", "--out")),
        Bad("CLI train", "a blend pattern beyond PIL's bomb limit (10000x10000)", "could be decompression bomb",
            (*train, "--attack", "blended", "--attack-param", "pattern={big_bomb}", "--out")),
        Bad("CLI train", "--out that is a file (checked before training)", "is a file, not a folder", (*train, "--out", "{a_file}")),
        Bad("CLI train", "--out that cannot be written (checked before training)", "cannot write to the output folder", (*train, "--out", "{under_a_file}")),
        Bad("CLI train", "a name already holding a model trained with other settings", "already holds a model named mnist5k-smallcnn-badnets trained with other settings",
            ("train", "--dataset", "mnist5k", "--epochs", "1", "--no-clean-reference", "--out", "{zoo_copy}")),
        Bad("CLI import", "a model cache that cannot be written (read-only, or a file)", "cannot write to the model folder", tiny_import, "cache_is_a_file"),
        Bad("CLI import", "a model cache whose disk fills up while saving (nothing half-written stays)", "No space left on device; nothing there was changed",
            tiny_import, "disk_full"),
        Bad("CLI zoo verify", "--tolerance nan", "must be a number of points in [0, 100], got nan", ("zoo", "verify", "--tolerance", "nan")),
        Bad("CLI zoo build", "a typo in --zoo-dir (it once retrained every model into a new folder)", "holds no model cards; check --zoo-dir",
            ("zoo", "build", "--zoo-dir", "{empty}/zooo")),
        Bad("CLI zoo list", "a --zoo-dir that does not exist", "does not exist; check --zoo-dir", ("zoo", "list", "--zoo-dir", "{empty}/zooo")),
    ]


#: Markup in a link, shown as text (a code span; its fence outgrows any backticks in the value): (what, query, warning).
LINK_MARKUP = [
    ("an image in a value, whose URL the browser would fetch (`?purify_lr=![x](http://127.0.0.1:9/x.png)`)",
     {"purify_lr": "![x](http://127.0.0.1:9/x.png)"}, "Ignored `purify_lr=![x](http://127.0.0.1:9/x.png)` in the link"),
    ("a backtick that would end the code span, then HTML (``?seed=a` <img src=x onerror=alert(1)>``)",
     {"seed": "a` <img src=x onerror=alert(1)>"}, "Ignored ``seed=a` <img src=x onerror=alert(1)>`` in the link"),
    ("a phishing link as the model's name (`?scenario=[click](http://127.0.0.1:9)`)",
     {"scenario": "[click](http://127.0.0.1:9)"}, "Unknown model `[click](http://127.0.0.1:9)` in the link"),
    ("a Streamlit directive and LaTeX (`?purify_kappa=:red[big] $x$`)",
     {"purify_kappa": ":red[big] $x$"}, "Ignored `purify_kappa=:red[big] $x$` in the link"),
]


def _app_rows() -> list[Bad]:
    return [Bad("app Attack lab upload", what, UPLOAD_MESSAGES[what]) for what in APP_UPLOADS] + [
        Bad("app Attack lab", "patch larger than the image", "does not fit a 8x8 image"),
        Bad("app link", "threshold out of range (?purify_threshold=0.9)", "Ignored `purify_threshold=0.9` in the link"),
        Bad("app link", "negative AR strength (?purify_strength=-1)", "Ignored `purify_strength=-1` in the link"),
        Bad("app link", "nonsense value (?purify_epochs=banana)", "Ignored `purify_epochs=banana` in the link"),
        Bad("app link", "unknown or path-like model (?scenario=../../etc/passwd)", "Unknown model `../../etc/passwd` in the link"),
        *[Bad("app link", what, message) for what, _, message in LINK_MARKUP],
        # tests/test_untrusted.py and tests/test_sources.py check these three
        Bad("app Attack lab upload", "a file name holding markdown and HTML (`![x](http:127.0.0.1:9 x.png) <img src=x onerror=alert(1)>.pt`)",
            "the card says: uploaded as (the name, shown as typed); errors quote it the same way"),
        Bad("app Attack lab upload", "the same weights uploaded in two sessions against different attacks",
            "each session's card names its own attack and file name (cached as `upload-SHA-FINGERPRINT`)"),
        Bad("app Purify export", "a run exported after the sidebar switched to another model",
            "files named `MODEL-purified.json` / `.safetensors` after the run's own model; its sha256 in the card and report"),
        Bad("app sidebar", "a cached model whose file no longer matches its card's sha256", "but its card says"),
        # tests/test_app_polish.py checks these three
        Bad("app Attack lab upload", "a bad file after a good one", "its error alone: the earlier model's green \"ready\" banner is cleared"),
        Bad("app Attack lab upload", "a model card (optional, beside the weights) that is not JSON", "is not a model card: it is not valid JSON"),
        Bad("app Attack lab upload", "a model card naming a server file as Blended's pattern",
            "an upload may use only 'noise', 'stripes' (a browser never names a file on the server)"),
        # tests/test_app_lesson.py and tests/test_lessons.py check these three
        Bad("app Lesson", "a teacher's lesson file naming a page the app does not have (`page = \"comparison\"`)",
            "This lesson file cannot be used: broken.toml, step 3 ('Predict, then check the premise'): page 'comparison' is not a page of the app; choose one of"),
        Bad("app Lesson", "a lesson step whose link sets a control the app does not have, or a value it does not take",
            "link names the control 'purify_treshold', which the app does not have"),
        Bad("app Lesson", "a prediction checked by a run naming an outcome its page does not measure (`outcomes = [\"erased\", \"gone\"]`)",
            "outcome 'gone' is not one the 'purify' page measures (erased, not erased)"),
    ]


def _limit_app_rows() -> list[Bad]:
    """Issue 13's classes as the app meets them (tested below)."""
    return [
        Bad("app Attack lab train", "a model cache that cannot be written (checked before training)", "cannot write to the model cache"),
        Bad("app Attack lab upload", "a model cache that cannot be written", "cannot write to the model folder"),
        Bad("app server", "PURIFY_LAB_JOBS set to a non-ASCII digit (², ٣) or junk: ignored, the core count is used",
            "(server log) PURIFY_LAB_JOBS='²' is not a whole number in [1, 1024] (ASCII digits)"),
    ]


BAD_INPUTS = _cli_rows() + _app_rows() + _limit_app_rows()


class _Files(dict):
    """Paths the CLI rows name; `upload:WHAT` is written on first use (a row reads one upload, and writing all of
    them, a 51 MiB file among them, for each of the 77 rows cost more than most rows' own run)."""

    def __init__(self, tmp: Path, paths: dict[str, Path]) -> None:
        super().__init__(paths)
        self.tmp = tmp

    def __missing__(self, key: str) -> Path:
        if not key.startswith("upload:"):
            raise KeyError(key)
        name, content = UPLOADS[key.removeprefix("upload:")](self.tmp)
        (self.tmp / "uploads").mkdir(exist_ok=True)
        path = self[key] = self.tmp / "uploads" / name
        path.write_bytes(content)
        return path


@pytest.fixture
def files(tmp_path, monkeypatch):
    """Paths the CLI rows name: empty and one-class folders, a tampered zoo copy, each upload (on disk once named)."""
    monkeypatch.setenv("PURIFY_LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(weights_sandbox, "PARSE_SECONDS", HANG_SECONDS)
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
    paths.update(_limit_files(tmp_path))
    return _Files(tmp_path, paths)


def _png_header(width: int, height: int) -> bytes:
    """A tiny PNG that declares `width` x `height` pixels: what a decompression bomb looks like before decoding."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def _limit_files(tmp: Path) -> dict[str, Path]:
    """Bad cards beside the shipped weights, bomb images, a file where a folder belongs, a copy of the zoo."""
    import json

    card = json.loads((ZOO_DIR / f"{SHIPPED}.json").read_text())
    cards = {
        "seed_abc": {**card, "scenario": {**card["scenario"], "seed": "abc"}},
        "huge_input": {**card, "input_shape": [1, 100000, 100000]},
        "huge_classes": {**card, "num_classes": 10**12},
        "vit": {**card, "scenario": {**card["scenario"], "model": {"arch": "tv:vit_h_14"}}},
        "resnet": {**card, "scenario": {**card["scenario"], "model": {"arch": "tv:resnet18"}}},
    }
    paths = {"shipped": ZOO_DIR / f"{SHIPPED}.safetensors", "a_file": tmp / "a_file", "under_a_file": tmp / "a_file" / "out",
             "bomb": tmp / "bomb.png", "big_bomb": tmp / "big_bomb.png", "zoo_copy": tmp / "zoo_copy", "tiny_weights": tmp / "tiny.safetensors"}
    for name, content in cards.items():
        paths[f"card:{name}"] = tmp / f"{name}.json"
        paths[f"card:{name}"].write_text(json.dumps(content))
    paths["card:deep"] = tmp / "deep.json"
    paths["card:deep"].write_text("[" * 100_000 + "]" * 100_000)
    paths["card:nan"] = tmp / "nan.json"
    paths["card:nan"].write_text(json.dumps({**card, "acc": float("nan")}))  # what a NaN trigger once wrote
    paths["a_file"].write_text("not a folder")
    paths["cifar_hang"] = tmp / "cifar_hang"
    (paths["cifar_hang"] / "cifar-10-batches-py").mkdir(parents=True)
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"]:
        (paths["cifar_hang"] / "cifar-10-batches-py" / name).write_bytes(nested_key(40))
    paths["bomb"].write_bytes(_png_header(6000, 6000))
    paths["big_bomb"].write_bytes(_png_header(10000, 10000))
    paths["zoo_copy"].mkdir()
    shutil.copy(ZOO_DIR / f"{SHIPPED}.json", paths["zoo_copy"])
    paths["tiny_weights"].write_bytes(untrained_weights())
    return paths


def _disk_full(*args, **kwargs):
    import errno

    raise OSError(errno.ENOSPC, "No space left on device")


#: How a CLI row's `setup` changes the world it runs in.
_SETUPS: dict[str, Callable] = {
    "cache_is_a_file": lambda mp, files: mp.setenv("PURIFY_LAB_CACHE", str(files["a_file"])),
    "disk_full": lambda mp, files: mp.setattr("purify_core.store.checkpoints.os.fsync", _disk_full),
}


@pytest.mark.parametrize("row", _cli_rows(), ids=lambda r: f"{r.where}: {r.what}")
def test_the_cli_answers_a_bad_input_with_one_line(row, files, capsys, tmp_path, monkeypatch):
    if row.setup:
        _SETUPS[row.setup](monkeypatch, files)
    monkeypatch.setattr(weights_sandbox, "PARSE_SECONDS", SECONDS_FOR.get(row.what, HANG_SECONDS))
    argv = [str(files[a[1:-1]]) if a.startswith("{") and a.endswith("}") else a for a in row.argv]
    argv = [a.replace("{empty}", str(files["empty"])).replace("{bomb}", str(files["bomb"])).replace("{big_bomb}", str(files["big_bomb"]))
            for a in argv]
    if argv[-1] == "--out":
        argv.append(str(files["out"]))
    before = _files_in(tmp_path) | _files_in(ZOO_DIR)
    try:
        code = main(argv)
    except SystemExit as exit:  # a usage error (argparse): exit code 2
        code = exit.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code in (1, 2), code
    assert err[-1].startswith("error: ") and row.message in err[-1], err
    assert len(err[-1]) <= MESSAGE_LIMIT + 100, f"{len(err[-1])} characters: an echoed input must be cut (errors.bounded)"
    assert printable(err[-1]) == err[-1], "an echoed input must not break the line or reach the terminal as a control code"
    assert "Traceback" not in "\n".join(err)
    assert not (tmp_path / "pwned").exists(), "a pickle ran"
    assert _files_in(tmp_path) | _files_in(ZOO_DIR) == before, "a refused input wrote, changed or removed a file"


def _files_in(folder: Path) -> set[tuple[str, int, int]]:
    """Every file under `folder` with its size and modification time: any write, removal or new file shows.

    A save's empty lock file (`.NAME.lock`, see checkpoints.save_pair) holds no data and may stay.
    """
    return {(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")
            if p.is_file() and not (p.name.endswith(".lock") and p.stat().st_size == 0)}


def _attack_lab(at: AppTest) -> AppTest:
    at.run()
    at.switch_page("app_pages/attack_lab.py").run()
    return at.selectbox(key="attack_dataset").select("digits").run()


@pytest.mark.parametrize("what", APP_UPLOADS)
def test_the_app_refuses_a_bad_upload_with_a_message_and_keeps_the_session(what, tmp_path, monkeypatch):
    monkeypatch.setenv("PURIFY_LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(weights_sandbox, "PARSE_SECONDS", SECONDS_FOR.get(what, HANG_SECONDS))
    at = _attack_lab(AppTest.from_file(str(ROOT / "app.py"), default_timeout=300))
    kept = RunRecord(label="#1 kept", config={}, source=read_card(ZOO_DIR / "mnist5k-smallcnn-badnets.json"), status="finished")
    at.session_state["purify_runs"] = [kept]  # a finished run must survive
    name, content = UPLOADS[what](tmp_path)
    at.file_uploader(key="attack_file").upload(name, content).run()
    at.button(key="attack_upload").click().run()
    assert not at.exception
    assert [e.value for e in at.error if UPLOAD_MESSAGES[what] in untrusted.read(e.value)], [e.value for e in at.error]
    assert [(r.label, r.status) for r in at.session_state["purify_runs"]] == [("#1 kept", "finished")]
    assert not (tmp_path / "pwned").exists() and not list((tmp_path / "cache").glob("zoo/*.safetensors"))


@pytest.mark.parametrize("query, message", [
    ({"purify_threshold": "0.9"}, "Ignored `purify_threshold=0.9` in the link"),
    ({"purify_strength": "-1"}, "Ignored `purify_strength=-1` in the link"),
    ({"purify_epochs": "banana"}, "Ignored `purify_epochs=banana` in the link"),
    ({"scenario": "../../etc/passwd"}, "Unknown model `../../etc/passwd` in the link"),
    *[(query, message) for _, query, message in LINK_MARKUP],
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
    assert any(message in w for w in warnings), warnings  # the markdown source: the value sits in a code span
    for value in [*warnings, *(e.value for kind in ("markdown", "caption", "error") for e in at.get(kind))]:
        assert not any(piece in untrusted.markup(value) for piece in ("![", "[click", "<img", ":red[", "$x$")), value


def test_a_patch_larger_than_the_image_is_explained_in_the_attack_lab(tmp_path, monkeypatch):
    monkeypatch.setenv("PURIFY_LAB_CACHE", str(tmp_path / "cache"))
    before = _files_in(tmp_path) | _files_in(ZOO_DIR)
    at = _attack_lab(AppTest.from_file(str(ROOT / "app.py"), default_timeout=300))
    at.number_input(key="attack_param_badnets_size").set_value(20).run()
    assert not at.exception and "does not fit a 8x8 image" in at.error[0].value
    assert _files_in(tmp_path) | _files_in(ZOO_DIR) == before


def test_a_tampered_cached_model_is_refused_in_the_sidebar(tmp_path, monkeypatch):
    from purify_core.store.uploads import import_weights
    from purify_core.config import scenario_preset

    monkeypatch.setenv("PURIFY_LAB_CACHE", str(tmp_path / "cache"))
    saved = import_weights(untrained_weights(), "mine.safetensors", scenario_preset("tiny"), prefix="import")  # untrained: the app tier trains nothing
    weights = tmp_path / "cache" / "zoo" / f"{saved.card.name}.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    before = _files_in(tmp_path) | _files_in(ZOO_DIR)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.query_params["scenario"] = saved.card.name
    at.run()
    assert not at.exception
    assert any("but its card says" in untrusted.read(e.value) and saved.card.name in untrusted.read(e.value) for e in at.error), \
        [e.value for e in at.error]
    assert _files_in(tmp_path) | _files_in(ZOO_DIR) == before, "the tampered pair is left as found (not used, not replaced)"


def _shown(element) -> str:
    """What a reader sees of an app message: markdown escapes and invisible joiners dropped."""
    return element.value.replace("\\", "").replace("\u2060", "")


def test_an_unwritable_cache_and_a_junk_job_limit_are_explained_before_training(tmp_path, monkeypatch):
    (tmp_path / "a_file").write_text("not a folder")
    monkeypatch.setenv("PURIFY_LAB_CACHE", str(tmp_path / "a_file"))  # a read-only or missing cache reads the same
    monkeypatch.setenv("PURIFY_LAB_JOBS", "²")  # str.isdigit says yes, int() says no
    before = _files_in(tmp_path) | _files_in(ZOO_DIR)
    at = _attack_lab(AppTest.from_file(str(ROOT / "app.py"), default_timeout=300))
    with pytest.warns(RuntimeWarning, match="PURIFY_LAB_JOBS='²' is not a whole number"):
        at.button(key="attack_train").click().run()
    assert not at.exception
    assert any("cannot write to the model cache" in _shown(e) for e in at.error), [e.value for e in at.error]
    assert _files_in(tmp_path) | _files_in(ZOO_DIR) == before


def test_an_upload_into_an_unwritable_cache_is_explained_and_keeps_the_session(tmp_path, monkeypatch):
    (tmp_path / "a_file").write_text("not a folder")
    monkeypatch.setenv("PURIFY_LAB_CACHE", str(tmp_path / "a_file"))
    before = _files_in(tmp_path) | _files_in(ZOO_DIR)
    at = _attack_lab(AppTest.from_file(str(ROOT / "app.py"), default_timeout=300))
    at.file_uploader(key="attack_file").upload("mine.safetensors", untrained_weights()).run()
    at.button(key="attack_upload").click().run()
    assert not at.exception
    assert any("cannot write to the model folder" in _shown(e) for e in at.error), [e.value for e in at.error]
    assert _files_in(tmp_path) | _files_in(ZOO_DIR) == before


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
