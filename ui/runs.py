"""This session's purification runs: kept, streamed into, marked stopped, deleted.

Runs live in `st.session_state`, so each user sees only their own. A run interrupted by Stop (a
rerun) is found still "running" on the next script run and kept as "stopped" with its history.
"""

from __future__ import annotations

from typing import Any, Iterator

import streamlit as st

from purify_core.store.cards import Card
from purify_core.method.purify import PurifyResult, StepMetrics
from purify_core.study import RunRecord
from ui import state
from ui.cache import backdoored_model
from ui.sidebar import current_scenario


def runs() -> list[RunRecord]:
    return st.session_state.setdefault(state.RUNS, [])


def settle_interrupted() -> list[RunRecord]:
    """A run still marked running belongs to a script run that Stop (or a rerun) ended: keep it as stopped."""
    return [run for run in runs() if run.settle()]


def new_run(kind: str, config: dict[str, Any], waited_s: float = 0.0, source: Card | None = None) -> RunRecord:
    """A fresh run record; the oldest runs are dropped beyond `MAX_RUNS` (said in the UI).

    `waited_s` is how long the run waited for a free job slot (see `ui.jobs`). `source` is the card
    of the model the run purifies (default: the sidebar's): exports name it, whatever is selected later.
    """
    if source is None:
        source = backdoored_model(current_scenario()).card
    number = st.session_state[state.RUN_COUNTER] = st.session_state.get(state.RUN_COUNTER, 0) + 1
    run = RunRecord(label=f"#{number} {kind}", config=config, source=source, waited_s=round(waited_s, 1))
    kept = runs()
    kept.append(run)
    st.session_state.pop(state.PURIFY_CHECK_CHOICE, None)  # the after-run section shows the new run
    while len(kept) > state.MAX_RUNS:
        dropped = kept.pop(0)
        st.toast(f"Dropped the oldest run {dropped.label} (this session keeps {state.MAX_RUNS}).")
    return run


def stream(run: RunRecord, items: Iterator[StepMetrics | PurifyResult]) -> Iterator[StepMetrics]:
    """Record every step into `run` as it arrives, then the result; yields the steps for charts."""
    for item in items:
        run.record(item)
        if isinstance(item, PurifyResult):
            return
        yield item


def delete(labels: list[str]) -> None:
    st.session_state[state.RUNS] = [r for r in runs() if r.label not in labels]
