"""A purification or defense run drawn live (a run of the session is replayed when the server kept an identical one)."""

from __future__ import annotations

import time
from contextlib import closing
from typing import Any, Callable, Iterator

import streamlit as st

from purify_core.views.method_figures import live_run_figure
from purify_core.models.probe import PROBE_SIZE
from purify_core.store.cards import Card
from purify_core.errors import UserInputError
from purify_core.study import RunRecord
from ui import runs as session_runs
from ui import replay, state, untrusted
from ui.cache import backdoored_model
from ui.jobs import heavy_job
from ui.remote_jobs import job_steps

#: Seconds between two redraws of the live chart (each one is a figure sent to the browser).
CHART_EVERY_S = 0.7
PROBE_NOTE = (f"Live ACC and ASR are measured on a fixed probe of the first {PROBE_SIZE} test images, at a few steps (the early "
              "ones first), so they come quickly; the first point and the run's final numbers (the table below) are on the whole test split.")


def live(run: RunRecord, items: Iterator[Any]) -> None:
    """Stream a run into a progress bar and one live chart (a panel per loss, ACC and ASR); a Stop click reruns the page and ends it."""
    bar = st.progress(0.0, text="starting…")
    stop = st.empty()
    stop.button("Stop", key=state.PURIFY_STOP, help="Ends the run at once; the steps so far are kept.")
    charts, note = st.empty(), st.empty()
    shown = {"bar": 0.0, "charts": 0.0}
    for item in session_runs.stream(run, items):
        now = time.monotonic()  # redraw at most a few times a second: each redraw is sent to the browser
        if now - shown["bar"] > 0.5:
            bar.progress(item.fraction, text=f"step {item.step}/{item.steps} · task loss {item.task_loss:.3f}")
            shown["bar"] = now
        if item.acc is not None and (item.step == 0 or now - shown["charts"] > CHART_EVERY_S):  # the first point at once
            charts.plotly_chart(live_run_figure(run.label, run.history), key=f"live{item.step}")  # one key per redraw
            if item.step == 0:
                note.caption(PROBE_NOTE)
            shown["charts"] = now
    for placeholder in (bar, stop, charts, note):  # the run is over: the overlay below shows it
        placeholder.empty()


def run_live(what: str, label: str, settings: dict[str, Any], source: Card, items: Callable[[], Iterator[Any]]) -> None:
    """Replay an identical finished run if the server kept one; else wait for a heavy-job slot, keep a
    new run in this session, stream `items()` (its steps) into it live, and keep it for replay if it finished.

    While another session computes the same run, this one waits for it and then replays it."""
    key = replay.replay_key(source.sha256, settings)
    if key is None or replay.replay_dir() is None:  # no sha256 vouches for the weights, or replay is off
        _compute(what, label, settings, source, items)
        return
    if _replayed(key, label, settings, source):
        return
    notice = st.empty()

    def waiting(seconds: float) -> None:
        notice.info(f"Another session is computing this same run (same model, settings and seed); it will be replayed here "
                    f"when it ends. Waited {seconds:.0f} s.", icon=":material/hourglass_top:")

    with replay.one_at_a_time(key, waiting):
        notice.empty()
        if not _replayed(key, label, settings, source):
            run = _compute(what, label, settings, source, items)
            replay.save(key, run)


def _compute(what: str, label: str, settings: dict[str, Any], source: Card, items: Callable[[], Iterator[Any]]) -> RunRecord:
    with heavy_job(what) as waited:
        run = session_runs.new_run(label, settings, waited, source=source)
        with closing(job_steps(items)) as steps:  # here, or on Ray (PURIFY_LAB_RAY); closed at Stop, which cancels a Ray task
            try:
                live(run, steps)
            except UserInputError as error:  # a Ray cluster out of reach or a lost worker: one line; the steps so far are kept
                st.error(untrusted.text(error))
    return run


def _replayed(key: str, label: str, settings: dict[str, Any], source: Card) -> bool:
    """Show the kept run under `key` as a new run of this session, if the server has one."""
    kept = replay.load(key, backdoored_model(source.name).model)
    if kept is None:
        return False
    replay.fill(session_runs.new_run(label, settings, source=source), kept)
    st.info(f"Finished at once: {replay.REPLAYED} (same model sha256, settings and seed; runs are deterministic, "
            "so it is the run this would compute).", icon=":material/replay:")
    return True


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
