"""One setting of a pluggable part (an attack's trigger, a defense, a ranking): `ParamSpec`.

Attacks, defenses and rankings declare their settings with the same type, so the CLI builds its
flags and the app its widgets (`ui.widgets.param_input`) from one description, and every value is
checked by one rule before it reaches any code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from .config import MAX_SEED, ParamValue, shown
from .errors import UserInputError

__all__ = ["ParamSpec", "ParamValue", "check_settings"]


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: its default, its type, its allowed values and what it does.

    Every number has both bounds (`high` defaults to `MAX_SEED`), so no value overflows a
    library call later: a seed past torch's range or a patch of 10**30 pixels is refused here.
    """

    default: ParamValue
    help: str
    choices: tuple[str, ...] | None = None
    low: float | None = None
    high: float | None = MAX_SEED
    #: For a free-form value (a path): the safe values a web form offers instead of a text box.
    offered: tuple[str, ...] | None = None

    def check(self, name: str, value: Any, what: str = "parameter") -> ParamValue:
        """Coerce `value` to the default's type and check it, or raise a message naming the fix.

        `what` starts the message ("attack parameter", "fine-pruning setting").
        """
        kind = type(self.default)
        if isinstance(value, float) and not math.isfinite(value):  # inf and NaN pass int() and float() checks badly or not at all
            raise UserInputError(f"{what} {name}={value} must be a finite number")
        try:
            if kind is bool:
                value = value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
            elif kind is int and isinstance(value, float):
                if not value.is_integer():
                    raise ValueError(value)
                value = int(value)
            else:
                value = kind(value)
        except (TypeError, ValueError, OverflowError):
            raise UserInputError(f"{what} {name}={shown(value)} must be a {kind.__name__}") from None
        if kind is float and not math.isfinite(value):  # e.g. the text "nan"
            raise UserInputError(f"{what} {name}={value} must be a finite number")
        if kind is str and len(value) > 4096:
            raise UserInputError(f"{what} {name} is {len(value)} characters long; at most 4096")
        if self.choices is not None and value not in self.choices:
            raise UserInputError(f"{what} {name}={value!r}: choose one of {', '.join(self.choices)}")
        if kind not in (int, float):
            return value
        if self.low is not None and value < self.low:
            raise UserInputError(f"{what} {name}={shown(value)} must be >= {self.low}")
        if self.high is not None and value > self.high:
            raise UserInputError(f"{what} {name}={shown(value)} must be <= {self.high}")
        return value


def check_settings(owner: str, params: Mapping[str, ParamSpec], given: Mapping[str, Any] | None) -> dict[str, ParamValue]:
    """Every setting of `owner` checked, defaults filled in; an unknown key names the choices."""
    given = dict(given or {})
    unknown = sorted(set(given) - set(params))
    if unknown:
        known = ", ".join(params) if params else "none"
        raise UserInputError(f"{owner} has no setting {', '.join(map(str, unknown))}; its settings are: {known}")
    return {k: spec.check(k, given.get(k, spec.default), f"{owner} setting") for k, spec in params.items()}
