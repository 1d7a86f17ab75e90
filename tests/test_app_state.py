"""One story, one state: controls keep their values across pages and from links, and the marking is one thing.

Streamlit drops a widget's value at the end of a run that does not draw it, and a browser drops the
query string on a page switch; `visit` does both, as the real app does.
"""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from purify_core.method.purify import PURIFY_PRESETS
from ui import state

from app_helpers import open_page

PURIFY, SALIENCE, COMPARE, ATTACK_LAB = ("app_pages/purify.py", "app_pages/salience.py", "app_pages/compare.py",
                                        "app_pages/attack_lab.py")


def visit(at: AppTest, page: str) -> AppTest:
    """Switch page as a browser does: the query string is dropped (the session keeps what it needs)."""
    at.switch_page(page)
    at.query_params.clear()
    at.run()
    assert not at.exception and not at.error, (page, at.exception, [e.value for e in at.error])
    return at


def marked(at: AppTest) -> int:
    """The number of neurons the page says are marked (its caption that counts them)."""
    caption = next(c.value for c in at.caption if "neurons marked" in c.value)
    return int(caption.split()[0])


def test_controls_keep_their_values_when_other_pages_are_visited():
    at = open_page(PURIFY)
    at.slider(key=state.PURIFY_THRESHOLD).set_value(0.3).run()
    at.selectbox(key=state.PURIFY_REGULARIZER).set_value("l1").run()
    at.number_input(key=state.PURIFY_STRENGTH).set_value(0.2).run()
    at.slider(key=state.PURIFY_EPOCHS).set_value(7).run()
    at.selectbox(key=state.PURIFY_DEFENSE).set_value("fine-pruning").run()
    assert not at.exception
    visit(at, COMPARE)
    at.radio(key=state.COMPARE_DIRECTION).set_value("highest").run()
    at.select_slider(key=state.COMPARE_TOP).set_value(0.2).run()
    visit(at, SALIENCE)
    at.selectbox(key=state.SALIENCE_METRIC).set_value("magnitude").run()
    visit(at, PURIFY)
    assert at.slider(key=state.PURIFY_THRESHOLD).value == 0.3
    assert at.selectbox(key=state.PURIFY_REGULARIZER).value == "l1"
    assert at.number_input(key=state.PURIFY_STRENGTH).value == 0.2
    assert at.slider(key=state.PURIFY_EPOCHS).value == 7
    assert at.selectbox(key=state.PURIFY_DEFENSE).value == "fine-pruning"
    assert at.query_params[state.PURIFY_STRENGTH] in ("0.2", ["0.2"]), "the address bar holds this view again"
    visit(at, COMPARE)
    assert at.radio(key=state.COMPARE_DIRECTION).value == "highest" and at.select_slider(key=state.COMPARE_TOP).value == 0.2
    visit(at, SALIENCE)
    assert at.selectbox(key=state.SALIENCE_METRIC).value == "magnitude"


def test_attack_lab_controls_are_kept_too():
    at = open_page(ATTACK_LAB)
    at.selectbox(key=state.ATTACK_DATASET).select("digits").run()
    at.slider(key=state.ATTACK_RATE).set_value(0.2).run()
    at.number_input(key=state.ATTACK_EPOCHS).set_value(3).run()
    assert not at.exception
    visit(at, PURIFY)
    visit(at, ATTACK_LAB)
    assert at.selectbox(key=state.ATTACK_DATASET).value == "digits"
    assert at.slider(key=state.ATTACK_RATE).value == 0.2 and at.number_input(key=state.ATTACK_EPOCHS).value == 3


def test_the_marking_set_on_salience_is_the_one_purify_shows_and_uses():
    at = open_page(SALIENCE)
    at.slider(key=state.PURIFY_THRESHOLD).set_value(0.3).run()
    at.radio(key=state.PURIFY_DIRECTION).set_value("highest").run()
    at.radio(key=state.PURIFY_SCOPE).set_value("global").run()
    at.selectbox(key=state.PURIFY_LAYERS).set_value("conv").run()
    assert not at.exception
    on_salience = marked(at)
    visit(at, PURIFY)
    assert at.slider(key=state.PURIFY_THRESHOLD).value == 0.3 and at.radio(key=state.PURIFY_DIRECTION).value == "highest"
    assert at.radio(key=state.PURIFY_SCOPE).value == "global" and at.selectbox(key=state.PURIFY_LAYERS).value == "conv"
    assert marked(at) == on_salience, "the same ranking (benign salience, abs) and marking mark the same neurons"
    at.slider(key=state.PURIFY_EPOCHS).set_value(1).run()
    at.button(key=state.PURIFY_RUN).click().run()
    assert not at.exception
    config = at.session_state[state.RUNS][0].config
    assert (config["threshold"], config["direction"], config["scope"], config["layers"]) == (0.3, "highest", "global", "conv")


def test_the_marking_set_on_purify_or_by_its_preset_is_the_one_salience_shows():
    at = open_page(PURIFY)
    at.slider(key=state.PURIFY_THRESHOLD).set_value(0.2).run()
    at.radio(key=state.PURIFY_DIRECTION).set_value("highest").run()
    on_purify = marked(at)
    visit(at, SALIENCE)
    assert at.slider(key=state.PURIFY_THRESHOLD).value == 0.2 and at.radio(key=state.PURIFY_DIRECTION).value == "highest"
    assert marked(at) == on_purify
    visit(at, PURIFY)
    at.segmented_control(key=state.PURIFY_PRESET).set_value("reference").run()  # a preset sets the shared marking
    reference = PURIFY_PRESETS["reference"]
    visit(at, SALIENCE)
    assert at.slider(key=state.PURIFY_THRESHOLD).value == reference.threshold
    assert at.radio(key=state.PURIFY_DIRECTION).value == reference.direction
    assert at.selectbox(key=state.PURIFY_LAYERS).value == reference.layers
    assert any("ema-signed" in c.value for c in at.caption), "Salience says which ranking the preset marks by"


def test_salience_opens_on_the_default_presets_marking():
    at = open_page(SALIENCE)
    default = PURIFY_PRESETS["default"]
    assert at.slider(key=state.PURIFY_THRESHOLD).value == default.threshold
    assert at.radio(key=state.PURIFY_DIRECTION).value == default.direction
    assert at.selectbox(key=state.PURIFY_LAYERS).value == default.layers


def test_link_values_survive_page_switches_and_old_salience_names_still_work():
    at = open_page(SALIENCE, salience_threshold="0.25", salience_direction="highest", salience_scope="global",
                   purify_strength="0.5", purify_regularizer="l2", compare_top="0.2")
    assert not at.exception and not at.warning, [w.value for w in at.warning]
    assert at.slider(key=state.PURIFY_THRESHOLD).value == 0.25 and at.radio(key=state.PURIFY_DIRECTION).value == "highest"
    assert at.radio(key=state.PURIFY_SCOPE).value == "global"
    assert at.query_params[state.PURIFY_THRESHOLD] in ("0.25", ["0.25"]) and state.SALIENCE_THRESHOLD not in at.query_params
    visit(at, PURIFY)  # values the link gave to pages not opened yet reach them
    assert at.number_input(key=state.PURIFY_STRENGTH).value == 0.5 and at.selectbox(key=state.PURIFY_REGULARIZER).value == "l2"
    assert at.slider(key=state.PURIFY_THRESHOLD).value == 0.25 and at.radio(key=state.PURIFY_SCOPE).value == "global"
    visit(at, COMPARE)
    assert at.select_slider(key=state.COMPARE_TOP).value == 0.2
    visit(at, SALIENCE)
    assert at.slider(key=state.PURIFY_THRESHOLD).value == 0.25
    visit(at, PURIFY)
    at.segmented_control(key=state.PURIFY_PRESET).set_value("reference").run()  # a preset outranks the link it came from
    assert at.slider(key=state.PURIFY_THRESHOLD).value == PURIFY_PRESETS["reference"].threshold
    assert at.number_input(key=state.PURIFY_STRENGTH).value == PURIFY_PRESETS["reference"].strength


def test_hide_takes_the_older_salience_names_too():
    at = open_page(SALIENCE, hide="salience_threshold", salience_threshold="0.2")
    assert not at.exception and not at.warning
    assert not [s for s in at.slider if s.key == state.PURIFY_THRESHOLD], "hidden under its older name"
    assert at.session_state[state.PURIFY_THRESHOLD] == 0.2, "a hidden control keeps its link value"
