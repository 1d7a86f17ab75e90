"""Five sessions on one server at once (the CI-sized version of `python -m benchmarks.load`'s classroom of 30)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser  # tests/conftest.py skips it without Chromium, or fails it under PURIFY_LAB_REQUIRE_BROWSER=1


def test_five_sessions_at_once_see_only_their_own_runs_and_leave_the_shared_model_alone():
    from benchmarks.load import run_load

    report = run_load(sessions=5, purifiers=2, timeout_s=300, animate=False)  # endless CSS animations cost Chromium a quarter of its CPU
    summary = report.summary()
    assert report.errors == [], report.errors
    assert report.cross_talk == [], report.cross_talk
    assert summary["shared model unchanged"], (report.hash_before, report.hash_after)
    assert len(report.run_seconds) == 2 and summary["page loads"] == 3 * 6 + 2
    # the two purifiers press Run on the same defaults: one computes, the other replays (or waits for it, then replays)
    assert (summary["purifications computed"], summary["purifications replayed"]) == (1, 1), report.runs
