"""The Lesson page's widgets: pick a lesson, walk its steps, predict before the reveal, answer the quiz.

The lesson itself is data (`ui.lesson_file`); this module only draws it. Each prediction and quiz
answer is a radio with no answer chosen at first, so nothing is revealed until the student commits.
The step and the answers survive a visit to another page (`kept` / `keep`). A prediction that a run
checks (`outcomes` in the lesson file) is asked again on its page (`ui.lesson_prompt`) with the same key.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from purify_core.errors import UserInputError
from ui import links, state, untrusted
from ui.lesson_file import LESSON_PARAM, LESSONS_DIR, STEP_PARAM, Lesson, Prediction, Question, Step, lesson_files, load_lesson, step_url, teacher_notes
from ui.pages import BY_NAME


def kept(key: str, default: object = None) -> None:
    """Give widget `key` its value from the last time it was drawn (else `default`) before it is drawn again.

    Streamlit forgets a widget's value when a page without it runs, so a student who leaves the lesson
    for a page and comes back would be on step 1 with every answer blank. Call `keep(key)` after drawing.
    Written back even when present: a key that two pages draw (a prediction asked on the Lesson page and
    on the page that checks it) would otherwise start blank on the other page (its widget id names the page).
    """
    st.session_state[key] = (st.session_state[key] if key in st.session_state
                             else st.session_state.get(state.LESSON_KEPT, {}).get(key, default))


def keep(key: str) -> None:
    """Remember widget `key`'s value in a plain session key, which outlives the pages that do not draw it."""
    st.session_state.setdefault(state.LESSON_KEPT, {})[key] = st.session_state.get(key)


def runs_before(key: str) -> set[str] | None:
    """The labels of the runs this session had when prediction `key` was picked (None: not noted)."""
    labels = st.session_state.get(state.LESSON_KEPT, {}).get(f"{key}_runs_before")
    return None if labels is None else set(labels)


def _predicted(key: str) -> None:
    """On a new prediction: note the runs made so far (only a later run checks it) and forget an earlier check."""
    noted = st.session_state.setdefault(state.LESSON_KEPT, {})
    noted[f"{key}_runs_before"] = [run.label for run in st.session_state.get(state.RUNS, [])]
    noted.pop(f"{key}_checked", None)


def prediction_radio(prediction: Prediction, key: str) -> str | None:
    """The student's prediction (None until one is picked), one answer wherever it is asked (the key is the same)."""
    kept(key)  # None: nothing picked yet
    choice = st.radio("Your prediction", prediction.choices, key=key, label_visibility="collapsed", on_change=_predicted,
                      args=(key,))
    keep(key)
    return choice


def lessons_dir() -> Path:
    """Where lesson files are read from: `$PURIFY_LAB_LESSONS` if set (a teacher's own folder), else `lessons/`."""
    return Path(os.environ.get("PURIFY_LAB_LESSONS") or LESSONS_DIR)


def _lessons_by_name() -> dict[str, Path]:
    """The lesson files by name (their stem), the default lesson first."""
    return {p.stem: p for p in lesson_files(lessons_dir())}


def pick_lesson() -> Lesson | None:
    """The lesson chosen (a picker only when there are several); a bad file shows one clear error, never a traceback."""
    step_from_link()
    files = _lessons_by_name()
    if not files:
        st.error(f"No lesson file (`*.toml`) in {untrusted.code(lessons_dir())}.")
        return None
    kept(state.LESSON_CHOICE)
    if st.session_state[state.LESSON_CHOICE] not in files:
        st.session_state[state.LESSON_CHOICE] = next(iter(files))
    name = st.selectbox("Lesson", list(files), key=state.LESSON_CHOICE) if len(files) > 1 else next(iter(files))
    keep(state.LESSON_CHOICE)
    try:
        return load_lesson(files[name])
    except UserInputError as error:
        st.error(f"This lesson file cannot be used: {untrusted.text(error, limit=600)}")
        return None


def step_from_link() -> None:
    """A session opened with a step's shareable link (`?lesson=...&lesson_step=4`) is on that step, once.

    So a class that opens the teacher's link of a step gets the step's prediction on its page, and the
    Lesson page opens on it. A step number that is not a whole number is ignored with a warning.
    """
    noted = st.session_state.setdefault(state.LESSON_KEPT, {})
    link = links.first_link()
    if state.LESSON_STEP in noted or STEP_PARAM not in link:
        return
    raw = link[STEP_PARAM]
    if not (raw.isascii() and raw.isdigit()):
        st.warning(links.ignored(STEP_PARAM, raw, 1))
        noted[state.LESSON_STEP] = 0
        return
    noted[state.LESSON_STEP] = int(raw) - 1
    if LESSON_PARAM in link:
        noted[state.LESSON_CHOICE] = link[LESSON_PARAM]


def current_step() -> tuple[Lesson, int] | None:
    """The lesson and the step the student is on, as the Lesson page last showed them or a step's link named them.

    None when the lesson file cannot be used (the Lesson page names the fault) or the step is gone.
    """
    step_from_link()
    noted = st.session_state.get(state.LESSON_KEPT, {})
    files = _lessons_by_name()
    if not files:
        return None
    try:
        lesson = load_lesson(files.get(noted.get(state.LESSON_CHOICE)) or next(iter(files.values())))
    except UserInputError:
        return None
    n = noted.get(state.LESSON_STEP) or 0
    return (lesson, n) if n in range(len(lesson.steps)) else None


def _move(by: int, count: int) -> None:
    st.session_state[state.LESSON_STEP] = min(max(st.session_state[state.LESSON_STEP] + by, 0), count - 1)


def pick_step(lesson: Lesson) -> int:
    """The step shown (index from 0): a picker with every step and its minutes, plus Previous / Next."""
    count = len(lesson.steps)
    kept(state.LESSON_STEP, 0)
    if st.session_state[state.LESSON_STEP] not in range(count):
        st.session_state[state.LESSON_STEP] = 0
    starts = [sum(s.minutes for s in lesson.steps[:i]) for i in range(count)]
    left, prev, nxt = st.columns([6, 1, 1], vertical_alignment="bottom")
    left.selectbox("Step", range(count), key=state.LESSON_STEP,
                   format_func=lambda i: f"{i + 1}. {lesson.steps[i].title} ({starts[i]}-{starts[i] + lesson.steps[i].minutes} min)")
    n = st.session_state[state.LESSON_STEP]
    keep(state.LESSON_STEP)
    prev.button("Previous", key="lesson_prev", disabled=n == 0, on_click=_move, args=(-1, count), width="stretch")
    nxt.button("Next", key="lesson_next", disabled=n == count - 1, on_click=_move, args=(1, count), width="stretch")
    return n


def answer_key(lesson: Lesson, n: int, part: str) -> str:
    """The widget key of a step's prediction (`part` "predict") or quiz question ("quiz0", ...)."""
    return f"{state.LESSON_ANSWER_PREFIX}{lesson.name}_{n}_{part}"


def show_prediction(prediction: Prediction, key: str, page: str) -> None:
    """Predict, then run: the reveal shows only once a prediction is chosen."""
    st.markdown(f"**Predict, then run.** {prediction.question}")
    choice = prediction_radio(prediction, key)
    if choice is None:
        st.caption("Pick a prediction first; what the lab measured shows after.")
        return
    then = (f"Now run it on {BY_NAME[page].title}: the page asks the same question and says whether your prediction held."
            if prediction.outcomes else "Now run it on the page, then compare.")
    st.info(f"You predicted: *{choice}*. {then} {prediction.reveal}", icon=":material/science:")


def show_question(question: Question, key: str) -> None:
    """A quiz question: right or wrong feedback once an answer is chosen."""
    kept(key)
    choice = st.radio(question.question, question.choices, key=key)
    keep(key)
    if choice is None:
        return
    if choice == question.answer:
        st.success(f"Right. {question.feedback}")
    else:
        st.error(f"Not quite: the answer is *{question.answer}*. {question.feedback}")


def show_step(lesson: Lesson, n: int) -> None:
    """One step: what to do, where (a link to the page, and the shareable link of this view), predict, quiz."""
    step: Step = lesson.steps[n]
    page = BY_NAME[step.page]
    st.subheader(f"{n + 1}. {step.title}")
    st.caption(f"{step.minutes} minutes, on the {page.title} page")
    st.markdown(step.text)
    url = step_url(step, base="")
    left, right = st.columns(2)
    if left.button(f"Go to {page.title}", key=state.LESSON_GO, icon=page.icon, type="primary",
                   help="Opens the page with this step's settings, over any you changed (the others stay as you set them)."):
        links.go(page.path, step.link)
    right.markdown(f"[Open this step's view in a new tab]({url or '/'}) (its settings and reduced controls); "
                   f"share it as `{url or '/'}` after your server's address.")
    if step.predict is not None:
        show_prediction(step.predict, answer_key(lesson, n, "predict"), step.page)
    if step.quiz:
        st.markdown("**Quiz**")
        for i, question in enumerate(step.quiz):
            show_question(question, answer_key(lesson, n, f"quiz{i}"))


def show_teacher_notes(lesson: Lesson) -> None:
    """The teacher notes of the lesson (the same text `docs/teacher_notes.md` holds for the default lesson)."""
    notes = teacher_notes(lesson)
    with st.expander("Teacher notes: every step, its link, the answers"):
        st.download_button("Download the notes (.md)", notes, file_name=f"{lesson.name}_teacher_notes.md", key="lesson_notes_download")
        st.markdown(notes)
