"""Defenses, one file each, one contract (`base.Defense`): the paper's rivals on the same footing.

A new defense is one new module here that defines `DEFENSE = Defense(...)`: every module of this
package is imported and its `DEFENSE` registered under its name, so the CLI (`defend --defense`,
one flag per setting) and the Purify page (one widget per setting) offer it. Each runs on the
same model, clean defense set, loop and evaluation as the paper's method; none reads the trigger
or ASR to choose its settings (a defense that needs the trigger is refused), and the evaluator
only reports.
"""

from __future__ import annotations

import copy
import importlib
import pkgutil
from dataclasses import replace
from typing import Any, Mapping

from torch import nn

from ..data.image_set import ImageSet
from ..errors import UserInputError
from ..method.purify import Evaluator, PurifyConfig
from ..params import check_settings
from .base import Defense, Settings, ShouldStop, Steps
from .pruning import largest_safe_mask

__all__ = ["DEFENSES", "Defense", "run_defense", "check_defense_settings", "largest_safe_mask"]

#: Listed first, in this order; the others follow by name.
_BASELINES = ("finetune", "fine-pruning", "magnitude-pruning")


def _found() -> list[Defense]:
    """Every `DEFENSE` of this package's modules, after importing them all; refuses an unfit one."""
    found: dict[str, Defense] = {}
    for module in pkgutil.iter_modules(__path__):
        defense = getattr(importlib.import_module(f"{__name__}.{module.name}"), "DEFENSE", None)
        if defense is None:
            continue
        if not isinstance(defense, Defense):
            raise TypeError(f"{__name__}.{module.name}.DEFENSE must be a Defense, not {type(defense).__name__}")
        if defense.needs_trigger:
            raise ValueError(f"defense {defense.name!r} ({module.name}) needs the trigger: a defender does not have it")
        if defense.name in found:
            raise ValueError(f"two defenses are named {defense.name!r} ({module.name} and another module)")
        found[defense.name] = defense
    return sorted(found.values(), key=lambda d: (d.name not in _BASELINES, _BASELINES.index(d.name) if d.name in _BASELINES else 0, d.name))


#: Every defense by name: the three baselines first, then the others by name.
DEFENSES: dict[str, Defense] = {d.name: d for d in _found()}


def check_defense_settings(name: str, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The defense's settings checked with its `ParamSpec`s, defaults filled in (one clear line if not)."""
    if name not in DEFENSES:
        raise UserInputError(f"unknown defense {name!r}; choose one of {', '.join(DEFENSES)}")
    return check_settings(name, DEFENSES[name].params, settings)


def run_defense(
    name: str,
    model: nn.Module,
    clean: ImageSet,
    config: PurifyConfig | None = None,
    evaluator: Evaluator | None = None,
    settings: Mapping[str, Any] | None = None,
    should_stop: ShouldStop | None = None,
) -> Steps:
    """Run the named defense on a private copy of `model`: `StepMetrics` items, then a `PurifyResult`.

    `config` holds the shared fine-tuning settings; `settings` the defense's own (checked here,
    before any work). The caller's model is never changed.
    """
    checked: Settings = check_defense_settings(name, settings)
    if len(clean) == 0:
        raise UserInputError("the clean defense set is empty")
    # a defense runs as published: the shared loop's optimiser, epochs and seed, without the lab's own steps (its
    # turns and scalings would train a baseline on other images, and NAD would compare attention maps of a turned
    # and an unturned image); re-initialisation and distillation are `purify`'s alone and never reach a defense
    config = replace(config or PurifyConfig(), dynamic=False, rotate=0.0, scale=0.0)
    return DEFENSES[name].run(copy.deepcopy(model), clean, checked, config, evaluator, should_stop)
