"""Two optional steps of the purification pipeline: re-initialisation and distillation.

Re-initialisation runs on the private copy after marking and before fine-tuning. It draws fresh
weights from PyTorch's default init (`nn.Linear`/`nn.Conv2d.reset_parameters`: uniform in
+-1/sqrt(fan_in) for weights and biases; BatchNorm scale 1, shift 0, running stats reset),
from a local `torch.Generator` seeded by the run's seed, so the global RNG is never touched and
the same seed gives the same weights. Why: the backdoor's shortcut lives largely in the dense
head of the shipped models; a fresh head no longer holds it. `classifier_init="zero"` starts a
re-initialised classifier (the last `nn.Linear`) at zero instead (weights and bias; the layers
under it keep their random draw, so gradients still reach them): every class starts equal, so
a fresh head cannot happen to favour the class a trigger's leftover features point at, which
is where the lab saw the seed matter (one SIG seed in nine kept 10% ASR).

Distillation is an extra-loss term for `fine_tune`: `(1 - w) * CE + w * T^2 * KL(teacher || student)`
at temperature T, the teacher a frozen copy of the model as given to `purify` (the original). Its
answers are taken on the step's own shifted inputs (view "shifted"; never on the student's turned and scaled
copies, `PurifyConfig.rotate`/`scale`: a turn is a warp), or once, before
the loop, on each clean image as it is (view "clean"): the student, on a shifted copy, is pulled
towards the teacher's answer on the unshifted image; view "both" pulls it towards the mean of the
two answers. Why: 200 labelled images cannot rebuild the clean function a fresh head lost; the
original model's answers on clean images can, and it never sees a trigger here. Why a "clean" view: a shift is a small warp, and a backdoored teacher gives
its target class more weight on shifted images than on the images as they are (3-7x on the WaNet
models), so on the shifted view some of a warp trigger can be distilled back.
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
from .neurons import NeuronMask, classifier_name, neuron_layers, neuron_rows

__all__ = ["REINIT_CHOICES", "DISTILL_SCHEDULES", "DISTILL_VIEWS", "CLASSIFIER_INITS", "ExtraLoss", "Distillation", "reinit_targets", "reinitialise", "check_reinit", "unknown_choice"]

REINIT_CHOICES = ("none", "dense", "marked")
DISTILL_SCHEDULES = ("constant", "linear")
DISTILL_VIEWS = ("shifted", "clean", "both")
CLASSIFIER_INITS = ("default", "zero")
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def check_reinit(reinit: object) -> str | None:
    """The reason `reinit` is not a valid setting, or None (names are checked against a model later)."""
    if isinstance(reinit, str):
        return None if reinit in REINIT_CHOICES else f"unknown re-initialisation {reinit!r}; choose one of {', '.join(REINIT_CHOICES)} or a tuple of layer names"
    if isinstance(reinit, tuple) and reinit and all(isinstance(n, str) and n for n in reinit):
        return None
    return f"reinit must be one of {', '.join(REINIT_CHOICES)} or a non-empty tuple of layer names, got {reinit!r}"


def unknown_choice(what: str, value: object, choices: tuple[str, ...]) -> str | None:
    """The reason `value` is not one of a step setting's `choices` (`what`: its name in the message), or None.

    One wording for the config's check and the step's own, so a value refused by either reads the same."""
    return None if value in choices else f"unknown {what} {value!r}; choose one of {', '.join(choices)}"


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


def reinitialise(model: nn.Module, reinit: str | tuple[str, ...], mask: NeuronMask, seed: int,
                 classifier_init: str = "default") -> list[str]:
    """Re-initialise `model` IN PLACE (a private copy); returns what was reset, for the record.

    "dense": every `nn.Linear` (hidden layers and the classifier). "marked": only the marked
    neurons' incoming weights, bias and the BatchNorm after them. A tuple: those modules whole.
    `classifier_init="zero"`: the classifier, when reset, starts at zero (after the same draws, so
    the layers under it get the weights they get without it); with a re-initialisation that does
    not reset the classifier it is moot, as a distillation temperature is without distillation.
    """
    if problem := unknown_choice("classifier init", classifier_init, CLASSIFIER_INITS):
        raise UserInputError(problem)
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
    if classifier_init == "zero" and any(isinstance(model.get_submodule(n), nn.Linear) for n in names):
        head = classifier_name(model)  # a Linear was reset, so there is a classifier to name; zeroed only if it was reset
        if head in names:
            with torch.no_grad():
                for param in model.get_submodule(head).parameters(recurse=False):
                    param.zero_()
    return names


class ExtraLoss(Protocol):
    """A term `fine_tune` adds to the task loss (distillation now; NAD or FST later).

    Called every step with the step's inputs as shifted (before the turns and scalings the config may give
    the student alone: what a teacher should answer), the student's logits, the run's progress in [0, 1)
    and the batch's rows in the clean set; returns (the factor on the task loss, the extra term to add).
    """

    def __call__(self, x: torch.Tensor, logits: torch.Tensor, progress: float, index: torch.Tensor) -> tuple[float, torch.Tensor]: ...


@dataclass(eq=False)
class Distillation:
    """Knowledge distillation from a frozen teacher on the clean inputs (see the module docstring)."""

    teacher: nn.Module
    weight: float
    temperature: float = 2.0
    schedule: str = "constant"
    #: views "clean" and "both": the teacher's softened answers on each clean image as it is, one row per image
    targets: torch.Tensor | None = None
    view: str = "shifted"

    @classmethod
    def from_original(cls, original: nn.Module, weight: float, temperature: float, schedule: str,
                      view: str = "shifted", clean: torch.Tensor | None = None) -> "Distillation":
        """A frozen eval-mode copy of `original` (the caller's model is never switched or changed).

        Views "clean" and "both" need the clean images (`clean`, the defense set's x): the teacher
        answers them once here, in batches (with view "clean" it is not run again in the loop)."""
        if problem := unknown_choice("distillation view", view, DISTILL_VIEWS):
            raise UserInputError(problem)
        teacher = copy.deepcopy(original).eval()
        to_channels_last(teacher)  # the student trains in this layout on the CPU (`fine_tune`): the same speed-up
        for p in teacher.parameters():
            p.requires_grad_(False)
        targets = None
        if view != "shifted":
            if clean is None:
                raise UserInputError(f"the {view} distillation view needs the clean images")
            device = next(teacher.parameters()).device
            with torch.no_grad():
                targets = torch.cat([F.softmax(teacher(chunk.to(device)) / temperature, dim=1) for chunk in clean.split(256)])
        return cls(teacher, weight, temperature, schedule, targets, view)

    def weight_at(self, progress: float) -> float:
        return self.weight * (1.0 - progress) if self.schedule == "linear" else self.weight

    def __call__(self, x: torch.Tensor, logits: torch.Tensor, progress: float, index: torch.Tensor) -> tuple[float, torch.Tensor]:
        w = self.weight_at(progress)
        t = self.temperature
        target = self.targets[index.to(self.targets.device)] if self.targets is not None else None
        if self.view != "clean":
            with torch.no_grad():
                on_step = F.softmax(self.teacher(x) / t, dim=1)
            target = on_step if target is None else 0.5 * (on_step + target)
        kl = F.kl_div(F.log_softmax(logits / t, dim=1), target, reduction="batchmean")
        return 1.0 - w, w * t * t * kl
