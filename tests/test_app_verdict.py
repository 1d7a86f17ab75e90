"""The Purify page's run table ("-", "ASR before", "differs in"), the verdict after a run, and the
purified model put to use (Explain, or selected on every page with its card), through AppTest."""

from __future__ import annotations

import copy

from streamlit import dataframe_util

from purify_core.method.purify import PurifyConfig, PurifySummary
from purify_core.models.evaluate import Metrics
from purify_core.store.zoo import list_zoo
from purify_core.study import RunRecord

from app_helpers import open_page, weights_hash

MODEL = "mnist5k-smallcnn-badnets"


def _runs() -> list[RunRecord]:
    """A finished run (its model a copy of the shared one, its numbers made up) and a run cut short by Stop."""
    from ui.cache import backdoored_model

    source = next(c for c in list_zoo() if c.name == MODEL)
    summary = PurifySummary(status="finished", reason="", steps=10, seconds=1.0, marked=4, before=Metrics(0.97, 1.0, 100, 90),
                            after=Metrics(0.96, 0.01, 100, 90), steps_to_erase=10)
    config = PurifyConfig(epochs=1).to_dict()
    finished = RunRecord(label="#1 ar", config=config, source=source, status="finished", summary=summary,
                         model=copy.deepcopy(backdoored_model(MODEL).model), history=[{"step": 0, "acc": 0.97, "asr": 1.0}])
    stopped = RunRecord(label="#2 l1", config={**config, "regularizer": "l1"}, source=source, status="stopped",
                        reason="stopped after 3 steps; what was computed is kept")
    return [finished, stopped]


def _open_with_runs():
    at = open_page("app_pages/purify.py", purify_epochs="1")
    at.session_state["purify_runs"] = _runs()
    at.session_state["purify_run_counter"] = 2
    return at.run()


def _shown(table):
    """A dataframe as the browser shows it: its styler's display values, not the numbers underneath."""
    return dataframe_util.convert_arrow_bytes_to_pandas_df(table.proto.arrow_data.styler.display_values)


def test_the_run_table_shows_a_dash_for_what_was_not_measured_and_the_verdict_of_each_run():
    at = _open_with_runs()
    assert not at.exception
    shown = _shown(at.dataframe[0])  # the first table on the page: this session's runs
    assert "ASR before" in shown.columns and "differs in" in shown.columns and "verdict" in shown.columns
    assert list(shown["differs in"]) == ["regularizer=ar", "regularizer=l1"]
    assert list(shown["verdict"]) == ["erased", "-"] and list(shown["ASR before"]) == ["100.00", "-"]
    assert not shown.isin(["None", "nan", "NaN"]).any().any()
    # the newest run (stopped, no numbers) has no verdict; the after-run section shows the finished one's
    assert [m.label for m in at.metric][:2] == ["ACC (clean test)", "ASR (evaluator's view)"]
    assert at.metric[1].value == "1.0%" and at.metric[1].delta.startswith("-99.0 pts")
    assert any("#1 ar**: Erased: ASR 100.0% -> 1.0%; ACC 97.0% -> 96.0%" in s.value for s in at.success)


def test_explain_this_run_opens_the_explain_page_on_it():
    at = _open_with_runs()
    at.button(key="purify_explain_run").click().run()
    assert not at.exception
    assert at.selectbox(key="explain_run").value == "#1 ar" and "purified:" in at.caption[0].value


def test_the_purified_model_can_be_opened_on_every_page_with_its_own_card(tmp_path, monkeypatch):
    from ui.cache import backdoored_model

    monkeypatch.setenv("PURIFY_LAB_CACHE", str(tmp_path))
    shared = weights_hash(backdoored_model(MODEL).model)
    at = _open_with_runs()
    at.button(key="purify_open_purified").click().run()
    assert not at.exception
    name = at.session_state["scenario"]
    assert name.startswith("upload-") and name in at.session_state["uploads"]
    assert at.selectbox(key="scenario").value == name
    assert any("the purified copy of mnist5k" in m.value and "1 ar)" in m.value for m in at.markdown), "its card says what it is"
    assert weights_hash(backdoored_model(MODEL).model) == shared, "the shared cached model must never change"
