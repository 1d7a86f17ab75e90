"""Benign salience: how much the clean loss relies on each neuron (DESIGN 3.1).

Per parameter the first-order term is s_j = -w_j * dL/dw_j; a neuron's per-batch term t_k is the
sum over the parameters it owns. Gradients come from `torch.autograd.grad` through
`torch.func.functional_call` on detached copies of the parameters, so the model's parameters,
`.grad` fields and BatchNorm statistics are never touched.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ...errors import UserInputError
from ..neurons import NeuronScores, neuron_layers, owned_parameters
from .base import Batches, ranking_context
from ...params import ParamSpec
from .base import Ranking

__all__ = ["benign_salience", "SALIENCE_VARIANTS"]

SALIENCE_VARIANTS = ("abs", "squared", "ema-signed")


def _row_sum(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).sum(1) if t.ndim > 1 else t


def benign_salience(model: nn.Module, loader: Batches, variant: str = "abs", eta: float = 0.9) -> NeuronScores:
    """BS_k = mean over batches of |t_k| (`abs`), of t_k^2 (`squared`), or the authors' `ema-signed`:
    an exponential moving average (factor `eta`) of the signed per-parameter term, summed per neuron.
    """
    if variant not in SALIENCE_VARIANTS:
        raise UserInputError(f"unknown salience variant {variant!r}; choose one of {', '.join(SALIENCE_VARIANTS)}")
    if not 0.0 <= eta < 1.0:
        raise UserInputError(f"eta must be in [0, 1), got {eta}")
    layers = neuron_layers(model)
    with ranking_context(model) as device:
        params = {n: p.detach() for n, p in model.named_parameters()}
        groups = {l.name: list(owned_parameters(model, l)) for l in layers}
        wanted = [n for names in groups.values() for n in names]
        for n in wanted:
            params[n] = params[n].clone().requires_grad_(True)
        totals: dict[str, torch.Tensor] = {}
        count = 0
        for x, y in loader:
            loss = F.cross_entropy(functional_call(model, params, (x.to(device),)), y.to(device))
            grads = dict(zip(wanted, torch.autograd.grad(loss, [params[n] for n in wanted])))
            terms = {n: -params[n].detach() * grads[n] for n in wanted}
            if variant == "ema-signed":
                for n in wanted:
                    totals[n] = terms[n] if n not in totals else eta * totals[n] + (1 - eta) * terms[n]
            else:
                for layer, names in groups.items():
                    t = sum(_row_sum(terms[n]) for n in names)
                    t = t.abs() if variant == "abs" else t.square()
                    totals[layer] = totals.get(layer, 0) + t
            count += 1
    if count == 0:
        raise UserInputError("benign salience needs at least one batch of clean data")
    if variant == "ema-signed":
        return {layer: sum(_row_sum(totals[n]) for n in names).cpu() for layer, names in groups.items()}
    return {layer: (total / count).cpu() for layer, total in totals.items()}


RANKING = Ranking(
    "salience", "benign salience", "how much the clean loss relies on each neuron (first-order, -w dL/dw)", "lowest", benign_salience,
    params={"variant": ParamSpec("abs", "how per-batch terms are pooled", choices=SALIENCE_VARIANTS),
            "eta": ParamSpec(0.9, "EMA factor of the ema-signed variant", low=0.0, high=0.999)},
)
