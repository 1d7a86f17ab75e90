"""A purification or defense run drawn live, and every run of the session overlaid."""

from __future__ import annotations

import time
from typing import Any, Callable, Iterator

import streamlit as st

from purify_core.views.method_figures import RUN_PANELS, live_run_figure, run_curves_figure
from purify_core.store.cards import Card
from purify_core.study import RunRecord
from ui import runs as session_runs
from ui import state
from ui.jobs import heavy_job


def live(run: RunRecord, items: Iterator[Any]) -> None:
    """Stream a run into a progress bar and one live chart (a panel per loss, ACC and ASR); a Stop click reruns the page and ends it."""
    bar = st.progress(0.0, text="starting…")
    stop = st.empty()
    stop.button("Stop", key=state.PURIFY_STOP, help="Ends the run at once; the steps so far are kept.")
    charts = st.empty()
    shown = {"bar": 0.0, "charts": 0.0}
    for item in session_runs.stream(run, items):
        now = time.monotonic()  # redraw at most a few times a second: each redraw is sent to the browser
        if now - shown["bar"] > 0.5:
            bar.progress(item.fraction, text=f"step {item.step}/{item.steps} · task loss {item.task_loss:.3f}")
            shown["bar"] = now
        if item.acc is not None and now - shown["charts"] > 3.0:
            charts.plotly_chart(live_run_figure(run.label, run.history), key=f"live{item.step}")  # one key per redraw
            shown["charts"] = now
    for placeholder in (bar, stop, charts):  # the run is over: the overlay below shows it
        placeholder.empty()


def run_live(what: str, label: str, settings: dict[str, Any], source: Card, items: Callable[[], Iterator[Any]]) -> None:
    """Wait for a heavy-job slot, keep a new run in this session, and stream `items()` (its steps) into it live."""
    with heavy_job(what) as waited:
        run = session_runs.new_run(label, settings, waited, source=source)
        live(run, items())


def overlay(histories: dict, where: str) -> None:
    """One chart per panel (each loss, ACC, ASR), every run's curve on it."""
    for column, (field, title, percent) in zip(st.columns(len(RUN_PANELS)), RUN_PANELS):
        column.plotly_chart(run_curves_figure(histories, field, title, percent=percent), key=f"{where}_{field}")


def run_label(config: Any) -> str:
    """A purification run's name in tables and legends: its regularizer (and strength, where it has one),
    threshold, direction, learning rate and extra steps. Charts add every other setting that differs
    between the runs shown (`purify_core.views.run_compare.compare_labels`)."""
    steps = (f" re-init {config.reinit}" if config.reinit != "none" else "") + (f" distil {config.distill:g}" if config.distill else "")
    strength = f" {config.strength:g}" if config.regularizer not in ("prune", "none") else ""
    return f"{config.regularizer}{strength} t={config.threshold:g} {config.direction} lr={config.lr:g}{steps}"


def defense_label(name: str, settings: dict[str, Any], defaults: dict[str, Any]) -> str:
    """A defense run's name in tables and legends: the defense and the settings it changed from their defaults."""
    changed = " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in settings.items() if v != defaults.get(k))
    return f"{name} {changed}".strip()
