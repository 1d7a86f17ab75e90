"""Neuron rankings: one score per neuron per layer, all behind one contract.

`rank_neurons(model, loader, metric)` -> {layer name: 1-D tensor}. Every ranking leaves the model
exactly as it was given: parameters, `.grad`, train/eval mode and hooks.

A new ranking is one new module here that defines `RANKING = Ranking(...)` (or a tuple
`RANKINGS`): every module of this package is imported and its rankings registered, so Compare
rankings, `rank --metric` and the purification's `metric` offer it (unless it needs the trigger).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Callable, Union

from torch import nn

from ...attacks import Attack
from ...data.image_set import ImageSet
from ..._utils import private_copy
from ...errors import UserInputError
from ...params import check_settings
from ..neurons import NeuronScores
from .activation import mean_activation, trigger_activated_change
from .base import Batches, Ranking, as_batches, batches
from .gradxact import gradient_x_activation
from .magnitude import magnitude
from .salience import SALIENCE_VARIANTS, benign_salience

__all__ = [
    "RANKINGS",
    "Ranking",
    "METRICS",
    "DEFENDER_METRICS",
    "METRIC_LABELS",
    "SALIENCE_VARIANTS",
    "Batches",
    "batches",
    "rank_neurons",
    "benign_salience",
    "magnitude",
    "mean_activation",
    "gradient_x_activation",
    "trigger_activated_change",
]

#: Listed first, in this order (the paper's ranking, then its rivals); the others follow by name, the oracle last.
_FIRST = ("salience", "activation", "magnitude", "gradxact")
#: Modules that grade or feed rankings rather than declare one (quality imports scipy and sklearn: slow).
_TOOLS = ("base", "quality")


def _found() -> list[Ranking]:
    """Every ranking declared by this package's modules (`RANKING` or `RANKINGS`), after importing them all."""
    found: dict[str, Ranking] = {}
    for module in pkgutil.iter_modules(__path__):
        if module.name in _TOOLS:
            continue
        loaded = importlib.import_module(f"{__name__}.{module.name}")
        declared = getattr(loaded, "RANKINGS", ()) + ((loaded.RANKING,) if hasattr(loaded, "RANKING") else ())
        for ranking in declared:
            if not isinstance(ranking, Ranking):
                raise TypeError(f"{loaded.__name__} declares {ranking!r}, not a Ranking")
            if ranking.name in found:
                raise ValueError(f"two rankings are named {ranking.name!r} ({module.name} and another module)")
            if ranking.expects not in ("lowest", "highest"):
                raise ValueError(f"ranking {ranking.name!r}: expects must be 'lowest' or 'highest', not {ranking.expects!r}")
            found[ranking.name] = ranking

    def order(r: Ranking) -> tuple[int, int, str]:
        return (r.needs_trigger, _FIRST.index(r.name) if r.name in _FIRST else len(_FIRST), r.name)

    return sorted(found.values(), key=order)


#: Every ranking by name: a defender's first, the trigger-needing oracle (TAC) last.
RANKINGS: dict[str, Ranking] = {r.name: r for r in _found()}
METRICS: dict[str, Callable[..., NeuronScores]] = {name: r.score for name, r in RANKINGS.items()}
#: The rankings a defender can compute (TAC needs the trigger).
DEFENDER_METRICS = tuple(name for name, r in RANKINGS.items() if not r.needs_trigger)
METRIC_LABELS = {name: r.label for name, r in RANKINGS.items()}


def rank_neurons(
    model: nn.Module,
    loader: Union[ImageSet, Batches],
    metric: str = "salience",
    *,
    attack: Attack | None = None,
    batch_size: int = 64,
    **options: Any,
) -> NeuronScores:
    """Score every neuron of `model` on clean data with the named metric (on a private copy of it).

    `options` are the ranking's settings (`variant`, `eta` for salience), checked by its
    `ParamSpec`s; `attack` goes only to a ranking that needs the trigger (TAC).
    """
    if metric not in RANKINGS:
        raise UserInputError(f"unknown ranking {metric!r}; choose one of {', '.join(RANKINGS)}")
    ranking = RANKINGS[metric]
    if options and not ranking.params:
        raise UserInputError(f"the {metric} ranking takes no options (got {', '.join(options)})")
    settings = check_settings(f"the {metric} ranking", ranking.params, options)
    if ranking.needs_trigger:
        settings["attack"] = attack
    data = as_batches(loader, batch_size)
    model = private_copy(model)  # hooks and functional_call touch the module: never on one that others use
    return ranking.score(model, data, **settings)
