"""Widgets built from the core's own descriptions (the `ParamSpec`s of attacks and defenses).

A new attack or defense needs only its own file: its specs give the widgets, their bounds and,
when no preset has tuned values for it, their first values.
"""

from __future__ import annotations

from typing import Any, Sequence

import streamlit as st

from purify_core.attacks import Attack
from purify_core.config import ParamValue, scenario_preset
from purify_core.errors import UserInputError
from purify_core.params import ParamSpec
from ui import links, state


def param_input(where: Any, key: str, name: str, spec: ParamSpec, default: Any) -> Any:
    """One parameter as the widget its spec calls for; bounds and choices come from the spec.

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


def tuned_params(preset: str, attack: str) -> dict[str, ParamValue]:
    """The trigger parameters a scenario preset tuned for this attack; none for an attack it does not know."""
    try:
        return scenario_preset(preset, attack).attack.param_dict()
    except UserInputError:  # an attack added without preset values: its specs' defaults serve
        return {}


def attack_params(columns: Sequence[Any], attack: type[Attack], preset: str) -> dict[str, Any]:
    """One widget per trigger parameter, spread over `columns`; first values from the preset, else the spec."""
    tuned = tuned_params(preset, attack.name)
    return {name: param_input(columns[i % len(columns)], f"{state.ATTACK_PARAM_PREFIX}{attack.name}_{name}", name, spec,
                              tuned.get(name, spec.default))
            for i, (name, spec) in enumerate(attack.PARAMS.items())}


def linked_params(columns: Sequence[Any], keys: dict[str, str], params: dict[str, ParamSpec]) -> dict[str, Any]:
    """One widget per setting (`keys`: setting -> widget key), spread over `columns`; a link can set each.

    A link's value is read with the setting's own check, so a bad one is ignored with a warning.
    """
    values = {}
    for i, (name, spec) in enumerate(params.items()):
        links.initial_value(keys[name], spec.default, lambda raw, name=name, spec=spec: spec.check(name, raw))
        values[name] = param_input(columns[i % len(columns)], keys[name], name, spec, spec.default)
    links.publish(list(keys.values()))
    return values
