"""The paper's premise as a question the student answers, and what this lab found, said where it matters.

The paper marks the neurons with the LOWEST benign salience as infected. On this lab's shipped
models the infected neurons sit at the HIGH end (README, Benchmarks, claim 1), so the pages ask
the student to predict, then show the evidence in words. `auc_reading` and `measured_end` are plain
functions of the numbers (tested without Streamlit); `callout` and `premise_question` draw.
"""

from __future__ import annotations

import math
from typing import Any

import streamlit as st

from purify_core.method.marking import DIRECTIONS
from ui.lesson import keep, kept

#: The end of the benign-salience ranking the paper calls infected.
PAPER_DIRECTION = "lowest"
#: An AUC within this distance of 0.5 is read as chance in both directions.
CHANCE_BAND = 0.1
#: The student's three possible predictions, and the end each one names (None: no pattern).
PREDICTIONS: dict[str, str | None] = {
    "LOW benign salience (the paper's premise)": "lowest",
    "HIGH benign salience": "highest",
    "no pattern: salience does not tell": None,
}
#: How an end of a ranking reads in a sentence.
_END = {"lowest": "low", "highest": "high"}
PREMISE_GUESS = "compare_premise_guess"
"""The widget key of the Compare page's prediction (not linked: each student makes their own)."""


def opposite(direction: str) -> str:
    """The other reading of a ranking: `lowest` <-> `highest`."""
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}")
    return DIRECTIONS[1 - DIRECTIONS.index(direction)]


def measured_end(auc: float, direction: str) -> str | None:
    """Which end of the ranking holds the infected neurons, given its AUC read as `direction`.

    The grading reads `highest` as the reversed order of `lowest`, so the other reading's AUC is
    1 - auc. None: within `CHANCE_BAND` of 0.5 (or not measurable), so neither end does.
    """
    if math.isnan(auc) or abs(auc - 0.5) <= CHANCE_BAND:
        return None
    return direction if auc > 0.5 else opposite(direction)


def auc_reading(auc: float, direction: str, ranking: str = "benign salience") -> str:
    """What a ranking's ROC AUC of "`direction` score = infected" means for this model, in words,
    with the other reading's AUC (1 - auc), so "below chance" is never mistaken for "useless"."""
    other = opposite(direction)
    if math.isnan(auc):
        return f"{ranking}: no AUC (this model has no neuron the trigger singles out at this share)."
    said = f"{ranking}: ROC AUC {auc:.2f} for '{direction} score = infected'"
    end = measured_end(auc, direction)
    if end is None:
        return (f"{said}, and {1 - auc:.2f} read the other way ('{other}'): both close to chance (0.5), "
                f"so {ranking} barely tells infected from clean neurons on this model.")
    if end == direction:
        return (f"{said} is above chance (0.5): the infected neurons sit at the {_END[direction]} end of {ranking} on this model "
                f"(read the other way, '{other}', it is {1 - auc:.2f}).")
    return (f"{said} is below chance (0.5). That does not make {ranking} useless: read the other way, "
            f"'{other} score = infected' has AUC {1 - auc:.2f}, so on this model the infected neurons sit at the {_END[other]} end.")


def readings(rows: list[dict[str, Any]], direction: str) -> str:
    """Markdown: what each ranking's AUC (a Compare table row) means for this model, both readings."""
    return "**What the AUCs mean for this model:**\n" + "\n".join(
        f"- {auc_reading(float(row['ROC AUC']), direction, row['ranking'])}" for row in rows)


def direction_note(marking: str | None, direction: str) -> str | None:
    """Said on Compare when its reading differs from the direction Salience maps and Purify mark (None when they agree)."""
    if marking is None or marking == direction:
        return None
    return (f"Salience maps and Purify mark the {marking}-scored neurons; this page reads each ranking as '{direction} score "
            f"= infected'. Switch 'Read a ranking as' to {marking} to grade what they mark.")


def premise_feedback(guess: str | None, auc: float, direction: str) -> str:
    """The answer to the student's prediction (`guess`: the end they named, None for "no pattern")."""
    end = measured_end(auc, direction)
    paper = "holds" if end == PAPER_DIRECTION else "does not hold"
    found = {None: "no clear end", "lowest": "LOW benign salience", "highest": "HIGH benign salience"}[end]
    verdict = "Your prediction matches the evidence." if guess == end else "The evidence says otherwise."
    return f"{verdict} On this model the infected neurons have {found}: the paper's premise {paper} here."


_FINDING = (
    "**What this lab found.** The paper says a backdoor's infected neurons have LOW benign salience (the clean "
    "task barely needs them), so it marks the lowest. On the shipped MNIST models the opposite holds: read as "
    "'lowest = infected', benign salience scores ROC AUC 0.11 to 0.29 against the trigger's ground truth (TAC), "
    "below chance; read as 'highest', 0.71 to 0.89."
)
_WHY_PURIFY = (
    "**Why Purify marks what it does.** Its lab default zeroes the 80% least active channels of the last conv "
    "layer (Fine-Pruning's criterion, not benign salience: at the same share and schedule, pruning by salience "
    "left more of SIG), re-initialises the dense layers and distils the original model's clean answers, on images it also "
    "turns and scales for the purified copy alone; the rule that chose it reads "
    "clean accuracy only, because a defender has no trigger and cannot measure ASR. The paper's presets mark by "
    "benign salience: `reference` the lowest, `authors-code` the highest; try both."
)
_ASK = {
    "home": "Predict which end holds the infected neurons of *this* model, then check on **Compare rankings**.",
    "salience": "Predict, then check: are the neurons that light up only with the trigger (close-up below) at the low "
                "or the high end of the strips? **Compare rankings** grades it.",
    "compare": "Predict below, then read the table: the sentences under it say what each AUC means for this model.",
}


def callout_text(page: str) -> str:
    """The callout of a page (`home`, `salience` or `compare`): the finding, the page's question, and why Purify marks what it does."""
    return "\n\n".join((_FINDING, _ASK[page], _WHY_PURIFY))


def callout(page: str) -> None:
    """Draw the page's callout (always open: it is the page's main caveat)."""
    st.info(callout_text(page), icon=":material/lightbulb:")


def premise_question(auc: float, direction: str) -> None:
    """Ask the student's prediction; reveal what the measured AUC says only once they have made one."""
    kept(PREMISE_GUESS)  # None: nothing predicted yet; a prediction survives a visit to another page
    choice = st.radio("The paper says infected neurons have LOW benign salience. Predict, then check: on this model "
                      "the infected neurons have ...", list(PREDICTIONS), key=PREMISE_GUESS)
    keep(PREMISE_GUESS)
    if choice is None:
        st.caption("Pick a prediction to see what the numbers say.")
        return
    guess = PREDICTIONS[choice]
    show = st.success if guess == measured_end(auc, direction) else st.warning
    show(premise_feedback(guess, auc, direction))


def salience_auc(report: dict[str, Any], label: str) -> float:
    """Benign salience's AUC in a Compare report (its row named `label`)."""
    return next(float(row["ROC AUC"]) for row in report["rows"] if row["ranking"] == label)
