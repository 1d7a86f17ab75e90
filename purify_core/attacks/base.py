"""The one contract every attack follows.

An attack knows its trigger (`apply`: put the trigger on every image of a batch), which training
images it poisons (`poison`: a seeded `poison_rate` share of the training set, relabelled to the
target unless the attack is clean-label), how to draw its trigger for the UI (`render_trigger`)
and what its parameters mean (`PARAMS`, `describe`). Everything works in pixel space, [0, 1].
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ..config import AttackConfig, ParamValue
from ..data.image_set import ImageSet
from ..errors import UserInputError
from ..params import ParamSpec  # shared with defenses and rankings; re-exported for attack modules

__all__ = ["Attack", "ParamSpec", "PoisonedSet"]


@dataclass(frozen=True, eq=False)
class PoisonedSet:
    """A training set with some images poisoned, and which ones (to show them in the UI)."""

    images: ImageSet
    poisoned_index: torch.Tensor


class Attack(ABC):
    """Base class: subclasses set `name`, `PARAMS`, `summary`, and implement `apply`."""

    name: ClassVar[str]
    summary: ClassVar[str]
    PARAMS: ClassVar[dict[str, ParamSpec]]
    #: A clean-label attack poisons only target-class images and keeps their labels.
    clean_label: ClassVar[bool] = False

    def __init__(self, config: AttackConfig, input_shape: tuple[int, int, int], num_classes: int) -> None:
        if config.target >= num_classes:
            raise UserInputError(f"target class {config.target} is out of range: this dataset has classes 0..{num_classes - 1}")
        unknown = sorted(set(config.param_dict()) - set(self.PARAMS))
        if unknown:
            raise UserInputError(f"{self.name} has no parameter {', '.join(unknown)}; its parameters are {', '.join(self.PARAMS)}")
        given = config.param_dict()
        self.params: dict[str, ParamValue] = {k: spec.check(k, given.get(k, spec.default), "attack parameter") for k, spec in self.PARAMS.items()}
        self.config = config
        self.target = config.target
        self.poison_rate = config.poison_rate
        self.input_shape = input_shape
        self.num_classes = num_classes

    @abstractmethod
    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Return a copy of the batch `x` (N, C, H, W) in [0, 1] with the trigger on every image."""

    def render_trigger(self) -> torch.Tensor:
        """The trigger as one (C, H, W) image: by default, the trigger on a mid-grey image."""
        return self.apply(torch.full((1, *self.input_shape), 0.5))[0]

    def poison_indices(self, labels: torch.Tensor, seed: int) -> torch.Tensor:
        """The sorted indices to poison: round(poison_rate * N), drawn with `seed` from the eligible images."""
        eligible = torch.nonzero(labels == self.target if self.clean_label else labels != self.target).flatten()
        count = round(self.poison_rate * len(labels))
        if count == 0:
            raise UserInputError(f"poison rate {self.poison_rate} poisons no image of a training set of {len(labels)}: raise it")
        if count > len(eligible):
            which = "target-class" if self.clean_label else "non-target"
            raise UserInputError(
                f"poison rate {self.poison_rate} asks for {count} poisoned images but only {len(eligible)} {which} images exist: lower it"
            )
        generator = torch.Generator().manual_seed(seed)
        chosen = eligible[torch.randperm(len(eligible), generator=generator)[:count]]
        return chosen.sort().values

    def poison(self, train: ImageSet, seed: int) -> PoisonedSet:
        """The training set with the chosen images triggered (and relabelled unless clean-label)."""
        index = self.poison_indices(train.y, seed)
        x, y = train.x.clone(), train.y.clone()
        x[index] = self.apply(x[index])
        if not self.clean_label:
            y[index] = self.target
        return PoisonedSet(ImageSet(x, y), index)

    def describe(self) -> dict[str, Any]:
        """Everything a card or a page needs to say what this attack is."""
        return {
            "name": self.name,
            "summary": self.summary,
            "target": self.target,
            "poison_rate": self.poison_rate,
            "clean_label": self.clean_label,
            "params": dict(self.params),
            "param_help": {k: spec.help for k, spec in self.PARAMS.items()},
        }
