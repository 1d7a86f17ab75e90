"""The Lesson page walks its lesson file; the glossary and the premise's callouts appear on other pages (AppTest)."""

from __future__ import annotations

from app_helpers import open_page
from test_bad_inputs import BAD_INPUTS
from ui import links, premise, state, untrusted
from ui.lesson_file import DEFAULT_LESSON, LESSONS_DIR, load_lesson, step_url

LESSON = load_lesson(LESSONS_DIR / f"{DEFAULT_LESSON}.toml")
PAGE = "app_pages/lesson.py"


def _answer_key(n: int, part: str) -> str:
    return f"{state.LESSON_ANSWER_PREFIX}{LESSON.name}_{n}_{part}"


def _texts(elements) -> str:
    return "\n".join(e.value for e in elements)


def test_every_step_of_the_lesson_renders_with_its_link_prediction_and_quiz():
    at = open_page(PAGE)
    assert not at.exception and not at.error
    for n, step in enumerate(LESSON.steps):
        at.selectbox(key=state.LESSON_STEP).set_value(n).run()
        assert not at.exception, step.title
        assert at.subheader[0].value == f"{n + 1}. {step.title}"
        assert f"]({step_url(step, base='') or '/'})" in _texts(at.markdown), step.title  # the step's shareable view
        assert (step.predict is not None) == (_answer_key(n, "predict") in [r.key for r in at.radio])
        assert len([r for r in at.radio if "_quiz" in r.key]) == len(step.quiz)


def test_next_and_previous_walk_the_steps():
    at = open_page(PAGE)
    at.button(key="lesson_next").click().run()
    assert at.subheader[0].value.startswith("2. ")
    at.button(key="lesson_prev").click().run()
    assert at.subheader[0].value.startswith("1. ") and at.button(key="lesson_prev").disabled


def test_the_prediction_is_revealed_only_after_the_student_picks_one():
    at = open_page(PAGE)
    step = LESSON.steps[0]
    assert step.predict.reveal not in _texts(at.info)
    at.radio(key=_answer_key(0, "predict")).set_value(step.predict.choices[0]).run()
    assert step.predict.reveal in _texts(at.info) and step.predict.choices[0] in _texts(at.info)


def test_every_prediction_and_quiz_answer_of_the_lesson_gets_its_reveal_or_feedback():
    at = open_page(PAGE)
    for n, step in enumerate(LESSON.steps):
        at.selectbox(key=state.LESSON_STEP).set_value(n).run()
        if step.predict is not None:
            at.radio(key=_answer_key(n, "predict")).set_value(step.predict.choices[-1]).run()
            assert step.predict.reveal in _texts(at.info), step.title
        for i, question in enumerate(step.quiz):
            for choice in question.choices:
                at.radio(key=_answer_key(n, f"quiz{i}")).set_value(choice).run()
                shown = _texts(at.success) if choice == question.answer else _texts(at.error)
                assert question.feedback in shown, (step.title, choice)
        assert not at.exception


def test_the_step_and_the_answers_survive_a_visit_to_another_page():
    at = open_page(PAGE)
    at.selectbox(key=state.LESSON_STEP).set_value(2).run()
    at.radio(key=_answer_key(2, "predict")).set_value(LESSON.steps[2].predict.choices[0]).run()
    at.switch_page("app_pages/explain.py").run()
    at.switch_page(PAGE).run()
    assert at.subheader[0].value.startswith("3. ") and LESSON.steps[2].predict.reveal in _texts(at.info)


def test_a_steps_go_to_sets_its_values_over_the_students_and_keeps_the_rest():
    from purify_core.method.purify import PURIFY_PRESETS

    at = open_page("app_pages/purify.py")
    at.slider(key=state.PURIFY_THRESHOLD).set_value(0.3).run()  # the student plays with the marking, and the seed
    at.radio(key=state.PURIFY_DIRECTION).set_value("highest").run()
    at.sidebar.number_input(key=state.SEED).set_value(3).run()
    n, step = next((n, s) for n, s in enumerate(LESSON.steps) if s.page == "purify" and "scenario" not in s.link)
    at.switch_page(PAGE).run()
    at.selectbox(key=state.LESSON_STEP).set_value(n).run()
    at.button(key=state.LESSON_GO).click().run()  # the step's link wins over the kept values
    assert not at.exception
    preset = PURIFY_PRESETS[step.link["purify_preset"]]
    assert at.title[0].value == "Purify" and at.session_state[state.PURIFY_PRESET] == step.link["purify_preset"]
    assert at.slider(key=state.PURIFY_THRESHOLD).value == preset.threshold  # the preset it names resets the marking
    assert at.radio(key=state.PURIFY_DIRECTION).value == preset.direction
    for hidden in step.link["hide"].split(","):
        assert hidden not in [w.key for w in at.main.get(_widget_type(hidden))], hidden
    assert at.sidebar.number_input(key=state.SEED).value == 3  # not named by the link: still the student's
    at.switch_page("app_pages/purify.py").run()  # (AppTest stays on the page it last opened)
    at.slider(key=state.PURIFY_THRESHOLD).set_value(0.2).run()  # the link is applied once: the student's changes hold again
    assert at.slider(key=state.PURIFY_THRESHOLD).value == 0.2 and at.radio(key=state.PURIFY_DIRECTION).value == preset.direction
    at.switch_page(PAGE).run()
    at.sidebar.selectbox(key=state.SCENARIO).set_value("mnist5k-smallcnn-blended").run()
    first = LESSON.steps[0]  # the model it names opens, and it hides nothing: the reduced view of the last link ends
    at.selectbox(key=state.LESSON_STEP).set_value(0).run()
    at.button(key=state.LESSON_GO).click().run()
    assert not at.exception and at.session_state[state.SCENARIO] == first.link["scenario"] and "hide" not in first.link
    assert at.session_state[links.HIDE] == ""


def _run(label: str, asr_after: float):
    """A finished run of the shipped model with made-up numbers (its verdict is what the prompt reads)."""
    from purify_core.method.purify import PurifyConfig, PurifySummary
    from purify_core.models.evaluate import Metrics
    from purify_core.store.zoo import list_zoo
    from purify_core.study import RunRecord

    summary = PurifySummary(status="finished", reason="", steps=10, seconds=1.0, marked=4, before=Metrics(0.97, 1.0, 100, 90),
                            after=Metrics(0.96, asr_after, 100, 90), steps_to_erase=None)
    source = next(c for c in list_zoo() if c.name == "mnist5k-smallcnn-badnets")
    return RunRecord(label=label, config=PurifyConfig(epochs=1).to_dict(), source=source, status="finished", summary=summary,
                     history=[{"step": 0, "acc": 0.97, "asr": 1.0}])


def test_purify_asks_the_lesson_steps_prediction_and_its_runs_verdict_says_whether_it_held():
    n, step = next((n, s) for n, s in enumerate(LESSON.steps) if s.page == "purify" and s.predict.outcomes)
    key, yes, no = _answer_key(n, "predict"), *step.predict.choices
    at = open_page(PAGE)
    at.selectbox(key=state.LESSON_STEP).set_value(n).run()
    at.radio(key=key).set_value(yes).run()  # predicted on the Lesson page: "erased"
    assert "Purify: the page asks the same question" in _texts(at.info)
    at.switch_page("app_pages/purify.py").run()
    assert not at.exception and at.radio(key=key).value == yes  # one answer, asked again where it is run
    assert f"**Lesson, step {n + 1}: predict, then run.** {step.predict.question}" in _texts(at.markdown)
    assert "Now run it" in _texts(at.caption) and not any("Your prediction" in s for s in _texts(at.success).split("\n"))
    at.session_state["purify_runs"] = [_run("#1 ar", asr_after=0.01)]  # a run after the prediction, erased
    at.run()
    assert "**Your prediction held.** You predicted *yes*; run **#1 ar** says: Erased" in untrusted.read(_texts(at.success))
    assert step.predict.reveal in _texts(at.caption)
    at.radio(key=key).set_value(no).run()  # a new prediction: the earlier run no longer checks it
    assert "Your prediction" not in _texts(at.success) + _texts(at.warning) and "Now run it" in _texts(at.caption)
    at.session_state["purify_runs"] = [*at.session_state["purify_runs"], _run("#2 ar", asr_after=0.4)]
    at.run()
    assert "**Your prediction held.** You predicted *no*; run **#2 ar** says: Not erased" in untrusted.read(_texts(at.success))
    at.radio(key=key).set_value(yes).run()
    at.session_state["purify_runs"] = [*at.session_state["purify_runs"], _run("#3 ar", asr_after=0.3)]
    at.run()
    assert "**Your prediction did not hold.** You predicted *yes*; run **#3 ar**" in untrusted.read(_texts(at.warning))


def test_a_steps_shareable_link_opens_the_class_on_that_step_with_its_prediction():
    from urllib.parse import parse_qsl, urlsplit

    n, step = next((n, s) for n, s in enumerate(LESSON.steps) if s.page == "purify" and s.predict.outcomes)
    at = open_page("app_pages/purify.py", **dict(parse_qsl(urlsplit(step_url(step)).query)))
    assert not at.exception and f"**Lesson, step {n + 1}: predict, then run.**" in _texts(at.markdown)
    at.switch_page(PAGE).run()
    assert at.subheader[0].value == f"{n + 1}. {step.title}"  # the Lesson page opens on it too


def test_a_step_number_that_is_not_a_whole_number_is_ignored_with_a_warning():
    at = open_page(PAGE, lesson_step="\u0663")  # an Arabic-Indic 3: int() would take it, a link may not
    assert not at.exception and at.subheader[0].value.startswith("1. ")
    assert "Ignored lesson_step=\u0663 in the link" in untrusted.read(_texts(at.warning))


def test_purify_asks_nothing_when_the_lesson_step_is_elsewhere():
    at = open_page("app_pages/purify.py")
    assert not at.exception and "predict, then run" not in _texts(at.markdown)


def test_salience_maps_checks_the_lesson_steps_prediction_against_the_trigger(monkeypatch):
    from purify_core.method.rankings import METRIC_LABELS

    graded = []  # the evaluator's grading (Compare's), stood in for: salience read as 'lowest' scores 0.28 here
    monkeypatch.setattr("ui.cache.ranking_report", lambda *args: graded.append(args) or
                        {"rows": [{"ranking": METRIC_LABELS["salience"], "ROC AUC": 0.28}]})
    n, step = next((n, s) for n, s in enumerate(LESSON.steps) if s.page == "salience" and s.predict.outcomes)
    key = _answer_key(n, "predict")
    low, high = (next(c for c in step.predict.choices if step.predict.outcome(c) == end) for end in ("lowest", "highest"))
    at = open_page(PAGE)
    at.selectbox(key=state.LESSON_STEP).set_value(n).run()
    at.switch_page("app_pages/salience.py").run()
    assert "Pick a prediction" in _texts(at.caption) and not [b for b in at.button if b.key == state.LESSON_CHECK]
    at.radio(key=key).set_value(low).run()  # the paper's premise
    assert not graded  # nothing graded before the student asks
    at.button(key=state.LESSON_CHECK).click().run()
    assert not at.exception and graded == [("mnist5k-smallcnn-badnets", 0.05, "lowest")]
    said = _texts(at.warning)
    assert f"Your prediction did not hold.** You predicted *{low}*" in said and "ROC AUC 0.28" in said and "high end" in said
    at.run()  # the check is kept: said again, without the button
    assert said == _texts(at.warning) and not [b for b in at.button if b.key == state.LESSON_CHECK]
    at.radio(key=key).set_value(high).run()  # a new prediction is checked afresh
    at.button(key=state.LESSON_CHECK).click().run()
    assert f"Your prediction held.** You predicted *{high}*" in _texts(at.success) and len(graded) == 2


def _widget_type(key: str) -> str:
    """The AppTest element type of a linked control's widget (`select_slider`, `radio`, ...)."""
    from ui import controls

    return controls.LINKED[key].widget


def test_a_quiz_answer_gets_right_or_wrong_feedback():
    at = open_page(PAGE)
    question = LESSON.steps[0].quiz[0]
    key = _answer_key(0, "quiz0")
    assert not at.success and not at.error
    wrong = next(c for c in question.choices if c != question.answer)
    at.radio(key=key).set_value(wrong).run()
    assert at.error[0].value.startswith("Not quite") and question.answer in at.error[0].value and not at.success
    at.radio(key=key).set_value(question.answer).run()
    assert at.success[0].value == f"Right. {question.feedback}" and not at.error


def test_a_bad_lesson_file_shows_one_clear_error(tmp_path, monkeypatch):
    (tmp_path / "broken.toml").write_text(
        (LESSONS_DIR / f"{DEFAULT_LESSON}.toml").read_text().replace('page = "compare"', 'page = "comparison"'))
    monkeypatch.setenv("PURIFY_LAB_LESSONS", str(tmp_path))
    at = open_page(PAGE)
    assert not at.exception
    row = next(r for r in BAD_INPUTS if r.where == "app Lesson" and "comparison" in r.what)  # the README's row
    assert len(at.error) == 1 and row.message in untrusted.read(at.error[0].value), at.error[0].value


def test_the_glossary_opens_on_another_page_and_the_scenario_asks_the_premise():
    at = open_page("app_pages/home.py")
    assert not at.exception
    glossary = [e for e in at.sidebar.expander if e.label == "Glossary"]
    assert glossary and "**ASR**" in _texts(glossary[0].markdown)
    assert "LOW benign salience" in _texts(at.info) and "Why Purify marks what it does" in _texts(at.info)


def test_compare_asks_for_a_prediction_then_says_what_the_auc_means():
    at = open_page("app_pages/compare.py")
    assert not at.exception
    assert "What the AUCs mean for this model" in _texts(at.markdown)
    assert "Why Purify marks what it does" in _texts(at.info)  # the callout
    assert not at.success and not at.warning  # nothing told before the student predicts
    at.radio(key=premise.PREMISE_GUESS).set_value(next(iter(premise.PREDICTIONS))).run()
    feedback = _texts(at.success) + _texts(at.warning)
    assert "the paper's premise" in feedback


def test_salience_maps_shows_the_callout_and_the_glossary():
    at = open_page("app_pages/salience.py")
    assert not at.exception
    assert "LOW benign salience" in _texts(at.info) and "Why Purify marks what it does" in _texts(at.info)
    assert any(e.label == "Glossary" for e in at.sidebar.expander)
