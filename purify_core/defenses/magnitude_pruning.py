"""Magnitude pruning: Fine-Pruning's rule with the smallest-weight neurons of every layer."""

from __future__ import annotations

from dataclasses import replace

from torch import nn

from ..data.image_set import ImageSet
from ..method.purify import PurifyConfig, fine_tune
from ..method.rankings import magnitude
from .base import Defense, Settings, ShouldStop, Steps
from .pruning import MARGIN, largest_safe_mask


def run(model: nn.Module, clean: ImageSet, settings: Settings, config: PurifyConfig, evaluator, should_stop: ShouldStop | None) -> Steps:
    scores = magnitude(model)
    fractions = [f / 100 for f in range(5, 51, 5)]
    mask, fraction = largest_safe_mask(model, scores, clean, float(settings["margin"]), fractions)
    config = replace(config, regularizer="prune", threshold=fraction, metric="magnitude", direction="lowest")
    yield from fine_tune(model, clean, mask, config, evaluator, None, should_stop)


DEFENSE = Defense(
    name="magnitude-pruning",
    label="Magnitude pruning",
    summary="prune the smallest-weight neurons of every layer (5% steps, up to half), then fine-tune",
    source="baseline (weight-magnitude pruning, Han et al., NeurIPS 2015)",
    selection="prunes as large a share as keeps clean defense-set accuracy within the margin",
    params={"margin": MARGIN},
    run=run,
)
