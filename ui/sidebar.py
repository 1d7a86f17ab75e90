"""The shared sidebar: which backdoored model every page works on, the device and the seed (and every control kept)."""

from __future__ import annotations

import streamlit as st

from purify_core.errors import UserInputError
from ui import controls, state, untrusted
from ui.cache import backdoored_model, built_cards, forget_built_cards, shipped_cards

DEFAULT_SCENARIO = "mnist5k-smallcnn-badnets"


def model_names() -> list[str]:
    """Shipped scenarios, then (newest first) models trained or imported (CLI) on this server and this session's uploads."""
    shipped = [card.name for card in shipped_cards()]
    uploads = st.session_state.get(state.UPLOADS, [])
    built = [card.name for card in built_cards() if not card.name.startswith("upload-") or card.name in uploads]
    return shipped + built


def _linked_or_default(names: list[str]) -> str:
    """The model the link asks for if this server has it, else the default."""
    asked = st.query_params.get(state.SCENARIO)
    return asked if asked in names else (DEFAULT_SCENARIO if DEFAULT_SCENARIO in names else names[0])


def current_scenario() -> str:
    """The model the pages work on (the picker's choice; the default if it has not run yet)."""
    return st.session_state.get(state.SCENARIO) or _linked_or_default(model_names())


def current_device() -> str:
    """Where heavy work (training, purification, baseline defenses) runs: `cpu` or `cuda`."""
    return st.session_state.get(state.DEVICE, "cpu")


def current_seed() -> int:
    """The seed of new runs and trainings: the same seed and settings give the same numbers."""
    return int(st.session_state.get(state.SEED, 0))


def open_on_next_run(name: str) -> None:
    """Select model `name` from the next run on (the picker cannot change once drawn in this run) and rerun."""
    st.session_state[state.PENDING_SCENARIO] = name
    forget_built_cards()  # the new model must be in the list the picker checks
    st.rerun()


def _label(name: str) -> str:
    if name.startswith("upload-"):
        return f"{name} (uploaded)"
    if name.startswith("import-"):
        return f"{name} (imported)"
    return name if name in {card.name for card in shipped_cards()} else f"{name} (trained here)"


def scenario_picker() -> str:
    """Pick the model, the device and the seed; all three live in session state, model and seed in the URL.

    It runs first on every page, before any control is drawn, so it also puts back the values of the
    controls the last page did not draw (`controls.keep_values`): every control keeps its value all session.
    """
    controls.keep_values()
    names = model_names()
    if not names:
        st.error("No shipped scenario found in assets/zoo. Rebuild them with `python -m purify_core zoo build`.")
        st.stop()
    if state.PENDING_SCENARIO in st.session_state:
        st.session_state[state.SCENARIO] = st.session_state.pop(state.PENDING_SCENARIO)
    if state.SCENARIO in st.session_state and st.session_state[state.SCENARIO] not in names:
        del st.session_state[state.SCENARIO]  # e.g. its cached file was removed from the server
    if state.SCENARIO not in st.session_state:
        asked = st.query_params.get(state.SCENARIO)
        if asked is not None and asked not in names:
            st.sidebar.warning(f"Unknown model {untrusted.code(asked)} in the link; showing the default.")
        st.session_state[state.SCENARIO] = _linked_or_default(names)
    choice = st.sidebar.selectbox("Backdoored model", names, key=state.SCENARIO, format_func=_label,
                                  help="A shipped scenario (dataset, model, attack, seed), or one trained or uploaded in the Attack lab.")
    if st.query_params.get(state.SCENARIO) != choice:  # write only on change: each write is a round trip
        st.query_params[state.SCENARIO] = choice
    try:
        backdoored_model(choice)
    except UserInputError as error:  # e.g. a cached file changed on disk: its sha256 no longer matches its card
        st.error(f"Cannot open {untrusted.code(choice)}: {untrusted.text(error)}")
        st.stop()
    devices = ["cpu", "cuda"] if _cuda_available() else ["cpu"]
    if st.session_state.get(state.DEVICE) not in devices:
        st.session_state[state.DEVICE] = devices[-1]
    st.sidebar.selectbox("Device", devices, key=state.DEVICE, disabled=len(devices) == 1,
                         help="Where training, purification and baseline defenses run. cuda appears when this server has a GPU.")
    controls.first_value(controls.SEED)
    controls.draw(st.sidebar, controls.SEED)
    controls.publish([controls.SEED])
    return choice


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()
