"""FST, feature shift tuning: Min, Chen, Xiang, Ji and Wang, "Towards Stable Backdoor Purification
through Feature Shift Tuning", NeurIPS 2023 (reference code: AISafety-HKUST/stable_backdoor_purification,
`fine_tune/ft.py --ft_mode fst`).

Why it works: plain fine-tuning on a few clean images barely moves the features the backdoor
uses, because the old head still reads them. FST re-initialises the classifier head and
fine-tunes the whole model with `CE + alpha * <W_head, W_head_original>`: the penalty pushes the
new head away from the original one, so the features must shift to serve it, and the shortcut
the trigger took is left behind. The head's weight is projected back to its original Frobenius
norm after every optimiser step, so the penalty cannot be lowered by shrinking the head.

Settings and where they come from (the reference code, checked at its HEAD):
- `alpha` = 0.2: `ft.py`'s default (`--alpha 0.2`); its README's CIFAR-10 example uses 0.1.
- Re-initialisation: weight and bias uniform in +-1/sqrt(fan_in) (`ft.py`: `std = 1/sqrt(size(-1))`),
  here drawn from a generator seeded by the run's seed.
- Norm: only the head's weight (not its bias) is rescaled to the original weight's norm after each
  step, as `ft.py` does; the first step uses the fresh head as drawn, as there.
- Optimiser: the reference uses SGD, momentum 0.9, no weight decay, cosine schedule, lr 0.01,
  10 epochs, batch 128 (`FINE_TUNING` below). On this lab's 200-image MNIST clean set a batch of
  128 gives 2 steps an epoch, so the lab's batch size (32) is kept instead.
Nothing here reads the trigger, poisoned data or ASR; `evaluator` only reports.
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass, replace

import torch
from torch import nn

from ..data.image_set import ImageSet
from ..errors import UserInputError
from ..method.hooks import before_forward
from ..method.neurons import classifier_name, neuron_layers
from ..method.purify import Evaluator, PurifyConfig, PurifyResult, fine_tune
from ..method.steps import reinitialise
from ..params import ParamSpec
from .base import Defense, Settings, ShouldStop, Steps

__all__ = ["DEFENSE", "PARAMS", "FINE_TUNING", "FeatureShift", "classifier_name", "run"]

PARAMS: dict[str, ParamSpec] = {
    "alpha": ParamSpec(0.2, "weight of the penalty on the inner product of the new head with the original one "
                            "(reference code default 0.2; 0 is fine-tuning from a fresh head with its norm kept)",
                       low=0.0, high=100.0),
}

#: The reference's fine-tuning knobs (ft.py and its README), for the shared loop's config.
FINE_TUNING = {"epochs": 10, "lr": 0.01, "momentum": 0.9, "weight_decay": 0.0, "cosine": True}


@dataclass(eq=False)
class FeatureShift:
    """The extra-loss term `alpha * <W, W_original>` and the norm projection of the head's weight.

    `fine_tune` calls it after each training forward pass; the optimiser step follows, so it marks
    a projection as due. `project` runs before the head's next forward pass (a pre-hook) and once
    at the end: the same order as the reference's `step(); weight *= norm0 / ||weight||`.
    """

    weight: nn.Parameter
    original: torch.Tensor
    alpha: float
    due: bool = False

    def __post_init__(self) -> None:
        self.norm = self.original.norm()

    def __call__(self, x: torch.Tensor, logits: torch.Tensor, progress: float, index: torch.Tensor) -> tuple[float, torch.Tensor]:
        self.due = True
        return 1.0, self.alpha * (self.weight * self.original).sum()

    @torch.no_grad()
    def project(self, _module: nn.Module | None = None) -> None:
        if self.due:
            self.weight.mul_(self.norm / self.weight.norm().clamp_min(1e-12))
            self.due = False


def run(model: nn.Module, clean: ImageSet, settings: Settings, config: PurifyConfig,
        evaluator: Evaluator | None = None, should_stop: ShouldStop | None = None) -> Steps:
    """FST on `model` (the defense's private copy, changed in place): re-init the head, then fine-tune.

    A setting it cannot use is refused here, when called, before any work (not at the first step).
    """
    if config.epochs < 1:
        raise UserInputError(f"FST fine-tunes the whole model after redrawing its head: epochs must be at least 1, got {config.epochs}")
    return _steps(model, clean, settings, config, evaluator, should_stop, classifier_name(model, "FST"))


def _steps(model: nn.Module, clean: ImageSet, settings: Settings, config: PurifyConfig,
           evaluator: Evaluator | None, should_stop: ShouldStop | None, head: str) -> Steps:
    weight = model.get_submodule(head).weight
    before = evaluator(model) if evaluator else None  # the model as given, before the head is redrawn
    shift = FeatureShift(weight, weight.detach().clone(), float(settings["alpha"]))
    reinitialise(model, (head,), {}, config.seed)
    mask = {layer.name: torch.zeros(layer.width, dtype=torch.bool) for layer in neuron_layers(model)}
    config = replace(config, regularizer="none", threshold=0.0, dynamic=False)
    result = None
    with before_forward(model, head, shift.project), closing(
            fine_tune(model, clean, mask, config, evaluator, None, should_stop, shift, before)) as steps:
        for item in steps:
            if isinstance(item, PurifyResult):
                result = item
                break
            yield item
    if result is not None:
        if result.model is not None:
            shift.project()  # the last step's projection, if no forward pass has applied it yet
        yield result


DEFENSE = Defense(
    name="fst",
    label="FST (feature shift tuning)",
    summary="re-initialise the classifier head and fine-tune everything while pushing the head away from the original (norm kept)",
    source="Min et al., NeurIPS 2023",
    selection="alpha and the optimiser from the reference code (ft.py); nothing is tuned on this model; "
              "the trigger, poisoned data and ASR are never read",
    params=PARAMS,
    run=run,
)
