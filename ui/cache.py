"""Cached loaders. Models come from `st.cache_resource` and are shared by every session:
never change one in place: `copy.deepcopy` it first."""

from __future__ import annotations

import copy
from pathlib import Path

import torch

import streamlit as st

from purify_core import BackdooredModel, Card, list_zoo
from purify_core.store.model_store import default_cache_dir, list_built, open_model
from purify_core.data.splits import Splits, load_splits
from purify_core.config import DataConfig
from purify_core.models.evaluate import SamplePredictions, sample_predictions
from purify_core.models.probe import MetricsMemo, ProbedEvaluator, probed_evaluator as make_probed_evaluator


@st.cache_data(show_spinner=False)
def shipped_cards() -> list[Card]:
    return list_zoo()


def built_cards() -> list[Card]:
    """Models trained, imported or uploaded on this server; read from disk at most every 5 s, not on every rerun."""
    return _built_cards(str(default_cache_dir()))


@st.cache_data(show_spinner=False, ttl=5)
def _built_cards(cache_dir: str) -> list[Card]:
    return list_built(Path(cache_dir))


def forget_built_cards() -> None:
    """Read the disk again on the next call (a model was just trained or uploaded)."""
    _built_cards.clear()


@st.cache_resource(show_spinner="Loading the backdoored model…", max_entries=32)
def backdoored_model(name: str) -> BackdooredModel:
    """A shipped, trained or uploaded model by name. Read-only and shared: deep-copy it before anything changes it."""
    return open_model(name, device="cpu")


@st.cache_resource(show_spinner="Loading the dataset…")
def splits_for(name: str) -> Splits:
    """The splits of the model named `name` (its scenario's data): shared, never modify the tensors."""
    return load_splits(backdoored_model(name).scenario.data)


@st.cache_resource(show_spinner=False)
def samples_for(name: str, n: int = 8) -> SamplePredictions:
    backdoored = backdoored_model(name)
    return sample_predictions(backdoored.model, splits_for(name).test, backdoored.attack, n=n)


@st.cache_resource(show_spinner="Scoring every neuron…")
def neuron_scores(name: str, metric: str, variant: str = "abs") -> dict:
    """One ranking of a model (shipped, trained or uploaded) on its clean defense set; cached, so re-marking is
    instant, and kept on the server's disk (`ui.ranking_cache`), so a restarted server never computes it again."""
    from ui.ranking_cache import kept_scores

    backdoored = backdoored_model(name)
    options = {"variant": variant} if metric == "salience" else {}
    return kept_scores(backdoored.model, splits_for(name).clean, metric, options, attack=backdoored.attack)


@st.cache_data(show_spinner="Grading the rankings against TAC…")
def ranking_report(name: str, top: float, direction: str) -> dict:
    """Quality table, Spearman matrix and ROC points of every defender ranking (the evaluator's view)."""
    from purify_core.method.rankings import DEFENDER_METRICS, METRIC_LABELS
    from purify_core.study import ranking_report as report

    scores = {metric: neuron_scores(name, metric) for metric in DEFENDER_METRICS}
    return report(scores, neuron_scores(name, "tac"), top, direction, METRIC_LABELS)


@st.cache_data(show_spinner="Zeroing neurons and re-evaluating (pruning curves)…")
def pruning_report(name: str, direction: str) -> dict:
    from purify_core.method.rankings import DEFENDER_METRICS, METRIC_LABELS
    from purify_core.method.rankings.quality import pruning_curve

    backdoored = backdoored_model(name)
    evaluator = probed_evaluator(name)  # the whole test split, memoised: the unpruned point is measured once, not per ranking
    return {METRIC_LABELS[m]: pruning_curve(backdoored.model, neuron_scores(name, m), evaluator, PRUNING_FRACTIONS, direction)
            for m in DEFENDER_METRICS}


#: The fractions of each layer the pruning curves zero (0 is the model as it is).
PRUNING_FRACTIONS = (0.0, 0.05, 0.1, 0.2, 0.3)


def pruning_evaluations() -> int:
    """How many evaluations `pruning_report` makes: each ranking at each fraction but 0 (measured once)."""
    from purify_core.method.rankings import DEFENDER_METRICS

    return len(DEFENDER_METRICS) * (len(PRUNING_FRACTIONS) - 1) + 1


@st.cache_resource(show_spinner=False, max_entries=32)
def evaluation_seconds(name: str) -> float:
    """One evaluation of model `name` on its whole test split, timed on this server (for estimates)."""
    import time

    backdoored, evaluator = backdoored_model(name), probed_evaluator(name)
    start = time.perf_counter()
    evaluator.full(backdoored.model)
    return time.perf_counter() - start


@st.cache_resource(show_spinner=False)
def _metrics_memo() -> MetricsMemo:
    return MetricsMemo()


@st.cache_resource(show_spinner="Measuring the model on its test split…", max_entries=32)
def probed_evaluator(name: str) -> ProbedEvaluator:
    """The evaluator's view of model `name` for runs: live points on a small probe of the test split,
    before and after on all of it, memoised by weights for every session (measured here once, so a
    run's first point does not wait for it)."""
    backdoored = backdoored_model(name)
    evaluator = make_probed_evaluator(backdoored.attack, splits_for(name).test, name, _metrics_memo())
    evaluator(backdoored.model)
    return evaluator


@st.cache_data(show_spinner=False, max_entries=256)
def neuron_maps(name: str, layer: str, neuron: int) -> list:
    """One neuron's mean activation map on the clean defense images and with the trigger (oracle)."""
    from purify_core.views.neuron_view import mean_activation_map

    backdoored, clean = backdoored_model(name), splits_for(name).clean.x
    return [mean_activation_map(backdoored.model, clean, layer, neuron),
            mean_activation_map(backdoored.model, backdoored.attack.apply(clean), layer, neuron)]


@st.cache_resource(show_spinner="Loading the dataset…", max_entries=8)
def dataset_splits(data: DataConfig) -> Splits:
    """A data config's splits, for the Attack lab before any model exists (`splits_for` takes a model's key):
    shared, never modify the tensors."""
    return load_splits(data)


def on_device(model: torch.nn.Module, device: str) -> torch.nn.Module:
    """The shared model itself when it already lives on `device` (the core copies before changing it),
    else a private copy moved there: `.to()` on the shared one would move it for every session."""
    return model if device == "cpu" else copy.deepcopy(model).to(device)


@st.cache_data(show_spinner="Attributing…", max_entries=64)
def backdoored_attributions(name: str, method: str) -> dict:
    """Attributions of the shared backdoored model on its 4 sample images, clean and triggered: the same for every session."""
    from purify_core.views.attribution import attribute

    samples = samples_for(name, 4)
    model = backdoored_model(name).model
    return {f"backdoored, {kind}": attribute(model, images, method) for kind, images in (("clean", samples.clean), ("triggered", samples.triggered))}
