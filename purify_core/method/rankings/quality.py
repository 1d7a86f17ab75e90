"""How well a ranking finds the infected neurons, graded against TAC (the evaluator's view).

"Infected" = the top p% of each layer by TAC. A ranking is good at finding them when a low score
means infected (the paper's premise; `direction="highest"` grades the opposite reading).
Statistics come from scikit-learn and scipy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score, roc_curve
from torch import nn

from ...models.evaluate import Metrics
from ..marking import mark
from ..neurons import NeuronMask, NeuronScores, pruned_copies

__all__ = [
    "RankingQuality", "infected_neurons", "within_layer_rank", "ranking_quality", "roc_points",
    "spearman_matrix", "PruningPoint", "pruning_curve", "DEFAULT_FRACTIONS",
]

DEFAULT_FRACTIONS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)


@dataclass(frozen=True)
class RankingQuality:
    """Pooled over layers (scores turned into within-layer ranks) and per layer."""

    auc: float
    precision_at_k: float
    spearman: float
    per_layer: dict[str, dict[str, float]]

    def to_dict(self) -> dict:
        return {"auc": self.auc, "precision_at_k": self.precision_at_k, "spearman": self.spearman, "per_layer": self.per_layer}


def infected_neurons(tac: NeuronScores, top: float = 0.05) -> NeuronMask:
    """The top `top` fraction of each layer by TAC (at least one neuron per layer)."""
    if not 0.0 < top < 1.0:
        raise ValueError(f"the infected share must be in (0, 1), got {top}")
    return {n: _top_k(s, max(1, math.ceil(top * len(s)))) for n, s in tac.items()}


def _top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    mask = torch.zeros(len(scores), dtype=torch.bool)
    mask[torch.sort(scores.double(), descending=True, stable=True).indices[:k]] = True
    return mask


def within_layer_rank(scores: torch.Tensor) -> np.ndarray:
    """Ranks scaled to [0, 1] within a layer (0 = lowest score), so layers can be pooled."""
    ranks = torch.argsort(torch.argsort(scores.double(), stable=True)).double().numpy()
    return ranks / max(1, len(ranks) - 1)


def _suspicion(scores: torch.Tensor, direction: str) -> np.ndarray:
    """Higher = more suspicious: the reading of the scores that the grading uses."""
    r = within_layer_rank(scores)
    return 1.0 - r if direction == "lowest" else r


def _auc(truth: np.ndarray, suspicion: np.ndarray) -> float:
    return float(roc_auc_score(truth, suspicion)) if 0 < truth.sum() < len(truth) else float("nan")


def _precision_at_k(truth: np.ndarray, suspicion: np.ndarray) -> float:
    k = int(truth.sum())
    if k == 0:
        return float("nan")
    top = np.argsort(-suspicion, kind="stable")[:k]
    return float(truth[top].mean())


def _spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    if len(a) < 2 or float(a.std()) == 0 or float(b.std()) == 0:
        return float("nan")
    return float(spearmanr(a.double().numpy(), b.double().numpy()).statistic)


def ranking_quality(scores: NeuronScores, tac: NeuronScores, top: float = 0.05, direction: str = "lowest") -> RankingQuality:
    """ROC AUC and precision@k of "low (or high) score means infected", and Spearman with TAC."""
    infected = infected_neurons(tac, top)
    per_layer = {}
    for name in scores:
        truth = infected[name].numpy().astype(int)
        suspicion = _suspicion(scores[name], direction)
        per_layer[name] = {
            "auc": _auc(truth, suspicion),
            "precision_at_k": _precision_at_k(truth, suspicion),
            "spearman": _spearman(scores[name], tac[name]),
        }
    truth = np.concatenate([infected[n].numpy().astype(int) for n in scores])
    suspicion = np.concatenate([_suspicion(scores[n], direction) for n in scores])
    rhos = [v["spearman"] for v in per_layer.values() if not math.isnan(v["spearman"])]
    return RankingQuality(_auc(truth, suspicion), _precision_at_k(truth, suspicion), float(np.mean(rhos)) if rhos else float("nan"), per_layer)


def roc_points(scores: NeuronScores, tac: NeuronScores, top: float = 0.05, direction: str = "lowest") -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates of the pooled ROC curve, for plotting."""
    infected = infected_neurons(tac, top)
    truth = np.concatenate([infected[n].numpy().astype(int) for n in scores])
    suspicion = np.concatenate([_suspicion(scores[n], direction) for n in scores])
    fpr, tpr, _ = roc_curve(truth, suspicion)
    return fpr, tpr


def spearman_matrix(rankings: dict[str, NeuronScores]) -> tuple[list[str], np.ndarray]:
    """Mean over layers of the Spearman correlation between every pair of rankings."""
    names = list(rankings)
    matrix = np.eye(len(names))
    for i, a in enumerate(names):
        for j in range(i + 1, len(names)):
            b = names[j]
            rhos = [_spearman(rankings[a][layer], rankings[b][layer]) for layer in rankings[a]]
            rhos = [r for r in rhos if not math.isnan(r)]
            matrix[i, j] = matrix[j, i] = float(np.mean(rhos)) if rhos else float("nan")
    return names, matrix


@dataclass(frozen=True)
class PruningPoint:
    fraction: float
    acc: float
    asr: float | None


def pruning_curve(
    model: nn.Module,
    scores: NeuronScores,
    evaluator: Callable[[nn.Module], Metrics],
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    direction: str = "lowest",
    layers: Sequence[str] | None = None,
) -> list[PruningPoint]:
    """ACC and ASR as the lowest-scored fraction of each layer's neurons is zeroed (no fine-tuning).

    Works on one private copy, reset from the original weights before every fraction.
    """
    masks = (mark(scores, fraction, "layer", layers, direction) for fraction in fractions)
    points = []
    for fraction, (_, pruned) in zip(fractions, pruned_copies(model, masks)):
        m = evaluator(pruned)
        points.append(PruningPoint(float(fraction), m.acc, m.asr))
    return points
