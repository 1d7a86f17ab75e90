"""Purification: fine-tune a private copy on the clean defense set with a penalty on marked neurons.

`purify` ranks, marks, optionally re-initialises layers or the marked neurons, and fine-tunes,
optionally distilling the original model's answers (`steps`); `fine_tune` is the loop it shares
with the baseline defenses, and takes an extra-loss term. Both are generators: each item is a `StepMetrics`, the last one a `PurifyResult`.
Closing the generator stops the run; `should_stop` ends it at the next step and still yields a
result with what was computed.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .._utils import model_device, to_channels_last, to_contiguous
from ..data.augment import random_affine, random_shift
from ..data.image_set import ImageSet
from ..errors import UserInputError
from ..models.probe import ProbedEvaluator
from ..models.evaluate import Metrics
from .marking import mark, marked_count, suspicion_order
from .neurons import NeuronMask, NeuronScores, neuron_layers, select_layers
from .rankings import rank_neurons
from .regularizers import Regularizer, build_regularizer
from .settings import BASELINE_FINE_TUNING, PRESET_LABELS, PURIFY_PRESETS, PurifyConfig, baseline_config, purify_preset
from .steps import Distillation, ExtraLoss, reinit_targets, reinitialise

__all__ = ["PurifyConfig", "PURIFY_PRESETS", "PRESET_LABELS", "purify_preset", "BASELINE_FINE_TUNING", "baseline_config", "StepMetrics", "PurifySummary", "PurifyResult", "purify", "fine_tune", "live_metrics"]

#: ASR below this counts as "backdoor erased" for the steps-to-erase statistic.
ERASED_ASR = 0.05

Evaluator = Callable[[nn.Module], Metrics]


class _Halt(Exception):
    """Leaves the step loop early (stop request or divergence); never escapes `fine_tune`."""




@dataclass(frozen=True, kw_only=True)
class StepMetrics:
    """One optimiser step; `acc`/`asr` are filled every `eval_every` steps (and at step 0), or at a
    `ProbedEvaluator`'s steps from its probe (step 0 and the last step still on the whole split)."""

    step: int
    steps: int
    epoch: int
    task_loss: float
    reg_loss: float
    seconds: float
    marked: int
    acc: float | None = None
    asr: float | None = None
    distill_loss: float = 0.0  # the extra-loss term as added to the loss (weight x T^2 x KL)

    @property
    def fraction(self) -> float:
        return self.step / self.steps if self.steps else 1.0


@dataclass(frozen=True, kw_only=True)
class PurifySummary:
    """Before and after, how fast the backdoor went, and how the run ended."""

    status: str  # "finished", "stopped" or "diverged"
    reason: str
    steps: int
    seconds: float
    marked: int
    before: Metrics | None
    after: Metrics | None
    steps_to_erase: int | None  # first evaluated step with ASR < 5%

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["before"] = self.before.as_percent() if self.before else None
        d["after"] = self.after.as_percent() if self.after else None
        return d


@dataclass(frozen=True, eq=False, kw_only=True)
class PurifyResult:
    """The last item of a run: the purified model (None if the run diverged) and its summary."""

    model: nn.Module | None
    summary: PurifySummary
    mask: NeuronMask
    config: PurifyConfig
    history: list[StepMetrics] = field(default_factory=list)


def _active_mask(mask: NeuronMask, order: dict[str, torch.Tensor] | None, fraction: float) -> NeuronMask:
    """The dynamic schedule: the most suspicious `fraction` of each layer's marked neurons."""
    if order is None or fraction >= 1.0:
        return mask
    active = {}
    for name, marked in mask.items():
        ranked = order[name][marked[order[name]]]
        keep = torch.zeros_like(marked)
        keep[ranked[: math.ceil(fraction * len(ranked))]] = True
        active[name] = keep
    return active


@torch.no_grad()
def _slow_unmarked(model: nn.Module, regularizer: Regularizer, scale: float) -> None:
    """Scale the gradients of everything but the marked neurons, so the clean function moves less."""
    if scale == 1.0:
        return
    saved = [(t.param, t.rows, t.param.grad[t.rows].clone())
             for targets in regularizer.targets.values() for t in targets if t.param.grad is not None and len(t.rows)]
    for p in model.parameters():
        if p.grad is not None:
            p.grad.mul_(scale)
    for param, rows, grad in saved:
        param.grad[rows] = grad


def _layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """A batch of images in the layout the model trains in (channels-last on the CPU)."""
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x


def live_metrics(evaluator: Evaluator | None, model: nn.Module, step: int, steps: int, eval_every: int,
                 last_is_after: bool = True) -> Metrics | None:
    """The evaluator's numbers for step `step` of `steps`, or None when the step gets no point.

    Every loop that streams steps (fine-tuning, i-BAU, ANP) asks here, so they agree: a
    `ProbedEvaluator` answers on its probe at its own steps; any other evaluator every `eval_every`
    steps. The last step is measured on the whole split when it is the run's "after"
    (`last_is_after`); ANP's last mask step is not (its model carries hooks the weights-keyed
    memo of a `ProbedEvaluator` cannot see), so there it stays a probe point."""
    if evaluator is None:
        return None
    if isinstance(evaluator, ProbedEvaluator):
        if not evaluator.due(step, steps):
            return None
        return evaluator(model) if step == steps and last_is_after else evaluator.live(model)
    return evaluator(model) if step % eval_every == 0 or step == steps else None


def fine_tune(
    model: nn.Module,
    defense: ImageSet,
    mask: NeuronMask,
    config: PurifyConfig,
    evaluator: Evaluator | None = None,
    scores: NeuronScores | None = None,
    should_stop: Callable[[], bool] | None = None,
    extra_loss: ExtraLoss | None = None,
    before: Metrics | None = None,
) -> Iterator[StepMetrics | PurifyResult]:
    """Fine-tune `model` IN PLACE (pass a private copy) with the configured penalty on `mask`.

    `extra_loss` (distillation, NAD, FST) scales the task loss and adds a term each step;
    without it the loss is exactly today's CE + penalty. With `config.epochs == 0` no step is
    taken (a pruning-only defense): the result carries the evaluator's before and after. `before`: the evaluator's numbers for the
    model as the caller had it, if a step before the loop changed it (re-initialisation).
    A `ProbedEvaluator` streams its probe at its own steps (steps to erase then read the probe);
    before and after stay on the whole test split.
    """
    if len(defense) == 0:
        raise UserInputError("the clean defense set is empty")
    probed = evaluator if isinstance(evaluator, ProbedEvaluator) else None
    device = model_device(model)
    if before is None and evaluator:
        before = evaluator(model)  # before any pruning the regularizer does
    order = {n: suspicion_order(s, config.direction) for n, s in scores.items()} if config.dynamic and scores else None
    channels_last = to_channels_last(model)  # faster steps on the CPU; back to the default layout when the loop ends
    regularizer: Regularizer = build_regularizer(model, _active_mask(mask, order, config.beta), config.regularizer, config.strength, config.kappa)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    batches = math.ceil(len(defense) / config.batch_size)
    steps = config.epochs * batches
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps) if config.cosine and steps else None
    generator = torch.Generator().manual_seed(config.seed)
    history: list[StepMetrics] = []
    start = time.perf_counter()
    first = StepMetrics(step=0, steps=steps, epoch=0, task_loss=float("nan"), reg_loss=0.0, seconds=0.0, marked=regularizer.marked(),
                        acc=before.acc if before else None, asr=before.asr if before else None)
    history.append(first)
    yield first
    status, step, explode_at = "finished", 0, None
    reason = f"ran all {config.epochs} epochs" if config.epochs else "no fine-tuning: 0 epochs"
    steps_to_erase = 0 if before and before.asr is not None and before.asr < ERASED_ASR else None
    try:
        for epoch in range(1, config.epochs + 1):
            if config.dynamic and order is not None:
                fraction = config.beta + (1 - config.beta) * (epoch - 1) / max(1, config.epochs - 1)
                regularizer.set_mask(_active_mask(mask, order, fraction))
            permutation = torch.randperm(len(defense), generator=generator)
            for b in range(batches):
                if should_stop is not None and should_stop():
                    status, reason = "stopped", f"stopped on request after {step} of {steps} steps"
                    raise _Halt
                index = permutation[b * config.batch_size : (b + 1) * config.batch_size]
                model.train()
                shifted = random_shift(defense.x[index], config.shift, generator)
                # the student alone sees rotations and scalings; a teacher (the extra loss) answers the shifted image
                rotated = random_affine(shifted, config.rotate, config.scale, generator)
                x = _layout(rotated.to(device), channels_last)
                seen = None  # what a teacher answers, made only when there is one
                if extra_loss is not None:
                    seen = x if rotated is shifted else _layout(shifted.to(device), channels_last)
                logits = model(x)
                task = F.cross_entropy(logits, defense.y[index].to(device))
                reg = regularizer.penalty()
                extra_value = 0.0
                if extra_loss is None:
                    loss = task + reg
                else:
                    task_scale, extra = extra_loss(seen, logits, step / steps, index)
                    loss = task_scale * task + extra + reg
                    extra_value = float(extra.detach())
                task_value, reg_value = float(task.detach()), float(reg.detach())
                explode_at = explode_at or max(50.0, 20.0 * task_value)
                if not math.isfinite(task_value + reg_value + extra_value) or task_value > explode_at:
                    status = "diverged"
                    reason = (f"the loss became {task_value + reg_value + extra_value:.3g} at step {step + 1}: "
                              f"lower the learning rate ({config.lr}) or the strength ({config.strength})")
                    raise _Halt
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                _slow_unmarked(model, regularizer, config.unmarked_lr)
                optimizer.step()
                regularizer.after_step()
                if schedule is not None:
                    schedule.step()
                step += 1
                metrics = live_metrics(evaluator, model, step, steps, config.eval_every)
                if metrics and steps_to_erase is None and metrics.asr is not None and metrics.asr < ERASED_ASR:
                    steps_to_erase = step
                item = StepMetrics(step=step, steps=steps, epoch=epoch, task_loss=task_value, reg_loss=reg_value,
                                   seconds=time.perf_counter() - start, marked=regularizer.marked(),
                                   acc=metrics.acc if metrics else None, asr=metrics.asr if metrics else None, distill_loss=extra_value)
                history.append(item)
                yield item
    except _Halt:
        pass
    finally:
        optimizer.zero_grad(set_to_none=True)
        model.eval()
        if channels_last:
            to_contiguous(model)
    if status != "diverged" and not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        status, reason = "diverged", f"a weight became NaN or infinite by step {step}: lower the learning rate ({config.lr})"
    diverged = status == "diverged"
    after = None
    if not diverged and evaluator:
        last = history[-1]
        # the last step's own evaluation (it carries RA too); when no step ran, a fresh one: the caller
        # may have changed the model after `before` (a pruning-only defense, 0 epochs)
        # (or the whole split's, when the last point came from a probe: a stopped run)
        fresh = last.acc is None or last.step == 0 or (probed is not None and last.step != steps)
        after = evaluator(model) if fresh else metrics
    summary = PurifySummary(status=status, reason=reason, steps=step, seconds=time.perf_counter() - start, marked=marked_count(mask),
                            before=before, after=after, steps_to_erase=steps_to_erase)
    yield PurifyResult(model=None if diverged else model, summary=summary, mask=mask, config=config, history=history)


def purify(
    model: nn.Module,
    defense: ImageSet,
    config: PurifyConfig = PurifyConfig(),
    evaluator: Evaluator | None = None,
    scores: NeuronScores | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[StepMetrics | PurifyResult]:
    """Rank (unless `scores` are given), mark, re-initialise (`config.reinit`), and fine-tune a
    private copy of `model`, distilling `model`'s own answers if `config.distill > 0`.

    The caller's model is never changed. `evaluator` (the oracle: ACC and ASR on the test set)
    only reports; nothing in the run reads it to make a choice. The "before" numbers are the
    model's as given (taken before re-initialisation).
    """
    work = copy.deepcopy(model)
    layers = [l.name for l in select_layers(neuron_layers(work), config.layers)]
    reinit_targets(work, config.reinit)  # unknown layer names are refused before any ranking is spent
    if scores is None:
        options = {"variant": config.variant, "eta": config.eta} if config.metric == "salience" else {}
        scores = rank_neurons(work, defense, config.metric, **options)
    mask = mark(scores, config.threshold, config.scope, layers, config.direction)
    extra = (Distillation.from_original(model, config.distill, config.temperature, config.distill_schedule, config.distill_view, defense.x)
             if config.distill > 0 else None)
    before = None
    if config.reinit != "none":
        before = evaluator(model) if evaluator else None
        reinitialise(work, config.reinit, mask, config.seed, config.classifier_init)
    yield from fine_tune(work, defense, mask, config, evaluator, scores, should_stop, extra, before)
