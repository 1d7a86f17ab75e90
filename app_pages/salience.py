"""Salience Maps: every neuron's score, the marked ones (the marking Purify uses), and one neuron up close."""

import streamlit as st

from purify_core.errors import UserInputError
from purify_core.method.marking import mark, marked_count
from purify_core.method.neurons import neuron_layers, select_layers
from purify_core.method.purify import PURIFY_PRESETS
from purify_core.views.method_figures import maps_figure, salience_strips_figure, score_histogram_figure
from purify_core.views.neuron_figures import activation_maps_figure, pickable
from purify_core.views.neuron_view import neuron_filters
from purify_core.method.rankings import METRIC_LABELS
from ui import controls, lesson_prompt, state, untrusted
from ui.cache import neuron_maps, neuron_scores, backdoored_model
from ui.premise import callout
from ui.neuron_pick import STRIPS_CHART, just_picked, on_pick, open_neuron
from ui.sidebar import current_scenario

name = current_scenario()
backdoored = backdoored_model(name)
st.title("Salience maps")
st.markdown("Every neuron of every layer, scored on the clean defense set. **Benign salience** is the first-order rise of "
            "the clean loss if the neuron were removed: low means the clean task barely needs it.")
callout("salience")
lesson_prompt.check_salience(lesson_prompt.ask("salience"), name)  # the lesson step's prediction, if it is asked here

controls.first_values(controls.SALIENCE_RANKING)
preset = controls.first_marking()  # the marking is Purify's: its values, else the chosen preset's
c1, _ = st.columns([1, 2])
ranking = controls.draw_in((c1, controls.SALIENCE_RANKING))
metric, variant = ranking[state.SALIENCE_METRIC], ranking[state.SALIENCE_VARIANT]
scores = neuron_scores(name, metric, variant if metric == "salience" else "abs")
purify_ranks = PURIFY_PRESETS[preset]
if (metric, variant if metric == "salience" else "abs") != (purify_ranks.metric, purify_ranks.variant):
    st.caption(f"Purify (preset {untrusted.text(preset)}) ranks by {METRIC_LABELS[purify_ranks.metric]}, variant "
               f"{untrusted.text(purify_ranks.variant)}: choose that ranking to see exactly the neurons it marks.")


@st.fragment
def marked_neurons() -> None:
    """Re-marking reruns only this part: no sidebar, no neuron close-up, so a slider step answers at once."""
    c2, c3, c4 = st.columns(3)
    threshold, *how = controls.PURIFY_MARKING
    marking = controls.draw_in((c2, [threshold]), (c3, how), (c4, [controls.PURIFY_LAYERS]))
    controls.publish(controls.SALIENCE)
    try:
        in_scope = [l.name for l in select_layers(neuron_layers(backdoored.model), marking[state.PURIFY_LAYERS])]
    except UserInputError as error:
        st.error(untrusted.text(error))
        st.stop()
    mask = mark(scores, marking[state.PURIFY_THRESHOLD], marking[state.PURIFY_SCOPE], in_scope, marking[state.PURIFY_DIRECTION])
    st.plotly_chart(pickable(salience_strips_figure(scores, mask, f"{METRIC_LABELS[metric]} per layer"), scores), key=STRIPS_CHART,
                    on_select=on_pick(scores), selection_mode="points")
    st.caption(f"{marked_count(mask)} neurons marked (x). One row per layer, one cell per neuron, coloured by its score scaled "
               "within the layer (yellow = highest). The threshold only re-marks: the scores are cached. This marking "
               "(threshold, direction, scope, layers) is the one Purify uses: change it here or there.")
    layer = st.selectbox("Layer", list(scores), key=state.SALIENCE_LAYER)
    st.plotly_chart(score_histogram_figure(scores[layer], mask[layer], f"{layer}: score distribution"), key="salience_hist")
    st.caption("How the layer's scores spread; red bars are the marked neurons.")
    if not st.session_state[state.SALIENCE_FULL_RUN] and (st.session_state.get(state.SALIENCE_LAYER_SHOWN) != layer or just_picked()):
        st.rerun(scope="app")  # a fragment-only run picked a new layer or neuron: the close-up below, outside this fragment, must follow


st.session_state[state.SALIENCE_FULL_RUN] = True
marked_neurons()
st.session_state[state.SALIENCE_FULL_RUN] = False
layer = st.session_state[state.SALIENCE_LAYER]
st.session_state[state.SALIENCE_LAYER_SHOWN] = layer
order = scores[layer].argsort().tolist()
open_neuron(scores[layer], layer, st.session_state[state.PURIFY_DIRECTION])
neuron = st.select_slider("Neuron (ordered from lowest to highest score)", order, key=state.SALIENCE_NEURON,
                          format_func=lambda i: f"#{i} ({float(scores[layer][i]):.3g})",
                          help="Or click a cell of the chart above. A layer opens on its first marked neuron.")
filters = neuron_filters(backdoored.model, layer, neuron)
left, right = st.columns(2)
left.plotly_chart(maps_figure(list(filters), [f"in {i}" for i in range(len(filters))], min(8, len(filters)), symmetric=True,
                              height_per_row=110), key="salience_filters")
left.caption("Its incoming weights, one small map per input channel (blue negative, red positive; linear layers: one row).")
maps = neuron_maps(name, layer, neuron)
right.plotly_chart(activation_maps_figure(maps, ["clean images", "with the trigger (evaluator's view)"]), key="salience_activation")
right.caption("Where the neuron fires, averaged over the defense images: clean, and with the trigger added (oracle). "
              "Both on one colour scale (black: silent; the bar gives the values). "
              "A neuron that lights up only with the trigger is infected.")
