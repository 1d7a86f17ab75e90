"""Shareable links: the main controls live in the URL query string, and `hide=` hides some.

`initial_value` gives a control its first value (from `?key=` when valid, else the default) before the
widget is drawn; `publish` writes the current values back, so the address bar always holds a
link to this view. Nonsense in a link is ignored with a warning that shows it as text (anyone can
craft a link: see `ui.untrusted`). `?hide=a,b` hides the controls
keyed `a` and `b` (a teacher's reduced view); hidden controls keep their link or default value.
Streamlit drops the query string on a page switch, so `hide` and the link the session opened with
(`first_link`) are kept in session state: a link's value reaches a page opened later.

Streamlit also drops a widget's value at the end of a run that does not draw it (another page), so
`keep` copies each control's value into a plain session key and puts it back before the page draws:
a control keeps its value for the whole session. A control may answer to older link names
(`aliases`): they are read when its own name is absent, and replaced by it when the page publishes.

A link followed inside the app on purpose (a lesson step's "Go to", `go`) is the exception: kept values
would win over it, so the student would land on their own settings instead of the view the link names.
`go` notes the link, and on the next run `opened` hands it over once to be applied over the kept values
(`ui.controls.keep_values`); the values it does not name stay kept.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NoReturn, Sequence

import streamlit as st

from ui import state, untrusted

HIDE = "hide"


def first_link() -> dict[str, str]:
    """The query string the session opened with (read on its first run, then kept)."""
    if state.FIRST_LINK not in st.session_state:
        st.session_state[state.FIRST_LINK] = st.query_params.to_dict()
    return st.session_state[state.FIRST_LINK]


def linked_text(key: str, aliases: Sequence[str] = ()) -> tuple[str, str | None]:
    """The name and text a link gives a control: the address bar's, else the first link's; its own name before its aliases."""
    for source in (st.query_params.to_dict(), first_link()):
        for name in (key, *aliases):
            if name in source:
                return name, source[name]
    return key, None


def keep(wanted: Callable[[str], bool]) -> None:
    """Carry the `wanted` controls' values across pages; call it first in every run, before any widget.

    A value the session holds (the widget's latest) is copied to `state.KEPT`, and every kept value is
    written back as a plain session value, so the widget, when a page draws it, starts from it.
    Written back even when present: Streamlit holds a widget's value under an id that includes its
    page, so a key that two pages draw (the marking) would start from its default on the other page,
    and a value the last page did not draw is dropped at the end of that run. A value changed in a
    fragment's rerun reaches `state.KEPT` through `remember`. Buttons and file uploaders must not be
    wanted (their values cannot be set).
    """
    first_link()
    kept = st.session_state.setdefault(state.KEPT, {})
    kept.update({key: st.session_state[key] for key in st.session_state if isinstance(key, str) and wanted(key)})
    for key, value in kept.items():
        st.session_state[key] = value


def go(page: str, query: Mapping[str, str]) -> NoReturn:
    """Open `page` with `query` as a link chosen on purpose: on the next run its values win over the kept ones."""
    st.session_state[state.OPENED_LINK] = dict(query)
    st.switch_page(page, query_params=dict(query))


def opened() -> dict[str, str]:
    """The link `go` opened, handed over once (then forgotten); empty when none was."""
    return st.session_state.pop(state.OPENED_LINK, None) or {}


def set_hidden(keys: str) -> None:
    """Hide exactly these controls (`a,b`, as in `?hide=`; empty: none) from this run on."""
    st.session_state[HIDE] = keys


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


def remember(key: str, value: Any) -> Any:
    """Note a control's value as it is drawn, for `keep`; returns the value.

    `keep` runs only in full runs: a fragment's rerun (Salience's marking) changes a widget it never
    sees, and on a page switch Streamlit has already dropped that widget's value before `keep` runs.
    """
    st.session_state.setdefault(state.KEPT, {})[key] = value
    return value


def initial_value(key: str, default: Any, parse: Callable[[str], Any] = str, choices: Sequence[Any] | None = None,
                  bounds: tuple[float, float] | None = None, aliases: Sequence[str] = ()) -> None:
    """Set `st.session_state[key]` once a session: from the link (`key`, else an alias) if valid, else `default`."""
    if key in st.session_state:
        return
    (name, raw), value = linked_text(key, aliases), default
    if raw is not None:
        value = from_link(raw, parse, choices, bounds)
        if value is None:
            st.warning(ignored(name, raw, default))
            value = default
    st.session_state[key] = value


def publish(keys: Sequence[str], replaced: Sequence[str] = ()) -> None:
    """Mirror the controls' current values (and `hide`) in the URL; only changed values are written.

    `replaced`: older names of these controls (aliases), removed from the URL so the link holds one name each.
    """
    for name in replaced:
        if name in st.query_params:
            del st.query_params[name]
    for key in keys:
        value = st.session_state.get(key)
        if value is not None and st.query_params.get(key) != to_link(value):
            st.query_params[key] = to_link(value)
    hidden = st.session_state.get(HIDE)
    if hidden and st.query_params.get(HIDE) != hidden:
        st.query_params[HIDE] = hidden


def current(key: str) -> Any:
    """A control's value in this session (None before its first value)."""
    return st.session_state.get(key)


def hidden(key: str, aliases: Sequence[str] = ()) -> bool:
    """True when the link asked to hide this control (`?hide=key1,key2`), by its name or an alias."""
    if HIDE not in st.session_state:
        st.session_state[HIDE] = st.query_params.get(HIDE, "")
    return not {k.strip() for k in st.session_state[HIDE].split(",") if k.strip()}.isdisjoint({key, *aliases})


def forget(keys: Sequence[str]) -> None:
    """Drop controls' values from the session, the kept values and the links (e.g. when a preset resets them)."""
    kept, link = st.session_state.get(state.KEPT, {}), st.session_state.get(state.FIRST_LINK, {})
    for key in keys:
        st.session_state.pop(key, None)
        kept.pop(key, None)
        link.pop(key, None)
        if key in st.query_params:
            del st.query_params[key]


def control(where: Any, widget: str, label: str, key: str, aliases: Sequence[str] = (), **kwargs: Any) -> Any:
    """Draw `where.<widget>(label, key=key, ...)` unless the link hides it; either way return its value.

    Give the key its initial value first: the widget takes its value from session state (no `value=` argument).
    """
    if hidden(key, aliases):
        return remember(key, st.session_state[key])
    return remember(key, getattr(where, widget)(label, key=key, **kwargs))
