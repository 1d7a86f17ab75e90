"""Purify: mark neurons, fine-tune with Adaptive Regularization (or any registered defense), watch it live."""

from functools import partial  # a job Ray can ship (ui.remote_jobs)

import streamlit as st

from purify_core.defenses import DEFENSES, check_defense_settings, run_defense
from purify_core.errors import UserInputError
from purify_core.method.marking import mark, marked_count
from purify_core.views.method_figures import salience_strips_figure
from purify_core.method.neurons import neuron_layers, select_layers
from purify_core.method.purify import purify
from ui import controls, lesson_prompt
from ui import runs as session_runs
from ui import state, untrusted
from ui.cache import backdoored_model, neuron_scores, on_device, probed_evaluator, splits_for
from ui.live_run import defense_label, run_label, run_live
from ui.run_list import run_list
from ui.sidebar import current_device, current_scenario, current_seed
from ui.widgets import linked_params

name = current_scenario()
backdoored, splits = backdoored_model(name), splits_for(name)
for stopped in session_runs.settle_interrupted():
    st.info(f"Run {stopped.label} {stopped.reason}.")

st.title("Purify")
st.markdown(f"Fine-tune a private copy of **{untrusted.text(name)}** on its {len(splits.clean)} clean defense images, with a penalty "
            "on the marked neurons. ACC and ASR are the evaluator's view: the run never reads them.")
with st.expander("What comes from the paper, and what the lab added"):
    st.markdown(
        "**From the paper** (Fan et al., arXiv 2208.06537): benign salience marks the neurons, a threshold picks them, "
        "Adaptive Regularization pulls their weights down while the model is fine-tuned on the small clean set. The "
        "`reference` preset is that method as written; `authors-code` follows the authors' public code (highest "
        "salience, final linear layer, a growing share, their AR sign error for w < -1 fixed). **Added by the lab**, in "
        "the `default` preset: the dense layers are re-initialised and the original model's answers on the clean images "
        "are distilled back (the mean of its answers on each shifted image and on the image as it is: a shift is a "
        "small warp, and a warp can be a trigger), the marked channels (the 80% least active on the clean images in the last conv layer, "
        "Fine-Pruning's criterion) are pruned instead of penalised, and the images the purified copy trains on are also "
        "turned (up to 10 degrees) and scaled (up to 10%) while the original answers them unturned (a turn is a warp too: "
        "the copy learns that a warp means nothing). **Why**: on the shipped models the penalty alone left Blended and SIG near 50% ASR; the "
        "backdoor's shortcut lives largely in the dense head, which a fresh head no longer holds, and distillation gives "
        "back the clean behaviour that 200 labelled images cannot (the original never sees a trigger here). Measured, "
        "not promised: over 3 clean-set draws x 3 seeds the default leaves 0.3-0.6% ASR on average on each shipped "
        "scenario (one run of 36 at 2.1%), for 0.6 ACC points on average and at most 0.8 on any scenario (README, "
        "'The default settings').")

preset = controls.draw_preset(st)
c1, c2, c3 = st.columns(3)
values = controls.draw_in((c1, controls.PURIFY_MARKING), (c2, controls.PURIFY_PENALTY), (c3, controls.PURIFY_TRAINING))
controls.publish([controls.PURIFY_PRESET, *controls.PURIFY])

try:
    config = controls.purify_config(preset, values, current_seed())
    in_scope = [l.name for l in select_layers(neuron_layers(backdoored.model), config.layers)]
except UserInputError as error:
    st.error(untrusted.text(error))
    st.stop()

scores = neuron_scores(name, config.metric, config.variant)
mask = mark(scores, config.threshold, config.scope, in_scope, config.direction)
st.plotly_chart(salience_strips_figure(scores, mask, "Benign salience per layer, marked neurons (x)"), key="purify_strips")
st.caption(f"{marked_count(mask)} neurons marked. Each row is a layer, each cell a neuron coloured by its score scaled within "
           "the layer; x marks the neurons the penalty acts on. Moving the sliders re-marks without recomputing the scores. "
           "The marking (threshold, direction, scope, layers) is the one Salience maps shows: change it here or there.")
prompt = lesson_prompt.ask("purify")  # the lesson step's prediction, before Run; checked by the run below

evaluator = probed_evaluator(name)  # live points on a small probe; before and after on the whole test split
run_col, defense_col, defense_button = st.columns([2, 2, 1], vertical_alignment="bottom")
if run_col.button("Run purification", type="primary", key=state.PURIFY_RUN):
    run_live("this purification", run_label(config), {**config.to_dict(), "device": current_device()}, backdoored.card,
             partial(purify, on_device(backdoored.model, current_device()), splits.clean, config, evaluator, scores=scores))
controls.first_value(controls.PURIFY_DEFENSE)
defense = controls.draw(defense_col, controls.PURIFY_DEFENSE)
controls.publish([controls.PURIFY_DEFENSE])
chosen = DEFENSES[defense]
st.caption(f"**{untrusted.text(chosen.label)}**: {untrusted.text(chosen.summary)}. {untrusted.text(chosen.source)}. "
           f"Settings: {untrusted.text(chosen.selection)}. It fine-tunes with the epochs, learning rate and seed above.")
defense_settings = linked_params(st.columns(4), controls.defense_setting_keys(defense), chosen.params) if chosen.params else {}
if defense_button.button("Run defense", key=state.PURIFY_RUN_DEFENSE):
    try:
        checked = check_defense_settings(defense, defense_settings)
    except UserInputError as error:
        st.error(untrusted.text(error))
        st.stop()
    defaults = {k: spec.default for k, spec in chosen.params.items()}
    run_live(f"the {chosen.label} defense", defense_label(defense, checked, defaults),
             {"defense": defense, "defense_settings": checked, **config.to_dict(), "device": current_device()}, backdoored.card,
             partial(run_defense, defense, on_device(backdoored.model, current_device()), splits.clean, config, evaluator, checked))

kept = session_runs.runs()
if kept:
    run_list(kept)
lesson_prompt.check_runs(prompt, kept)
