"""The glossary in every page's sidebar, read from `lessons/glossary.toml` (a teacher edits the data,
not the code). `load_glossary` is plain Python, so tests check the file without Streamlit."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import streamlit as st

from purify_core.errors import UserInputError

GLOSSARY_FILE = Path(__file__).resolve().parent.parent / "lessons" / "glossary.toml"


def load_glossary(path: Path = GLOSSARY_FILE) -> list[tuple[str, str]]:
    """(term, meaning) pairs in the file's order; a malformed file raises one `UserInputError`."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise UserInputError(f"{Path(path).name}: cannot read the glossary: {error}") from None
    entries: list[Any] = data.get("term", [])
    if not isinstance(entries, list) or not entries:
        raise UserInputError(f"{Path(path).name}: no [[term]] entries")
    pairs = []
    for n, entry in enumerate(entries, 1):
        if not (isinstance(entry, dict) and isinstance(entry.get("term"), str) and isinstance(entry.get("means"), str)
                and entry["term"].strip() and entry["means"].strip()):
            raise UserInputError(f"{Path(path).name}: term {n} needs a non-empty `term` and `means` (both text)")
        pairs.append((entry["term"].strip(), entry["means"].strip()))
    return pairs


@st.cache_data(show_spinner=False)
def _glossary(path: str, mtime: float) -> list[tuple[str, str]]:
    return load_glossary(Path(path))


def glossary_panel(where: Any) -> None:
    """A collapsed "Glossary" expander in `where` (the sidebar): every term the pages use."""
    with where.expander("Glossary", icon=":material/menu_book:"):
        try:
            pairs = _glossary(str(GLOSSARY_FILE), GLOSSARY_FILE.stat().st_mtime)
        except (OSError, UserInputError) as error:
            st.error(f"Glossary unavailable: {error}")
            return
        st.markdown("\n".join(f"- **{term}**: {means}" for term, means in pairs))
