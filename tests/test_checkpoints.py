"""Weights and card are one pair on disk: no interrupt, kill or full disk leaves a mismatched pair.

`save_pair` renames three times (temporary card -> pending card, weights, pending card -> card).
A child process is killed (`os._exit`, no cleanup) at each rename; a reader must then find the
old model or the new one, complete and sha256-checked, and no pending card left behind.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from purify_core.store.checkpoints import load_checkpoint, read_card, save_pair
from purify_core.config import ModelConfig
from purify_core.errors import UserInputError
from purify_core.models.architectures import build_model
from purify_core.store.zoo import ZOO_DIR

ROOT = Path(__file__).resolve().parent.parent
CARD = ZOO_DIR / "mnist5k-smallcnn-badnets.json"

_CHILD = """
import os, sys, torch
from purify_core.store.checkpoints import read_card, save_pair
from purify_core.config import ModelConfig
from purify_core.models.architectures import build_model

folder, stop = sys.argv[1], int(sys.argv[2])
real, calls = os.replace, [0]

def replace(src, dst):
    calls[0] += 1
    if calls[0] == stop:
        os._exit(9)  # killed here: no finally, no cleanup
    real(src, dst)

os.replace = replace
torch.manual_seed(1)
model = build_model(ModelConfig("smallcnn"), (1, 28, 28), 10)
save_pair(model, read_card(sys.argv[3]), f"{folder}/m.safetensors", f"{folder}/m.json")
"""


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(ModelConfig("smallcnn"), (1, 28, 28), 10)


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def _loaded(folder: Path) -> torch.nn.Module:
    return load_checkpoint(folder / "m.safetensors", read_card(folder / "m.json"))


@pytest.mark.parametrize("stop", [1, 2, 3, 4], ids=["before-pending", "before-weights", "before-card", "finished"])
def test_a_save_killed_at_any_rename_leaves_the_old_model_or_the_new_one(tmp_path, stop):
    old, new = _model(0), _model(1)
    save_pair(old, read_card(CARD), tmp_path / "m.safetensors", tmp_path / "m.json")
    child = subprocess.run([sys.executable, "-c", _CHILD, str(tmp_path), str(stop), str(CARD)], cwd=ROOT, capture_output=True, text=True)
    assert child.returncode == (9 if stop < 4 else 0), child.stderr
    loaded = _loaded(tmp_path)  # the reader settles whatever the kill left
    expected = new if stop >= 3 else old  # once the weights are renamed, the pending card completes the pair
    assert _same(loaded, expected) and not _same(loaded, new if expected is old else old)
    assert not list(tmp_path.glob(".m.json.pending")), "a settled pair leaves no pending card"


def test_an_interrupt_between_the_renames_is_settled_at_once(tmp_path, monkeypatch):
    save_pair(_model(0), read_card(CARD), tmp_path / "m.safetensors", tmp_path / "m.json")
    real, calls = os.replace, [0]

    def replace(src, dst):
        calls[0] += 1
        if calls[0] == 3:
            raise KeyboardInterrupt  # Ctrl-C after the weights, before the card
        real(src, dst)

    monkeypatch.setattr("purify_core.store.checkpoints.os.replace", replace)
    with pytest.raises(KeyboardInterrupt):
        save_pair(_model(1), read_card(CARD), tmp_path / "m.safetensors", tmp_path / "m.json")
    monkeypatch.undo()
    assert not list(tmp_path.glob(".m.json.pending")) and not list(tmp_path.glob("*.tmp"))
    assert _same(_loaded(tmp_path), _model(1))


def test_a_disk_that_fills_up_while_saving_changes_nothing(tmp_path, monkeypatch):
    save_pair(_model(0), read_card(CARD), tmp_path / "m.safetensors", tmp_path / "m.json")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("purify_core.store.checkpoints.os.fsync", full)
    with pytest.raises(UserInputError, match="No space left on device; nothing there was changed"):
        save_pair(_model(1), read_card(CARD), tmp_path / "m.safetensors", tmp_path / "m.json")
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert _same(_loaded(tmp_path), _model(0))


def test_a_card_naming_a_huge_model_is_refused_without_building_it(tmp_path):
    import json

    card = json.loads(CARD.read_text())
    card["scenario"]["model"]["arch"] = "tv:vit_h_14"  # 631 M parameters: about 2.5 GB if it were built
    (tmp_path / "vit.json").write_text(json.dumps(card))
    with pytest.raises(UserInputError, match="631 M parameters; the limit is 200 M"):
        load_checkpoint(ZOO_DIR / "mnist5k-smallcnn-badnets.safetensors", read_card(tmp_path / "vit.json"))
