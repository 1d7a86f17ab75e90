"""Two optional steps of the purification pipeline: re-initialisation and distillation.

Re-initialisation runs on the private copy after marking and before fine-tuning. It draws fresh
weights from PyTorch's default init (`nn.Linear`/`nn.Conv2d.reset_parameters`: uniform in
+-1/sqrt(fan_in) for weights and biases; BatchNorm scale 1, shift 0, running stats reset),
from a local `torch.Generator` seeded by the run's seed, so the global RNG is never touched and
the same seed gives the same weights. Why: the backdoor's shortcut lives largely in the dense
head of the shipped models; a fresh head no longer holds it.

Distillation is an extra-loss term for `fine_tune`: `(1 - w) * CE + w * T^2 * KL(teacher || student)`
at temperature T, the teacher a frozen copy of the model as given to `purify` (the original), on
the same augmented clean inputs as the step. Why: 200 labelled images cannot rebuild the clean
function a fresh head lost; the original model's answers on clean images can, and it never sees a
trigger here, so the backdoor is not distilled back.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from .._utils import to_channels_last
from ..errors import UserInputError
from .neurons import NeuronMask, neuron_layers, neuron_rows

__all__ = ["REINIT_CHOICES", "DISTILL_SCHEDULES", "ExtraLoss", "Distillation", "reinit_targets", "reinitialise", "check_reinit"]

REINIT_CHOICES = ("none", "dense", "marked")
DISTILL_SCHEDULES = ("constant", "linear")
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def check_reinit(reinit: object) -> str | None:
    """The reason `reinit` is not a valid setting, or None (names are checked against a model later)."""
    if isinstance(reinit, str):
        return None if reinit in REINIT_CHOICES else f"unknown re-initialisation {reinit!r}; choose one of {', '.join(REINIT_CHOICES)} or a tuple of layer names"
    if isinstance(reinit, tuple) and reinit and all(isinstance(n, str) and n for n in reinit):
        return None
    return f"reinit must be one of {', '.join(REINIT_CHOICES)} or a non-empty tuple of layer names, got {reinit!r}"


def reinit_targets(model: nn.Module, reinit: str | tuple[str, ...]) -> list[str]:
    """The module names a whole-layer re-initialisation resets ([] for "none" and "marked")."""
    if reinit in ("none", "marked"):
        return []
    if reinit == "dense":
        return [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    modules = dict(model.named_modules())
    unknown = [n for n in reinit if n not in modules]
    if unknown:
        resettable = [n for n, m in modules.items() if isinstance(m, (nn.Linear, nn.Conv2d) + _NORMS)]
        raise UserInputError(f"no layer named {', '.join(unknown)} to re-initialise: use {', '.join(REINIT_CHOICES)}, "
                             f"or layer names of this model: {', '.join(resettable)}")
    wrong = [n for n in reinit if not isinstance(modules[n], (nn.Linear, nn.Conv2d) + _NORMS)]
    if wrong:
        raise UserInputError(f"only Linear, Conv2d and BatchNorm layers can be re-initialised, not {', '.join(wrong)}")
    return list(reinit)


@torch.no_grad()
def _reset_rows(module: nn.Module, rows: torch.Tensor | None, generator: torch.Generator) -> None:
    """PyTorch's default init for `module` (only output `rows` if given), drawn from `generator`."""
    if isinstance(module, _NORMS):
        for tensor, value in ((module.weight, 1.0), (module.bias, 0.0), (module.running_mean, 0.0), (module.running_var, 1.0)):
            if tensor is not None:
                tensor[rows if rows is not None else slice(None)] = value
        return
    weight = module.weight
    fan_in = weight[0].numel()
    bound = 1.0 / math.sqrt(fan_in) if fan_in else 0.0  # kaiming_uniform_(a=sqrt(5)) and the bias rule agree
    index = rows if rows is not None else torch.arange(weight.shape[0])
    for param in (weight, getattr(module, "bias", None)):
        if param is None or not len(index):
            continue
        fresh = (torch.rand((len(index), *param.shape[1:]), generator=generator, dtype=torch.float64) * 2 - 1) * bound
        param[index.to(param.device)] = fresh.to(param.dtype).to(param.device)


def reinitialise(model: nn.Module, reinit: str | tuple[str, ...], mask: NeuronMask, seed: int) -> list[str]:
    """Re-initialise `model` IN PLACE (a private copy); returns what was reset, for the record.

    "dense": every `nn.Linear` (hidden layers and the classifier). "marked": only the marked
    neurons' incoming weights, bias and the BatchNorm after them. A tuple: those modules whole.
    """
    generator = torch.Generator().manual_seed(int(seed))
    if reinit == "marked":
        done = []
        for layer in neuron_layers(model):
            marked = mask.get(layer.name)
            if marked is None or not marked.any():
                continue
            rows = torch.nonzero(marked.cpu()).flatten()
            _reset_rows(model.get_submodule(layer.name), rows, generator)
            if layer.norm:
                _reset_rows(model.get_submodule(layer.norm), rows, generator)
            done.append(f"{layer.name}[{len(rows)}]")
        return done
    names = reinit_targets(model, reinit)
    for name in names:
        _reset_rows(model.get_submodule(name), None, generator)
    return names


class ExtraLoss(Protocol):
    """A term `fine_tune` adds to the task loss (distillation now; NAD or FST later).

    Called every step with the step's inputs, the student's logits and the run's progress in
    [0, 1); returns (the factor on the task loss, the extra term to add).
    """

    def __call__(self, x: torch.Tensor, logits: torch.Tensor, progress: float) -> tuple[float, torch.Tensor]: ...


@dataclass(eq=False)
class Distillation:
    """Knowledge distillation from a frozen teacher on the step's own (augmented clean) inputs."""

    teacher: nn.Module
    weight: float
    temperature: float = 2.0
    schedule: str = "constant"

    @classmethod
    def from_original(cls, original: nn.Module, weight: float, temperature: float, schedule: str) -> "Distillation":
        """A frozen eval-mode copy of `original` (the caller's model is never switched or changed)."""
        teacher = copy.deepcopy(original).eval()
        to_channels_last(teacher)  # the student trains in this layout on the CPU (`fine_tune`): the same speed-up
        for p in teacher.parameters():
            p.requires_grad_(False)
        return cls(teacher, weight, temperature, schedule)

    def weight_at(self, progress: float) -> float:
        return self.weight * (1.0 - progress) if self.schedule == "linear" else self.weight

    def __call__(self, x: torch.Tensor, logits: torch.Tensor, progress: float) -> tuple[float, torch.Tensor]:
        w = self.weight_at(progress)
        t = self.temperature
        with torch.no_grad():
            target = F.softmax(self.teacher(x) / t, dim=1)
        kl = F.kl_div(F.log_softmax(logits / t, dim=1), target, reduction="batchmean")
        return 1.0 - w, w * t * t * kl
