"""ANP, Adversarial Neuron Pruning (Wu & Wang, NeurIPS 2021; reference code csdongxian/ANP_backdoor).

Why it can find a backdoor from clean data alone: backdoored neurons are unusually sensitive,
so a small adversarial multiplicative perturbation of the neurons makes the model collapse on
*clean* images. ANP learns a mask m in [0, 1] per neuron that keeps the clean loss low both as
is and under the worst perturbation; the neurons it learns to switch off are pruned.

As the reference (`optimize_mask_cifar.py`, `prune_neuron_cifar.py`), per iteration on a batch
of 128 clean images drawn with replacement: draw the perturbation uniform in [-eps, eps], take
`anp_steps` signed-gradient steps of size eps/anp_steps that raise the loss, then one SGD step
(lr 0.2, momentum 0.9) on `alpha * CE(masked) + (1 - alpha) * CE(masked and perturbed)`, and clip
the masks to [0, 1]. Defaults are the paper's: eps 0.4, 1 step, alpha 0.2, mask lr 0.2.

Where this differs from the reference, and why:
- A neuron here is a conv channel or hidden linear unit (`method/neurons.py`). The reference
  multiplies a BatchNorm's scale by (m + noise) and its shift by (1 + noise_bias); a forward hook
  on the neuron's output module (its BatchNorm if it has one, else the layer) does exactly that:
  `out = (m + noise) * (y - b) + (1 + noise_bias) * b`, with b the module's bias (0 if none).
  So it also works where a model has no BatchNorm.
- Iterations: the paper runs 2000 iterations of 128 images over 500 clean images (1% of CIFAR-10),
  512 passes over the set. The default here is 200 iterations (about 170 passes over the 150
  images a 200-image clean set leaves for optimisation), so a run takes CPU minutes, not an hour.
- BatchNorm statistics stay frozen (eval mode); the reference optimised in train mode and threw
  the changed statistics away by reloading the checkpoint before pruning. The perturbation is
  projected back into [-eps, eps] after its step (the paper's constraint; the reference skips it).
- Pruning is the reference's: a pruned neuron's scale (BatchNorm weight, else layer weight) is
  zeroed and its shift kept, which is exactly a mask of 0. With `fine_tune` on, the marked
  neurons are then held at zero whole (`regularizer="prune"`) while the model is fine-tuned.

The pruning threshold, honestly: the reference prints ACC and ASR for thresholds 0, 0.05, ..., 0.9
and leaves the choice to the reader; BackdoorBench's ANP picks it by test ASR, an oracle no
defender has. Here the clean set is split: masks are optimised on `1 - holdout` of it, and the
largest threshold (scanned upward, stopping at the first failure) whose pruned model keeps
accuracy on the held-out clean images within `margin` of the unpruned model's is used. Neither
the trigger, poisoned data nor ASR is read; the evaluator only reports.

The mask optimisation lives in `method/rankings/anp.py` (the masks are also a ranking on Compare
rankings); the ACC/ASR streamed during it are the soft-masked model's.
"""

from __future__ import annotations

import copy
import time
from dataclasses import replace

import torch
from torch import nn

from ..data.image_set import ImageSet
from ..errors import UserInputError
from ..method.neurons import NeuronMask, NeuronScores, neuron_layers
from ..method.rankings.anp import ANPConfig, Diverged, MaskStep, Stopped, optimise_masks
from ..params import ParamSpec
from ..method.purify import Evaluator, PurifyConfig, PurifyResult, PurifySummary, StepMetrics, fine_tune, live_metrics
from .base import Defense, Settings, ShouldStop, Steps
from ..models.evaluate import accuracy

__all__ = ["DEFENSE", "PARAMS", "choose_threshold", "prune_scale", "masks_below", "split_clean", "THRESHOLDS"]

#: The reference's pruning thresholds: 0 to 0.9 in steps of 0.05 (`prune_neuron_cifar.py`).
THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(19))


#: The settings as the CLI and the app show them; defaults are the paper's except `iterations`.
PARAMS: dict[str, ParamSpec] = {
    "eps": ParamSpec(0.4, "bound of the adversarial neuron perturbation (paper: 0.4)", low=0.0, high=1.0),
    "anp_steps": ParamSpec(1, "signed-gradient steps of the perturbation per iteration (paper: 1)", low=1, high=20),
    "alpha": ParamSpec(0.2, "weight of the unperturbed loss; 1 - alpha goes to the perturbed one (paper: 0.2)", low=0.0, high=1.0),
    "mask_lr": ParamSpec(0.2, "SGD learning rate of the masks (paper: 0.2)", low=0.001, high=10.0),
    "iterations": ParamSpec(200, "mask iterations of 128 images (paper: 2000 on 500 images; 200 here to run in CPU minutes)",
                            low=1, high=20000),
    "holdout": ParamSpec(0.25, "share of the clean set held out to choose the pruning threshold", low=0.05, high=0.9),
    "margin": ParamSpec(0.04, "held-out clean accuracy the pruning may give up", low=0.0, high=1.0),
    "fine_tune": ParamSpec(False, "fine-tune after pruning with the shared settings (the paper does not)"),
}


def masks_below(scores: NeuronScores, threshold: float) -> NeuronMask:
    """The neurons whose mask value is at most `threshold` (the reference's pruning rule)."""
    return {name: s <= threshold for name, s in scores.items()}


@torch.no_grad()
def prune_scale(model: nn.Module, mask: NeuronMask) -> None:
    """Prune as the reference does, in place: zero each marked neuron's scale (its BatchNorm's
    weight, else its layer's weight), keep its shift: exactly a mask value of 0."""
    for layer in neuron_layers(model):
        marked = mask.get(layer.name)
        if marked is not None and marked.any():
            weight = model.get_submodule(layer.output_module).weight
            weight[marked.to(weight.device)] = 0.0


def choose_threshold(model: nn.Module, scores: NeuronScores, heldout: ImageSet, margin: float,
                     thresholds: tuple[float, ...] = THRESHOLDS) -> tuple[NeuronMask, float]:
    """The largest threshold (scanned upward, stopping at the first failure) whose pruning keeps
    accuracy on the held-out clean images within `margin` of the unpruned model's; only clean
    accuracy is read. Returns that mask and threshold (no neuron and -1.0 if none passes)."""
    base = accuracy(model, heldout)
    best, best_threshold = {name: torch.zeros_like(s, dtype=torch.bool) for name, s in scores.items()}, -1.0
    work, original = copy.deepcopy(model), copy.deepcopy(model.state_dict())
    for threshold in thresholds:
        mask = masks_below(scores, threshold)
        work.load_state_dict(original)
        prune_scale(work, mask)
        if accuracy(work, heldout) < base - margin:
            break
        best, best_threshold = mask, float(threshold)
    return best, best_threshold


def split_clean(clean: ImageSet, holdout: float, seed: int) -> tuple[ImageSet, ImageSet]:
    """(images to optimise the masks on, held-out images to choose the threshold on), seeded."""
    if len(clean) < 4:
        raise UserInputError(f"ANP needs at least 4 clean images (to hold some out), got {len(clean)}")
    order = torch.randperm(len(clean), generator=torch.Generator().manual_seed(seed))
    n_out = min(len(clean) - 1, max(1, round(holdout * len(clean))))
    return clean.subset(order[n_out:]), clean.subset(order[:n_out])


def run(model: nn.Module, clean: ImageSet, settings: Settings, config: PurifyConfig, evaluator: Evaluator | None,
        should_stop: ShouldStop | None) -> Steps:
    """ANP on `model` (the registry's private copy): optimise masks, prune by the held-out rule,
    then fine-tune with the shared settings only if `fine_tune` is set.

    Streams the mask iterations as `StepMetrics` (task_loss: the unperturbed loss, reg_loss: the
    perturbed one, marked: masks below 0.2), then `fine_tune`'s steps numbered after them.
    """
    anp = ANPConfig(**{k: settings[k] for k in ("eps", "anp_steps", "alpha", "mask_lr", "iterations", "holdout", "margin")},
                    eval_every=config.eval_every, seed=config.seed)
    optimise_on, heldout = split_clean(clean, anp.holdout, anp.seed)
    start = time.perf_counter()
    before = evaluator(model) if evaluator else None
    first = StepMetrics(step=0, steps=anp.iterations, epoch=0, task_loss=float("nan"), reg_loss=0.0, seconds=0.0, marked=0,
                        acc=before.acc if before else None, asr=before.asr if before else None)
    history: list[StepMetrics] = [first]
    yield first
    scores: NeuronScores | None = None
    status, reason = "finished", ""
    try:
        for item in optimise_masks(model, optimise_on, anp, should_stop):
            if not isinstance(item, MaskStep):
                scores = item
                continue
            # the soft-masked model (the hooks are on while paused): a live point, never the run's after
            metrics = live_metrics(evaluator, model, item.step, item.steps, anp.eval_every, last_is_after=False)
            step = StepMetrics(step=item.step, steps=item.steps, epoch=0, task_loss=item.natural, reg_loss=item.robust,
                               seconds=item.seconds, marked=item.low, acc=metrics.acc if metrics else None,
                               asr=metrics.asr if metrics else None)
            history.append(step)
            yield step
    except Stopped as stop:
        status, reason = "stopped", str(stop)
    except Diverged as error:
        status, reason = "diverged", str(error)
    mask: NeuronMask = {l.name: torch.zeros(l.width, dtype=torch.bool) for l in neuron_layers(model)}
    if scores is not None:
        mask, threshold = choose_threshold(model, scores, heldout, anp.margin)
        prune_scale(model, mask)
        pruned = sum(int(m.sum()) for m in mask.values())
        reason = (f"{anp.iterations} mask iterations; pruned {pruned} neurons with mask <= {threshold:.2f} "
                  f"(held-out clean accuracy within {anp.margin:.0%})" if threshold >= 0 else
                  f"{anp.iterations} mask iterations; no threshold kept held-out clean accuracy within {anp.margin:.0%}: nothing pruned")
    if status == "diverged":
        summary = PurifySummary(status=status, reason=reason, steps=history[-1].step, seconds=time.perf_counter() - start,
                                marked=0, before=before, after=None, steps_to_erase=None)
        yield PurifyResult(model=None, summary=summary, mask=mask, config=config, history=history)
        return
    epochs = config.epochs if settings["fine_tune"] and status == "finished" else 0
    tune = replace(config, epochs=epochs, regularizer="prune" if epochs else "none", threshold=0.0)
    offset = history[-1].step
    for item in fine_tune(model, clean, mask, tune, evaluator, None, should_stop, before=before):
        if isinstance(item, StepMetrics):
            if item.step > 0:
                item = replace(item, step=item.step + offset, steps=item.steps + offset)
                history.append(item)
                yield item
            continue
        summary = item.summary
        if status == "finished":
            reason = f"{reason}; {summary.reason}" if epochs else reason
            status = summary.status
        yield replace(item, history=history, summary=replace(summary, status=status, reason=reason, steps=history[-1].step,
                                                             seconds=time.perf_counter() - start))


DEFENSE = Defense(
    name="anp",
    label="ANP",
    summary="learn per-neuron masks that survive adversarial neuron perturbation on clean data; prune the low ones",
    source="Wu & Wang, Adversarial Neuron Pruning Purifies Backdoored Deep Models, NeurIPS 2021",
    selection=("paper's eps/alpha/lr; the pruning threshold is the largest of 0, 0.05, ..., 0.9 that keeps accuracy on "
               "held-out clean images within the margin (BackdoorBench picks it by test ASR, an oracle: not here)"),
    params=PARAMS,
    run=run,
)
