"""Attacks that implant a backdoor: one file each, one contract (`base.Attack`)."""

from __future__ import annotations

from ..config import AttackConfig
from ..errors import UserInputError
from .badnets import BadNets
from .base import Attack, ParamSpec, PoisonedSet
from .blended import Blended
from .sig import Sig
from .wanet import WaNet

__all__ = ["Attack", "ParamSpec", "PoisonedSet", "ATTACKS", "build_attack"]

#: Every attack by its config name.
ATTACKS: dict[str, type[Attack]] = {cls.name: cls for cls in (BadNets, Blended, WaNet, Sig)}


def build_attack(config: AttackConfig, input_shape: tuple[int, int, int], num_classes: int) -> Attack:
    """The attack a config names, checked against the images it will poison."""
    if config.name not in ATTACKS:
        raise UserInputError(f"unknown attack {config.name!r}; choose one of {', '.join(ATTACKS)}")
    return ATTACKS[config.name](config, input_shape, num_classes)
