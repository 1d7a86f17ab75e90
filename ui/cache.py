"""Cached loaders. Models come from `st.cache_resource` and are shared by every session:
never change one in place: `copy.deepcopy` it first."""

from __future__ import annotations

import streamlit as st

from purify_core import BackdooredModel, Card, list_zoo, load_shipped
from purify_core.data import Splits, load_splits
from purify_core.evaluate import SamplePredictions, sample_predictions


@st.cache_data(show_spinner=False)
def shipped_cards() -> list[Card]:
    return list_zoo()


@st.cache_resource(show_spinner="Loading the backdoored model…")
def shipped_model(name: str) -> BackdooredModel:
    """Read-only and shared: deep-copy it before anything changes it."""
    return load_shipped(name, device="cpu")


@st.cache_resource(show_spinner="Loading the dataset…")
def splits_for(name: str) -> Splits:
    return load_splits(shipped_model(name).scenario.data)


@st.cache_resource(show_spinner=False)
def samples_for(name: str, n: int = 8) -> SamplePredictions:
    backdoored = shipped_model(name)
    return sample_predictions(backdoored.model, splits_for(name).test, backdoored.attack, n=n)
