"""The Purify page's new controls (re-initialisation, distillation) and its after-run section, through AppTest."""

from __future__ import annotations

import copy

from purify_core.views.export import purified_card, run_report_html
from purify_core.method.purify import PRESET_LABELS

from app_helpers import open_page, weights_hash


def test_re_initialisation_and_distillation_come_from_the_link_and_reach_the_run():
    at = open_page("app_pages/purify.py", purify_reinit="dense", purify_distill="0.5", purify_temperature="4.0",
                   purify_distill_schedule="linear", purify_distill_view="clean", purify_classifier_init="zero", purify_epochs="1")
    assert not at.exception and not at.warning
    assert at.radio(key="purify_reinit").value == "dense" and at.slider(key="purify_distill").value == 0.5
    assert at.select_slider(key="purify_temperature").value == 4.0 and at.radio(key="purify_distill_schedule").value == "linear"
    at.button(key="purify_run").click().run()
    assert not at.exception
    run = at.session_state["purify_runs"][0]
    config = run.config
    assert (config["reinit"], config["distill"], config["temperature"], config["distill_schedule"]) == ("dense", 0.5, 4.0, "linear")
    assert (config["distill_view"], config["classifier_init"]) == ("clean", "zero")
    assert any(s["distill_loss"] > 0 for s in run.history[1:]), "distillation was on"
    assert at.query_params["purify_reinit"] == ["dense"] or at.query_params["purify_reinit"] == "dense"
    card = purified_card(run, "0" * 64)  # the export records the new settings
    assert card["purification"]["config"]["reinit"] == "dense" and card["purification"]["config"]["distill"] == 0.5
    assert card["purification"]["config"]["distill_view"] == "clean"


def test_nonsense_distillation_in_a_link_is_ignored_and_the_preset_selector_shows_labels():
    at = open_page("app_pages/purify.py", purify_distill="2", purify_reinit="everything")
    assert not at.exception and len(at.warning) == 2 and all("Ignored" in w.value for w in at.warning)
    options = at.segmented_control(key="purify_preset").options
    assert all(any(label in o for o in options) for label in PRESET_LABELS.values()), options


def test_hide_in_a_link_hides_the_distillation_controls():
    at = open_page("app_pages/purify.py", hide="purify_distill,purify_reinit", purify_distill="0.25")
    assert not at.exception
    assert not [w for w in at.slider if w.key == "purify_distill"] and not [w for w in at.radio if w.key == "purify_reinit"]
    assert at.session_state["purify_distill"] == 0.25


def test_after_a_run_the_neurons_before_and_after_and_the_re_activation_check_are_shown(monkeypatch):
    from ui.cache import backdoored_model

    model = backdoored_model("mnist5k-smallcnn-badnets").model
    before = weights_hash(model)
    # The clean control trains once per dataset (about a minute); here a stand-in from the "cache" tests the plumbing.
    monkeypatch.setattr("ui.after_run.cached_clean_model", lambda scenario, device=None: copy.deepcopy(model))
    at = open_page("app_pages/purify.py", purify_epochs="1")
    at.button(key="purify_run").click().run()
    assert not at.exception
    verdicts = [b.value for b in [*at.success, *at.warning, *at.error] if "ASR 100.0% -> " in b.value]
    assert verdicts and "1 prune" in verdicts[0] and ("rased" in verdicts[0]), "the run's verdict, before -> after"
    assert [m.label for m in at.metric][:2] == ["ACC (clean test)", "ASR (evaluator's view)"]
    charts = {c.key for c in at.get("plotly_chart")}
    assert not {"purify_change_salience", "purify_change_tac"} & charts, "the neurons are scored only when asked"
    assert at.session_state["purify_runs"][0].neurons_after is None
    at.toggle(key="purify_show_neurons").set_value(True).run()
    assert not at.exception
    charts = {c.key for c in at.get("plotly_chart")}
    assert {"purify_change_salience", "purify_change_tac"} <= charts, charts
    assert set(at.session_state["purify_runs"][0].neurons_after) == {"salience", "tac"}, "kept with the run"
    at.number_input(key="purify_reactivate_poisoned").set_value(5)
    at.slider(key="purify_reactivate_epochs").set_value(1).run()
    at.button(key="purify_reactivate").click().run()
    assert not at.exception
    run = at.session_state["purify_runs"][0]
    rows = run.reactivation["rows"]
    assert [r["model"] for r in rows] == ["purified", "backdoored", "clean"]
    assert run.reactivation["config"]["poisoned"] == 5 and run.reactivation["config"]["epochs"] == 1
    assert "purify_reactivation" in {c.key for c in at.get("plotly_chart")}
    assert list(at.dataframe[-1].value["model"]) == ["purified", "backdoored", "clean"]
    assert purified_card(run, "0" * 64)["reactivation"]["rows"] == rows, "the exported card records the check"
    assert "Re-activation check (evaluator's view)" in run_report_html([run]), "and so does the report"
    at.toggle(key="purify_reactivate_clean").set_value(False).run()
    at.button(key="purify_reactivate").click().run()
    assert not at.exception and [r["model"] for r in at.session_state["purify_runs"][0].reactivation["rows"]] == ["purified", "backdoored"]
    assert weights_hash(model) == before, "the shared cached model must never change"


def test_the_purify_page_says_what_comes_from_the_paper_and_what_the_lab_added():
    at = open_page("app_pages/purify.py")
    assert not at.exception
    box = next(e for e in at.expander if e.label == "What comes from the paper, and what the lab added")
    text = " ".join(m.value for m in box.markdown)
    assert "2208.06537" in text and "`reference`" in text and "`authors-code`" in text and "re-initialised" in text
