"""Lesson files: a lesson is data (`lessons/*.toml`), so a teacher writes one without touching Python.

`load_lesson` reads and checks a file and raises one `UserInputError` that names the file, the step
and the field at fault: an unknown page (checked against `ui.pages`, the table `app.py` navigates),
an unknown control or an invalid value in a step's link (checked against `ui.controls.LINKED`, the
table links are read with), a quiz answer that is not one of its choices, a prediction's outcome the
step's page cannot measure (checked against `CHECKS`), minutes that do not add up.
`teacher_notes` renders the notes (one shareable link per step) that `docs/teacher_notes.md` holds.
No Streamlit here: tests and `python -m ui.lesson_file` use it as plain Python.
"""

from __future__ import annotations

import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlencode

from purify_core.errors import UserInputError
from purify_core.store.zoo import shipped_scenarios
from ui import controls, links, state
from ui.pages import BY_NAME, ROOT

LESSONS_DIR = ROOT / "lessons"
NOTES_FILE = ROOT / "docs" / "teacher_notes.md"
DEFAULT_LESSON = "backdoors_45min"
#: Where the app runs in the teacher notes' links (`streamlit run app.py` serves here by default).
BASE_URL = "http://localhost:8501"
#: The query parameters of a step's link that name its lesson and its step number (from 1).
LESSON_PARAM, STEP_PARAM = "lesson", "lesson_step"
#: Files in `lessons/` that are not lessons.
NOT_LESSONS = {"glossary.toml"}

_LESSON_KEYS = {"title", "minutes", "summary", "step"}
_STEP_KEYS = {"title", "minutes", "page", "text", "link", "predict", "quiz", "notes"}
_PREDICT_KEYS = {"question", "choices", "reveal", "outcomes"}
#: The pages that check a prediction when the student runs something there, and the outcomes each tells apart:
#: Purify by the verdict of the student's run (`ui.lesson_prompt`), Salience maps by the end of benign salience
#: where the trigger's neurons sit (Compare's grading). A `[step.predict]` with `outcomes` names one per choice.
CHECKS: dict[str, tuple[str, ...]] = {
    "purify": ("erased", "not erased"),
    "salience": ("lowest", "highest", "no pattern"),
}
_QUIZ_KEYS = {"question", "choices", "answer", "feedback"}


@dataclass(frozen=True)
class Prediction:
    """A predict-then-run prompt: the student picks one of `choices`; `reveal` shows only after.

    `outcomes` (empty, or one per choice, from `CHECKS[page]`): what each choice predicts the page will
    measure, so the page where the student runs it says whether the prediction held.
    """

    question: str
    choices: tuple[str, ...]
    reveal: str
    outcomes: tuple[str, ...] = ()

    def outcome(self, choice: str) -> str | None:
        """The outcome a choice predicts (None when the prompt is not checked by a run)."""
        return dict(zip(self.choices, self.outcomes)).get(choice)


@dataclass(frozen=True)
class Question:
    """A quiz question: `answer` is one of `choices`; `feedback` explains it, right or wrong."""

    question: str
    choices: tuple[str, ...]
    answer: str
    feedback: str


@dataclass(frozen=True)
class Step:
    """One step of a lesson, on one page of the app, opened with `link` (control values and `hide`)."""

    title: str
    minutes: int
    page: str
    text: str
    link: dict[str, str] = field(default_factory=dict)
    predict: Prediction | None = None
    quiz: tuple[Question, ...] = ()
    notes: str = ""
    #: Where it sits: its lesson's name and its number (from 1), so its shareable link can name the step.
    lesson: str = ""
    number: int = 0


@dataclass(frozen=True)
class Lesson:
    name: str
    title: str
    minutes: int
    summary: str
    steps: tuple[Step, ...]


def _linked_controls() -> dict[str, controls.Control]:
    """Every control a link can set, by its link name and by any older name it still answers to."""
    older = {alias: c for c in controls.LINKED.values() for alias in getattr(c, "aliases", ())}
    return older | controls.LINKED


def _valid_link_keys() -> dict[str, controls.Control | None]:
    """What a step's link may set: every linked control, the model (`scenario`) and `hide`."""
    return {**_linked_controls(), state.SCENARIO: None, links.HIDE: None}


class _Checker:
    """Reads fields of one table of a lesson file; every complaint names the file and where in it."""

    def __init__(self, file: str, where: str, table: Any, allowed: set[str]):
        self.file, self.where = file, where
        if not isinstance(table, dict):
            self.fail("must be a table")
        unknown = sorted(set(table) - allowed)
        if unknown:
            self.fail(f"unknown field {unknown[0]!r}; a {where.split(' ')[0]} may have {', '.join(sorted(allowed))}")
        self.table = table

    def fail(self, message: str) -> NoReturn:
        raise UserInputError(f"{self.file}, {self.where}: {message}")

    def text(self, key: str, required: bool = True) -> str:
        value = self.table.get(key, None if required else "")
        if not isinstance(value, str) or (required and not value.strip()):
            self.fail(f"`{key}` must be {'non-empty ' if required else ''}text")
        return value.strip()

    def minutes(self, key: str = "minutes") -> int:
        value = self.table.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 600:
            self.fail(f"`{key}` must be a whole number of minutes from 1 to 600")
        return value

    def choices(self) -> tuple[str, ...]:
        value = self.table.get("choices")
        if not isinstance(value, list) or len(value) < 2 or not all(isinstance(c, str) and c.strip() for c in value):
            self.fail("`choices` must be a list of at least two texts")
        if len(set(value)) != len(value):
            self.fail("`choices` must not repeat a choice")
        return tuple(c.strip() for c in value)


def _link(check: _Checker, raw: Any) -> dict[str, str]:
    """A step's link as query parameters, each key a known control and each value valid for it."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        check.fail("`link` must be a table of control = value")
    known, query = _valid_link_keys(), {}
    for key, value in raw.items():
        if key not in known:
            check.fail(f"link names the control {key!r}, which the app does not have (known: {', '.join(sorted(known))})")
        if key == links.HIDE:
            hidden = value.split(",") if isinstance(value, str) else value
            if not isinstance(hidden, list) or not all(isinstance(k, str) for k in hidden):
                check.fail("link `hide` must be a list of control names")
            hidden = [k.strip() for k in hidden if k.strip()]
            for name in hidden:
                if name not in controls.LINKED:  # `hide` takes a control's own name, not an older one
                    check.fail(f"link hides the control {name!r}, which the app does not have")
            query[key] = ",".join(hidden)
            continue
        if isinstance(value, (dict, list, bool)):
            check.fail(f"link value of {key!r} must be a single number or text")
        text = links.to_link(value)
        if key == state.SCENARIO:
            names = [s.name for s in shipped_scenarios()]
            if text not in names:
                check.fail(f"link opens the model {text!r}, which is not shipped (shipped: {', '.join(names)})")
        else:
            control = _linked_controls()[key]
            if links.from_link(text, control.parse, control.choices, control.bounds) is None:
                allowed = (", ".join(map(str, control.choices)) if control.choices is not None
                           else f"{control.bounds[0]} to {control.bounds[1]}" if control.bounds else "see the app")
                check.fail(f"link sets {key} = {text!r}, not a valid value (valid: {allowed})")
        query[key] = text
    return query


def _outcomes(check: _Checker, page: str) -> tuple[str, ...]:
    """A prediction's outcomes: none, or one per choice, each one the step's page can measure."""
    raw = check.table.get("outcomes")
    if raw is None:
        return ()
    if page not in CHECKS:
        check.fail(f"`outcomes`: the {page!r} page checks no prediction; pages that do: {', '.join(CHECKS)}")
    choices = check.choices()
    if not isinstance(raw, list) or len(raw) != len(choices) or not all(isinstance(o, str) for o in raw):
        check.fail(f"`outcomes` must be a list of {len(choices)} texts, one per choice")
    for outcome in raw:
        if outcome not in CHECKS[page]:
            check.fail(f"outcome {outcome!r} is not one the {page!r} page measures ({', '.join(CHECKS[page])})")
    return tuple(raw)


def _step(file: str, n: int, raw: Any, lesson: str) -> Step:
    check = _Checker(file, f"step {n}", raw, _STEP_KEYS)
    title = check.text("title")
    check = _Checker(file, f"step {n} ({title!r})", raw, _STEP_KEYS)
    page = check.text("page")
    if page not in BY_NAME:
        check.fail(f"page {page!r} is not a page of the app; choose one of {', '.join(BY_NAME)}")
    predict = None
    if "predict" in raw:
        p = _Checker(file, f"step {n} ({title!r}) predict", raw["predict"], _PREDICT_KEYS)
        predict = Prediction(p.text("question"), p.choices(), p.text("reveal"), _outcomes(p, page))
    quiz_raw = raw.get("quiz", [])
    if not isinstance(quiz_raw, list):
        check.fail("`quiz` must be a list of [[step.quiz]] tables")
    quiz = []
    for i, q in enumerate(quiz_raw, 1):
        qc = _Checker(file, f"step {n} ({title!r}) quiz question {i}", q, _QUIZ_KEYS)
        choices, answer = qc.choices(), qc.text("answer")
        if answer not in choices:
            qc.fail(f"`answer` {answer!r} is not one of its choices")
        quiz.append(Question(qc.text("question"), choices, answer, qc.text("feedback")))
    return Step(title, check.minutes(), page, check.text("text"), _link(check, raw.get("link")), predict, tuple(quiz),
                check.text("notes", required=False), lesson, n)


def parse_lesson(text: str, name: str = "lesson") -> Lesson:
    """A lesson from the text of a TOML file named `name` (for messages); any fault raises one `UserInputError`."""
    file = f"{name}.toml"
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise UserInputError(f"{file}: not valid TOML: {error}") from None
    check = _Checker(file, "lesson", raw, _LESSON_KEYS)
    steps_raw = raw.get("step")
    if not isinstance(steps_raw, list) or not steps_raw:
        check.fail("needs at least one [[step]]")
    steps = tuple(_step(file, n, s, name) for n, s in enumerate(steps_raw, 1))
    minutes = check.minutes()
    total = sum(s.minutes for s in steps)
    if total != minutes:
        check.fail(f"the steps add up to {total} minutes, but the lesson says `minutes = {minutes}`")
    return Lesson(name, check.text("title"), minutes, check.text("summary", required=False), steps)


def load_lesson(path: Path) -> Lesson:
    """The lesson in `path` (a `.toml` file), checked."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UserInputError(f"{path.name}: cannot read the lesson file: {error}") from None
    return parse_lesson(text, path.stem)


def lesson_files(folder: Path = LESSONS_DIR) -> list[Path]:
    """The lesson files in `folder`, the default lesson first."""
    files = [p for p in sorted(Path(folder).glob("*.toml")) if p.name not in NOT_LESSONS]
    return sorted(files, key=lambda p: p.stem != DEFAULT_LESSON)


def step_url(step: Step, base: str = BASE_URL) -> str:
    """The shareable link of a step: its page, with its control values, `hide`, and its lesson and step number.

    A session opened with it is on that step of the lesson (`ui.lesson.step_from_link`), so the page asks
    the step's prediction there, and the Lesson page opens on it.
    """
    where = {LESSON_PARAM: step.lesson, STEP_PARAM: str(step.number)} if step.lesson else {}
    query = urlencode({**step.link, **where}, safe=",")
    return f"{base}/{BY_NAME[step.page].url_path}" + (f"?{query}" if query else "")


def teacher_notes(lesson: Lesson, base: str = BASE_URL) -> str:
    """Markdown notes for the teacher: each step with its time, page, link, prompt, answers and notes."""
    out = [f"# Teacher notes: {lesson.title}", "",
           f"Generated from `lessons/{lesson.name}.toml` by `python -m ui.lesson_file` (edit the lesson file, "
           f"not this one). {lesson.minutes} minutes in all; links assume the app at {base} "
           "(`streamlit run app.py`): replace that part for your server.", ""]
    if lesson.summary:
        out += [lesson.summary, ""]
    start = 0
    for n, step in enumerate(lesson.steps, 1):
        page = BY_NAME[step.page]
        out += [f"## {n}. {step.title} ({start}-{start + step.minutes} min, {page.title} page)", "",
                f"Link: <{step_url(step, base)}>", "", step.text, ""]
        if step.predict:
            out += [f"**Predict, then run.** {step.predict.question}", ""]
            out += [f"- {c}" + (f" (holds if the page measures: {step.predict.outcome(c)})" if step.predict.outcomes else "")
                    for c in step.predict.choices] + ["", f"*Reveal:* {step.predict.reveal}", ""]
        for i, q in enumerate(step.quiz, 1):
            out += [f"**Quiz {i}.** {q.question}", ""]
            out += [f"- {c}{' (answer)' if c == q.answer else ''}" for c in q.choices] + ["", f"*Feedback:* {q.feedback}", ""]
        if step.notes:
            out += [f"*Teacher:* {step.notes}", ""]
        start += step.minutes
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":  # python -m ui.lesson_file: rewrite docs/teacher_notes.md from the default lesson
    try:
        NOTES_FILE.write_text(teacher_notes(load_lesson(LESSONS_DIR / f"{DEFAULT_LESSON}.toml")), encoding="utf-8")
    except UserInputError as error:
        sys.exit(f"error: {error}")
    print(f"wrote {NOTES_FILE.relative_to(ROOT)}")
