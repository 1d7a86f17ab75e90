"""The test tiers sort tests by what they drive: the rules in tests/tiers.py and the slow list stay true."""

from __future__ import annotations

import ast
import configparser

from tiers import SLOW_TESTS, TESTS, TIER_MARKS, drives_the_app, measured_slow

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


def test_every_measured_slow_test_exists():
    """A renamed or deleted test would silently leave the list; a stale name would hide nothing."""
    missing = []
    for node in sorted(measured_slow()):
        path, name = node.split("::")
        file = TESTS.parent / path
        defined = file.exists() and name in {f.name for f in ast.walk(ast.parse(file.read_text())) if isinstance(f, ast.FunctionDef)}
        if not defined:
            missing.append(node)
    assert not missing, f"{SLOW_TESTS.name} names tests that do not exist: {missing}"


def test_the_tier_markers_are_registered_and_strict():
    ini = configparser.ConfigParser()
    ini.read(TESTS.parent / "pytest.ini")
    registered = {line.split(":")[0].strip() for line in ini["pytest"]["markers"].strip().splitlines()}
    assert registered >= {"slow", *TIER_MARKS}
    assert "--strict-markers" in ini["pytest"]["addopts"].split()
