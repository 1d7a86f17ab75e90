"""The test tiers (pytest.ini, README "Testing"): which tests drive the app, and which were measured slow.

Kept apart from conftest.py so tests/test_tiers.py can check the rules themselves.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Callable, TypeVar

from benchmarks.app_server import CHROMIUM  # Debian's, the one the browser tier launches (never a downloaded browser)

T = TypeVar("T")
TESTS = Path(__file__).resolve().parent
SLOW_TESTS = TESTS / "slow_tests.txt"
LONGEST_TESTS = TESTS / "longest_tests.txt"
TIER_MARKS = ("app", "browser")  # each implies slow: the fast tier runs neither the pages nor a browser
#: Fixtures that train a model: a test that asks for one is slow (the training is paid by whichever test comes first).
TRAINING_FIXTURES = ("tiny_backdoored",)


def listed_tests(path: Path) -> list[str]:
    """The test functions (file::name) a list file names, in its order."""
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


#: Each tier of pytest.ini, as a test of an item's marker names.
TIERS: dict[str, Callable[[set[str]], bool]] = {
    "fast": lambda marks: "slow" not in marks,
    "slow": lambda marks: "slow" in marks and not marks & {"app", "browser"},
    "app": lambda marks: "app" in marks,
    "browser": lambda marks: "browser" in marks,
}


def empty_tiers(marks_of_items: list[set[str]]) -> list[str]:
    """The tiers no collected test is in (.ci/run runs several tiers in one pytest: each must still have tests)."""
    return [name for name, holds in TIERS.items() if not any(holds(marks) for marks in marks_of_items)]


def measured_slow() -> set[str]:
    """The test functions (file::name) listed in tests/slow_tests.txt."""
    return set(listed_tests(SLOW_TESTS))


def longest_first(items: list[T], nodeid: Callable[[T], str], listed: list[str] | None = None) -> list[T]:
    """`items` with the functions of tests/longest_tests.txt (or `listed`) first, in the list's order, each with all
    its parameters; every other item after them, in its own order (the sort is stable)."""
    places = {name: place for place, name in enumerate(listed_tests(LONGEST_TESTS) if listed is None else listed)}
    return sorted(items, key=lambda item: places.get(nodeid(item).split("[")[0], len(places)))


def _is_apptest(obj: object) -> bool:
    return getattr(obj, "__qualname__", None) == "AppTest" and getattr(obj, "__module__", "").startswith("streamlit.testing")


def _code_names(code) -> set[str]:
    """The global names a function's code (and the code of functions nested in it) refers to."""
    names = set(code.co_names)
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            names |= _code_names(const)
    return names


def drives_the_app(func: object, seen: set | None = None) -> bool:
    """Whether `func`, or a helper of the tests it calls by name, uses streamlit's AppTest.

    Read from the code, not run: the marker must be known before the test runs so `-m` can choose.
    """
    seen = set() if seen is None else seen
    code = getattr(func, "__code__", None)
    if code is None or code in seen:
        return False
    seen.add(code)
    for name in _code_names(code):
        target = getattr(func, "__globals__", {}).get(name)
        if _is_apptest(target):
            return True
        if inspect.isfunction(target) and Path(target.__code__.co_filename).resolve().parent == TESTS \
                and drives_the_app(target, seen):
            return True
    return False
