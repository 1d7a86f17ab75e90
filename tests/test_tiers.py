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


def test_under_loadgroup_the_chromium_tests_are_one_group_and_nothing_else_is():
    """.ci/run's `-n 2 --dist loadgroup` must keep the Chromium tests on one worker (one app server, one Chromium):
    pytest-xdist groups by the `@name` it appends to a node id, and only for marks present when its own hook runs."""
    import os
    import subprocess
    import sys

    from benchmarks.app_server import ROOT

    # --setup-plan: the workers collect and report every test without running it (no server, no Chromium)
    listed = subprocess.run([sys.executable, "-m", "pytest", "--setup-plan", "-v", "-n", "2", "--dist", "loadgroup",
                             "tests/test_load.py", "tests/test_tiers.py"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={k: v for k, v in os.environ.items() if k not in ("PURIFY_LAB_REQUIRE_TIERS", "PURIFY_LAB_REQUIRE_BROWSER")})
    ids = [line.split()[0] for line in listed.stdout.splitlines() if line.startswith("tests/") and "::" in line]
    browser = [i for i in ids if i.startswith("tests/test_load.py")]
    assert browser and all(i.endswith("@browser") for i in browser), listed.stdout[-2000:]
    assert all("@" not in i for i in ids if i.startswith("tests/test_tiers.py")), listed.stdout[-2000:]
