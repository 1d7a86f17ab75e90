"""Finished runs kept for replay: the key, what is kept (and what never is), and the app replaying."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from purify_core.method.purify import PurifySummary
from purify_core.models.evaluate import Metrics
from purify_core.study import RunRecord, summary_row
from ui import replay
from tests.app_helpers import open_page, weights_hash

SHA = "a" * 64
SETTINGS = {"regularizer": "prune", "threshold": 0.5, "seed": 0, "device": "cpu"}


def _run(model, status: str = "finished") -> RunRecord:
    run = RunRecord(label="#1 test", config=dict(SETTINGS), source=None)
    run.history = [{"step": 0, "acc": 0.9, "asr": 1.0, "task_loss": float("nan")}, {"step": 1, "acc": 0.95, "asr": 0.02, "task_loss": 0.3}]
    run.summary = PurifySummary(status=status, reason="ran all 1 epochs", steps=1, seconds=0.5, marked=3,
                                before=Metrics(0.9, 1.0, 10, 9, 0.0), after=Metrics(0.95, 0.02, 10, 9, 0.9), steps_to_erase=1)
    run.status, run.reason, run.model = status, run.summary.reason, model
    return run


def test_the_key_changes_with_the_model_a_setting_or_the_seed():
    key = replay.replay_key(SHA, SETTINGS)
    assert key == replay.replay_key(SHA, dict(reversed(list(SETTINGS.items()))))  # the same run, however the dict was built
    assert key != replay.replay_key("b" * 64, SETTINGS)
    assert key != replay.replay_key(SHA, {**SETTINGS, "seed": 1})
    assert key != replay.replay_key(SHA, {**SETTINGS, "threshold": 0.4})
    assert key != replay.replay_key(SHA, {**SETTINGS, "device": "cuda"})
    assert key != replay.replay_key(SHA, {**SETTINGS, "defense": "finetune"})
    threads = torch.get_num_threads()
    try:  # sums split over another number of threads round differently: not the same run
        torch.set_num_threads(threads + 1)
        assert key != replay.replay_key(SHA, SETTINGS)
    finally:
        torch.set_num_threads(threads)
    assert replay.replay_key("", SETTINGS) is None  # no sha256: nothing vouches for the weights


def test_a_finished_run_comes_back_with_its_numbers_and_weights(tmp_path, hand_net):
    purified = copy.deepcopy(hand_net)
    with torch.no_grad():
        purified.out.weight.mul_(0.5)
    run = _run(purified)
    assert replay.save("k1", run, tmp_path)
    assert not list(tmp_path.glob(".partial-*"))
    kept = replay.load("k1", hand_net, tmp_path)
    assert kept["summary"] == run.summary and kept["history"][1] == run.history[1]
    assert weights_hash(kept["model"]) == weights_hash(purified) != weights_hash(hand_net)
    fresh = RunRecord(label="#2 test", config=dict(SETTINGS), source=None)
    replay.fill(fresh, kept)
    assert fresh.status == "finished" and replay.REPLAYED in fresh.reason and summary_row(fresh.summary)["ASR after"] == 2.0
    assert replay.load("other", hand_net, tmp_path) is None


@pytest.mark.parametrize("status", ["stopped", "diverged", "running"])
def test_a_run_that_did_not_finish_is_never_kept(tmp_path, hand_net, status):
    assert not replay.save("k", _run(hand_net, status), tmp_path)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_a_settled_run_is_not_kept(tmp_path, hand_net):
    run = _run(hand_net)
    run.status = "running"
    assert run.settle() and not replay.save("k", run, tmp_path)


def test_a_damaged_or_foreign_entry_is_a_miss_never_an_error(tmp_path, hand_net):
    replay.save("k", _run(hand_net), tmp_path)
    entry = json.loads((tmp_path / "k" / "run.json").read_text())
    (tmp_path / "k" / "run.json").write_text(json.dumps({**entry, "key": "another"}))
    assert replay.load("k", hand_net, tmp_path) is None
    (tmp_path / "k" / "run.json").write_text(json.dumps(entry))
    (tmp_path / "k" / "model.safetensors").write_bytes(b"not safetensors")
    assert replay.load("k", hand_net, tmp_path) is None


def test_the_store_is_bounded(tmp_path, hand_net, monkeypatch):
    monkeypatch.setattr(replay, "MAX_ENTRIES", 2)
    for n in range(4):
        replay.save(f"k{n}", _run(hand_net), tmp_path)
    assert len(list(tmp_path.iterdir())) == 2


def test_replay_can_be_turned_off(monkeypatch, hand_net):
    monkeypatch.setenv("PURIFY_LAB_REPLAYS", "off")
    assert replay.replay_dir() is None and not replay.save("k", _run(hand_net)) and replay.load("k", hand_net) is None


def test_a_second_identical_run_is_replayed_and_another_seed_is_computed():
    at = open_page("app_pages/purify.py", purify_epochs="1")
    at.button(key="purify_run").click().run()
    at.button(key="purify_run").click().run()
    assert not at.exception
    first, second = at.session_state["purify_runs"]
    assert replay.REPLAYED not in first.reason and replay.REPLAYED in second.reason
    assert any(replay.REPLAYED in info.value for info in at.info)
    assert json.dumps(second.history) == json.dumps(first.history) and second.summary_row() | {"run": ""} == first.summary_row() | {"run": ""}
    assert weights_hash(second.model) == weights_hash(first.model)
    at.sidebar.number_input(key="seed").set_value(3).run()
    at.button(key="purify_run").click().run()
    third = at.session_state["purify_runs"][-1]
    assert third.config["seed"] == 3 and replay.REPLAYED not in third.reason
