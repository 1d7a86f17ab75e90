"""Grades the field can compare: BackdoorBench's DER, and the Pareto front of ACC drop vs ASR.

DER (defense effectiveness rating, BackdoorBench, Wu et al. 2022) folds what a defense removed
and what it cost into one number in [0, 1]:

    DER = [max(0, dASR) - max(0, dACC) + 1] / 2,   dASR = ASR before - after,  dACC = ACC before - after

with ACC and ASR as **fractions in [0, 1]**, not percents (the formula is easy to get wrong with
percents: the +1 then means one point). 0.5 = nothing changed; 1 = the backdoor erased at no ACC
cost; a defense that raises ASR or ACC gets no credit or blame for it (the max(0, .)).

A run is on the **Pareto front** of (ACC drop, ASR after) when no other run has both a lower
ACC drop and a lower ASR: the runs a defender might rationally pick, whatever they weigh.
Everything here is the evaluator's view (ASR needs the trigger): it grades, it never chooses.
"""

from __future__ import annotations

import math
from typing import Sequence

from ..errors import UserInputError
from ..models.evaluate import Metrics

__all__ = ["der", "der_of", "pareto_front"]


def _fraction(name: str, value: float) -> float:
    if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
        raise UserInputError(f"{name} must be a fraction in [0, 1] (not a percent), got {value}")
    return float(value)


def der(acc_before: float, asr_before: float, acc_after: float, asr_after: float) -> float:
    """BackdoorBench's DER from ACC and ASR before and after, each a fraction in [0, 1]."""
    a0, s0 = _fraction("ACC before", acc_before), _fraction("ASR before", asr_before)
    a1, s1 = _fraction("ACC after", acc_after), _fraction("ASR after", asr_after)
    return (max(0.0, s0 - s1) - max(0.0, a0 - a1) + 1.0) / 2.0


def der_of(before: Metrics | None, after: Metrics | None) -> float | None:
    """DER of a run from its before/after `Metrics`; None where either, or an ASR, was not measured."""
    if before is None or after is None or before.asr is None or after.asr is None:
        return None
    if math.isnan(before.asr) or math.isnan(after.asr):
        return None
    return der(before.acc, before.asr, after.acc, after.asr)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For each (ACC drop, ASR) point: is it on the front, i.e. has no other point both a lower
    ACC drop and a lower ASR? (Ties on either axis do not push a point off the front.)"""
    return [not any(x < xi and y < yi for x, y in points) for xi, yi in points]
