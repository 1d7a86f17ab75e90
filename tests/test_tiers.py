"""The test tiers sort tests by what they drive: the rules in tests/tiers.py and the slow list stay true."""

from __future__ import annotations

import ast
import configparser

import pytest

from tiers import LONGEST_TESTS, SLOW_TESTS, TESTS, TIER_MARKS, drives_the_app, empty_tiers, listed_tests, longest_first

#: Compiled as if it were a file under tests/, so its helpers count as the tests' own.
SAMPLE = '''
from streamlit.testing.v1 import AppTest

def open_home():
    return AppTest.from_file("app.py")

def test_through_a_helper():
    return open_home().run()

def test_direct():
    at = [AppTest.from_file("app.py") for _ in range(1)]  # inside a comprehension: nested code

def test_core_only():
    return sum([1, 2])

def ping():
    return pong()

def pong():
    return ping()

def test_recursive_helpers():
    return ping()
'''


def sample() -> dict:
    namespace: dict = {}
    exec(compile(SAMPLE, str(TESTS / "sample_for_tiers.py"), "exec"), namespace)
    return namespace


def test_tests_that_open_the_app_directly_or_through_a_helper_are_found():
    ns = sample()
    assert drives_the_app(ns["test_through_a_helper"]) and drives_the_app(ns["test_direct"])
    assert not drives_the_app(ns["test_core_only"]) and not drives_the_app(ns["test_recursive_helpers"])


@pytest.mark.parametrize("listed", [SLOW_TESTS, LONGEST_TESTS], ids=lambda path: path.name)
def test_every_listed_test_exists(listed):
    """A renamed or deleted test would silently leave a list; a stale name would hide nothing, or order nothing."""
    missing = []
    for node in sorted(listed_tests(listed)):
        path, name = node.split("::")
        file = TESTS.parent / path
        defined = file.exists() and name in {f.name for f in ast.walk(ast.parse(file.read_text())) if isinstance(f, ast.FunctionDef)}
        if not defined:
            missing.append(node)
    assert not missing, f"{listed.name} names tests that do not exist: {missing}"


def test_the_listed_longest_tests_run_first_in_the_lists_order_with_all_their_parameters():
    nodes = ["t.py::a", "t.py::long[1]", "t.py::b", "t.py::longest", "t.py::long[2]", "t.py::c"]
    ordered = longest_first(nodes, str, listed=["t.py::longest", "t.py::long"])
    assert ordered == ["t.py::longest", "t.py::long[1]", "t.py::long[2]", "t.py::a", "t.py::b", "t.py::c"]
    assert longest_first(nodes, str, listed=[]) == nodes


def test_a_tier_without_tests_is_named():
    assert empty_tiers([set(), {"slow"}, {"slow", "app"}, {"slow", "browser"}]) == []
    assert empty_tiers([set(), {"slow", "app"}]) == ["slow", "browser"]
    assert empty_tiers([]) == ["fast", "slow", "app", "browser"]


def test_the_tier_markers_are_registered_and_strict():
    ini = configparser.ConfigParser()
    ini.read(TESTS.parent / "pytest.ini")
    registered = {line.split(":")[0].strip() for line in ini["pytest"]["markers"].strip().splitlines()}
    assert registered >= {"slow", *TIER_MARKS}
    assert "--strict-markers" in ini["pytest"]["addopts"].split()
