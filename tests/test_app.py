"""The app, driven headless through Streamlit's AppTest."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from purify_core.store.zoo import list_zoo

ROOT = Path(__file__).resolve().parent.parent


def run_app(**query: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def test_home_shows_the_default_scenario_card():
    at = run_app()
    assert not at.exception
    assert at.selectbox(key="scenario").value == "mnist5k-smallcnn-badnets"
    labels = [m.label for m in at.metric]
    assert labels[:2] == ["Clean accuracy (ACC)", "Attack success (ASR)"]
    card = next(c for c in list_zoo() if c.name == "mnist5k-smallcnn-badnets")
    assert at.metric[0].value == f"{card.acc:.1f}%" and at.metric[1].value == f"{card.asr:.1f}%"
    assert len(at.get("plotly_chart")) == 2
    assert any(c.value.startswith(f"Weights in memory: sha256 `{card.sha256[:16]}") for c in at.caption)
    assert len(at.get("page_link")) == 6, "the guided tour links every step's page, the Attack lab and the Lesson"


@pytest.mark.parametrize("name", [c.name for c in list_zoo()])
def test_every_shipped_scenario_renders(name):
    at = run_app(scenario=name)
    assert not at.exception
    assert at.selectbox(key="scenario").value == name
    assert name in at.markdown[0].value


def test_switching_the_scenario_updates_the_card():
    at = run_app()
    assert at.query_params["scenario"] == "mnist5k-smallcnn-badnets", "the choice is mirrored in the URL"
    at.selectbox(key="scenario").select("mnist5k-smallcnn-sig")
    at.run()
    assert not at.exception
    assert at.markdown[0].value.startswith("**mnist5k-smallcnn-sig**")


def test_an_unknown_scenario_in_the_link_falls_back_with_a_warning():
    at = run_app(scenario="no-such-model")
    assert not at.exception
    assert at.selectbox(key="scenario").value == "mnist5k-smallcnn-badnets"
    assert any("Unknown model" in w.value for w in at.warning)
