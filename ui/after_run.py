"""The Purify page after a run: its verdict (erased or not), the neurons before vs after, and
"does it stay erased?"; the purified model can be explained or opened on every page.

Both are the evaluator's view (TAC and the re-activation check use the trigger) and only report:
no defense reads them. Everything runs on private copies: the run's model belongs to this
session, the backdoored one is shared (`st.cache_resource`) and is only copied, never changed.
Results are kept in the run's record, so a rerun redraws them without recomputing.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import pandas as pd
import streamlit as st

from purify_core.evaluation.clean_control import CleanProgress, cached_clean_model, clean_model
from purify_core.config import Scenario
from purify_core.errors import UserInputError
from purify_core.evaluation.verdict import verdict
from purify_core.store.uploads import save_upload
from purify_core.views.method_figures import before_after_figure, reactivation_figure
from purify_core.evaluation.neuron_change import infected, neuron_scores_of
from purify_core.evaluation.reactivate import ReactivateConfig, reactivate
from purify_core.study import RunRecord
from ui import state, untrusted
from ui.cache import backdoored_model, forget_built_cards, neuron_scores, splits_for
from ui.jobs import heavy_job


def verdict_line(run: RunRecord) -> None:
    """The run's verdict in one coloured line: green erased, amber erased at a cost or not erased (each with its
    own icon). Not red: a red box is how the app shows an error, and a run that did not erase is a result."""
    if run.summary is None:
        return
    judged = verdict(run.summary.before, run.summary.after)
    box, icon = {"erased": (st.success, ":material/check_circle:"), "erased at a cost": (st.warning, ":material/warning:"),
                 "not erased": (st.warning, ":material/block:")}.get(judged.word, (st.info, None))
    box(f"**{untrusted.text(run.label)}**: {judged.sentence()} (ASR is the evaluator's view.)", icon=icon)


def _verdict(run: RunRecord) -> None:
    """ACC and ASR before -> after as two metrics, the verdict, and the purified model put to use."""
    before, after = run.summary.before, run.summary.after
    acc, asr = st.columns(2)
    for column, name, what, good in ((acc, "ACC (clean test)", "acc", "normal"), (asr, "ASR (evaluator's view)", "asr", "inverse")):
        then, now = getattr(before, what, None) if before else None, getattr(after, what, None) if after else None
        column.metric(name, "-" if now is None else f"{100 * now:.1f}%",
                      None if None in (then, now) else f"{100 * (now - then):+.1f} pts (from {100 * then:.1f}%)", delta_color=good)
    verdict_line(run)
    left, right = st.columns(2)
    if left.button("Explain this run", key=state.PURIFY_EXPLAIN_RUN, icon=":material/visibility:",
                   help="Opens the Explain page on this run's purified model, next to the model it came from."):
        st.session_state[state.PENDING_SCENARIO] = run.source.name  # Explain lists the runs of the selected model
        st.session_state[state.EXPLAIN_RUN] = run.label
        st.switch_page("app_pages/explain.py")
    if right.button("Open the purified model everywhere", key=state.PURIFY_OPEN_PURIFIED, icon=":material/swap_horiz:",
                    help="Keeps the purified model as a model of this session (measured again on the whole test set) and "
                         "selects it in the sidebar: its card opens on the Scenario page, and every page works on it."):
        try:
            name = _keep_purified(run)
        except UserInputError as error:  # e.g. its dataset is no longer on this server
            st.error(untrusted.text(error))
        else:
            st.session_state[state.PENDING_SCENARIO] = name
            forget_built_cards()  # the new model must be in the list the sidebar checks
            st.switch_page("app_pages/home.py")


def _keep_purified(run: RunRecord) -> str:
    """The run's model kept in the model store as this session's upload (the card measures ACC and ASR on
    the source model's data and trigger); a CPU copy, so the session's run is never changed. Returns its name."""
    with heavy_job("keeping the purified model"), st.spinner("Measuring the purified model on the whole test set…"):
        saved = save_upload(copy.deepcopy(run.model).cpu(), Scenario.from_dict(run.source.scenario),
                            f"the purified copy of {run.source.name} (run {run.label})")
    uploads = st.session_state.setdefault(state.UPLOADS, [])
    if saved.card.name not in uploads:
        uploads.append(saved.card.name)
    return saved.card.name


def _neurons(run: RunRecord) -> None:
    """Benign salience and TAC per neuron, before vs after, each layer on one scale; drawn when asked.

    Why a toggle: scoring the purified model's neurons costs about a second (two rankings), which
    every run paid on its first redraw before the student could see its results."""
    shown = st.toggle("Show the neurons before vs after", key=state.PURIFY_SHOW_NEURONS,
                      help="Scores the purified model's neurons (benign salience and TAC: about a second the first time "
                           "for each run, then kept with the run) and draws them next to the backdoored model's.")
    if not shown:
        return
    source = run.source.name
    backdoored, splits = backdoored_model(source), splits_for(source)
    if run.neurons_after is None:
        with st.spinner("Scoring the purified model's neurons…"):
            run.neurons_after = neuron_scores_of(run.model, splits.clean, backdoored.attack)
    before = {"salience": neuron_scores(source, "salience", "abs"), "tac": neuron_scores(source, "tac")}
    marked = infected(before["tac"])
    left, right = st.columns(2)
    left.plotly_chart(before_after_figure(before["salience"], run.neurons_after["salience"], marked,
                                          "Benign salience, before vs after"), key="purify_change_salience")
    right.plotly_chart(before_after_figure(before["tac"], run.neurons_after["tac"], marked,
                                           "TAC (evaluator's view), before vs after"), key="purify_change_tac")
    st.caption("Each layer has two rows, before and after this run, coloured on ONE scale per layer (the range of both), so a "
               "neuron that goes quiet fades. x: the infected neurons, each layer's top 5% by TAC on the backdoored model. "
               "TAC needs the trigger: the evaluator's view.")


def _clean(scenario) -> Any:
    """The clean control, trained once per dataset and architecture (with a progress bar), then from the disk cache."""
    model = cached_clean_model(scenario, device="cpu")
    if model is not None:
        return model
    bar = st.progress(0.0, text="training the clean control once (then cached)…")
    shown = [0.0]

    def progress(item: CleanProgress) -> None:
        if time.monotonic() - shown[0] > 0.5:
            bar.progress(item.fraction, text=f"training the clean control once (then cached): {item.fraction:.0%}")
            shown[0] = time.monotonic()

    model = clean_model(scenario, device="cpu", on_progress=progress)
    bar.empty()
    return model


def _check(run: RunRecord, config: ReactivateConfig, with_clean: bool) -> None:
    """Re-tune private copies of the purified, backdoored (and clean) models; keep the report in the run."""
    source = run.source.name
    backdoored, splits = backdoored_model(source), splits_for(source)
    with heavy_job("the re-activation check"):
        models = {"purified": run.model, "backdoored": backdoored.model}
        if with_clean:
            models["clean"] = _clean(backdoored.scenario)
        bar, report = st.progress(0.0, text="re-tuning…"), None
        for item in reactivate(models, splits.train, splits.test, backdoored.attack, config):
            bar.progress(item.fraction, text=f"re-tuning the {item.model} model" if item.report is None else "done")
            report = item.report or report
        bar.empty()
    run.reactivation = report.to_dict()


def _reactivation(run: RunRecord) -> None:
    st.markdown("**Does it stay erased?** Min et al. (NeurIPS 2024) found that purified models can regain the backdoor after a "
                "few epochs of fine-tuning on a handful of poisoned images. This re-tunes private copies of the purified, the "
                "backdoored and a clean model on the same small poisoned set and shows the ASR each bounces back to. "
                "It uses the trigger: the evaluator's view, never an input to a defense.")
    d = ReactivateConfig()
    c1, c2, c3, c4 = st.columns([1, 1, 1, 1], vertical_alignment="bottom")
    poisoned = c1.number_input(f"Poisoned images (of {d.images})", min_value=1, max_value=d.images, value=d.poisoned, step=1,
                               key=state.PURIFY_REACTIVATE_POISONED)
    epochs = c2.slider("Re-tuning epochs", min_value=1, max_value=20, value=d.epochs, key=state.PURIFY_REACTIVATE_EPOCHS)
    with_clean = c3.toggle("With a clean control", value=True, key=state.PURIFY_REACTIVATE_CLEAN,
                           help="A model of the same architecture trained on clean data: trained once (about a minute), then cached.")
    if c4.button("Check re-activation", key=state.PURIFY_REACTIVATE, help="Evaluator's view: it uses the trigger."):
        try:
            _check(run, ReactivateConfig(poisoned=int(poisoned), epochs=int(epochs), seed=int(run.config.get("seed", 0))), with_clean)
        except UserInputError as error:  # e.g. fewer target-class images than poisoned ones asked for
            st.error(untrusted.text(error))
    result = run.reactivation
    if result:
        st.plotly_chart(reactivation_figure(result["rows"]), key="purify_reactivation")
        table = pd.DataFrame(result["rows"]).rename(columns={"acc_before": "ACC before", "asr_before": "ASR before",
                                                            "acc_after": "ACC after re-tuning", "asr_after": "ASR after re-tuning"})
        st.dataframe(table, hide_index=True, key="purify_reactivation_table")
        c = result["config"]
        st.caption(f"Re-tuned on {c['images']} training images, {c['poisoned']} with the trigger, {c['epochs']} epochs, SGD lr "
                   f"{c['lr']}; every model saw the same images in the same order. A purification that stays erased climbs no "
                   "faster than the clean model; one that bounces back like the backdoored model was only superficially safe.")


def after_run_section(kept: list[RunRecord]) -> None:
    """Pick a finished run (the newest by default); show its verdict, its neurons before vs after and the re-activation check."""
    done = [r for r in kept if r.model is not None]
    if not done:
        return
    st.subheader("After a run: the verdict, did the infected neurons go quiet, and does it stay erased?")
    labels = [r.label for r in done]
    if st.session_state.get(state.PURIFY_CHECK_CHOICE) not in labels:
        st.session_state.pop(state.PURIFY_CHECK_CHOICE, None)  # that run was deleted or dropped: show the newest
    chosen = st.selectbox("Run", labels, index=len(labels) - 1, key=state.PURIFY_CHECK_CHOICE)
    run = next(r for r in done if r.label == chosen)
    _verdict(run)
    _neurons(run)
    _reactivation(run)
