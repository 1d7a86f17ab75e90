"""A model card: what a checkpoint is, checked field by field before anything is built from it.

A card arrives from disk or from a user, so every field's type and bounds are checked when it is
made (`Card.__post_init__`, `Card.from_dict`): a wrong type, a non-finite number, an enormous
declared shape or class count, or JSON nested too deep is one `UserInputError`, never a traceback
or a huge allocation later.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..config import MAX_CLASSES, Scenario, shown
from ..errors import UserInputError

__all__ = ["Card", "CARD_VERSION"]

CARD_VERSION = 1
_MAX_SIDE, _MAX_CHANNELS, _MAX_COUNT = 4096, 16, 10**9
_CARD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,160}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _card_check(condition: bool, message: str) -> None:
    if not condition:
        raise UserInputError(f"not a valid model card: {message}")


def _whole(value: Any, what: str, low: int, high: int) -> int:
    _card_check(isinstance(value, numbers.Integral) and not isinstance(value, bool) and low <= value <= high,
                f"{what} must be a whole number in [{low}, {high}], got {shown(value)}")
    return int(value)


def _number(value: Any, what: str, low: float, high: float, optional: bool = False) -> float | None:
    if optional and value is None:
        return None
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and low <= value <= high  # NaN fails the comparison
    _card_check(ok, f"{what} must be a number in [{low}, {high}], got {shown(value)}")
    return float(value)


def _plain_json(value: Any, what: str, depth: int = 0) -> None:
    """A small tree of JSON values (text keys, finite numbers), at most 8 levels deep."""
    _card_check(depth <= 8, f"{what} is nested more than 8 levels deep")
    if isinstance(value, Mapping):
        _card_check(len(value) <= 256 and all(isinstance(k, str) and len(k) <= 200 for k in value),
                    f"{what} must map at most 256 short text keys")
        for item in value.values():
            _plain_json(item, what, depth + 1)
    elif isinstance(value, (list, tuple)):
        _card_check(len(value) <= 256, f"{what} holds a list of more than 256 items")
        for item in value:
            _plain_json(item, what, depth + 1)
    elif isinstance(value, float):
        _card_check(math.isfinite(value), f"{what} holds a non-finite number ({value})")
    elif isinstance(value, str):
        _card_check(len(value) <= 4096, f"{what} holds a text of more than 4096 characters")
    else:
        _card_check(value is None or isinstance(value, (bool, int)) and abs(value) < 2**63, f"{what} holds {shown(value)}")


@dataclass(frozen=True)
class Card:
    """What a checkpoint is: its scenario, the trigger, and what it measured when it was built.

    ACC and ASR are percentages on the scenario's clean test split; `clean_acc` / `clean_asr`
    come from a model trained the same way without poisoning (the price and effect of the attack).
    """

    name: str
    scenario: dict[str, Any]
    input_shape: tuple[int, int, int]
    num_classes: int
    classes: tuple[str, ...]
    trigger: dict[str, Any]
    acc: float
    asr: float
    clean_acc: float | None
    clean_asr: float | None
    train_seconds: float
    clean_train_seconds: float | None
    n_train: int
    n_poisoned: int
    sha256: str
    versions: dict[str, str] = field(default_factory=dict)
    card_version: int = CARD_VERSION

    def __post_init__(self) -> None:
        """Check every field's type and bounds, so nothing is built from a card that declares nonsense."""
        _card_check(isinstance(self.name, str) and bool(_CARD_NAME.fullmatch(self.name)), f"name {shown(self.name)} is not a model name")
        _plain_json(self.scenario, "its scenario")
        Scenario.from_dict(self.scenario)  # raises UserInputError naming the bad field
        shape = self.input_shape
        _card_check(isinstance(shape, (list, tuple)) and len(shape) == 3, f"input_shape must be [channels, height, width], got {shown(shape)}")
        shape = (_whole(shape[0], "input_shape's channels", 1, _MAX_CHANNELS), _whole(shape[1], "input_shape's height", 1, _MAX_SIDE),
                 _whole(shape[2], "input_shape's width", 1, _MAX_SIDE))
        num_classes = _whole(self.num_classes, "num_classes", 2, MAX_CLASSES)
        classes = self.classes
        _card_check(isinstance(classes, (list, tuple)) and len(classes) == num_classes
                    and all(isinstance(c, str) and len(c) <= 200 for c in classes),
                    f"classes must be {num_classes} short names (num_classes), got {shown(classes)}")
        _card_check(isinstance(self.trigger, Mapping), f"trigger must be a mapping, got {shown(self.trigger)}")
        _plain_json(self.trigger, "its trigger")
        for key in ("acc", "asr"):
            _number(getattr(self, key), key, 0.0, 100.0)
        for key in ("clean_acc", "clean_asr"):
            _number(getattr(self, key), key, 0.0, 100.0, optional=True)
        _number(self.train_seconds, "train_seconds", 0.0, 1e9)
        _number(self.clean_train_seconds, "clean_train_seconds", 0.0, 1e9, optional=True)
        _whole(self.n_train, "n_train", 0, _MAX_COUNT)
        _whole(self.n_poisoned, "n_poisoned", 0, _MAX_COUNT)
        _card_check(isinstance(self.sha256, str) and (self.sha256 == "" or bool(_SHA256.fullmatch(self.sha256))),
                    f"sha256 must be 64 lowercase hex digits, got {shown(self.sha256)}")
        _card_check(isinstance(self.versions, Mapping) and len(self.versions) <= 64
                    and all(isinstance(k, str) and isinstance(v, str) and len(k) + len(v) <= 400 for k, v in self.versions.items()),
                    "versions must map short names to short texts")
        _whole(self.card_version, "card_version", 1, CARD_VERSION)
        object.__setattr__(self, "input_shape", shape)
        object.__setattr__(self, "classes", tuple(classes))

    @property
    def scenario_config(self) -> Scenario:
        return Scenario.from_dict(self.scenario)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> "Card":
        """A card from parsed JSON: a `Card`, or one `UserInputError` naming the first thing wrong."""
        _card_check(isinstance(d, Mapping), f"expected a JSON object, got {shown(d)}")
        names = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(n for n in names if n not in d and n not in ("versions", "card_version"))
        if missing:
            raise UserInputError(f"model card is missing {', '.join(missing)}")
        return cls(**{k: v for k, v in d.items() if k in names})
