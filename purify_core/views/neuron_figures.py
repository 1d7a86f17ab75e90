"""Figures of the neuron close-up: a strips chart whose cells can be clicked, and a neuron's activation maps.

Data in, `go.Figure` out; no Streamlit here.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import plotly.graph_objects as go
import torch
from plotly.colors import hex_to_rgb, sequential
from plotly.subplots import make_subplots

__all__ = ["pickable", "activation_maps_figure", "INFERNO"]

#: Inferno with its colours written as rgb(): its first colour, #000004, is one of the placeholders Streamlit's
#: chart theme swaps for a theme colour in the browser (CATEGORY_3), which turned the dark end pale pink and
#: washed out every activation map. The same scale, spelled so nothing swaps it.
INFERNO = [[i / (len(sequential.Inferno) - 1), "rgb({}, {}, {})".format(*hex_to_rgb(c))] for i, c in enumerate(sequential.Inferno)]


def pickable(fig: go.Figure, scores: Mapping[str, torch.Tensor]) -> go.Figure:
    """`fig`, a chart with one row per layer (y = layer name) and one column per neuron (x = index),
    with an invisible marker on every cell, so that a click selects a neuron.

    Plotly selects scatter points on a click but never heatmap cells: the markers are what a click
    selects, and the picked cell gets a black outline. Other scatter traces (the marked neurons' x)
    keep full opacity while a cell is picked, instead of plotly's fading of unselected points.
    """
    names = list(scores)
    xs = [i for name in names for i in range(len(scores[name]))]
    ys = [name for name in names for _ in range(len(scores[name]))]
    raw = [float(v) for name in names for v in scores[name].double()]
    fig.update_traces(unselected=dict(marker=dict(opacity=1)), selector=dict(type="scatter"))
    fig.update_traces(hoverinfo="skip", hovertemplate=None, selector=dict(type="heatmap"))  # the markers say it, with the hint
    fig.add_trace(go.Scatter(
        x=xs, y=ys, customdata=raw, mode="markers", name="pick", showlegend=False,
        marker=dict(symbol="square-open", size=13, color="black", opacity=0, line=dict(width=2)),
        selected=dict(marker=dict(opacity=1)), unselected=dict(marker=dict(opacity=0)),
        hovertemplate="%{y} neuron %{x}<br>score %{customdata:.4g}<br>click to open it below<extra></extra>"))
    return fig.update_layout(clickmode="event+select", dragmode=False)


def activation_maps_figure(maps: Sequence[torch.Tensor], titles: Sequence[str]) -> go.Figure:
    """Activation maps (after ReLU, so >= 0) side by side on one colour scale from 0 (black: the neuron is
    silent there) to the highest value of all the maps, with its colour bar, so their values compare."""
    arrays = [m.detach().cpu().double().numpy() for m in maps]
    low = 0.0
    high = max((float(a.max()) for a in arrays), default=1.0)
    high = high if high > low else low + 1e-6  # a silent neuron still draws
    fig = make_subplots(rows=1, cols=len(arrays), subplot_titles=list(titles), horizontal_spacing=0.04)
    for col, z in enumerate(arrays, start=1):
        fig.add_trace(go.Heatmap(z=z, coloraxis="coloraxis", hovertemplate="x %{x}, y %{y}: %{z:.3g}<extra></extra>"),
                      row=1, col=col)
        suffix = "" if col == 1 else str(col)
        fig.layout[f"yaxis{suffix}"].update(scaleanchor=f"x{suffix}", constrain="domain", autorange="reversed", visible=False)
        fig.layout[f"xaxis{suffix}"].update(constrain="domain", visible=False)  # no axes: the theme would draw stray ticks
    fig.update_layout(coloraxis=dict(colorscale=INFERNO, cmin=low, cmax=high,
                                     colorbar=dict(title=dict(text="mean<br>activation"), thickness=12)),
                      height=230, margin=dict(l=10, r=10, t=40, b=10))
    return fig.update_annotations(font_size=11)
