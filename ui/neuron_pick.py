"""The Salience page's close-up: a click on the strips chart opens that neuron; a layer opens on its first marked neuron."""

from __future__ import annotations

from typing import Callable, Mapping

import streamlit as st
import torch

from purify_core.views.neuron_view import first_neuron, picked_neuron
from ui import state

#: The strips chart's key: its selection (the clicked cell) is read from the session under it.
STRIPS_CHART = "salience_strips"


def on_pick(scores: Mapping[str, torch.Tensor]) -> Callable[[], None]:
    """The chart's `on_select` callback: it runs before the rerun, so the layer and neuron widgets,
    drawn after it, open on the clicked cell. A click that names no neuron (a deselect) changes nothing."""

    def pick() -> None:
        picked = picked_neuron(st.session_state[STRIPS_CHART]["selection"]["points"], scores)
        if picked is not None:
            st.session_state[state.SALIENCE_LAYER], st.session_state[state.SALIENCE_NEURON] = picked
            st.session_state[state.SALIENCE_PICKED] = True

    return pick


def just_picked() -> bool:
    """Whether a click chose the neuron since the close-up was last drawn (a fragment-only run must then rerun the page)."""
    return bool(st.session_state.get(state.SALIENCE_PICKED))


def open_neuron(scores: torch.Tensor, layer: str, direction: str) -> None:
    """Before the neuron slider is drawn: a layer opened anew, or a new marking direction, starts on the
    layer's first marked neuron (`first_neuron`), not on its lowest score; otherwise a click's or the
    slider's choice stays."""
    picked = st.session_state.pop(state.SALIENCE_PICKED, False)
    current = st.session_state.get(state.SALIENCE_NEURON)
    valid = isinstance(current, int) and not isinstance(current, bool) and 0 <= current < len(scores)
    if not valid or (not picked and st.session_state.get(state.SALIENCE_NEURON_FOR) != (layer, direction)):
        st.session_state[state.SALIENCE_NEURON] = first_neuron(scores, direction)
    st.session_state[state.SALIENCE_NEURON_FOR] = (layer, direction)
