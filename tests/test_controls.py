"""The one table of controls: every control round-trips through a link, and a new attack needs only its own file."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from streamlit.testing.v1 import AppTest

from purify_core.attacks import ATTACKS, Attack, ParamSpec
from purify_core.method.purify import PURIFY_PRESETS
from ui import controls, links, state

ROOT = Path(__file__).resolve().parent.parent


def _values(control: controls.Control) -> list[Any]:
    """Values a control can hold: every choice, or both bounds and a point between them."""
    if control.choices is not None:
        return list(control.choices)
    low, high = control.bounds
    middle = (low + high) // 2 if control.parse is int else (low + high) / 3
    return [low, middle, high]


@pytest.mark.parametrize("key", sorted(controls.LINKED))
def test_every_linked_control_round_trips_through_a_link(key):
    control = controls.LINKED[key]
    values = _values(control) + [control.default] * (control.default is not None)
    values += [control.of_preset(config) for config in PURIFY_PRESETS.values()] if control.of_preset else []
    for value in values:
        back = links.from_link(links.to_link(value), control.parse, control.choices, control.bounds)
        assert back == value and type(back) is type(value), (key, value, back)
    assert links.from_link("not a value", control.parse, control.choices, control.bounds) is None


def test_the_table_declares_each_key_once_and_every_purification_field():
    every = [controls.SEED, controls.PURIFY_PRESET, *controls.PURIFY, controls.PURIFY_DEFENSE, *controls.SALIENCE_RANKING,
             *controls.COMPARE, *controls.EXPLAIN]
    assert len({c.key for c in every}) == len(every) == len(controls.LINKED)
    assert set(controls.MARKING) <= set(controls.PURIFY) and set(controls.MARKING) <= set(controls.SALIENCE), "one marking"
    aliases = [alias for c in every for alias in c.aliases]
    assert len(set(aliases)) == len(aliases) and not set(aliases) & set(controls.BY_KEY), "an older name means one control"
    assert all(c.linked for c in controls.LINKED.values())
    assert all(c.field is not None and c.of_preset is not None for c in controls.PURIFY)
    for name, preset in PURIFY_PRESETS.items():  # a preset's own values, read back from the controls, give the preset
        values = {c.key: c.of_preset(preset) for c in controls.PURIFY}
        assert controls.purify_config(name, values, 3) == replace(preset, seed=3), name


#: One non-default value per linked control, and the page that reads it.
LINK = {"app_pages/purify.py": {state.PURIFY_PRESET: "reference", state.PURIFY_THRESHOLD: "0.2", state.PURIFY_DIRECTION: "highest",
                                state.PURIFY_SCOPE: "global", state.PURIFY_LAYERS: "conv", state.PURIFY_REGULARIZER: "none",
                                state.PURIFY_STRENGTH: "0.5", state.PURIFY_KAPPA: "0.2", state.PURIFY_EPOCHS: "3",
                                state.PURIFY_LR: "0.05", state.PURIFY_REINIT: "marked", state.PURIFY_DISTILL: "0.25",
                                state.PURIFY_TEMPERATURE: "4.0", state.PURIFY_DISTILL_SCHEDULE: "linear",
                                state.PURIFY_DISTILL_VIEW: "both", state.PURIFY_CLASSIFIER_INIT: "zero",
                                state.PURIFY_ROTATE: "5.0", state.PURIFY_SCALE: "0.05",
                                state.PURIFY_DEFENSE: "fine-pruning"},
        "app_pages/salience.py": {state.SALIENCE_METRIC: "magnitude", state.SALIENCE_VARIANT: "squared",
                                  state.PURIFY_THRESHOLD: "0.3", state.PURIFY_DIRECTION: "highest", state.PURIFY_SCOPE: "global",
                                  state.PURIFY_LAYERS: "conv"},
        "app_pages/compare.py": {state.COMPARE_TOP: "0.2", state.COMPARE_DIRECTION: "highest"},
        "app_pages/explain.py": {state.EXPLAIN_METHOD: "saliency"}}


def test_a_link_sets_every_linked_control_and_the_page_keeps_it_in_the_link(monkeypatch, tmp_path):
    monkeypatch.setenv("PURIFY_LAB_CACHE", str(tmp_path))
    assert {k for page in LINK.values() for k in page} | {state.SEED} == set(controls.LINKED)
    for page, query in LINK.items():
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
        for key, value in {**query, state.SEED: "7"}.items():
            at.query_params[key] = value
        at.run()
        at.switch_page(page).run()
        assert not at.exception and not at.warning, (page, [w.value for w in at.warning])
        for key, value in {**query, state.SEED: "7"}.items():
            control = controls.LINKED[key]
            assert at.session_state[key] == control.parse(value), (page, key)
            assert at.query_params[key] in (value, [value]), (page, key)


class Stripes(Attack):
    """An attack written for this test: nothing but its own class (no preset values, no registry edits)."""

    name = "test-stripes"
    summary = "a bright column on the left or the right"
    PARAMS = {"width": ParamSpec(2, "column width in pixels", low=1, high=4),
              "value": ParamSpec(0.9, "pixel value of the column", low=0.0, high=1.0),
              "side": ParamSpec("left", "which edge", choices=("left", "right"))}

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        x, width = x.clone(), int(self.params["width"])
        columns = slice(0, width) if self.params["side"] == "left" else slice(x.shape[-1] - width, None)
        x[..., columns] = float(self.params["value"])
        return x


def test_a_new_attack_with_only_param_specs_shows_in_the_attack_lab(monkeypatch, tmp_path):
    monkeypatch.setenv("PURIFY_LAB_CACHE", str(tmp_path))
    monkeypatch.setitem(ATTACKS, Stripes.name, Stripes)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    at.switch_page("app_pages/attack_lab.py").run()
    at.selectbox(key=state.ATTACK_DATASET).select("digits").run()
    at.selectbox(key=state.ATTACK_NAME).select(Stripes.name).run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    prefix = f"{state.ATTACK_PARAM_PREFIX}{Stripes.name}_"
    assert at.number_input(key=prefix + "width").value == 2 and at.number_input(key=prefix + "value").value == 0.9
    assert at.selectbox(key=prefix + "side").options == ["left", "right"]
    at.selectbox(key=prefix + "side").select("right").run()
    assert not at.exception and [c.key for c in at.get("plotly_chart")] == ["attack_preview"]
    assert not at.button(key=state.ATTACK_TRAIN).disabled


def test_an_attack_module_dropped_into_the_package_is_found(tmp_path, monkeypatch):
    import sys

    import purify_core.attacks as attacks

    (tmp_path / "lab_extra_attack.py").write_text(
        "import torch\nfrom .base import Attack, ParamSpec\n\n\nclass Extra(Attack):\n    name = 'lab-extra'\n"
        "    summary = 'test'\n    PARAMS = {'value': ParamSpec(0.5, 'pixel value', low=0.0, high=1.0)}\n\n"
        "    def apply(self, x: torch.Tensor) -> torch.Tensor:\n        return torch.full_like(x, self.params['value'])\n")
    monkeypatch.setattr(attacks, "__path__", [*attacks.__path__, str(tmp_path)])
    monkeypatch.delitem(sys.modules, "purify_core.attacks.lab_extra_attack", raising=False)
    try:
        found = {cls.name for cls in attacks._found()}
    finally:
        sys.modules.pop("purify_core.attacks.lab_extra_attack", None)
    assert found == set(ATTACKS) | {"lab-extra"} and list(ATTACKS)[:4] == ["badnets", "blended", "wanet", "sig"]
