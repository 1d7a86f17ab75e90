"""Several app servers, one cache: two processes writing the same key at once never leave, nor show, a mismatched pair.

Two writer processes save different models under the same key, as a model pair (`save_pair`)
and as a clean control (`save_clean`), many times each, while this process reads both keys as
fast as it can. Every read must be whole: one writer's weights with that writer's card, never a
mix and never a checksum error, and the last state on disk must be one writer's pair. The same
for the app's kept runs (`ui/replay.py`): two processes keeping the same runs leave each one whole.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from purify_core.config import ModelConfig
from purify_core.evaluation.clean_control import cached_clean_model, clean_key
from purify_core.models.architectures import build_model
from purify_core.store.backdoored import load_pair
from purify_core.errors import ChecksumMismatchError
from purify_core.store.checkpoints import read_card, read_pair, save_checkpoint, save_pair
from purify_core.store.zoo import ZOO_DIR

ROOT = Path(__file__).resolve().parent.parent
CARD = ZOO_DIR / "mnist5k-smallcnn-badnets.json"
ROUNDS = 25

_WRITER = """
import dataclasses, sys, time
from pathlib import Path
import torch
from purify_core.config import ModelConfig
from purify_core.evaluation.clean_control import save_clean
from purify_core.models.architectures import build_model
from purify_core.store.checkpoints import read_card, save_pair

folder, seed, rounds, card_path = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
torch.manual_seed(seed)
model = build_model(ModelConfig("smallcnn"), (1, 28, 28), 10)
card = dataclasses.replace(read_card(card_path), acc=float(seed))  # the card says which writer wrote it
meta = {"input_shape": [1, 28, 28], "num_classes": 10, "classes": list(card.classes), "acc": float(seed), "train_seconds": 0.0}
(folder / f"ready{seed}").touch()
while not (folder / "go").exists():  # both writers start together
    time.sleep(0.01)
for _ in range(rounds):
    save_pair(model, card, folder / "m.safetensors", folder / "m.json")
    save_clean(card.scenario_config, model, meta, folder)
"""


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(ModelConfig("smallcnn"), (1, 28, 28), 10)


def _which(model: torch.nn.Module, models: dict[int, torch.nn.Module]) -> int | None:
    """The seed of the writer whose weights `model` holds, or None if it is neither's."""
    state = model.state_dict()
    for seed, other in models.items():
        if all(torch.equal(state[k], v) for k, v in other.state_dict().items()):
            return seed
    return None


def _started_writers(tmp_path: Path, commands: list[list[str]]) -> list[subprocess.Popen]:
    """Start one `python -c SCRIPT ARGS...` writer per command (writer k touches ready<k+1>), wait until
    all are ready, then let them go at once (the file 'go'), so their writes overlap."""
    writers = [subprocess.Popen([sys.executable, "-c", *command], cwd=ROOT, stderr=subprocess.PIPE, text=True) for command in commands]
    deadline = time.monotonic() + 300
    while not all((tmp_path / f"ready{k + 1}").exists() for k in range(len(writers))):
        assert all(w.poll() is None for w in writers), [w.stderr.read() for w in writers if w.poll() is not None]
        assert time.monotonic() < deadline, "the writers did not start"
        time.sleep(0.05)
    (tmp_path / "go").touch()
    return writers


def test_two_processes_writing_one_key_never_show_a_reader_a_mismatched_pair(tmp_path):
    models = {1: _model(1), 2: _model(2)}
    scenario = read_card(CARD).scenario_config
    clean_meta = tmp_path / f"{clean_key(scenario)}.json"
    writers = _started_writers(tmp_path, [[_WRITER, str(tmp_path), str(seed), str(ROUNDS), str(CARD)] for seed in models])
    try:
        pairs = cleans = 0
        while any(w.poll() is None for w in writers):
            if (tmp_path / "m.json").exists():
                loaded = load_pair(tmp_path / "m.safetensors", tmp_path / "m.json", "cpu")  # a mismatch would raise here
                assert _which(loaded.model, models) == int(loaded.card.acc), "a card with the other writer's weights"
                pairs += 1
            written = clean_meta.exists()  # files are only ever replaced, never removed: once there, a read must succeed
            clean = cached_clean_model(scenario, tmp_path, "cpu")  # None for an unreadable or mismatched pair
            assert clean is not None or not written, "a clean control refused while two processes wrote it"
            if clean is not None:
                assert _which(clean, models) is not None, "a clean control that is neither writer's"
                cleans += 1
    finally:
        for w in writers:
            w.wait(timeout=300)
    assert [w.returncode for w in writers] == [0, 0], [w.stderr.read() for w in writers]
    assert pairs >= 5 and cleans >= 5, f"the reader read only {pairs} pairs and {cleans} clean controls while the writers ran"
    final = load_pair(tmp_path / "m.safetensors", tmp_path / "m.json", "cpu")
    assert _which(final.model, models) == int(final.card.acc)
    assert _which(cached_clean_model(scenario, tmp_path, "cpu"), models) in models
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.endswith((".tmp", ".pending")))
    assert not left, f"temporary files left behind: {left}"


def test_a_pair_that_really_does_not_match_is_still_refused_after_the_second_read(tmp_path):
    save_pair(_model(1), read_card(CARD), tmp_path / "m.safetensors", tmp_path / "m.json")
    save_checkpoint(_model(2), tmp_path / "m.safetensors")  # the weights swapped behind the card's back
    with pytest.raises(ChecksumMismatchError):
        load_pair(tmp_path / "m.safetensors", tmp_path / "m.json", "cpu")


def test_a_read_that_caught_a_pair_being_replaced_is_read_again(tmp_path):
    save_pair(_model(1), read_card(CARD), tmp_path / "m.safetensors", tmp_path / "m.json")  # a writer was here
    calls = []

    def read() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise ChecksumMismatchError("the weights were replaced between the two reads")
        return "whole"

    assert read_pair(tmp_path / "m.json", read) == "whole" and len(calls) == 2


_REPLAY_WRITER = """
import sys, time
from pathlib import Path
import torch
from purify_core.config import ModelConfig
from purify_core.method.purify import PurifySummary
from purify_core.models.architectures import build_model
from purify_core.models.evaluate import Metrics
from purify_core.study import RunRecord
from ui import replay

folder, seed, keys = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.manual_seed(seed)
run = RunRecord(label="#1", config={}, source=None, status="finished", reason="ran", model=build_model(ModelConfig("smallcnn"), (1, 28, 28), 10),
                history=[{"step": s, "writer": seed} for s in range(50)])
run.summary = PurifySummary(status="finished", reason="ran", steps=50, seconds=0.1, marked=seed, before=Metrics(0.9, 1.0, 10, 9, 0.0),
                            after=Metrics(0.9, 0.0, 10, 9, 1.0), steps_to_erase=1)
(folder.parent / f"ready{seed}").touch()
while not (folder.parent / "go").exists():
    time.sleep(0.01)
for key in range(keys):
    assert replay.save(f"k{key}", run, folder)
"""


def test_two_processes_keeping_the_same_runs_never_show_a_reader_half_a_run(tmp_path):
    from ui import replay

    models = {1: _model(1), 2: _model(2)}
    folder, keys = tmp_path / "replays", 12
    writers = _started_writers(tmp_path, [[_REPLAY_WRITER, str(folder), str(seed), str(keys)] for seed in models])
    try:
        reads = 0
        while any(w.poll() is None for w in writers):
            for key in range(keys):
                kept = replay.load(f"k{key}", models[1], folder)
                if kept is not None:  # a run is there whole, or not at all
                    writer = kept["summary"].marked
                    assert _which(kept["model"], models) == writer and {h["writer"] for h in kept["history"]} == {writer}
                    assert len(kept["history"]) == 50
                    reads += 1
    finally:
        for w in writers:
            w.wait(timeout=300)
    assert [w.returncode for w in writers] == [0, 0], [w.stderr.read() for w in writers]
    assert all(replay.load(f"k{key}", models[1], folder) is not None for key in range(keys))
    assert not list(folder.glob(".partial-*")), "a writer that lost the race leaves no partial folder"
    assert reads > 0


def test_reading_a_folder_nobody_writes_to_leaves_no_file_there(tmp_path):
    """The shipped zoo (or a read-only mount) is only read: even a mismatch there makes no lock file."""
    save_checkpoint(_model(1), tmp_path / "m.safetensors")
    (tmp_path / "m.json").write_bytes(CARD.read_bytes())  # a card whose sha256 names other weights
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(ChecksumMismatchError):
        load_pair(tmp_path / "m.safetensors", tmp_path / "m.json", "cpu")
    assert sorted(p.name for p in tmp_path.iterdir()) == before
