"""Widgets built from the core's own descriptions (an attack's parameter specs)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from purify_core.attacks import ParamSpec


def param_input(where: Any, key: str, name: str, spec: ParamSpec, default: Any) -> Any:
    """One trigger parameter as the widget its spec calls for; bounds and choices come from the spec.

    A free-form string (Blended's image path) is offered only as its safe choices: a browser
    never names a file on the server.
    """
    st.session_state.setdefault(key, default if isinstance(spec.default, str) else type(spec.default)(default))
    label, options = name.replace("_", " ").capitalize(), spec.choices or spec.offered
    if options:
        if st.session_state[key] not in options:
            st.session_state[key] = options[0]
        return where.selectbox(label, options, key=key, help=spec.help)
    if isinstance(spec.default, bool):
        return where.checkbox(label, key=key, help=spec.help)
    if isinstance(spec.default, int):
        low = int(spec.low) if spec.low is not None else None
        high = int(spec.high) if spec.high is not None else None
        return where.number_input(label, min_value=low, max_value=high, step=1, key=key, help=spec.help)
    return where.number_input(label, min_value=spec.low, max_value=spec.high, step=0.05, format="%.3f", key=key, help=spec.help)
