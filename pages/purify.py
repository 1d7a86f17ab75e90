"""Purify: mark neurons, fine-tune with Adaptive Regularization (or a baseline), watch it live."""

import pandas as pd
import streamlit as st

from purify_core.defenses import DEFENSES, run_defense
from purify_core.errors import UserInputError
from purify_core.evaluate import evaluate
from purify_core.marking import mark, marked_count
from purify_core.method_figures import run_curves_figure, salience_strips_figure
from purify_core.neurons import neuron_layers, select_layers
from purify_core.purify import PURIFY_PRESETS, purify, purify_preset
from purify_core.regularizers import REGULARIZERS
from ui import runs as session_runs
from ui import state
from ui.sidebar import current_scenario
from ui.cache import neuron_scores, shipped_model, splits_for

name = current_scenario()
backdoored, splits = shipped_model(name), splits_for(name)
session_runs.settle_interrupted()

st.title("Purify")
st.markdown(f"Fine-tune a private copy of **{name}** on its {len(splits.defense)} clean defense images, with a penalty "
            "on the marked neurons. ACC and ASR are the evaluator's view: the run never reads them.")

preset = st.segmented_control("Preset", list(PURIFY_PRESETS), default="default", key=state.PURIFY_PRESET,
                              help="default: chosen from clean accuracy only (see README). reference: the authors' setup.") or "default"
base = PURIFY_PRESETS[preset]
c1, c2, c3 = st.columns(3)
threshold = c1.slider("Pruning threshold (share of neurons marked)", 0.0, 0.5, base.threshold, 0.01, key=f"{state.PURIFY_THRESHOLD}_{preset}")
direction = c1.radio("Mark the", ["lowest", "highest"], index=["lowest", "highest"].index(base.direction), horizontal=True,
                     key=f"{state.PURIFY_DIRECTION}_{preset}", help="lowest benign salience is the paper's premise; on small nets "
                     "the infected neurons are often the most salient (see Compare rankings).")
scope = c1.radio("Scope", ["layer", "global"], horizontal=True, key=f"{state.PURIFY_SCOPE}_{preset}",
                 help="layer: that share of each layer; global: of all layers pooled, scores scaled within each layer.")
layers = c2.selectbox("Layers", ["all", "conv", "final-linear"], index=["all", "conv", "final-linear"].index(base.layers if isinstance(base.layers, str) else "all"),
                      key=f"{state.PURIFY_LAYERS}_{preset}")
regularizer = c2.selectbox("Regularizer", REGULARIZERS, index=REGULARIZERS.index(base.regularizer), key=f"{state.PURIFY_REGULARIZER}_{preset}",
                           help="ar: Adaptive Regularization; prune: zero the marked neurons and keep them at zero; none: plain fine-tuning.")
strength = c2.number_input("Strength (lambda)", 0.0, 10.0, base.strength, 0.01, format="%.3f", key=f"{state.PURIFY_STRENGTH}_{preset}")
epochs = c3.slider("Epochs", 1, 60, base.epochs, key=f"{state.PURIFY_EPOCHS}_{preset}")
lr = c3.select_slider("Learning rate", [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1], value=base.lr, key=f"{state.PURIFY_LR}_{preset}")

try:
    config = purify_preset(preset, threshold=threshold, direction=direction, scope=scope, layers=layers,
                           regularizer=regularizer, strength=strength, epochs=epochs, lr=lr)
    in_scope = [l.name for l in select_layers(neuron_layers(backdoored.model), config.layers)]
except UserInputError as error:
    st.error(str(error))
    st.stop()

scores = neuron_scores(name, config.metric, config.variant)
mask = mark(scores, config.threshold, config.scope, in_scope, config.direction)
st.plotly_chart(salience_strips_figure(scores, mask, "Benign salience per layer, marked neurons (x)"), key="purify_strips")
st.caption(f"{marked_count(mask)} neurons marked. Each row is a layer, each cell a neuron coloured by its score scaled within "
           "the layer; x marks the neurons the penalty acts on. Moving the sliders re-marks without recomputing the scores.")


def live(run, items) -> None:
    """Stream a run into a progress bar and three charts; a Stop click reruns the page and ends it."""
    bar = st.progress(0.0, text="starting…")
    st.button("Stop", key=state.PURIFY_STOP, help="Ends the run at once; the steps so far are kept.")
    charts = st.empty()
    for item in session_runs.stream(run, items):
        bar.progress(item.fraction, text=f"step {item.step}/{item.steps} · task loss {item.task_loss:.3f}")
        if item.acc is not None:
            with charts.container():
                draw({run["label"]: run["history"]}, f"live{item.step}")  # keys unique per redraw
    bar.empty()


def draw(histories: dict, where: str) -> None:
    a, b, c = st.columns(3)
    a.plotly_chart(run_curves_figure(histories, "task_loss", "Task loss (clean cross-entropy)"), key=f"{where}_loss")
    b.plotly_chart(run_curves_figure(histories, "acc", "ACC (clean test)", percent=True), key=f"{where}_acc")
    c.plotly_chart(run_curves_figure(histories, "asr", "ASR (evaluator's view)", percent=True), key=f"{where}_asr")


evaluator = lambda model: evaluate(model, splits.test, backdoored.attack)  # noqa: E731
run_col, defense_col, defense_button = st.columns([2, 2, 1], vertical_alignment="bottom")
if run_col.button("Run purification", type="primary", key=state.PURIFY_RUN):
    run = session_runs.new_run(f"{config.regularizer} t={config.threshold:g} {config.direction}", config.to_dict())
    live(run, purify(backdoored.model, splits.defense, config, evaluator, scores=scores))
defense = defense_col.selectbox("Baseline defense", DEFENSES, key=state.PURIFY_DEFENSE)
if defense_button.button("Run baseline", key=state.PURIFY_RUN_DEFENSE):
    run = session_runs.new_run(defense, {"defense": defense, **config.to_dict()})
    live(run, run_defense(defense, backdoored.model, splits.defense, config, evaluator))

kept = session_runs.runs()
if kept:
    st.subheader("Runs in this session")
    table = [{"run": r["label"], "status": r["status"],
              "ACC before": (r["summary"] or {}).get("before", {}).get("acc") if r["summary"] else None,
              "ACC after": r["summary"]["after"]["acc"] if r["summary"] and r["summary"]["after"] else None,
              "ASR after": r["summary"]["after"]["asr"] if r["summary"] and r["summary"]["after"] else None,
              "steps to ASR<5%": r["summary"]["steps_to_erase"] if r["summary"] else None,
              "note": r["reason"]} for r in kept]
    st.dataframe(pd.DataFrame(table), hide_index=True, key="purify_runs_table")
    draw({r["label"]: r["history"] for r in kept}, "overlay")
    st.caption("Every run of this session, overlaid: lower task loss fits the clean data; the backdoor is gone when ASR "
               "falls near 0 while ACC stays up.")
    doomed = st.multiselect("Delete runs", [r["label"] for r in kept], key=state.PURIFY_DELETE_CHOICE)
    if st.button("Delete", key=state.PURIFY_DELETE, disabled=not doomed):
        session_runs.delete(doomed)
        st.rerun()
