"""Attacks that implant a backdoor: one file each, one contract (`base.Attack`).

A new attack is one new module here: every module of this package is imported and each concrete
`Attack` subclass in it is registered under its `name`, so the CLI and the Attack lab offer it
(its widgets and defaults come from its `PARAMS`).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from ..config import AttackConfig
from ..errors import UserInputError
from .badnets import BadNets
from .base import Attack, ParamSpec, PoisonedSet
from .blended import Blended
from .sig import Sig
from .wanet import WaNet

__all__ = ["Attack", "ParamSpec", "PoisonedSet", "ATTACKS", "build_attack"]


def _found() -> list[type[Attack]]:
    """Every concrete attack defined in this package's modules, after importing them all."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    seen, stack = [], list(Attack.__subclasses__())
    while stack:
        cls = stack.pop(0)
        stack.extend(cls.__subclasses__())
        if cls.__module__.startswith(f"{__name__}.") and not inspect.isabstract(cls) and cls not in seen:
            seen.append(cls)
    return seen


#: Every attack by its config name: the four of the shipped zoo first, in their order, then the others by name.
ATTACKS: dict[str, type[Attack]] = {cls.name: cls for cls in (BadNets, Blended, WaNet, Sig)}
ATTACKS |= {cls.name: cls for cls in sorted(_found(), key=lambda c: c.name) if cls.name not in ATTACKS}


def build_attack(config: AttackConfig, input_shape: tuple[int, int, int], num_classes: int) -> Attack:
    """The attack a config names, checked against the images it will poison."""
    if config.name not in ATTACKS:
        raise UserInputError(f"unknown attack {config.name!r}; choose one of {', '.join(ATTACKS)}")
    return ATTACKS[config.name](config, input_shape, num_classes)
