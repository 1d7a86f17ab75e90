"""Shareable links: the main controls live in the URL query string, and `hide=` hides some.

`initial_value` gives a control its first value (from `?key=` when valid, else the default) before the
widget is drawn; `publish` writes the current values back, so the address bar always holds a
link to this view. Nonsense in a link is ignored with a warning that shows it as text (anyone can
craft a link: see `ui.untrusted`). `?hide=a,b` hides the controls
keyed `a` and `b` (a teacher's reduced view); hidden controls keep their link or default value.
Streamlit drops the query string on a page switch, so `hide` is kept in session state.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import streamlit as st

from ui import untrusted

HIDE = "hide"


def from_link(raw: str, parse: Callable[[str], Any] = str, choices: Sequence[Any] | None = None,
              bounds: tuple[float, float] | None = None) -> Any:
    """The value a link's text stands for, or None when it is not a valid value here (any text is safe)."""
    try:
        value = parse(raw)
        if isinstance(value, float) and value != value:  # NaN passes no bound check: refuse it here
            return None
        if choices is not None and value not in choices:
            return None
        if bounds is not None and not bounds[0] <= value <= bounds[1]:
            return None
        return value
    except (ValueError, TypeError, OverflowError):
        return None


def ignored(key: str, raw: str, default: Any) -> str:
    """The warning for a link value that is not valid here; the value is shown as text, never as markup."""
    return f"Ignored {untrusted.code(f'{key}={raw}')} in the link: not a valid value here. Using {untrusted.code(repr(default))}."


def to_link(value: Any) -> str:
    """The text a value has in a link (`from_link` reads it back)."""
    return str(value)


def initial_value(key: str, default: Any, parse: Callable[[str], Any] = str, choices: Sequence[Any] | None = None,
                  bounds: tuple[float, float] | None = None) -> None:
    """Set `st.session_state[key]` once: from the link if the value is valid, else `default`."""
    if key in st.session_state:
        return
    raw, value = st.query_params.get(key), default
    if raw is not None:
        value = from_link(raw, parse, choices, bounds)
        if value is None:
            st.warning(ignored(key, raw, default))
            value = default
    st.session_state[key] = value


def publish(keys: Sequence[str]) -> None:
    """Mirror the controls' current values (and `hide`) in the URL; only changed values are written."""
    for key in keys:
        value = st.session_state.get(key)
        if value is not None and st.query_params.get(key) != to_link(value):
            st.query_params[key] = to_link(value)
    hidden = st.session_state.get(HIDE)
    if hidden and st.query_params.get(HIDE) != hidden:
        st.query_params[HIDE] = hidden


def hidden(key: str) -> bool:
    """True when the link asked to hide this control (`?hide=key1,key2`)."""
    if HIDE not in st.session_state:
        st.session_state[HIDE] = st.query_params.get(HIDE, "")
    return key in {k.strip() for k in st.session_state[HIDE].split(",") if k.strip()}


def forget(keys: Sequence[str]) -> None:
    """Drop controls' values from the session and the link (e.g. when a preset resets them)."""
    for key in keys:
        st.session_state.pop(key, None)
        if key in st.query_params:
            del st.query_params[key]


def control(where: Any, widget: str, label: str, key: str, **kwargs: Any) -> Any:
    """Draw `where.<widget>(label, key=key, ...)` unless the link hides it; either way return its value.

    Give the key its initial value first: the widget takes its value from session state (no `value=` argument).
    """
    if hidden(key):
        return st.session_state[key]
    return getattr(where, widget)(label, key=key, **kwargs)
