"""Lesson files, the glossary and the premise's words, as plain Python (the pages: tests/test_app_lesson.py)."""

from __future__ import annotations

import ast
import math
import re
import tomllib
from pathlib import Path

import pytest
import torch

from purify_core.errors import UserInputError
from purify_core.method.rankings.quality import ranking_quality
from ui import controls, links, premise
from ui.glossary import load_glossary
from ui.lesson_file import (CHECKS, DEFAULT_LESSON, LESSONS_DIR, NOTES_FILE, lesson_files, load_lesson, parse_lesson, step_url,
                            teacher_notes)
from ui.pages import BY_NAME, PAGES, ROOT

DEFAULT_FILE = LESSONS_DIR / f"{DEFAULT_LESSON}.toml"


def _navigation_pages() -> set[str]:
    """The page files app.py's navigation opens: `st.Page(p.path, ...) for p in PAGES`, read from its code."""
    tree = ast.parse((ROOT / "app.py").read_text())
    navigation = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "attr", None) == "navigation"]
    assert len(navigation) == 1
    names = {n.id for n in ast.walk(navigation[0]) if isinstance(n, ast.Name)}
    assert "PAGES" in names, "app.py must build its navigation from ui.pages.PAGES, the table lessons are checked against"
    return {p.path for p in PAGES}


def test_every_page_in_the_table_is_a_file_and_app_py_navigates_exactly_these():
    assert _navigation_pages() == {f"app_pages/{p.stem}.py" for p in (ROOT / "app_pages").glob("*.py")}
    assert [p.default for p in PAGES].count(True) == 1


@pytest.mark.parametrize("path", lesson_files(), ids=lambda p: p.name)
def test_every_lesson_file_loads_and_names_only_pages_and_controls_the_app_has(path):
    lesson = load_lesson(path)
    known = set(controls.LINKED) | {a for c in controls.LINKED.values() for a in getattr(c, "aliases", ())}
    for step in lesson.steps:
        assert step.page in BY_NAME and BY_NAME[step.page].path in _navigation_pages()
        for key, value in step.link.items():
            if key == links.HIDE:
                assert set(value.split(",")) <= set(controls.LINKED), (step.title, value)
            elif key != "scenario":
                assert key in known, (step.title, key)
        for question in step.quiz:
            assert question.answer in question.choices
        if step.predict is not None and step.predict.outcomes:  # a prediction its page checks: the page asks it
            assert set(step.predict.outcomes) <= set(CHECKS[step.page]), (step.title, step.predict.outcomes)
            assert f'lesson_prompt.ask("{step.page}")' in (ROOT / BY_NAME[step.page].path).read_text(), step.page


def test_every_page_that_checks_predictions_asks_them_and_says_the_outcome():
    for page in CHECKS:
        code = (ROOT / BY_NAME[page].path).read_text()
        assert f'lesson_prompt.ask("{page}")' in code and "lesson_prompt.check_" in code, page


def test_the_default_lesson_is_45_minutes_with_a_prediction_and_a_quiz_in_most_steps():
    lesson = load_lesson(DEFAULT_FILE)
    assert lesson.minutes == 45 == sum(s.minutes for s in lesson.steps)
    assert sum(s.predict is not None for s in lesson.steps) == len(lesson.steps)
    assert sum(len(s.quiz) for s in lesson.steps) >= 5
    assert {s.page for s in lesson.steps} >= {"home", "salience", "compare", "purify", "explain"}


def test_the_teacher_notes_are_generated_from_the_lesson_file_with_one_link_per_step():
    lesson = load_lesson(DEFAULT_FILE)
    notes = NOTES_FILE.read_text(encoding="utf-8")
    assert notes == teacher_notes(lesson), "docs/teacher_notes.md is stale: run `python -m ui.lesson_file`"
    found = re.findall(r"^Link: <(.+)>$", notes, flags=re.M)
    assert found == [step_url(s) for s in lesson.steps]
    assert any("hide=" in url for url in found)  # a reduced view


def test_a_step_url_carries_the_page_and_the_link():
    lesson = load_lesson(DEFAULT_FILE)
    purify = next(s for s in lesson.steps if s.page == "purify")
    url = step_url(purify, base="http://x")
    assert url.startswith("http://x/purify?") and "hide=purify_kappa," in url
    assert url.endswith(f"&lesson={DEFAULT_LESSON}&lesson_step={lesson.steps.index(purify) + 1}")  # the class lands on that step
    home = next(s for s in lesson.steps if s.page == "home")
    assert step_url(home, base="http://x").startswith("http://x/?")  # the default page lives at the root


_GOOD = DEFAULT_FILE.read_text(encoding="utf-8")


def _with(old: str, new: str) -> str:
    assert _GOOD.count(old) >= 1, old
    return _GOOD.replace(old, new, 1)


BAD_LESSONS = [
    (_with('page = "salience"', 'page = "salience_maps"'), "page 'salience_maps' is not a page of the app"),
    (_with('salience_metric = "salience"', 'salience_metricc = "salience"'), "control 'salience_metricc', which the app does not have"),
    (_with('purify_preset = "default"', 'purify_treshold = 0.3'), "link names the control 'purify_treshold', which the app does not have"),
    (_with('hide = ["salience_variant"]', 'hide = ["salience_flavour"]'), "hides the control 'salience_flavour'"),
    (_with('compare_top = 0.05', 'compare_top = 0.07'), "compare_top = '0.07', not a valid value"),
    (_with('scenario = "mnist5k-smallcnn-badnets"', 'scenario = "imagenet"'), "model 'imagenet', which is not shipped"),
    (_with('answer = "clean images only"', 'answer = "clean images"'), "is not one of its choices"),
    (_with('minutes = 45', 'minutes = 40'), "the steps add up to 45 minutes"),
    (_with('page = "home"', 'pgae = "home"'), "unknown field 'pgae'"),
    (_with('title = "What a backdoor is"', 'title = ""'), "`title` must be non-empty text"),
    (_with('minutes = 5', 'minutes = "five"'), "`minutes` must be a whole number"),
    (_with('choices = ["yes", "no"]', 'choices = ["yes"]'), "at least two texts"),
    (_with('outcomes = ["erased", "not erased"]', 'outcomes = ["erased", "gone"]'),
     "outcome 'gone' is not one the 'purify' page measures (erased, not erased)"),
    (_with('outcomes = ["erased", "not erased"]', 'outcomes = ["erased"]'), "`outcomes` must be a list of 2 texts, one per choice"),
    (_with('choices = ["about 10%, as chance would"', 'outcomes = ["erased", "not erased", "erased"]\nchoices = ["about 10%, as chance would"'),
     "the 'home' page checks no prediction; pages that do: purify, salience"),
    (_GOOD + "\n[[step]\n", "not valid TOML"),
    ('title = "x"\nminutes = 5\n', "needs at least one [[step]]"),
]


@pytest.mark.parametrize("text, says", [pytest.param(text, says, id=says[:40]) for text, says in BAD_LESSONS])
def test_a_bad_lesson_file_gets_one_clear_line(text, says):
    with pytest.raises(UserInputError) as caught:
        parse_lesson(text, "bad")
    message = str(caught.value)
    assert message.startswith("bad.toml") and says in message and "\n" not in message.strip(), message


def test_a_missing_lesson_file_is_a_clear_error(tmp_path):
    with pytest.raises(UserInputError, match="cannot read the lesson file"):
        load_lesson(tmp_path / "nowhere.toml")


def test_the_glossary_explains_every_term_the_issue_names():
    terms = {term.lower() for term, _ in load_glossary()}
    for wanted in ("acc", "asr", "tac", "ra", "der", "kappa", "strength (lambda)", "ema-signed", "benign salience",
                   "marking", "threshold", "direction", "scope"):
        assert wanted in terms, wanted


def test_a_bad_glossary_is_one_clear_error(tmp_path):
    bad = tmp_path / "glossary.toml"
    bad.write_text('[[term]]\nterm = "ASR"\n')
    with pytest.raises(UserInputError, match="term 1 needs a non-empty `term` and `means`"):
        load_glossary(bad)


def test_the_glossary_file_is_not_taken_for_a_lesson():
    assert "glossary" not in {p.stem for p in lesson_files()}
    assert tomllib.loads((LESSONS_DIR / "glossary.toml").read_text())["term"]


# --- the premise in words -----------------------------------------------------------------------------------------

def test_an_auc_below_chance_is_read_the_other_way():
    text = premise.auc_reading(0.28, "lowest")
    assert "0.28" in text and "below chance" in text and "'highest score = infected' has AUC 0.72" in text
    assert "infected neurons sit at the high end" in text
    assert premise.measured_end(0.28, "lowest") == "highest"
    assert premise.measured_end(0.72, "highest") == "highest"


def test_an_auc_above_chance_names_its_own_end():
    text = premise.auc_reading(0.8, "lowest", "activation")
    assert text.startswith("activation:") and "above chance" in text and "low end of activation" in text and "0.20" in text
    assert premise.measured_end(0.8, "lowest") == "lowest"


@pytest.mark.parametrize("auc", [0.5, 0.45, 0.6])
def test_an_auc_near_chance_says_neither_end(auc):
    assert premise.measured_end(auc, "lowest") is None
    assert "close to chance" in premise.auc_reading(auc, "highest")


def test_no_auc_is_said_so():
    assert premise.measured_end(float("nan"), "lowest") is None
    assert "no AUC" in premise.auc_reading(float("nan"), "lowest")


def test_the_other_reading_is_one_minus_the_auc_as_the_core_grades_it():
    torch.manual_seed(0)
    scores = {"a": torch.rand(40), "b": torch.rand(30)}
    tac = {"a": scores["a"] * 2 + torch.rand(40) * 0.3, "b": torch.rand(30)}
    low, high = ranking_quality(scores, tac, 0.1, "lowest").auc, ranking_quality(scores, tac, 0.1, "highest").auc
    assert math.isclose(low, 1 - high)
    assert f"has AUC {high:.2f}" in premise.auc_reading(low, "lowest")


def test_the_prediction_feedback_follows_the_numbers():
    assert premise.premise_feedback("highest", 0.28, "lowest").startswith("Your prediction matches")
    assert "does not hold" in premise.premise_feedback("highest", 0.28, "lowest")
    assert premise.premise_feedback("lowest", 0.28, "lowest").startswith("The evidence says otherwise")
    assert "the paper's premise holds" in premise.premise_feedback("lowest", 0.8, "lowest")
    assert premise.premise_feedback(None, 0.52, "lowest").startswith("Your prediction matches")


def test_every_page_with_a_callout_has_its_question():
    for page in ("home", "salience", "compare"):
        text = premise.callout_text(page)
        assert "LOW benign salience" in text and "Why Purify marks what it does" in text


def test_the_readme_example_step_is_a_valid_lesson():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    example = readme.split("**Writing a lesson**", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    lesson = parse_lesson('title = "Example"\nminutes = 10\n' + example, "example")
    assert lesson.steps[0].page == "compare" and lesson.steps[0].quiz and lesson.steps[0].predict


def test_compare_says_when_its_reading_differs_from_the_marking():
    assert premise.direction_note(None, "lowest") is None and premise.direction_note("lowest", "lowest") is None
    assert "mark the highest-scored neurons" in premise.direction_note("highest", "lowest")


# --- predictions checked by a run (ui/lesson_prompt.py; the pages: tests/test_app_lesson.py) ------------------------

def test_a_run_is_checked_by_its_verdict_and_salience_by_the_end_its_auc_names():
    from purify_core.method.purify import PurifySummary
    from purify_core.models.evaluate import Metrics
    from purify_core.study import RunRecord
    from ui.lesson_prompt import held, run_outcome, salience_outcome

    def run(asr_after):
        after = None if asr_after is None else Metrics(0.96, asr_after, 100, 90)
        summary = PurifySummary(status="finished", reason="", steps=1, seconds=1.0, marked=1, before=Metrics(0.97, 1.0, 100, 90),
                                after=after, steps_to_erase=None)
        return RunRecord(label="#1", config={}, source=None, status="finished", summary=summary)

    assert [run_outcome(run(a)) for a in (0.01, 0.049, 0.05, 0.9, None)] == ["erased", "erased", "not erased", "not erased", None]
    assert run_outcome(RunRecord(label="#2", config={}, source=None, status="stopped")) is None
    assert [salience_outcome(a) for a in (0.28, 0.8, 0.52, float("nan"))] == ["highest", "lowest", "no pattern", "no pattern"]
    purify = next(s for s in load_lesson(DEFAULT_FILE).steps if s.page == "purify" and s.predict.outcomes).predict
    assert held(purify, "yes", "erased") and not held(purify, "no", "erased") and held(purify, "no", "not erased")


def test_the_teacher_notes_say_what_each_checked_choice_predicts():
    notes = teacher_notes(load_lesson(DEFAULT_FILE))
    assert "- yes (holds if the page measures: erased)" in notes and "- no (holds if the page measures: not erased)" in notes
