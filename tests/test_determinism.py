"""Deterministic reruns on the CPU: the same scenario, seed and settings give the same numbers."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import torch
from streamlit.testing.v1 import AppTest

from purify_core.models.evaluate import evaluate
from purify_core.method.purify import PurifyConfig, PurifyResult, purify

ROOT = Path(__file__).resolve().parent.parent
CONFIG = PurifyConfig(epochs=2, eval_every=5, seed=3)


def _comparable(step: dict) -> dict:
    """A step without its wall time (that differs; the numbers must not), NaN spelled out (NaN != NaN)."""
    return {k: ("nan" if v != v else v) for k, v in step.items() if k != "seconds"}


def _numbers(items) -> tuple[list[dict], PurifyResult]:
    items = list(items)
    return [_comparable(asdict(i)) for i in items[:-1]], items[-1]


def test_the_same_seed_and_settings_give_the_same_run_and_weights(tiny_backdoored):
    splits = tiny_backdoored.splits()
    evaluator = lambda m: evaluate(m, splits.test, tiny_backdoored.attack)  # noqa: E731
    first, a = _numbers(purify(tiny_backdoored.model, splits.clean, CONFIG, evaluator))
    second, b = _numbers(purify(tiny_backdoored.model, splits.clean, CONFIG, evaluator))
    assert first == second
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, b.model.state_dict()[key]), key
    other, _ = _numbers(purify(tiny_backdoored.model, splits.clean, replace(CONFIG, seed=4), evaluator))
    assert [s["task_loss"] for s in other] != [s["task_loss"] for s in first], "the seed must matter, or this test proves nothing"


def test_the_app_gives_the_same_numbers_for_the_same_settings(monkeypatch):
    monkeypatch.setenv("PURIFY_LAB_REPLAYS", "off")  # compute both runs: a replay would match by construction
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.query_params["purify_epochs"] = "1"
    at.query_params["seed"] = "5"
    at.run()
    at.switch_page("app_pages/purify.py").run()
    at.button(key="purify_run").click().run()
    at.button(key="purify_run").click().run()
    assert not at.exception
    one, two = at.session_state["purify_runs"]
    assert one.config == two.config and one.config["seed"] == 5 and one.config["device"] == "cpu"
    assert [_comparable(s) for s in one.history] == [_comparable(s) for s in two.history]
    assert one.summary_dict()["after"] == two.summary_dict()["after"]
