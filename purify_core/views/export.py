"""Exports of a purification: the weights (safetensors), a card, and a self-contained HTML report.

A run is a `study.RunRecord` whose `source` is the `Card` of the model it purified: every export
names that model, never whichever model is selected when it is made.
"""

from __future__ import annotations

import html
import json
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

from ..store.checkpoints import library_versions, weights_bytes
from ..evaluation.verdict import COSTLY_ACC_DROP, ERASED_ASR
from .method_figures import runs_overlay_figure
from .run_compare import named_histories, run_rows, shown
from ..study import RunRecord

__all__ = ["weights_bytes", "purified_card", "report_title", "report_figure", "run_report_html"]


def purified_card(run: RunRecord, sha256: str) -> dict[str, Any]:
    """What a purified checkpoint is: the run's source model, the settings and numbers of the run, versions."""
    source = run.source
    return {
        "name": f"{source.name}-purified",
        "source": {"name": source.name, "sha256": source.sha256, "scenario": source.scenario},
        "input_shape": list(source.input_shape),
        "num_classes": source.num_classes,
        "classes": list(source.classes),
        "purification": {"label": run.label, "config": run.config, "summary": run.summary_dict()},
        "reactivation": run.reactivation,  # the evaluator's re-activation check, if one was run
        "sha256": sha256,
        "versions": library_versions(),
    }


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(shown(v)))}</td>" for v in row.values()) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def report_title(runs: list[RunRecord]) -> str:
    """The source model's name when every run purified the same one, else how many models."""
    names = list(dict.fromkeys(r.source.name for r in runs))
    return names[0] if len(names) == 1 else f"{len(names)} models"


def report_figure(runs: list[RunRecord]) -> go.Figure:
    """The app's overlay of the runs (same names, same colours, one legend), with room for the y-axis
    labels: the app's tight margins clip them in a plain HTML page."""
    return runs_overlay_figure(named_histories(runs), height=420).update_layout(margin=dict(l=70, r=20, t=60, b=40)) \
        .update_yaxes(automargin=True)


def run_report_html(runs: list[RunRecord]) -> str:
    """One HTML file (plotly.js inlined once) with the runs' charts, numbers and settings, titled by their source models."""
    sources = {r.source.name: r.source for r in runs}
    title = html.escape(report_title(runs))
    charts = pio.to_html(report_figure(runs), full_html=False, include_plotlyjs="inline")
    rows = run_rows(runs)
    settings = "".join(f"<h3>{html.escape(r.label)}</h3><pre>{html.escape(json.dumps(r.config, indent=2))}</pre>" for r in runs)
    checked = [{"run": r.label, **row} for r in runs for row in (r.reactivation or {}).get("rows", [])]
    reactivation = (f"<h2>Does it stay erased? Re-activation check (evaluator's view)</h2>{_table(checked)}" if checked else "")
    backdoored = "".join(f"<li>{html.escape(s.name)}: ACC {s.acc:.2f}%, ASR {s.asr:.2f}%, sha256 {html.escape(s.sha256)}</li>"
                         for s in sources.values())
    reproduce = json.dumps({"models": {name: {"scenario": s.scenario, "sha256": s.sha256} for name, s in sources.items()},
                            "versions": library_versions()}, indent=2)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Purify Lab report: {title}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px}}</style>
</head><body><h1>Purify Lab report: {title}</h1>
<p>Backdoored model{"s" if len(sources) > 1 else ""}:</p><ul>{backdoored}</ul>
<p>ACC, ASR and RA (robust accuracy: triggered non-target images still given their true class) in %; DER
(BackdoorBench's defense effectiveness rating, [max(0, dASR) - max(0, dACC) + 1] / 2 on fractions) in [0, 1]; ASR, RA and DER
are the evaluator's view (they need the trigger). Verdict: erased when ASR after is below {100 * ERASED_ASR:g}%, "at a
cost" when ACC also fell by more than {100 * COSTLY_ACC_DROP:g} points; "differs in" names each setting that is not the
same in every run (the charts name runs the same way); "-" where a number was not measured.</p>
{_table(rows)}{charts}{reactivation}<h2>Settings</h2>{settings}<h2>To reproduce</h2><pre>{html.escape(reproduce)}</pre></body></html>"""
