"""Penalties on marked neurons' parameters: Adaptive Regularization and its baselines (DESIGN 3.4).

The purification loss is `CE + strength * sum over marked parameters of R(w)`. AR is
`R(w) = |w|` for `|w| <= kappa` and `kappa * exp(|w| / kappa - 1)` beyond: continuous with a
continuous slope at the knee, L1-like below it and exponentially harder above it. It is written
on `|w|`, so it is symmetric and its gradient has the sign of `w` on both sides (the authors'
branch for `w < -1` had the sign wrong).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import UserInputError
from .neurons import NeuronMask, neuron_layers, owned_parameters

__all__ = ["REGULARIZERS", "check_regularizer", "check_strength", "check_kappa", "ar_penalty", "adaptive_kappa", "Regularizer", "build_regularizer"]

REGULARIZERS = ("ar", "l2", "l1", "prune", "none")


def ar_penalty(w: torch.Tensor, kappa: float | torch.Tensor) -> torch.Tensor:
    """Elementwise AR: |w| up to the knee kappa, kappa * exp(|w| / kappa - 1) beyond it."""
    a = w.abs()
    # clamp keeps the unused branch finite, so its zero gradient never meets an inf
    beyond = kappa * torch.exp((a / kappa - 1).clamp_min(0))
    return torch.where(a <= kappa, a, beyond)


def adaptive_kappa(w: torch.Tensor) -> float:
    """The default knee: 2 x the spread of a parameter tensor about zero (its RMS).

    For weights, whose mean is close to 0, this is 2 x their standard deviation; measured about
    zero it also gives BatchNorm scales (all near 1) a sensible knee instead of a tiny one.
    """
    return max(2.0 * float(w.detach().double().square().mean().sqrt()), 1e-6)


def _elementwise(name: str, w: torch.Tensor, kappa: float) -> torch.Tensor:
    if name == "ar":
        return ar_penalty(w, kappa)
    if name == "l1":
        return w.abs()
    return w.square()


@dataclass
class _Target:
    param: nn.Parameter
    kappa: float
    rows: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.long))


@dataclass
class Regularizer:
    """A penalty (or a prune mask) over the parameters that marked neurons own.

    `set_mask` changes which neurons are marked (the dynamic schedule does, every epoch);
    `after_step` re-zeroes pruned neurons so they stay exactly zero through optimiser steps.
    """

    name: str
    strength: float
    targets: dict[str, list[_Target]]

    def set_mask(self, mask: NeuronMask) -> None:
        for layer, targets in self.targets.items():
            rows = torch.nonzero(mask[layer]).flatten() if layer in mask else torch.empty(0, dtype=torch.long)
            for t in targets:
                t.rows = rows.to(t.param.device)
        if self.name == "prune":
            self.after_step()

    def marked(self) -> int:
        """How many neurons the regularizer acts on now."""
        return sum(len(targets[0].rows) for targets in self.targets.values() if targets)

    def penalty(self) -> torch.Tensor:
        """strength x the sum of R(w) over marked parameters (0 for prune and none)."""
        total = None
        if self.name in ("ar", "l1", "l2") and self.strength > 0:
            for targets in self.targets.values():
                for t in targets:
                    if len(t.rows):
                        term = _elementwise(self.name, t.param[t.rows], t.kappa).sum()
                        total = term if total is None else total + term
        if total is None:
            device = next((t.param.device for ts in self.targets.values() for t in ts), torch.device("cpu"))
            return torch.zeros((), device=device)
        return self.strength * total

    @torch.no_grad()
    def after_step(self) -> None:
        if self.name != "prune":
            return
        for targets in self.targets.values():
            for t in targets:
                if len(t.rows):
                    t.param[t.rows] = 0.0


def check_regularizer(name: str) -> None:
    if name not in REGULARIZERS:
        raise UserInputError(f"unknown regularizer {name!r}; choose one of {', '.join(REGULARIZERS)}")


def check_strength(strength: float) -> None:
    """Lambda scales the penalty; infinity or NaN would wipe the marked weights in one step."""
    if not 0.0 <= strength < math.inf:
        raise UserInputError(f"the regularization strength must be a finite number >= 0, got {strength}")


def check_kappa(kappa: float | None) -> None:
    """AR's knee; None takes each tensor's adaptive one."""
    if kappa is not None and not 0.0 < kappa < math.inf:
        raise UserInputError(f"kappa must be a finite number > 0, got {kappa}")


def build_regularizer(
    model: nn.Module,
    mask: NeuronMask,
    name: str = "ar",
    strength: float = 1e-2,
    kappa: float | None = None,
) -> Regularizer:
    """A regularizer over `model`'s marked neurons; `kappa=None` takes the adaptive knee per tensor."""
    check_regularizer(name)
    check_strength(strength)
    check_kappa(kappa)
    targets = {
        layer.name: [_Target(p, kappa if kappa is not None else adaptive_kappa(p)) for p in owned_parameters(model, layer).values()]
        for layer in neuron_layers(model)
    }
    regularizer = Regularizer(name, float(strength), targets)
    regularizer.set_mask(mask)
    return regularizer
