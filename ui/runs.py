"""This session's purification runs: kept, streamed into, marked stopped, deleted.

Runs live in `st.session_state`, so each user sees only their own. A run interrupted by Stop (a
rerun) is found still "running" on the next script run and kept as "stopped" with its history.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Iterator

import streamlit as st

from purify_core.checkpoints import Card
from purify_core.purify import PurifyResult, StepMetrics
from ui import state
from ui.cache import backdoored_model
from ui.sidebar import current_scenario


def runs() -> list[dict[str, Any]]:
    return st.session_state.setdefault(state.RUNS, [])


def settle_interrupted() -> list[dict[str, Any]]:
    """A run still marked running belongs to a script run that Stop (or a rerun) ended: keep it as stopped."""
    settled = []
    for run in runs():
        if run["status"] == "running":
            run["status"] = "stopped"
            run["reason"] = f"stopped after {run['history'][-1]['step'] if run['history'] else 0} steps; what was computed is kept"
            settled.append(run)
    return settled


def new_run(kind: str, config: dict[str, Any], waited_s: float = 0.0, source: Card | None = None) -> dict[str, Any]:
    """A fresh run record; the oldest runs are dropped beyond `MAX_RUNS` (said in the UI).

    `waited_s` is how long the run waited for a free job slot (see `ui.jobs`). `source` is the card
    of the model the run purifies (default: the sidebar's): exports name it, whatever is selected later.
    """
    if source is None:
        source = backdoored_model(current_scenario()).card
    number = st.session_state[state.RUN_COUNTER] = st.session_state.get(state.RUN_COUNTER, 0) + 1
    run = {"label": f"#{number} {kind}", "config": config, "history": [], "summary": None, "status": "running", "reason": "",
           "model": None, "waited_s": round(waited_s, 1), "source": source}
    kept = runs()
    kept.append(run)
    while len(kept) > state.MAX_RUNS:
        dropped = kept.pop(0)
        st.toast(f"Dropped the oldest run {dropped['label']} (this session keeps {state.MAX_RUNS}).")
    return run


def stream(run: dict[str, Any], items: Iterator[StepMetrics | PurifyResult]) -> Iterator[StepMetrics]:
    """Record every step into `run` as it arrives, then the result; yields the steps for charts."""
    for item in items:
        if isinstance(item, PurifyResult):
            run["summary"] = item.summary.as_dict()
            run["status"], run["reason"], run["model"] = item.summary.status, item.summary.reason, item.model
            return
        run["history"].append(asdict(item))
        yield item


def delete(labels: list[str]) -> None:
    st.session_state[state.RUNS] = [r for r in runs() if r["label"] not in labels]
