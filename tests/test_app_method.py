"""The Compare rankings and Purify pages, driven headless through AppTest."""

from __future__ import annotations

from purify_core.method.purify import PURIFY_PRESETS
from purify_core.method.rankings import DEFENDER_METRICS, METRIC_LABELS
from purify_core.study import RunRecord
from purify_core.store.zoo import list_zoo

from app_helpers import open_page, weights_hash


def test_compare_page_grades_every_ranking_and_draws_its_charts():
    at = open_page("app_pages/compare.py")
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["ranking"]) == [METRIC_LABELS[m] for m in DEFENDER_METRICS]  # every registered ranking but TAC
    assert list(table["ranking"])[:4] == ["benign salience", "activation", "magnitude", "gradient x activation"]
    assert ((table["ROC AUC"] >= 0) & (table["ROC AUC"] <= 1)).all()
    assert len(at.get("plotly_chart")) == 2
    at.radio(key="compare_direction").set_value("highest").run()
    flipped = at.dataframe[0].value
    assert not at.exception and abs(flipped["ROC AUC"][0] + table["ROC AUC"][0] - 1) < 0.02
    at.toggle(key="compare_curves").set_value(True).run()
    assert not at.exception and len(at.get("plotly_chart")) == 3


def test_purify_page_runs_keeps_runs_and_leaves_the_cached_model_alone():
    from ui.cache import backdoored_model

    at = open_page("app_pages/purify.py")
    assert not at.exception
    assert "neurons marked" in at.caption[0].value
    model = backdoored_model("mnist5k-smallcnn-badnets").model
    before = weights_hash(model)
    at.slider(key="purify_epochs").set_value(1).run()
    at.button(key="purify_run").click().run()
    assert not at.exception
    runs = at.session_state["purify_runs"]
    assert len(runs) == 1 and runs[0].status == "finished" and runs[0].model is not None
    assert runs[0].history[-1]["step"] == runs[0].history[-1]["steps"]
    overlay = {c.key for c in at.get("plotly_chart")}
    assert "purify_runs_overlay" in overlay, overlay
    assert runs[0].config["reinit"] == "dense" and any(s["distill_loss"] > 0 for s in runs[0].history[1:]), \
        "the lab default re-initialises the dense layers and distils"
    at.selectbox(key="purify_defense").set_value("fine-pruning").run()
    at.button(key="purify_run_defense").click().run()
    assert not at.exception and [r.status for r in at.session_state["purify_runs"]] == ["finished", "finished"]
    table = at.dataframe[0].value
    assert list(table["run"])[1] == "#2 fine-pruning"
    at.multiselect(key="purify_delete_choice").set_value([runs[0].label]).run()
    at.button(key="purify_delete").click().run()
    assert not at.exception and [r.label for r in at.session_state["purify_runs"]] == ["#2 fine-pruning"]
    at.switch_page("app_pages/salience.py").run()  # salience, a neuron's maps, then another ranking
    at.selectbox(key="salience_metric").set_value("gradxact").run()
    assert not at.exception
    assert weights_hash(model) == before, "the shared cached model must never change"


def test_the_reference_preset_resets_the_controls_to_the_authors_setup():
    at = open_page("app_pages/purify.py")
    at.slider(key="purify_threshold").set_value(0.4).run()
    at.segmented_control(key="purify_preset").set_value("reference").run()
    assert not at.exception
    assert at.selectbox(key="purify_layers").value == "final-linear"
    assert at.slider(key="purify_threshold").value == 0.05 and at.radio(key="purify_direction").value == "lowest"
    assert at.caption[0].value.startswith("6 neurons marked")  # 5% of fc1's 128 hidden units
    assert at.select_slider(key="purify_kappa").value == 1.0, "the authors' fixed knee"


def test_salience_page_re_marks_from_cache_and_shows_one_neuron():
    def marked() -> str:
        return next(c.value for c in at.caption if "neurons marked" in c.value)

    at = open_page("app_pages/salience.py", purify_threshold="0.1", purify_layers="all")
    assert not at.exception
    # the default preset ranks by activation, the page by benign salience: it says which ranking Purify marks by
    assert any("Purify (preset default) ranks by" in c.value for c in at.caption)
    assert marked().startswith("24 ")  # 10% of 16+32+64+128
    at.slider(key="purify_threshold").set_value(0.5).run()
    assert not at.exception and marked().startswith("120 ")
    at.selectbox(key="purify_layers").set_value("last-conv").run()
    assert not at.exception and marked().startswith("32 ")  # 50% of the last conv layer's 64 channels
    at.selectbox(key="salience_layer").set_value("net.fc1").run()
    at.selectbox(key="salience_metric").set_value("magnitude").run()
    assert not at.exception and len(at.get("plotly_chart")) == 4


def test_explain_page_shows_attributions_before_and_after_purification():
    at = open_page("app_pages/explain.py")
    assert not at.exception and any("No purified model" in i.value for i in at.info)
    at.switch_page("app_pages/purify.py").run()
    at.slider(key="purify_epochs").set_value(1).run()
    at.button(key="purify_run").click().run()
    at.switch_page("app_pages/explain.py").run()
    assert not at.exception and not at.info
    assert "purified:" in at.caption[0].value
    at.selectbox(key="explain_method").set_value("gradcam").run()
    assert not at.exception


def test_a_shared_link_opens_the_same_purify_controls():
    at = open_page("app_pages/purify.py", purify_threshold="0.3", purify_direction="lowest", purify_regularizer="l2",
                   purify_epochs="5", purify_lr="0.02")
    assert not at.exception and not at.warning
    assert at.slider(key="purify_threshold").value == 0.3 and at.radio(key="purify_direction").value == "lowest"
    assert at.selectbox(key="purify_regularizer").value == "l2" and at.slider(key="purify_epochs").value == 5
    assert at.select_slider(key="purify_lr").value == 0.02


def test_kappa_from_a_link_reaches_the_run():
    at = open_page("app_pages/purify.py", purify_kappa="0.5", purify_epochs="1")
    assert not at.exception and not at.warning and at.select_slider(key="purify_kappa").value == 0.5
    at.button(key="purify_run").click().run()
    assert not at.exception and at.session_state["purify_runs"][0].config["kappa"] == 0.5
    auto = open_page("app_pages/purify.py", purify_kappa="7")
    assert auto.select_slider(key="purify_kappa").value == "auto" and any("purify_kappa=7" in w.value for w in auto.warning)


def test_nonsense_in_a_link_is_ignored_with_a_warning():
    at = open_page("app_pages/purify.py", purify_threshold="banana", purify_epochs="-3", purify_regularizer="l7")
    assert not at.exception
    assert len(at.warning) == 3 and all("Ignored" in w.value for w in at.warning)
    default = PURIFY_PRESETS["default"]
    assert at.slider(key="purify_threshold").value == default.threshold and at.selectbox(key="purify_regularizer").value == default.regularizer


def test_hide_in_a_link_hides_named_controls_and_keeps_their_link_values():
    at = open_page("app_pages/purify.py", hide="purify_lr,purify_regularizer", purify_regularizer="prune")
    assert not at.exception
    assert not [w for w in at.select_slider if w.key == "purify_lr"]
    assert not [w for w in at.selectbox if w.key == "purify_regularizer"]
    assert at.slider(key="purify_epochs").value == PURIFY_PRESETS["default"].epochs
    at.slider(key="purify_epochs").set_value(1).run()
    at.button(key="purify_run").click().run()
    assert not at.exception and at.session_state["purify_runs"][0].config["regularizer"] == "prune"


def test_salience_and_compare_controls_come_back_from_a_link():
    at = open_page("app_pages/salience.py", salience_metric="activation", purify_threshold="0.25", purify_direction="highest")
    assert not at.exception and at.selectbox(key="salience_metric").value == "activation"
    assert at.slider(key="purify_threshold").value == 0.25 and at.radio(key="purify_direction").value == "highest"
    at = open_page("app_pages/compare.py", compare_direction="highest", compare_top="0.1")
    assert not at.exception and at.radio(key="compare_direction").value == "highest"
    assert at.select_slider(key="compare_top").value == 0.1


def test_purify_page_offers_the_exports_after_a_run():
    at = open_page("app_pages/purify.py", purify_epochs="1")
    at.button(key="purify_run").click().run()
    assert not at.exception
    assert at.selectbox(key="purify_export_choice").value == "#1 prune t=0.8 lowest lr=0.01 re-init dense distil 0.5"
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Weights (.safetensors)", "Card (.json)", "Report (.html)"]


def test_the_oldest_run_is_dropped_with_a_notice_beyond_the_session_cap():
    at = open_page("app_pages/purify.py", purify_epochs="1")
    source = next(c for c in list_zoo() if c.name == "mnist5k-smallcnn-badnets")
    fake = [RunRecord(label=f"#{i} old", config={}, source=source, status="finished") for i in range(1, 9)]
    at.session_state["purify_runs"] = fake
    at.session_state["purify_run_counter"] = 8
    at.run()
    at.button(key="purify_run").click().run()
    assert not at.exception
    labels = [r.label for r in at.session_state["purify_runs"]]
    assert len(labels) == 8 and labels[0] == "#2 old" and labels[-1].startswith("#9 prune")
    assert any("Dropped the oldest run #1 old" in t.value for t in at.toast)


def test_a_run_cut_short_by_stop_is_kept_as_stopped_with_a_notice():
    """A rerun finds a run still marked running (Stop ended its script run): it is kept, as stopped."""
    at = open_page("app_pages/purify.py", purify_epochs="1")
    source = next(c for c in list_zoo() if c.name == "mnist5k-smallcnn-badnets")
    at.session_state["purify_runs"] = [RunRecord(label="#1 cut", config={}, source=source, status="running")]
    at.run()
    assert not at.exception
    run = at.session_state["purify_runs"][0]
    assert run.status == "stopped"
    assert any(i.value.startswith("Run #1 cut stopped after 0 steps") for i in at.info)
