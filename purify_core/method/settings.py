"""The settings of a purification run: `PurifyConfig` (every knob, checked once), the named presets
(the lab default, the paper as written, the authors' code) and the one loop every baseline defense
fine-tunes in. Apart from the loop in `purify`, so a settings change is read in one small file.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from ..config import check_seed, shown
from ..errors import UserInputError
from .marking import check_direction, check_scope, check_threshold
from .rankings import DEFENDER_METRICS, SALIENCE_VARIANTS
from .regularizers import check_kappa, check_regularizer, check_strength
from .steps import CLASSIFIER_INITS, DISTILL_SCHEDULES, DISTILL_VIEWS, check_reinit, unknown_choice

__all__ = ["PurifyConfig", "MAX_ROTATE", "MAX_SCALE", "PURIFY_PRESETS", "PRESET_LABELS", "purify_preset", "BASELINE_FINE_TUNING", "baseline_config"]


#: The largest random rotation (degrees) and scaling (a fraction) the student's images may get: a digit
#: turned further than this is another shape (a 6 and a 9), and the images are small.
MAX_ROTATE = 45.0
MAX_SCALE = 0.5


def _number_in(value: object, low: float, high: float) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high


@dataclass(frozen=True)
class PurifyConfig:
    """Every setting of one purification run: ranking, marking, regularizer and optimiser."""

    metric: str = "salience"
    variant: str = "abs"
    eta: float = 0.9
    threshold: float = 0.1
    scope: str = "layer"
    direction: str = "highest"
    layers: str | tuple[str, ...] = "all"
    regularizer: str = "ar"
    strength: float = 0.05
    kappa: float | None = None
    epochs: int = 20
    lr: float = 0.01
    unmarked_lr: float = 1.0
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 32
    cosine: bool = True
    shift: int = 2
    rotate: float = 0.0  # the student's images also turned by up to this many degrees (each its own draw),
    scale: float = 0.0  # and scaled by up to this fraction; a distillation teacher answers them unturned (data.augment)
    dynamic: bool = False
    beta: float = 0.5
    eval_every: int = 10
    seed: int = 0
    reinit: str | tuple[str, ...] = "none"
    distill: float = 0.0
    temperature: float = 2.0
    distill_schedule: str = "constant"
    distill_view: str = "shifted"
    classifier_init: str = "default"

    def __post_init__(self) -> None:
        if isinstance(self.reinit, list):
            object.__setattr__(self, "reinit", tuple(self.reinit))  # from JSON (a link, a saved run)
        for ok, message in [
            (self.metric in DEFENDER_METRICS, f"unknown or oracle-only ranking {self.metric!r}; choose one of {', '.join(DEFENDER_METRICS)}"),
            (self.variant in SALIENCE_VARIANTS, f"unknown salience variant {self.variant!r}; choose one of {', '.join(SALIENCE_VARIANTS)}"),
        ]:
            if not ok:
                raise UserInputError(message)
        # the marking and regularizer settings: the same checks `mark` and `build_regularizer` make
        check_threshold(self.threshold)
        check_scope(self.scope)
        check_direction(self.direction)
        check_regularizer(self.regularizer)
        check_strength(self.strength)
        check_kappa(self.kappa)
        checks = [
            (isinstance(self.epochs, int) and not isinstance(self.epochs, bool) and 0 <= self.epochs <= 1000,
             f"epochs must be a whole number from 0 to 1000, got {self.epochs}"),
            (0.0 < self.lr < math.inf, f"the learning rate must be a finite number > 0, got {self.lr}"),
            (0.0 <= self.unmarked_lr <= 1.0, f"unmarked_lr is a multiplier in [0, 1], got {self.unmarked_lr}"),
            (0.0 <= self.momentum < 1.0, f"momentum must be in [0, 1), got {self.momentum}"),
            (self.weight_decay >= 0, f"weight decay must be >= 0, got {self.weight_decay}"),
            (isinstance(self.batch_size, int) and self.batch_size >= 1, f"the batch size must be a whole number >= 1, got {self.batch_size}"),
            (isinstance(self.shift, int) and 0 <= self.shift <= 8, f"shift must be a whole number of pixels from 0 to 8, got {self.shift}"),
            (_number_in(self.rotate, 0.0, MAX_ROTATE), f"rotate must be a number of degrees from 0 to {MAX_ROTATE:g}, got {shown(self.rotate)}"),
            (_number_in(self.scale, 0.0, MAX_SCALE), f"scale must be a number from 0 to {MAX_SCALE:g}, got {shown(self.scale)}"),
            (0.0 <= self.beta <= 1.0, f"beta must be in [0, 1], got {self.beta}"),
            (isinstance(self.eval_every, int) and self.eval_every >= 1, f"eval_every must be a whole number >= 1, got {self.eval_every}"),
            (0.0 <= self.eta < 1.0, f"eta must be in [0, 1), got {self.eta}"),
            (check_reinit(self.reinit) is None, check_reinit(self.reinit) or ""),
            (isinstance(self.distill, (int, float)) and 0.0 <= self.distill <= 1.0, f"the distillation weight must be in [0, 1], got {self.distill}"),
            (isinstance(self.temperature, (int, float)) and 0.0 < self.temperature <= 100.0,
             f"the distillation temperature must be a number in (0, 100], got {self.temperature}"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserInputError(message)
        for problem in (unknown_choice("distillation schedule", self.distill_schedule, DISTILL_SCHEDULES),
                        unknown_choice("distillation view", self.distill_view, DISTILL_VIEWS),
                        unknown_choice("classifier init", self.classifier_init, CLASSIFIER_INITS)):
            if problem:
                raise UserInputError(problem)
        check_seed(self.seed, "the purification seed")  # the one seed rule, as for training and cards

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["layers"] = d["layers"] if isinstance(d["layers"], str) else list(d["layers"])
        d["reinit"] = d["reinit"] if isinstance(d["reinit"], str) else list(d["reinit"])
        return d


_REFERENCE = PurifyConfig(
    variant="ema-signed", eta=0.9, threshold=0.05, direction="lowest", layers="final-linear", dynamic=True, beta=0.5,
    regularizer="ar", kappa=1.0, strength=0.01, lr=0.01, momentum=0.0, weight_decay=0.0, cosine=False, shift=0,
)

PURIFY_PRESETS: dict[str, PurifyConfig] = {
    # Chosen by `python -m purify_core.bench defaults` from clean accuracy only (benchmarks/defaults.md):
    # zero the 80% least active channels of the last conv layer on the clean set (Fine-Pruning's
    # criterion; held at zero), re-initialise every linear layer, fine-tune 40 epochs with the task loss
    # mixed 50/50 with distillation from the original model, whose answer is the mean of its answers on
    # the shifted and on the unshifted image; the student's images are also turned by up to 10 degrees and scaled
    # by up to 10% (the teacher answers them unturned). (`PurifyConfig()` itself stays the paper's AR loop: the
    # grid's starting point.)
    "default": PurifyConfig(metric="activation", direction="lowest", threshold=0.8, layers="last-conv", regularizer="prune",
                            reinit="dense", distill=0.5, distill_view="both", epochs=40, rotate=10.0, scale=0.1),
    # The paper as written: the lowest benign salience is infected; AR on those neurons (final linear
    # layer, ema-signed salience, dynamic schedule, kappa 1, plain SGD as in the authors' setup).
    "reference": _REFERENCE,
    # The authors' public code: EMA salience, the final linear layer, the *highest*-salience share
    # growing from beta 0.5 to 1, AR with kappa 1 and alpha (strength) 0.01. Their AR gradient had
    # the wrong sign for w < -1; `regularizers.ar_penalty` is written on |w|, so that is fixed here.
    "authors-code": replace(_REFERENCE, direction="highest"),
}

#: What each preset is, in words (the app and the CLI show these next to the name).
PRESET_LABELS: dict[str, str] = {
    "default": "lab default: prune least-active conv + re-init dense + distil (shifted and clean views) + turned, scaled student images",
    "reference": "the paper as written: lowest benign salience, AR",
    "authors-code": "the authors' public code: highest EMA salience, final linear layer, AR (sign fix)",
}


#: The fine-tuning loop every baseline defense runs in outside the app (`defend`, `reactivate`, `bench
#: claims`, `bench arena`, `bench reactivate`): the dataclass's own optimiser (SGD 0.01, momentum 0.9,
#: weight decay 5e-4, batch 32, cosine, 2-pixel shifts, 20 epochs), with no penalty, re-initialisation or
#: distillation. One definition, so the lab default's recipe can change without moving the baselines it
#: is measured against (each defense sets its own marking and steps; in the app a defense fine-tunes with
#: the page's epochs, learning rate and seed instead).
BASELINE_FINE_TUNING = PurifyConfig(regularizer="none", threshold=0.0)


def baseline_config(**overrides: Any) -> PurifyConfig:
    """`BASELINE_FINE_TUNING` with some fields replaced (epochs, lr, seed from a flag)."""
    try:
        return replace(BASELINE_FINE_TUNING, **overrides)
    except TypeError as error:
        raise UserInputError(f"unknown fine-tuning setting: {error}") from None


def purify_preset(name: str = "default", **overrides: Any) -> PurifyConfig:
    """A named preset with some fields replaced (the CLI and the app build configs this way)."""
    if name not in PURIFY_PRESETS:
        raise UserInputError(f"unknown purification preset {name!r}; choose one of {', '.join(PURIFY_PRESETS)}")
    try:
        return replace(PURIFY_PRESETS[name], **overrides)
    except TypeError as error:
        raise UserInputError(f"unknown purification setting: {error}") from None
