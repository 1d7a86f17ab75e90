"""A run's verdict in one line: ACC and ASR before -> after, and whether the backdoor is erased.

One rule, written once: the backdoor is **erased** when the ASR after the run is below
`ERASED_ASR` (5%, the same bar as the "steps to ASR<5%" column). A model that lost more than
`COSTLY_ACC_DROP` of its clean accuracy is said to be erased *at a cost*: a model broken enough
also stops obeying the trigger. ASR is the evaluator's view; no defense reads this verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..method.purify import ERASED_ASR
from ..models.evaluate import Metrics

__all__ = ["ERASED_ASR", "COSTLY_ACC_DROP", "Verdict", "verdict"]

#: A clean-accuracy drop (fraction) beyond which "erased" gets "at a cost".
COSTLY_ACC_DROP = 0.05


@dataclass(frozen=True)
class Verdict:
    """ACC and ASR before and after (fractions; None where not measured), and what they mean."""

    acc_before: float | None
    acc_after: float | None
    asr_before: float | None
    asr_after: float | None

    @property
    def erased(self) -> bool | None:
        """True when the ASR after is below `ERASED_ASR`; None when it was not measured (no trigger, or no result)."""
        return None if self.asr_after is None else self.asr_after < ERASED_ASR

    @property
    def costly(self) -> bool:
        """True when clean accuracy fell by more than `COSTLY_ACC_DROP`."""
        return None not in (self.acc_before, self.acc_after) and self.acc_before - self.acc_after > COSTLY_ACC_DROP

    @property
    def word(self) -> str:
        """The verdict as a table cell: "erased", "erased at a cost", "not erased", or "-" (not measured)."""
        if self.erased is None:
            return "-"
        return ("erased at a cost" if self.costly else "erased") if self.erased else "not erased"

    def sentence(self) -> str:
        """The verdict with its reason, e.g. "Erased: ASR 100.0% -> 0.4% (below 5%); ACC 97.2% -> 96.9%."."""
        def pct(x: float | None) -> str:
            return "-" if x is None else f"{100 * x:.1f}%"

        numbers = f"ASR {pct(self.asr_before)} -> {pct(self.asr_after)}; ACC {pct(self.acc_before)} -> {pct(self.acc_after)}"
        bar = f"{100 * ERASED_ASR:g}%"
        if self.erased is None:
            return f"Not measured: {numbers} (no ASR after this run)."
        if not self.erased:
            return f"Not erased: {numbers} (the backdoor is erased when ASR falls below {bar})."
        already = (f" ASR was below {bar} before the run already." if self.asr_before is not None and self.asr_before < ERASED_ASR
                   else "")
        if self.costly:
            return (f"Erased at a cost: {numbers}. ASR is below {bar}, but clean accuracy fell by more than "
                    f"{100 * COSTLY_ACC_DROP:g} points.{already}")
        return f"Erased: {numbers} (ASR below {bar}).{already}"


def verdict(before: Metrics | None, after: Metrics | None) -> Verdict:
    """The verdict of a run from its summary's metrics before and after (either may be missing)."""
    return Verdict(acc_before=before.acc if before else None, acc_after=after.acc if after else None,
                   asr_before=before.asr if before else None, asr_after=after.asr if after else None)
