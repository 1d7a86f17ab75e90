"""Magnitude pruning: Fine-Pruning's rule with the smallest-weight neurons of every layer."""

from __future__ import annotations

from torch import nn

from ..data.image_set import ImageSet
from ..method.purify import PurifyConfig
from ..method.rankings import magnitude
from .base import Defense, Settings, ShouldStop, Steps
from .pruning import MARGIN, prune_then_fine_tune


def run(model: nn.Module, clean: ImageSet, settings: Settings, config: PurifyConfig, evaluator, should_stop: ShouldStop | None) -> Steps:
    scores = magnitude(model)
    fractions = [f / 100 for f in range(5, 51, 5)]
    yield from prune_then_fine_tune(model, clean, scores, "magnitude", float(settings["margin"]), fractions, config, evaluator, should_stop)


DEFENSE = Defense(
    name="magnitude-pruning",
    label="Magnitude pruning",
    summary="prune the smallest-weight neurons of every layer (5% steps, up to half), then fine-tune",
    source="baseline (weight-magnitude pruning, Han et al., NeurIPS 2015)",
    selection="prunes as large a share as keeps clean defense-set accuracy within the margin",
    params={"margin": MARGIN},
    run=run,
)
