"""Training in the Attack lab can be stopped and is estimated before it starts."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from purify_core.config import scenario_preset
from purify_core.store.model_store import list_built, load_or_train
from purify_core.store.cards import Card
from ui.estimates import seconds_text, time_left, training_estimate
from tests.app_helpers import ROOT


class Stopped(Exception):
    """What Streamlit raises at the page's next call once Stop (a rerun) was clicked."""


def test_a_stop_during_training_ends_it_and_saves_nothing(tmp_path):
    seen = []

    def on_progress(item) -> None:
        seen.append(item)
        if len(seen) == 3:
            raise Stopped

    with pytest.raises(Stopped):
        load_or_train(scenario_preset("tiny", "badnets"), cache_dir=tmp_path, on_progress=on_progress, device="cpu")
    assert len(seen) == 3 and seen[-1].fraction < 0.5
    assert list(tmp_path.iterdir()) == [] and list_built(tmp_path) == []


def test_the_page_says_a_stopped_training_saved_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("PURIFY_LAB_CACHE", str(tmp_path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.run()
    at.switch_page("app_pages/attack_lab.py").run()
    assert not any("Training stopped" in i.value for i in at.info)
    assert any("Estimated training time" in c.value for c in at.caption)  # the shipped mnist5k/smallcnn models
    at.session_state["attack_training"] = True  # what a Stop click leaves behind: the training's script run never ended
    at.run()
    assert any("Training stopped: nothing was saved" in i.value for i in at.info)
    at.run()
    assert not any("Training stopped" in i.value for i in at.info)  # said once


def _card(dataset: str, arch: str, seconds: float, epochs: int, n_train: int) -> Card:
    card = Card.__new__(Card)
    object.__setattr__(card, "scenario", {"data": {"dataset": dataset}, "model": {"arch": arch}, "train": {"epochs": epochs}})
    object.__setattr__(card, "train_seconds", seconds)
    object.__setattr__(card, "n_train", n_train)
    return card


def test_the_training_estimate_comes_from_the_same_data_and_architecture():
    cards = [_card("mnist5k", "smallcnn", 40.0, 8, 4000), _card("mnist5k", "smallcnn", 60.0, 8, 4000),
             _card("cifar10", "smallcnn", 900.0, 8, 4000), _card("mnist5k", "resnet18", 900.0, 8, 4000)]
    seconds, drawn_from = training_estimate(cards, "mnist5k", "smallcnn", epochs=4, n_train=2000)
    assert drawn_from == 2 and seconds == pytest.approx(50.0 / 4)
    assert training_estimate(cards, "gtsrb", "smallcnn", 4, 2000) is None
    assert seconds_text(40) == "about 40 s" and seconds_text(600) == "about 10 min"
    assert time_left(10.0, 0.25) == " · about 30 s left" and time_left(1.0, 0.01) == ""
