"""NAD, neural attention distillation: Li, Lyu, Koren, Lyu, Li and Ma, "Neural Attention
Distillation: Erasing Backdoor Triggers from Deep Neural Networks", ICLR 2021 (reference code:
bboylyg/NAD, `main.py`, `at.py`, `config.py`).

Why it works: fine-tuning on a few clean images gives a teacher whose backdoor is weakened but
whose clean accuracy drops; distilling the teacher's *attention maps* (where in the image each
layer looks) into the backdoored student, alongside the task loss, realigns the student's
intermediate features with clean behaviour while it keeps its own clean knowledge.

1. Teacher: a copy of the backdoored model fine-tuned on the clean set for `teacher_epochs`
   (the paper and README: 5-10 epochs; 10 here), with the run's optimiser settings.
2. Student: the backdoored model's copy, trained with `CE + sum_l beta_l * AT_l`, where the
   attention map of a feature map a (N x C x H x W) is `sum_c |a_c|^p` (p = 2), flattened and
   divided by its L2 norm (+1e-6), and `AT_l` is the mean squared difference of the student's and
   teacher's maps (`at.py` uses `F.mse_loss`; the paper writes the same distance as an L2 norm,
   and the betas below are the code's, so the code's scale is kept).
Layers and betas: the reference distils the outputs of WRN-16-1's three residual groups with
beta 500 (low), 1000 (middle), 1000 (high) (`config.py`). Here the conv layers are split into
three runs in registration order and the last conv of each run is distilled with those betas
(the small CNN's conv1/conv2/conv3 exactly); a model with fewer than three conv layers uses the
deepest betas. The optimiser comes from the run's config: the reference's SGD (lr 0.1 for two
epochs then 0.01, momentum 0.9, weight decay 1e-4, 20 epochs, batch 64, `FINE_TUNING` below) is
for 2,500 CIFAR images; on this lab's 200-image clean set lr 0.1 is not needed, and the lab loop's
cosine schedule from lr 0.01 replaces the step schedule.
Forward hooks come from `method.hooks` and are removed whatever happens. Nothing here reads the
trigger, poisoned data or ASR; `evaluator` only reports.
"""

from __future__ import annotations

import copy
import math
import time
from contextlib import ExitStack, closing
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from ..data.image_set import ImageSet
from ..errors import UserInputError
from ..method.hooks import capture_outputs
from ..method.neurons import neuron_layers
from ..method.purify import Evaluator, PurifyConfig, PurifyResult, PurifySummary, StepMetrics, fine_tune
from ..params import ParamSpec
from .base import Defense, Settings, ShouldStop, Steps

__all__ = ["DEFENSE", "PARAMS", "FINE_TUNING", "attention_map", "attention_layers", "AttentionDistillation", "run"]

PARAMS: dict[str, ParamSpec] = {
    "teacher_epochs": ParamSpec(10, "epochs of clean fine-tuning that make the teacher (paper: 5-10)", low=1, high=1000),
    "beta_low": ParamSpec(500.0, "attention-loss weight of the shallowest distilled layer (reference 500)", low=0.0, high=1e6),
    "beta_mid": ParamSpec(1000.0, "attention-loss weight of the middle distilled layer (reference 1000)", low=0.0, high=1e6),
    "beta_high": ParamSpec(1000.0, "attention-loss weight of the deepest distilled layer (reference 1000)", low=0.0, high=1e6),
    "power": ParamSpec(2.0, "p in the attention map sum_c |a_c|^p (reference 2)", low=0.5, high=8.0),
}

#: The reference's student optimiser (config.py, main.py), for the record; see the docstring.
FINE_TUNING = {"epochs": 20, "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4}


def attention_map(features: torch.Tensor, power: float) -> torch.Tensor:
    """`sum_c |a_c|^p` per image, flattened and L2-normalised (as `at.py`): N x (H*W)."""
    if features.dim() < 3:
        raise UserInputError(f"NAD distils spatial feature maps; got a {features.dim()}-d output")
    am = features.abs().pow(power).sum(1).flatten(1)
    return am / (am.norm(dim=1, keepdim=True) + 1e-6)


def attention_layers(model: nn.Module, settings: Settings) -> dict[str, float]:
    """The conv layers whose outputs are distilled, each with its beta (low, middle, high)."""
    convs = [layer.name for layer in neuron_layers(model) if layer.kind == "conv"]
    if not convs:
        raise UserInputError("NAD distils the attention of conv layers; this model has none")
    betas = [float(settings["beta_low"]), float(settings["beta_mid"]), float(settings["beta_high"])]
    ends = sorted({math.ceil(len(convs) * k / 3) - 1 for k in (1, 2, 3)})  # the last conv of each third
    return {convs[i]: beta for i, beta in zip(ends, betas[-len(ends):])}


@dataclass(eq=False)
class AttentionDistillation:
    """The extra-loss term `sum_l beta_l * mse(A_student_l, A_teacher_l)` on the step's own inputs.

    `student_out` is refilled by a hook on every student forward pass (the loop's own, just before
    this call); the teacher runs here, frozen, on the same augmented clean images.
    """

    teacher: nn.Module
    student_out: dict[str, torch.Tensor]
    teacher_out: dict[str, torch.Tensor]
    betas: dict[str, float]
    power: float

    def __call__(self, x: torch.Tensor, logits: torch.Tensor, progress: float, index: torch.Tensor) -> tuple[float, torch.Tensor]:
        with torch.no_grad():
            self.teacher(x)
        total = logits.new_zeros(())
        for name, beta in self.betas.items():
            target = attention_map(self.teacher_out[name], self.power)
            total = total + beta * F.mse_loss(attention_map(self.student_out[name], self.power), target)
        return 1.0, total


def _ended_in_teacher(student: nn.Module, teacher: PurifyResult, total: int, before, mask, config, history, seconds: float) -> PurifyResult:
    """The run's result when the teacher phase stopped or diverged: the student was never changed."""
    diverged = teacher.summary.status == "diverged"
    reason = (f"{teacher.summary.reason} (while fine-tuning the teacher)" if diverged else
              f"stopped on request after {teacher.summary.steps} of {total} steps, while fine-tuning the teacher")
    summary = PurifySummary(status=teacher.summary.status, reason=reason,
                            steps=teacher.summary.steps, seconds=seconds, marked=0, before=before,
                            after=None if diverged else before, steps_to_erase=None)
    return PurifyResult(model=None if diverged else student, summary=summary, mask=mask, config=config, history=history)


def run(model: nn.Module, clean: ImageSet, settings: Settings, config: PurifyConfig,
        evaluator: Evaluator | None = None, should_stop: ShouldStop | None = None) -> Steps:
    """NAD on `model` (the defense's private copy): fine-tune a teacher, then distil its attention.

    A setting it cannot use is refused here, when called, before any work (not at the first step).
    """
    if config.epochs < 1:
        raise UserInputError(f"NAD fine-tunes a teacher and then the student: epochs must be at least 1, got {config.epochs}")
    return _steps(model, clean, settings, config, evaluator, should_stop, attention_layers(model, settings))


def _steps(model: nn.Module, clean: ImageSet, settings: Settings, config: PurifyConfig,
           evaluator: Evaluator | None, should_stop: ShouldStop | None, betas: dict[str, float]) -> Steps:
    config = replace(config, regularizer="none", threshold=0.0, dynamic=False)
    mask = {layer.name: torch.zeros(layer.width, dtype=torch.bool) for layer in neuron_layers(model)}
    batches = math.ceil(len(clean) / config.batch_size)
    t_steps, s_steps = int(settings["teacher_epochs"]) * batches, config.epochs * batches
    total = t_steps + s_steps
    start = time.perf_counter()
    before = evaluator(model) if evaluator else None
    history: list[StepMetrics] = []
    teacher = copy.deepcopy(model)
    teacher_config = replace(config, epochs=int(settings["teacher_epochs"]))
    # the teacher's loop gets no evaluator: its step 0 reports `before` (the student's, identical then)
    with closing(fine_tune(teacher, clean, mask, teacher_config, None, None, should_stop, None, before)) as steps:
        for item in steps:
            if isinstance(item, PurifyResult):
                taught = item
            else:
                shown = replace(item, steps=total, seconds=time.perf_counter() - start)
                history.append(shown)
                yield shown
    if taught.summary.status != "finished":
        yield _ended_in_teacher(model, taught, total, before, mask, config, history, time.perf_counter() - start)
        return
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)

    names = list(betas)
    with ExitStack() as stack:
        student_out = stack.enter_context(capture_outputs(model, names))
        teacher_out = stack.enter_context(capture_outputs(teacher, names))
        distil = AttentionDistillation(teacher, student_out, teacher_out, betas, float(settings["power"]))
        steps = stack.enter_context(closing(fine_tune(model, clean, mask, config, evaluator, None, should_stop, distil, before)))
        for item in steps:
            if isinstance(item, PurifyResult):
                result = item
                break
            if item.step:
                shown = replace(item, step=t_steps + item.step, steps=total, epoch=teacher_config.epochs + item.epoch,
                                seconds=time.perf_counter() - start)
                history.append(shown)
                yield shown
    erased, done = result.summary.steps_to_erase, t_steps + result.summary.steps
    reason = {"finished": f"{result.summary.reason} after a {teacher_config.epochs}-epoch teacher",
              "stopped": f"stopped on request after {done} of {total} steps, while distilling into the student"}
    summary = replace(result.summary, steps=done, seconds=time.perf_counter() - start,
                      steps_to_erase=erased if not erased else t_steps + erased,
                      reason=reason.get(result.summary.status, f"{result.summary.reason} (student steps, after {t_steps} teacher steps)"))
    yield replace(result, summary=summary, history=history)


DEFENSE = Defense(
    name="nad",
    label="NAD (neural attention distillation)",
    summary="fine-tune a teacher on the clean set, then distil its attention maps into the backdoored model",
    source="Li et al., ICLR 2021",
    selection="teacher epochs, betas and p from the paper's reference code (config.py); nothing is tuned on this model; "
              "the trigger, poisoned data and ASR are never read",
    params=PARAMS,
    run=run,
)
