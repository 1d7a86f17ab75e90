"""Purify: mark neurons, fine-tune with Adaptive Regularization (or a baseline), watch it live."""

import json
import time

import pandas as pd
import streamlit as st

from purify_core.defenses import DEFENSES, run_defense
from purify_core.errors import UserInputError
from purify_core.evaluate import evaluate
from purify_core.export import purified_card, report_title, run_report_html, weights_bytes
from purify_core.marking import mark, marked_count
from purify_core.method_figures import RUN_PANELS, live_run_figure, run_curves_figure, salience_strips_figure
from purify_core.neurons import LAYER_PRESETS, neuron_layers, select_layers
from purify_core.purify import PRESET_LABELS, PURIFY_PRESETS, purify, purify_preset
from purify_core.regularizers import REGULARIZERS
from purify_core.steps import DISTILL_SCHEDULES, REINIT_CHOICES
from ui import links
from ui import runs as session_runs
from ui import state, untrusted
from ui.after_run import after_run_section
from ui.cache import backdoored_model, neuron_scores, on_device, splits_for
from ui.jobs import heavy_job
from ui.sidebar import current_device, current_scenario, current_seed

name = current_scenario()
backdoored, splits = backdoored_model(name), splits_for(name)
for stopped in session_runs.settle_interrupted():
    st.info(f"Run {stopped['label']} {stopped['reason']}.")

st.title("Purify")
st.markdown(f"Fine-tune a private copy of **{untrusted.text(name)}** on its {len(splits.defense)} clean defense images, with a penalty "
            "on the marked neurons. ACC and ASR are the evaluator's view: the run never reads them.")
with st.expander("What comes from the paper, and what the lab added"):
    st.markdown(
        "**From the paper** (Fan et al., arXiv 2208.06537): benign salience marks the neurons, a threshold picks them, "
        "Adaptive Regularization pulls their weights down while the model is fine-tuned on the small clean set. The "
        "`reference` preset is that method as written; `authors-code` follows the authors' public code (highest "
        "salience, final linear layer, a growing share, their AR sign error for w < -1 fixed). **Added by the lab**, in "
        "the `default` preset: the dense layers are re-initialised and the original model's answers on the clean images "
        "are distilled back, and the marked channels (the lowest benign salience of the last conv layer) are pruned "
        "instead of penalised. **Why**: on the shipped models the penalty alone left Blended and SIG near 50% ASR; the "
        "backdoor's shortcut lives largely in the dense head, which a fresh head no longer holds, and distillation gives "
        "back the clean behaviour that 200 labelled images cannot (the original never sees a trigger here). Measured, "
        "not promised: the default still leaves SIG at about 5% ASR on average (README, 'The default settings').")

CONTROLS = [state.PURIFY_THRESHOLD, state.PURIFY_DIRECTION, state.PURIFY_SCOPE, state.PURIFY_LAYERS,
            state.PURIFY_REGULARIZER, state.PURIFY_STRENGTH, state.PURIFY_KAPPA, state.PURIFY_EPOCHS, state.PURIFY_LR,
            state.PURIFY_REINIT, state.PURIFY_DISTILL, state.PURIFY_TEMPERATURE, state.PURIFY_DISTILL_SCHEDULE]
KAPPAS = ["auto", 0.05, 0.1, 0.2, 0.5, 1.0, 2.0]
LEARNING_RATES = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1]
TEMPERATURES = [0.5, 1.0, 2.0, 4.0, 8.0]


def _kappa(text: str) -> str | float:
    """A kappa from a link: `auto` (2 x RMS per tensor) or a number."""
    return text if text == "auto" else float(text)


links.seed(state.PURIFY_PRESET, "default", choices=list(PURIFY_PRESETS))
preset = links.control(st, "segmented_control", "Preset", state.PURIFY_PRESET, options=list(PURIFY_PRESETS),
                       on_change=links.forget, args=(CONTROLS,), format_func=lambda p: f"{p}: {PRESET_LABELS.get(p, p)}",
                       help="Each preset resets the controls below. " + " ".join(f"{p}: {label}." for p, label in PRESET_LABELS.items())
                       ) or "default"
base = PURIFY_PRESETS[preset]
links.seed(state.PURIFY_THRESHOLD, base.threshold, float, bounds=(0.0, 0.5))
links.seed(state.PURIFY_DIRECTION, base.direction, choices=("lowest", "highest"))
links.seed(state.PURIFY_SCOPE, base.scope, choices=("layer", "global"))
links.seed(state.PURIFY_LAYERS, base.layers if isinstance(base.layers, str) else "all", choices=LAYER_PRESETS)
links.seed(state.PURIFY_REGULARIZER, base.regularizer, choices=REGULARIZERS)
links.seed(state.PURIFY_STRENGTH, base.strength, float, bounds=(0.0, 10.0))
links.seed(state.PURIFY_KAPPA, "auto" if base.kappa is None else base.kappa, _kappa, choices=KAPPAS)
links.seed(state.PURIFY_EPOCHS, base.epochs, int, bounds=(1, 60))
links.seed(state.PURIFY_LR, base.lr, float, choices=LEARNING_RATES)
links.seed(state.PURIFY_REINIT, base.reinit if base.reinit in REINIT_CHOICES else "none", choices=REINIT_CHOICES)
links.seed(state.PURIFY_DISTILL, float(base.distill), float, bounds=(0.0, 1.0))
links.seed(state.PURIFY_TEMPERATURE, float(base.temperature) if base.temperature in TEMPERATURES else 2.0, float, choices=TEMPERATURES)
links.seed(state.PURIFY_DISTILL_SCHEDULE, base.distill_schedule, choices=DISTILL_SCHEDULES)

c1, c2, c3 = st.columns(3)
threshold = links.control(c1, "slider", "Pruning threshold (share of neurons marked)", state.PURIFY_THRESHOLD,
                          min_value=0.0, max_value=0.5, step=0.01)
direction = links.control(c1, "radio", "Mark the", state.PURIFY_DIRECTION, options=["lowest", "highest"], horizontal=True,
                          help="lowest benign salience is the paper's premise; on small nets the infected neurons are "
                          "often the most salient (see Compare rankings).")
scope = links.control(c1, "radio", "Scope", state.PURIFY_SCOPE, options=["layer", "global"], horizontal=True,
                      help="layer: that share of each layer; global: of all layers pooled, scores scaled within each layer.")
layers = links.control(c2, "selectbox", "Layers", state.PURIFY_LAYERS, options=list(LAYER_PRESETS),
                       help="last-conv: the last conv layer (where Fine-Pruning prunes); final-linear: the last hidden units.")
regularizer = links.control(c2, "selectbox", "Regularizer", state.PURIFY_REGULARIZER, options=REGULARIZERS,
                            help="ar: Adaptive Regularization; prune: zero the marked neurons and keep them at zero; none: plain fine-tuning.")
strength = links.control(c2, "number_input", "Strength (lambda)", state.PURIFY_STRENGTH, min_value=0.0, max_value=10.0,
                         step=0.01, format="%.3f")
kappa = links.control(c2, "select_slider", "AR knee (kappa)", state.PURIFY_KAPPA, options=KAPPAS, disabled=regularizer != "ar",
                      help="Where AR turns from L1 into its exponential pull. auto: 2 x the RMS of each weight tensor, "
                      "so the knee follows each layer's scale; 1.0 is the authors' fixed value.")
epochs = links.control(c3, "slider", "Epochs", state.PURIFY_EPOCHS, min_value=1, max_value=60)
lr = links.control(c3, "select_slider", "Learning rate", state.PURIFY_LR, options=LEARNING_RATES)
reinit = links.control(c3, "radio", "Re-initialise", state.PURIFY_REINIT, options=list(REINIT_CHOICES), horizontal=True,
                       help="Before fine-tuning, draw fresh weights (PyTorch's default init) for: dense: every linear layer "
                       "(the hidden one and the classifier); marked: only the marked neurons; none: keep all weights.")
distill = links.control(c3, "slider", "Distillation weight", state.PURIFY_DISTILL, min_value=0.0, max_value=1.0, step=0.05,
                        help="Loss = (1 - w) x task loss + w x T^2 x KL to the original model's answers on the same clean images. "
                        "0: no distillation.")
temperature = links.control(c3, "select_slider", "Distillation temperature", state.PURIFY_TEMPERATURE, options=TEMPERATURES,
                            disabled=distill == 0)
distill_schedule = links.control(c3, "radio", "Distillation schedule", state.PURIFY_DISTILL_SCHEDULE, options=list(DISTILL_SCHEDULES),
                                 horizontal=True, disabled=distill == 0, help="constant: w throughout; linear: w falls to 0 by the last step.")
links.publish([state.PURIFY_PRESET, *CONTROLS])

try:
    config = purify_preset(preset, threshold=threshold, direction=direction, scope=scope, layers=layers,
                           regularizer=regularizer, strength=strength, epochs=epochs, lr=lr,
                           kappa=None if kappa == "auto" else float(kappa), reinit=reinit, distill=float(distill),
                           temperature=float(temperature), distill_schedule=distill_schedule,
                           seed=current_seed())
    in_scope = [l.name for l in select_layers(neuron_layers(backdoored.model), config.layers)]
except UserInputError as error:
    st.error(untrusted.text(error))
    st.stop()

scores = neuron_scores(name, config.metric, config.variant)
mask = mark(scores, config.threshold, config.scope, in_scope, config.direction)
st.plotly_chart(salience_strips_figure(scores, mask, "Benign salience per layer, marked neurons (x)"), key="purify_strips")
st.caption(f"{marked_count(mask)} neurons marked. Each row is a layer, each cell a neuron coloured by its score scaled within "
           "the layer; x marks the neurons the penalty acts on. Moving the sliders re-marks without recomputing the scores.")


def live(run, items) -> None:
    """Stream a run into a progress bar and one live chart (a panel per loss, ACC and ASR); a Stop click reruns the page and ends it."""
    bar = st.progress(0.0, text="starting…")
    stop = st.empty()
    stop.button("Stop", key=state.PURIFY_STOP, help="Ends the run at once; the steps so far are kept.")
    charts = st.empty()
    shown = {"bar": 0.0, "charts": 0.0}
    for item in session_runs.stream(run, items):
        now = time.monotonic()  # redraw at most a few times a second: each redraw is sent to the browser
        if now - shown["bar"] > 0.5:
            bar.progress(item.fraction, text=f"step {item.step}/{item.steps} · task loss {item.task_loss:.3f}")
            shown["bar"] = now
        if item.acc is not None and now - shown["charts"] > 3.0:
            charts.plotly_chart(live_run_figure(run["label"], run["history"]), key=f"live{item.step}")  # one key per redraw
            shown["charts"] = now
    for placeholder in (bar, stop, charts):  # the run is over: the overlay below shows it
        placeholder.empty()


def draw(histories: dict, where: str) -> None:
    for column, (field, title, percent) in zip(st.columns(len(RUN_PANELS)), RUN_PANELS):
        column.plotly_chart(run_curves_figure(histories, field, title, percent=percent), key=f"{where}_{field}")


evaluator = lambda model: evaluate(model, splits.test, backdoored.attack)  # noqa: E731
run_col, defense_col, defense_button = st.columns([2, 2, 1], vertical_alignment="bottom")
if run_col.button("Run purification", type="primary", key=state.PURIFY_RUN):
    with heavy_job("this purification") as waited:
        steps = (f" re-init {config.reinit}" if config.reinit != "none" else "") + (f" distil {config.distill:g}" if config.distill else "")
        run = session_runs.new_run(f"{config.regularizer} t={config.threshold:g} {config.direction}{steps}",
                                   {**config.to_dict(), "device": current_device()}, waited, source=backdoored.card)
        live(run, purify(on_device(backdoored.model, current_device()), splits.defense, config, evaluator, scores=scores))
defense = defense_col.selectbox("Baseline defense", DEFENSES, key=state.PURIFY_DEFENSE)
if defense_button.button("Run baseline", key=state.PURIFY_RUN_DEFENSE):
    with heavy_job(f"the {defense} baseline") as waited:
        run = session_runs.new_run(defense, {"defense": defense, **config.to_dict(), "device": current_device()}, waited,
                                   source=backdoored.card)
        live(run, run_defense(defense, on_device(backdoored.model, current_device()), splits.defense, config, evaluator))

kept = session_runs.runs()
if kept:
    st.subheader("Runs in this session")
    table = [{"run": r["label"], "status": r["status"],
              "ACC before": (r["summary"] or {}).get("before", {}).get("acc") if r["summary"] else None,
              "ACC after": r["summary"]["after"]["acc"] if r["summary"] and r["summary"]["after"] else None,
              "ASR after": r["summary"]["after"]["asr"] if r["summary"] and r["summary"]["after"] else None,
              "steps to ASR<5%": r["summary"]["steps_to_erase"] if r["summary"] else None,
              "waited for a slot (s)": r.get("waited_s", 0.0),
              "note": r["reason"]} for r in kept]
    st.dataframe(pd.DataFrame(table), hide_index=True, key="purify_runs_table")
    st.caption(f"{len(kept)} of at most {state.MAX_RUNS} runs kept in this session (only you see them): "
               + ", ".join(r["label"] for r in kept) + ".")
    draw({r["label"]: r["history"] for r in kept}, "overlay")
    st.caption("Every run of this session, overlaid: lower task loss fits the clean data; the regularization loss is the "
               "penalty on the marked neurons (it falls as they shrink; 0 for prune and none); the distillation loss is how far "
               "the model's answers on clean images are from the original's (0 without distillation); the backdoor is gone "
               "when ASR falls near 0 while ACC stays up.")
    exportable = [r for r in kept if r["model"] is not None]
    e1, e2, e3, e4 = st.columns([2, 1, 1, 1], vertical_alignment="bottom")
    chosen = e1.selectbox("Export a purified model", [r["label"] for r in exportable], key=state.PURIFY_EXPORT_CHOICE)
    if chosen:  # the files are made only when a button is clicked (deferred), not on every rerun; named by the run's own model
        run = next(r for r in exportable if r["label"] == chosen)
        e2.download_button("Weights (.safetensors)", lambda run=run: weights_bytes(run["model"])[0],
                           f"{run['source'].name}-purified.safetensors", key=state.PURIFY_EXPORT_WEIGHTS)
        e3.download_button("Card (.json)", lambda run=run: json.dumps(purified_card(run, weights_bytes(run["model"])[1]),
                                                                   indent=2, default=str),
                           f"{run['source'].name}-purified.json", "application/json", key=state.PURIFY_EXPORT_CARD)
    e4.download_button("Report (.html)", lambda: run_report_html(kept), f"{report_title(kept).replace(' ', '-')}-report.html", "text/html",
                       key=state.PURIFY_EXPORT_REPORT, help="Every run's charts, numbers and settings in one file.")
    after_run_section(kept)
    doomed = st.multiselect("Delete runs", [r["label"] for r in kept], key=state.PURIFY_DELETE_CHOICE)
    if st.button("Delete", key=state.PURIFY_DELETE, disabled=not doomed):
        session_runs.delete(doomed)
        st.rerun()
