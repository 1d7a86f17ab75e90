"""The shared sidebar: which backdoored model every page works on."""

from __future__ import annotations

import streamlit as st

from ui import state
from ui.cache import shipped_cards

DEFAULT_SCENARIO = "mnist5k-smallcnn-badnets"


def _linked_or_default(names: list[str]) -> str:
    """The scenario the link asks for if it is shipped, else the default."""
    asked = st.query_params.get(state.SCENARIO)
    return asked if asked in names else (DEFAULT_SCENARIO if DEFAULT_SCENARIO in names else names[0])


def current_scenario() -> str:
    """The scenario the pages work on (the picker's choice; the default if it has not run yet)."""
    return st.session_state.get(state.SCENARIO) or _linked_or_default([card.name for card in shipped_cards()])


def scenario_picker() -> str:
    """Pick a shipped scenario; the choice lives in session state and in the URL (?scenario=)."""
    names = [card.name for card in shipped_cards()]
    if not names:
        st.error("No shipped scenario found in assets/zoo. Rebuild them with `python -m purify_core zoo build`.")
        st.stop()
    if state.SCENARIO not in st.session_state:
        asked = st.query_params.get(state.SCENARIO)
        if asked is not None and asked not in names:
            st.sidebar.warning(f"Unknown scenario {asked!r} in the link; showing the default.")
        st.session_state[state.SCENARIO] = _linked_or_default(names)
    choice = st.sidebar.selectbox("Backdoored model", names, key=state.SCENARIO, help="A shipped scenario: dataset, model, attack, seed.")
    if st.query_params.get(state.SCENARIO) != choice:  # write only on change: each write is a round trip
        st.query_params[state.SCENARIO] = choice
    return choice
