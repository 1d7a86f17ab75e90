"""Predict, then run, on the page where the student runs it: the lesson step's prediction, checked by the run.

A lesson step whose `[step.predict]` names `outcomes` (`ui.lesson_file.CHECKS`) is asked again on its
page, with the same widget key as on the Lesson page, so it is one answer. Once the student runs
something there after predicting, the page says whether the prediction held: Purify by the verdict of
the latest run made after the prediction (`run_outcome`), Salience maps by the end of benign salience
where the trigger's neurons sit, graded as Compare rankings grades it (`salience_outcome`). Only the
lesson's current step is asked, so a student who is not following the lesson sees nothing extra.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import streamlit as st

from purify_core.evaluation.verdict import Verdict, verdict
from purify_core.study import RunRecord
from ui import premise, state, untrusted
from ui.lesson import answer_key, current_step, prediction_radio, runs_before
from ui.lesson_file import Prediction, Step
from ui.pages import BY_NAME

#: What the lesson's outcome `no pattern` stands for in `premise.measured_end` (neither end).
NO_PATTERN = "no pattern"


@dataclass(frozen=True)
class Prompt:
    """A prediction asked on its page: the step, its widget key, the answer, and where its check is said."""

    step: Step
    key: str
    choice: str | None
    slot: Any

    @property
    def prediction(self) -> Prediction:
        assert self.step.predict is not None
        return self.step.predict


def ask(page: str) -> Prompt | None:
    """Ask the current lesson step's prediction if this page checks it (None otherwise); its check comes later."""
    found = current_step()
    if found is None:
        return None
    lesson, n = found
    step = lesson.steps[n]
    if step.page != page or step.predict is None or not step.predict.outcomes:
        return None
    with st.container(border=True):
        st.markdown(f"**Lesson, step {n + 1}: predict, then run.** {step.predict.question}")
        key = answer_key(lesson, n, "predict")
        choice = prediction_radio(step.predict, key)
        slot = st.container()
    return Prompt(step, key, choice, slot)


def run_outcome(run: RunRecord) -> str | None:
    """`erased` or `not erased` by the run's verdict (ASR after below the erased line); None: no ASR after."""
    return None if run.summary is None else _erased_word(verdict(run.summary.before, run.summary.after))


def _erased_word(judged: Verdict) -> str | None:
    return None if judged.erased is None else ("erased" if judged.erased else "not erased")


def salience_outcome(auc: float) -> str:
    """The end of benign salience the trigger's neurons sit at, from its AUC read as `lowest = infected`."""
    return premise.measured_end(auc, "lowest") or NO_PATTERN


def held(prediction: Prediction, choice: str, outcome: str) -> bool:
    """Whether the outcome measured is the one the choice predicted."""
    return prediction.outcome(choice) == outcome


def _say(prompt: Prompt, outcome: str, evidence: str) -> None:
    assert prompt.choice is not None
    if held(prompt.prediction, prompt.choice, outcome):
        prompt.slot.success(f"**Your prediction held.** You predicted *{prompt.choice}*; {evidence}", icon=":material/check_circle:")
    else:
        prompt.slot.warning(f"**Your prediction did not hold.** You predicted *{prompt.choice}*; {evidence}", icon=":material/science:")
    prompt.slot.caption(prompt.prediction.reveal)


def check_runs(prompt: Prompt | None, runs: list[RunRecord]) -> None:
    """Purify: say whether the prediction held, by the verdict of the latest run made after it (call it after the runs)."""
    if prompt is None:
        return
    if prompt.choice is None:
        prompt.slot.caption(f"Pick a prediction, then run: {BY_NAME[prompt.step.page].title} says whether it held.")
        return
    earlier = runs_before(prompt.key) or set()
    judged = [(run, verdict(run.summary.before, run.summary.after)) for run in runs if run.label not in earlier and run.summary is not None]
    checked = [(run, j) for run, j in judged if j.erased is not None]
    if not checked:
        prompt.slot.caption(f"You predicted *{prompt.choice}*. Now run it: the verdict of your next run checks it.")
        return
    run, latest = checked[-1]
    _say(prompt, _erased_word(latest), f"run **{untrusted.text(run.label)}** says: {latest.sentence()}")


def check_salience(prompt: Prompt | None, scenario: str) -> None:
    """Salience maps: a button grades benign salience against the trigger (evaluator's view) and says whether the prediction held."""
    if prompt is None:
        return
    if prompt.choice is None:
        prompt.slot.caption("Pick a prediction, then check it against the trigger here.")
        return
    noted = st.session_state.setdefault(state.LESSON_KEPT, {})
    checked = noted.get(f"{prompt.key}_checked")
    if checked is None or checked[0] != scenario:
        if not prompt.slot.button("Check my prediction (uses the trigger: the evaluator's view)", key=state.LESSON_CHECK):
            return
        from ui.cache import ranking_report  # the evaluator's grading, as Compare rankings computes it
        from ui.controls import COMPARE_TOP
        from purify_core.method.rankings import METRIC_LABELS

        auc = premise.salience_auc(ranking_report(scenario, COMPARE_TOP.default, "lowest"), METRIC_LABELS["salience"])
        checked = noted[f"{prompt.key}_checked"] = (scenario, auc)
    auc = checked[1]
    _say(prompt, salience_outcome(auc), f"graded against the neurons the trigger moves (TAC) on this model, "
                                        f"{premise.auc_reading(auc, 'lowest')}")
