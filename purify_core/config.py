"""Frozen configs and named presets.

A config is a frozen dataclass of plain values, so it is hashable (it keys caches), prints
readably, and round-trips through JSON (zoo cards, the page URL). Every field's type and bounds
are checked here, in `__post_init__`, so a config read from a card or a link is as safe as one
built in code: a wrong type, a non-finite number or an out-of-range value is one `UserInputError`.
The ranges of attack parameters are checked by the attack itself (`build_attack`); their types
and finiteness here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import UserInputError

__all__ = [
    "DATASETS",
    "ARCHITECTURES",
    "DataConfig",
    "AttackConfig",
    "ModelConfig",
    "TrainConfig",
    "Scenario",
    "PRESETS",
    "scenario_preset",
    "MAX_SEED",
    "MAX_CLASSES",
    "check_seed",
    "shown",
]

#: Datasets `load_splits` knows. `mnist5k` and `digits` ship inside Python packages.
DATASETS = ("mnist5k", "digits", "cifar10", "gtsrb", "imagefolder")
#: Built-in architectures; any torchvision classifier name works too (`tv:<name>`).
ARCHITECTURES = ("smallcnn", "smallvgg", "preactresnet18")
#: The most classes a dataset or a card may declare (ImageNet-21k has 21,841).
MAX_CLASSES = 100_000

ParamValue = int | float | str | bool

#: Every seed (scenario, data split, trigger pattern, purification run; CLI, cards and links alike)
#: is a whole number in [0, MAX_SEED]: torch's and numpy's generators and scikit-learn's
#: `random_state` all take it (and `split_seed + 1`), so no seed overflows deep inside a library.
MAX_SEED = 2**31 - 1
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")  # attack and dataset names become parts of file names
_TV_NAME = re.compile(r"tv:[A-Za-z0-9_]{1,60}")
_MAX_TEXT = 4096


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise UserInputError(message)


def shown(value: Any, limit: int = 60) -> str:
    """`repr(value)` cut to `limit` characters: a message never prints an untrusted object whole."""
    try:
        text = repr(value) if not isinstance(value, (dict, list, tuple)) or len(value) < 20 else f"<{type(value).__name__} of {len(value)}>"
    except (RecursionError, ValueError):  # deeply nested, or an int too long to print
        text = f"<{type(value).__name__} too large to show>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _whole(value: Any, what: str, low: int, high: int) -> int:
    """A whole number (not a bool, not a float) in [low, high]."""
    _check(isinstance(value, numbers.Integral) and not isinstance(value, bool), f"{what} must be a whole number, got {shown(value)}")
    _check(low <= value <= high, f"{what} must be in [{low}, {high}], got {shown(value)}")
    return int(value)


def _real(value: Any, what: str) -> float:
    """A finite real number (an int is fine; a bool, a string or NaN is not)."""
    _check(isinstance(value, numbers.Real) and not isinstance(value, bool), f"{what} must be a number, got {shown(value)}")
    try:
        value = float(value)
    except OverflowError:  # an int beyond float's range
        value = math.inf
    _check(math.isfinite(value), f"{what} must be a finite number, got {shown(value)}")
    return value


def _text(value: Any, what: str, optional: bool = False) -> str | None:
    if optional and value is None:
        return None
    _check(isinstance(value, str), f"{what} must be text, got {shown(value)}")
    _check(len(value) <= _MAX_TEXT and "\0" not in value, f"{what} must be at most {_MAX_TEXT} characters without NUL bytes")
    return value


def check_seed(value: Any, what: str = "seed") -> int:
    """The one rule for every seed: a whole number in [0, MAX_SEED]."""
    _check(isinstance(value, numbers.Integral) and not isinstance(value, bool) and 0 <= value <= MAX_SEED,
           f"{what} must be a whole number in [0, {MAX_SEED}], got {shown(value)}")
    return int(value)


def _set(obj: Any, **values: Any) -> None:
    """Store checked (normalised) values on a frozen dataclass."""
    for key, value in values.items():
        object.__setattr__(obj, key, value)


def _param_value(key: Any, value: Any) -> tuple[str, ParamValue]:
    _check(isinstance(key, str) and 0 < len(key) <= 64, f"attack parameter names must be short text, got {shown(key)}")
    _check(isinstance(value, (bool, int, float, str)), f"attack parameter {key} must be a number, text or true/false, got {shown(value)}")
    if isinstance(value, float):
        _check(math.isfinite(value), f"attack parameter {key}={value} must be a finite number")
    elif isinstance(value, int) and not isinstance(value, bool):
        _check(abs(value) <= 2**63 - 1, f"attack parameter {key}={shown(value)} is out of range")
    elif isinstance(value, str):
        _text(value, f"attack parameter {key}")
    return key, value


@dataclass(frozen=True)
class DataConfig:
    """Which images, and how they are split into train / test / clean defense set.

    `test_fraction` applies only to datasets without an official test split (mnist5k, digits,
    an ImageFolder without `train/` and `test/`). The defense set is held out of the training
    pool, so the backdoored model never trained on it: the defender's own clean data.
    """

    dataset: str = "mnist5k"
    root: str | None = None
    download: bool = False
    image_size: int = 32
    test_fraction: float = 0.2
    defense_fraction: float = 0.05
    split_seed: int = 0

    def __post_init__(self) -> None:
        _check(isinstance(self.dataset, str) and self.dataset in DATASETS, f"unknown dataset {shown(self.dataset)}; choose one of {', '.join(DATASETS)}")
        _check(isinstance(self.download, bool), f"download must be true or false, got {shown(self.download)}")
        _set(self, root=_text(self.root, "the data root", optional=True), image_size=_whole(self.image_size, "image_size", 8, 512),
             test_fraction=_real(self.test_fraction, "test_fraction"), defense_fraction=_real(self.defense_fraction, "defense_fraction"),
             split_seed=check_seed(self.split_seed, "split_seed"))
        _check(0.0 < self.test_fraction < 1.0, f"test_fraction must be in (0, 1), got {self.test_fraction}")
        _check(0.0 < self.defense_fraction < 1.0, f"defense_fraction must be in (0, 1), got {self.defense_fraction}")
        _check(8 <= self.image_size <= 512, f"image_size must be in [8, 512], got {self.image_size}")
        if self.dataset in ("cifar10", "gtsrb", "imagefolder"):
            _check(bool(self.root), f"dataset {self.dataset!r} needs a root folder (--data-root)")


@dataclass(frozen=True)
class AttackConfig:
    """An attack by name, its target class, poison rate and trigger parameters.

    `params` is a sorted tuple of (key, value) pairs so the config stays hashable; use
    `AttackConfig.of(name, **params)` to build one and `param_dict()` to read them.
    `poison_rate` is the fraction of the whole training set that is poisoned.
    """

    name: str = "badnets"
    target: int = 0
    poison_rate: float = 0.1
    params: tuple[tuple[str, ParamValue], ...] = ()

    def __post_init__(self) -> None:
        _check(isinstance(self.name, str) and bool(_NAME.fullmatch(self.name)), f"unknown attack {shown(self.name)}")
        _check(isinstance(self.target, numbers.Integral) and not isinstance(self.target, bool) and 0 <= self.target <= MAX_CLASSES,
               f"target class must be a non-negative integer, got {shown(self.target)}")
        _set(self, target=int(self.target), poison_rate=_real(self.poison_rate, "poison rate"))
        _check(0.0 < self.poison_rate <= 0.5, f"poison rate must be in (0, 0.5], got {self.poison_rate}")
        try:
            pairs = dict(self.params).items()
        except (TypeError, ValueError):
            raise UserInputError(f"attack parameters must be a mapping of names to values, got {shown(self.params)}") from None
        _check(len(pairs) <= 32, f"an attack has at most 32 parameters, got {len(pairs)}")
        _set(self, params=tuple(sorted(_param_value(k, v) for k, v in pairs)))

    @classmethod
    def of(cls, name: str, target: int = 0, poison_rate: float = 0.1, **params: ParamValue) -> "AttackConfig":
        return cls(name=name, target=target, poison_rate=poison_rate, params=tuple(params.items()))

    def param_dict(self) -> dict[str, ParamValue]:
        return dict(self.params)


@dataclass(frozen=True)
class ModelConfig:
    """An architecture name: one of `ARCHITECTURES` or `tv:<torchvision model name>`."""

    arch: str = "smallcnn"

    def __post_init__(self) -> None:
        _check(
            isinstance(self.arch, str) and (self.arch in ARCHITECTURES or bool(_TV_NAME.fullmatch(self.arch))),
            f"unknown architecture {shown(self.arch)}; choose one of {', '.join(ARCHITECTURES)} or tv:<torchvision name>",
        )


@dataclass(frozen=True)
class TrainConfig:
    """How a model is trained: plain SGD with momentum, no augmentation.

    `optimizer` stays a field (every card and cache key names it) but only "sgd" is accepted:
    Adam was an option nothing used, and a card naming it is refused with one line."""

    epochs: int = 8
    batch_size: int = 64
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    optimizer: str = "sgd"

    def __post_init__(self) -> None:
        _set(self, epochs=_whole(self.epochs, "epochs", 1, 1000), batch_size=_whole(self.batch_size, "batch size", 1, 65536),
             lr=_real(self.lr, "learning rate"), momentum=_real(self.momentum, "momentum"), weight_decay=_real(self.weight_decay, "weight decay"))
        _check(0.0 < self.lr <= 10.0, f"learning rate must be in (0, 10], got {self.lr}")
        _check(0.0 <= self.momentum < 1.0, f"momentum must be in [0, 1), got {self.momentum}")
        _check(0.0 <= self.weight_decay <= 1.0, f"weight decay must be in [0, 1], got {self.weight_decay}")
        _check(self.optimizer == "sgd", f"optimizer must be 'sgd' (the lab trains with SGD only), got {shown(self.optimizer)}")


@dataclass(frozen=True)
class Scenario:
    """Dataset + architecture + attack + training + seed: with its weights, a backdoored model."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    attack: AttackConfig = field(default_factory=AttackConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        for key, kind in (("data", DataConfig), ("model", ModelConfig), ("attack", AttackConfig), ("train", TrainConfig)):
            _check(isinstance(getattr(self, key), kind), f"a scenario's {key} must be a {kind.__name__}, got {shown(getattr(self, key))}")
        _set(self, seed=check_seed(self.seed))

    @property
    def name(self) -> str:
        """Readable name, e.g. `mnist5k-smallcnn-badnets` (seed appended when not 0)."""
        arch = self.model.arch.replace("tv:", "tv-")
        base = f"{self.data.dataset}-{arch}-{self.attack.name}"
        return base if self.seed == 0 else f"{base}-s{self.seed}"

    @property
    def fingerprint(self) -> str:
        """Short hash of every setting: two scenarios share it only if they train the same model."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["attack"]["params"] = self.attack.param_dict()
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Scenario":
        """The scenario a card or a link describes; any wrong key, type or value is one `UserInputError`."""
        _check(isinstance(d, Mapping), f"not a valid scenario description: expected a mapping, got {shown(d)}")
        sections = {}
        for key in ("data", "model", "attack", "train"):
            _check(key in d, f"not a valid scenario description: it has no {key!r} section")
            _check(isinstance(d[key], Mapping), f"not a valid scenario description: its {key!r} must be a mapping, got {shown(d[key])}")
            _check(all(isinstance(k, str) for k in d[key]), f"not a valid scenario description: its {key!r} has a key that is not text")
            sections[key] = dict(d[key])
        params = sections["attack"].get("params", {})
        _check(isinstance(params, Mapping), f"not a valid scenario description: attack params must be a mapping, got {shown(params)}")
        sections["attack"]["params"] = tuple(params.items())
        try:
            return cls(
                data=DataConfig(**sections["data"]),
                model=ModelConfig(**sections["model"]),
                attack=AttackConfig(**sections["attack"]),
                train=TrainConfig(**sections["train"]),
                seed=d.get("seed", 0),
            )
        except TypeError as exc:  # an unknown or missing field
            raise UserInputError(f"not a valid scenario description: {str(exc)[:200]}") from None


# Trigger parameters tuned per preset, so every shipped scenario reaches ASR >= 95% with ACC
# within 1.5 points of a clean model (README, "The zoo"). SIG needs a strong signal on MNIST:
# with delta 0.25 its ASR was 7%, with 0.6 95%, with 0.8 100% (poison rate 0.08, 8 epochs).
_DEMO_ATTACKS: dict[str, dict[str, ParamValue]] = {
    "badnets": {"size": 4, "position": "bottom-right", "pattern": "checkerboard"},
    "blended": {"pattern": "noise", "alpha": 0.2, "pattern_seed": 0},
    "wanet": {"grid_size": 4, "strength": 1.0, "pattern_seed": 0},
    "sig": {"delta": 0.8, "frequency": 6},
}
_TINY_ATTACKS: dict[str, dict[str, ParamValue]] = {
    "badnets": {"size": 2, "position": "bottom-right", "pattern": "checkerboard"},
    "blended": {"pattern": "noise", "alpha": 0.2, "pattern_seed": 0},
    "wanet": {"grid_size": 2, "strength": 1.0, "pattern_seed": 0},
    "sig": {"delta": 0.8, "frequency": 2},
}

PRESETS = ("tiny", "demo")


def scenario_preset(preset: str = "demo", attack: str = "badnets", seed: int = 0) -> Scenario:
    """A named scenario: `demo` is the app default (mnist5k, small CNN), `tiny` runs in seconds."""
    if preset == "demo":
        params = _DEMO_ATTACKS
        data, train = DataConfig(dataset="mnist5k"), TrainConfig(epochs=8)
    elif preset == "tiny":
        params = _TINY_ATTACKS
        data, train = DataConfig(dataset="digits", defense_fraction=0.1), TrainConfig(epochs=6, batch_size=32, lr=0.05)
    else:
        raise UserInputError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    _check(attack in params, f"unknown attack {attack!r}; choose one of {', '.join(params)}")
    rate = 0.08 if attack == "sig" else 0.1  # clean-label: only target-class images (about 10%) can carry it
    return Scenario(data=data, model=ModelConfig("smallcnn"), attack=AttackConfig.of(attack, 0, rate, **params[attack]), train=train, seed=seed)
