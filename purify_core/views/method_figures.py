"""Plotly figures for rankings and purification runs: data in, `go.Figure` out (no Streamlit)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go
import torch

from ..evaluation.grading import pareto_front
from ..method.neurons import NeuronMask, NeuronScores
from ..method.rankings import METRIC_LABELS
from ..method.rankings.quality import PruningPoint
from .run_compare import RUN_COLORS, ranking_colors, run_colors

__all__ = ["salience_strips_figure", "score_histogram_figure", "spearman_figure", "roc_figure",
           "pruning_curves_figure", "run_curves_figure", "runs_overlay_figure", "live_run_figure", "RUN_PANELS",
           "PERCENT_RANGE", "before_after_figure", "reactivation_figure", "pareto_figure"]

#: What a purification run is watched by: (step field, panel title, shown in percent).
RUN_PANELS = (("task_loss", "Task loss (clean cross-entropy)", False), ("reg_loss", "Regularization loss", False),
              ("distill_loss", "Distillation loss", False), ("acc", "ACC (clean test)", True), ("asr", "ASR (evaluator's view)", True))

_MARKED = "#d62728"
#: Every ACC and ASR axis: fixed, so a dip from 97% to 95% looks like the 2 points it is (a little
#: room either side keeps markers at 0% and 100% whole).
PERCENT_RANGE = (-2, 102)


def _layout(fig: go.Figure, height: int, **kw) -> go.Figure:
    return fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), **kw)


def salience_strips_figure(scores: NeuronScores, mask: NeuronMask | None = None, title: str = "") -> go.Figure:
    """One heat strip per layer (neurons left to right, scores min-max scaled within the layer),
    with marked neurons outlined by red dots: neurons x layers at a glance."""
    names = list(scores)
    width = max(len(s) for s in scores.values())
    z = np.full((len(names), width), np.nan)
    raw = np.full((len(names), width), np.nan)
    for row, name in enumerate(names):
        s = scores[name].double()
        span = float(s.max() - s.min()) or 1.0
        z[row, : len(s)] = ((s - s.min()) / span).numpy()
        raw[row, : len(s)] = s.numpy()
    fig = go.Figure(go.Heatmap(z=z, y=names, customdata=raw, colorscale="Viridis", zmin=0, zmax=1,
                               colorbar=dict(title="scaled score"),
                               hovertemplate="%{y} neuron %{x}<br>score %{customdata:.4g}<extra></extra>"))
    if mask is not None:
        xs = [int(i) for name in names for i in torch.nonzero(mask[name]).flatten()]
        ys = [name for name in names for _ in torch.nonzero(mask[name]).flatten()]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", name="marked", marker=dict(color=_MARKED, size=7, symbol="x"),
                                 hovertemplate="%{y} neuron %{x} is marked<extra></extra>"))
    fig.update_xaxes(title="neuron")
    return _layout(fig, 120 + 40 * len(names), title=title, showlegend=mask is not None,
                   legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="right", x=1))


def before_after_figure(before: NeuronScores, after: NeuronScores, marked: NeuronMask | None = None, title: str = "") -> go.Figure:
    """Two heat strips per layer, before and after purification, on ONE scale per layer (the range of
    both together), so a neuron that goes quiet fades; `marked` neurons (e.g. TAC's top 5%) get an x."""
    names = list(before)
    width = max(len(s) for s in before.values())
    rows = [f"{name} {when}" for name in names for when in ("before", "after")]
    z, raw = np.full((len(rows), width), np.nan), np.full((len(rows), width), np.nan)
    for i, name in enumerate(names):
        b, a = before[name].double(), after[name].double()
        low, high = float(torch.minimum(b.min(), a.min())), float(torch.maximum(b.max(), a.max()))
        span = (high - low) or 1.0
        for j, s in enumerate((b, a)):
            z[2 * i + j, : len(s)] = ((s - low) / span).numpy()
            raw[2 * i + j, : len(s)] = s.numpy()
    fig = go.Figure(go.Heatmap(z=z, y=rows, customdata=raw, colorscale="Viridis", zmin=0, zmax=1,
                               colorbar=dict(title="scaled within<br>the layer"),
                               hovertemplate="%{y}, neuron %{x}<br>score %{customdata:.4g}<extra></extra>"))
    if marked is not None:
        xs = [int(k) for name in names for k in torch.nonzero(marked[name]).flatten() for _ in range(2)]
        ys = [f"{name} {when}" for name in names for _ in torch.nonzero(marked[name]).flatten() for when in ("before", "after")]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", name="infected (TAC top 5%, before)",
                                 marker=dict(color=_MARKED, size=7, symbol="x"), hovertemplate="%{y}, neuron %{x}<extra>infected</extra>"))
    fig.update_xaxes(title="neuron").update_yaxes(autorange="reversed")
    return _layout(fig, 120 + 34 * len(rows), title=title, showlegend=marked is not None,
                   legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="right", x=1))


def reactivation_figure(rows: list[dict]) -> go.Figure:
    """ASR before and after the re-tuning attack, one pair of bars per model (rows from `ReactivationReport.to_dict`)."""
    models = [r["model"] for r in rows]
    fig = go.Figure([
        go.Bar(x=models, y=[r["asr_before"] for r in rows], name="ASR before", marker_color="#7f7f7f",
               hovertemplate="%{x}: ASR %{y:.1f}% before<extra></extra>"),
        go.Bar(x=models, y=[r["asr_after"] for r in rows], name="ASR after re-tuning", marker_color=_MARKED,
               customdata=[r["acc_after"] for r in rows], hovertemplate="%{x}: ASR %{y:.1f}% after (ACC %{customdata:.1f}%)<extra></extra>"),
    ])
    fig.update_yaxes(title="ASR (%)", range=[0, 101])
    return _layout(fig, 320, title="Does it stay erased? ASR after a few epochs on a few poisoned images (evaluator's view)", barmode="group")


def score_histogram_figure(scores: torch.Tensor, marked: torch.Tensor | None = None, title: str = "") -> go.Figure:
    """The distribution of one layer's scores, marked neurons in red."""
    values = scores.double().numpy()
    fig = go.Figure()
    keep = np.ones(len(values), dtype=bool) if marked is None else ~marked.numpy()
    fig.add_trace(go.Histogram(x=values[keep], name="not marked", marker_color="#1f77b4", nbinsx=30))
    if marked is not None and marked.any():
        fig.add_trace(go.Histogram(x=values[marked.numpy()], name="marked", marker_color=_MARKED, nbinsx=30))
    fig.update_xaxes(title="score").update_yaxes(title="neurons")
    return _layout(fig, 280, title=title, barmode="stack")


def spearman_figure(names: Sequence[str], matrix: np.ndarray) -> go.Figure:
    """Mean per-layer Spearman correlation between rankings, -1 (opposite) to 1 (same order)."""
    fig = go.Figure(go.Heatmap(z=matrix, x=list(names), y=list(names), zmin=-1, zmax=1, colorscale="RdBu",
                               text=np.round(matrix, 2), texttemplate="%{text}", hovertemplate="%{y} vs %{x}: %{z:.3f}<extra></extra>"))
    return _layout(fig, 360, title="Rank correlation (Spearman)")


def roc_figure(curves: dict[str, tuple[np.ndarray, np.ndarray, float]]) -> go.Figure:
    """ROC curves of "this ranking flags the infected neurons"; label -> (fpr, tpr, auc)."""
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line=dict(dash="dot", color="grey")))
    colors = ranking_colors(list(curves), list(METRIC_LABELS.values()))  # the same colour as on the pruning curves
    for label, (fpr, tpr, auc) in curves.items():
        fig.add_trace(go.Scatter(x=fpr, y=tpr, mode="lines", name=f"{label} (AUC {auc:.2f})", line=dict(color=colors[label])))
    fig.update_xaxes(title="false positive rate", range=[0, 1]).update_yaxes(title="true positive rate", range=[0, 1])
    return _layout(fig, 440, title="ROC against TAC (evaluator's view)",
                   legend=dict(orientation="h", yanchor="top", y=-0.2, xanchor="left", x=0))


def pruning_curves_figure(curves: dict[str, list[PruningPoint]]) -> go.Figure:
    """ACC (solid) and ASR (dashed) as each ranking's lowest-scored neurons are zeroed."""
    fig = go.Figure()
    colors = ranking_colors(list(curves), list(METRIC_LABELS.values()))  # the same colour as on the ROC chart
    for label, points in curves.items():
        color = colors[label]
        x = [100 * p.fraction for p in points]
        fig.add_trace(go.Scatter(x=x, y=[100 * p.acc for p in points], name=f"{label}: ACC", line=dict(color=color)))
        if points and points[0].asr is not None:
            fig.add_trace(go.Scatter(x=x, y=[100 * (p.asr or 0) for p in points], name=f"{label}: ASR", line=dict(color=color, dash="dash")))
    fig.update_xaxes(title="neurons zeroed per layer (%)").update_yaxes(title="%", range=list(PERCENT_RANGE))
    return _layout(fig, 400, title="Pruning curves (no fine-tuning)")


def run_curves_figure(runs: dict[str, list[dict]], field: str, title: str, percent: bool = False,
                      colors: dict[str, str] | None = None) -> go.Figure:
    """One line per run of `field` against the step (runs: label -> list of step dicts), each in its
    colour (`colors`, default `run_colors` of the runs in order); ACC and ASR on the fixed 0-100 axis."""
    colors = colors or run_colors(list(runs))
    fig = go.Figure()
    for label, steps in runs.items():
        x, y = _points(steps, field, percent)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers" if percent else "lines", name=label, line=dict(color=colors[label])))
    fig.update_xaxes(title="step").update_yaxes(title="%" if percent else field.replace("_", " "),
                                                range=list(PERCENT_RANGE) if percent else None)
    return _layout(fig, 300, title=title)


def runs_overlay_figure(runs: dict[str, list[dict]], colors: dict[str, str] | None = None, height: int = 330) -> go.Figure:
    """Every run on every `RUN_PANELS` panel in ONE figure with ONE legend: a run keeps its colour on
    every panel (`colors`, default `run_colors`), ACC and ASR share the fixed 0-100 axis, and
    clicking a run in the legend hides it on every panel at once (one legend group per run)."""
    from plotly.subplots import make_subplots

    colors = colors or run_colors(list(runs))
    fig = make_subplots(rows=1, cols=len(RUN_PANELS), subplot_titles=[title for _, title, _ in RUN_PANELS], horizontal_spacing=0.05)
    for col, (field, _, percent) in enumerate(RUN_PANELS, start=1):
        for label, steps in runs.items():
            x, y = _points(steps, field, percent)
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers" if percent else "lines", name=label, legendgroup=label,
                                     showlegend=col == 1, line=dict(color=colors[label]), marker=dict(size=4)), row=1, col=col)
        fig.update_yaxes(range=list(PERCENT_RANGE) if percent else None, automargin=True, row=1, col=col)
    fig.update_xaxes(title="step").update_annotations(font_size=12)
    return _layout(fig, height, legend=dict(orientation="h", yanchor="top", y=-0.25, xanchor="left", x=0))


def _points(steps: list[dict], field: str, percent: bool) -> tuple[list[int], list[float]]:
    points = [(s["step"], s[field]) for s in steps if s.get(field) is not None and s[field] == s[field]]
    return [p[0] for p in points], [100 * p[1] if percent else p[1] for p in points]


def live_run_figure(label: str, steps: list[dict], color: str = RUN_COLORS[0]) -> go.Figure:
    """A running purification in one figure, one panel per `RUN_PANELS` entry: one chart for the
    browser to redraw while the run streams, not four. `color`: the run's colour on the overlay once
    it ends (`run_colors`: a session's n-th run gets `RUN_COLORS[n - 1]`)."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=len(RUN_PANELS), subplot_titles=[title for _, title, _ in RUN_PANELS], horizontal_spacing=0.06)
    for col, (field, _, percent) in enumerate(RUN_PANELS, start=1):
        x, y = _points(steps, field, percent)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers" if percent else "lines", name=label, showlegend=False,
                                 line=dict(color=color)), row=1, col=col)
        fig.update_yaxes(range=list(PERCENT_RANGE) if percent else None, row=1, col=col)
    fig.update_xaxes(title="step").update_annotations(font_size=12)
    return _layout(fig, 280)


def pareto_figure(points: list[dict]) -> go.Figure:
    """Runs on ACC drop (x) vs ASR after (y), both in points, with the Pareto front drawn: the runs no
    other run beats on both. Each point: `label`, `acc_drop`, `asr`, and `source` ("this session" or
    "arena": the arena's means over draws for this model). The front is taken over all points."""
    on_front = pareto_front([(p["acc_drop"], p["asr"]) for p in points])
    fig = go.Figure()
    for source, symbol in (("this session", "circle"), ("arena", "diamond")):
        mine = [(p, front) for p, front in zip(points, on_front) if p["source"] == source]
        if mine:
            fig.add_trace(go.Scatter(
                x=[p["acc_drop"] for p, _ in mine], y=[p["asr"] for p, _ in mine], mode="markers+text", name=source,
                text=[p["label"] for p, _ in mine], textposition="top center", textfont=dict(size=10),
                marker=dict(symbol=symbol, size=11, color=[_MARKED if front else "#7f7f7f" for _, front in mine]),
                hovertemplate="%{text}<br>ACC drop %{x:.2f} points<br>ASR %{y:.1f}%<extra>" + source + "</extra>"))
    front = sorted({(p["acc_drop"], p["asr"]) for p, f in zip(points, on_front) if f})
    if front:  # a staircase: each front point is the best ASR for ACC drops up to the next one
        xs, ys = [front[0][0]], [front[0][1]]
        for x, y in front[1:]:
            xs += [x, x]
            ys += [ys[-1], y]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="Pareto front", line=dict(color=_MARKED, dash="dot"), hoverinfo="skip"))
    fig.update_xaxes(title="ACC drop (points; lower is better)", zeroline=True)
    fig.update_yaxes(title="ASR after (%; evaluator's view)", range=[-3, 103])
    return _layout(fig, 380, title="Which defense wins where: ACC drop vs ASR (red = on the Pareto front)",
                   legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="right", x=1))


def maps_figure(maps: list[torch.Tensor], titles: list[str], columns: int, colorscale: str = "Inferno",
                height_per_row: int = 170, symmetric: bool = False, shared_scale: bool = False) -> go.Figure:
    """Small heatmaps in a grid (filters, activation maps, attributions): each scaled on its own, or
    all on one scale (`shared_scale`) when their magnitudes are to be compared."""
    from plotly.subplots import make_subplots

    rows = -(-len(maps) // columns)
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=titles, horizontal_spacing=0.02, vertical_spacing=0.12)
    common = max((float(m.detach().abs().max()) for m in maps), default=1.0) or 1.0
    for i, m in enumerate(maps):
        z = m.detach().cpu().double().numpy()
        bound = common if shared_scale else (float(np.abs(z).max()) or 1.0)
        fig.add_trace(go.Heatmap(z=z, colorscale="RdBu" if symmetric else colorscale, showscale=False,
                                 zmin=-bound if symmetric else 0, zmax=bound,
                                 hovertemplate="x %{x}, y %{y}: %{z:.3g}<extra></extra>"), row=i // columns + 1, col=i % columns + 1)
    fig.update_xaxes(showticklabels=False, ticks="").update_yaxes(showticklabels=False, ticks="", autorange="reversed")  # no stray ticks
    for i in range(1, len(maps) + 1):  # square pixels: each map's y axis follows its x axis
        suffix = "" if i == 1 else str(i)
        fig.layout[f"yaxis{suffix}"].update(scaleanchor=f"x{suffix}", constrain="domain")
        fig.layout[f"xaxis{suffix}"].update(constrain="domain")
    fig.update_annotations(font_size=11)
    return _layout(fig, 40 + height_per_row * rows)


def attribution_figure(images: torch.Tensor, rows: dict[str, torch.Tensor], columns: list[str]) -> go.Figure:
    """Rows of attribution maps (label -> (N, H, W)) under a first row of the images themselves."""
    grey = [img.mean(0) for img in images]
    maps = grey + [m for label in rows for m in rows[label]]
    titles = columns + [f"{label}" if j == 0 else "" for label in rows for j in range(len(columns))]
    return maps_figure(maps, titles, len(columns), colorscale="Hot", height_per_row=150)
