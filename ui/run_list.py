"""This session's runs under the Purify page: their table, their curves overlaid, exports, checks and deletion."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from purify_core.views.export import purified_card, report_title, run_report_html, weights_bytes
from purify_core.views.method_figures import pareto_figure, runs_overlay_figure
from purify_core.views.run_compare import MISSING, compare_labels, named_histories, run_rows
from purify_core.evaluation.verdict import ERASED_ASR
from purify_core.study import RunRecord
from ui import runs as session_runs
from ui import state
from ui.after_run import after_run_section, verdict_line

#: The arena benchmark's results (`python -m purify_core bench arena`), read only; a missing file adds nothing.
ARENA_FILE = Path(__file__).resolve().parent.parent / "benchmarks" / "arena.json"


def run_list(kept: list[RunRecord]) -> None:
    """Everything the page shows about the runs kept in this session (only this session sees them)."""
    st.subheader("Runs in this session")
    verdict_line(kept[-1])  # the newest run's verdict first: what the student waited for
    table = [{**row, "waited for a slot (s)": r.waited_s, "note": r.reason or None} for row, r in zip(run_rows(kept), kept)]
    st.dataframe(_styled(pd.DataFrame(table)), hide_index=True, key="purify_runs_table")
    st.caption(f"{len(kept)} of at most {state.MAX_RUNS} runs kept in this session (only you see them). \"differs in\" names "
               f"every setting that is not the same in all of them; the charts name the runs the same way; \"{MISSING}\" where "
               f"a number was not measured (a stopped run). Verdict: erased when ASR after falls below {100 * ERASED_ASR:g}%.")
    st.plotly_chart(runs_overlay_figure(named_histories(kept)), key="purify_runs_overlay")
    st.caption("Every run of this session, overlaid, one colour per run (the same in the report; click a run in the legend "
               "to hide it): lower task loss fits the clean data; the regularization loss is the penalty on the marked neurons (it falls as they shrink; 0 for prune and none); the distillation loss is how far "
               "the model's answers on clean images are from the original's (0 without distillation); the backdoor is gone "
               "when ASR falls near 0 while ACC stays up.")
    _pareto(kept)
    _exports(kept)
    after_run_section(kept)
    doomed = st.multiselect("Delete runs", [r.label for r in kept], key=state.PURIFY_DELETE_CHOICE)
    if st.button("Delete", key=state.PURIFY_DELETE, disabled=not doomed):
        session_runs.delete(doomed)
        st.rerun()


def _styled(table: pd.DataFrame) -> Any:
    """Numbers stay numbers (the table sorts by them); a value not measured reads MISSING, never None or nan."""
    formats = {column: pattern for column, pattern in (("steps to ASR<5%", "{:.0f}"), ("DER", "{:.3f}"), ("seconds", "{:.1f}"),
                                                       ("waited for a slot (s)", "{:.1f}")) if column in table}
    return table.style.format(formats, precision=2, na_rep=MISSING)


@st.cache_data(show_spinner=False, max_entries=4)
def _arena_summary(path: str, modified: float) -> list[dict[str, Any]]:
    """The arena's summary rows (keyed by the file's time, so a new benchmark is read again); [] if unreadable."""
    try:
        rows = json.loads(Path(path).read_text()).get("summary", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def _arena_rows() -> list[dict[str, Any]]:
    try:
        return _arena_summary(str(ARENA_FILE), ARENA_FILE.stat().st_mtime)
    except OSError:
        return []  # no arena run yet: the chart shows this session's runs only


def _pareto(kept: list[RunRecord]) -> None:
    """This session's runs (and the arena's, for the same models) on ACC drop vs ASR, Pareto front drawn."""
    points = []
    for r, name in zip(kept, compare_labels([r.label for r in kept], [r.config for r in kept])):  # named as on the overlay
        before, after = (r.summary.before, r.summary.after) if r.summary else (None, None)
        if before is not None and after is not None and after.asr is not None:
            points.append({"label": name, "acc_drop": 100 * (before.acc - after.acc), "asr": 100 * after.asr, "source": "this session"})
    models = {r.source.name for r in kept}
    for row in _arena_rows():
        if row.get("scenario") in models and isinstance(row.get("acc_drop"), (int, float)) and isinstance(row.get("asr"), (int, float)):
            points.append({"label": f"arena: {row.get('defense')}", "acc_drop": row["acc_drop"], "asr": row["asr"], "source": "arena"})
    if not points:
        return
    st.plotly_chart(pareto_figure(points), key="purify_pareto")
    st.caption("Each finished run of this session (circles) and, where `bench arena` has run on the same model, each "
               "defense's mean over clean-set draws (diamonds), placed by what it cost (ACC drop) and what it left (ASR). "
               "Red points are on the Pareto front: no other run has both a lower ACC drop and a lower ASR. The best "
               "defense is the one nearest the bottom-left corner; ASR is the evaluator's view.")


def _exports(kept: list[RunRecord]) -> None:
    """Download buttons: one run's weights and card, every run's report; files are made only on a click (deferred)."""
    exportable = [r for r in kept if r.model is not None]
    e1, e2, e3, e4 = st.columns([2, 1, 1, 1], vertical_alignment="bottom")
    chosen = e1.selectbox("Export a purified model", [r.label for r in exportable], key=state.PURIFY_EXPORT_CHOICE)
    if chosen:  # named by the run's own model
        run = next(r for r in exportable if r.label == chosen)
        e2.download_button("Weights (.safetensors)", lambda run=run: weights_bytes(run.model)[0],
                           f"{run.source.name}-purified.safetensors", key=state.PURIFY_EXPORT_WEIGHTS)
        e3.download_button("Card (.json)", lambda run=run: json.dumps(purified_card(run, weights_bytes(run.model)[1]),
                                                                   indent=2, default=str),
                           f"{run.source.name}-purified.json", "application/json", key=state.PURIFY_EXPORT_CARD)
    e4.download_button("Report (.html)", lambda: run_report_html(kept), f"{report_title(kept).replace(' ', '-')}-report.html", "text/html",
                       key=state.PURIFY_EXPORT_REPORT, help="Every run's charts, numbers and settings in one file.")
