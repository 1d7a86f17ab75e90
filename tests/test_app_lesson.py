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
