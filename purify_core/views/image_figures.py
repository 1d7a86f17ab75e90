"""Plotly figure builders: data in, `go.Figure` out. No Streamlit here, so tests and reports reuse them."""

from __future__ import annotations

import numpy as np
import plotly.express as px
import plotly.graph_objects as go
import torch

from ..models.evaluate import SamplePredictions

__all__ = ["image_figure", "sample_grid_figure", "trigger_preview_figure"]


def _to_hwc(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [0, 1] to (N, H, W, 3) uint8: grey images are shown as grey RGB."""
    x = (images.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return x.permute(0, 2, 3, 1).numpy()


def _bare(fig: go.Figure, height: int) -> go.Figure:
    """No axes at all: hiding only the tick labels left Streamlit's theme drawing tick marks around each thumbnail."""
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=height, margin=dict(l=0, r=0, t=30, b=0), coloraxis_showscale=False)
    return fig


def image_figure(image: torch.Tensor, title: str = "") -> go.Figure:
    """One (C, H, W) image, pixels sharp (no smoothing), e.g. a trigger."""
    fig = px.imshow(_to_hwc(image[None])[0], binary_string=True)
    fig.update_traces(hovertemplate="x %{x}, y %{y}<extra></extra>")
    return _bare(fig.update_layout(title=title), 260)


def sample_grid_figure(samples: SamplePredictions, classes: tuple[str, ...], target: int) -> go.Figure:
    """Top row clean test images, bottom row the same with the trigger; each titled with the prediction.

    A triggered image predicted as the target is marked with a red title: the backdoor fired.
    """
    n = len(samples.labels)
    images = np.concatenate([_to_hwc(samples.clean), _to_hwc(samples.triggered)])
    fig = px.imshow(images, facet_col=0, facet_col_wrap=n, binary_string=True, facet_row_spacing=0.12, facet_col_spacing=0.01)
    titles = [f"true {classes[int(y)]} → {classes[int(p)]}" for y, p in zip(samples.labels, samples.clean_pred)]
    titles += [f"→ {classes[int(p)]}" + (" ⚠" if int(p) == target else "") for p in samples.triggered_pred]
    for annotation in fig.layout.annotations:  # px titles each facet "facet_col=<index>"
        index = int(annotation.text.split("=")[1])
        fired = index >= n and int(samples.triggered_pred[index - n]) == target
        annotation.update(text=titles[index], font=dict(size=11, color="#d62728" if fired else None))
    fig.update_traces(hovertemplate="x %{x}, y %{y}<extra></extra>")
    return _bare(fig, 300)


def trigger_preview_figure(trigger: torch.Tensor, clean: torch.Tensor, poisoned: torch.Tensor, target: str) -> go.Figure:
    """The trigger, then clean images above the same images as the attack poisons them."""
    n = len(clean)
    blank = torch.ones_like(trigger)
    images = np.concatenate([_to_hwc(torch.stack([trigger, *clean])), _to_hwc(torch.stack([blank, *poisoned]))])
    fig = px.imshow(images, facet_col=0, facet_col_wrap=n + 1, binary_string=True, facet_row_spacing=0.1, facet_col_spacing=0.01)
    titles = ["trigger", *["clean"] * n, "", *[f"poisoned → {target}"] * n]
    for annotation in fig.layout.annotations:
        annotation.update(text=titles[int(annotation.text.split("=")[1])], font=dict(size=11))
    fig.update_traces(hovertemplate="x %{x}, y %{y}<extra></extra>")
    return _bare(fig, 280)
