"""Fine-Pruning (Liu et al., RAID 2018): prune the last conv layer's least active channels, then fine-tune.

Channels are pruned one more at a time, up to half the layer, while defense-set accuracy stays
within `margin` of the unpruned model's (`pruning.largest_safe_mask`); they are held at zero while
the model is fine-tuned.
"""

from __future__ import annotations

from torch import nn

from ..data.image_set import ImageSet
from ..method.neurons import neuron_layers
from ..method.purify import PurifyConfig
from ..method.rankings import mean_activation
from ..method.rankings.base import batches
from .base import Defense, Settings, ShouldStop, Steps
from .pruning import MARGIN, prune_then_fine_tune


def run(model: nn.Module, clean: ImageSet, settings: Settings, config: PurifyConfig, evaluator, should_stop: ShouldStop | None) -> Steps:
    layers = neuron_layers(model)
    last = ([l for l in layers if l.kind == "conv"] or layers)[-1]
    scores = mean_activation(model, batches(clean))
    fractions = [k / last.width for k in range(1, last.width // 2 + 1)]  # one channel more each time, up to half
    yield from prune_then_fine_tune(model, clean, scores, "activation", float(settings["margin"]), fractions, config, evaluator,
                                    should_stop, layers=[last.name])


DEFENSE = Defense(
    name="fine-pruning",
    label="Fine-Pruning",
    summary="prune the last conv layer's least active channels, then fine-tune",
    source="Liu, Dolan-Gavitt & Garg, Fine-Pruning, RAID 2018",
    selection="prunes as many channels as keep clean defense-set accuracy within the margin (the paper's rule)",
    params={"margin": MARGIN},
    run=run,
)
