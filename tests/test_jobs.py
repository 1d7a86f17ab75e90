"""The server-wide heavy-job limit: never more than `limit` at once, waiting is reported, and the page says so."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ui.job_slots import JobSlots, default_job_limit, one_torch_thread, shared_slots

ROOT = Path(__file__).resolve().parent.parent


def test_never_more_than_the_limit_run_at_once():
    slots, peak, lock = JobSlots(2), [0], threading.Lock()
    pair = threading.Barrier(2, timeout=10)  # two holders meet inside: the limit is reached, not hoped for

    def job() -> None:
        with slots.slot(poll=0.01):
            with lock:
                peak[0] = max(peak[0], slots.running)
            pair.wait()

    threads = [threading.Thread(target=job) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 2 and slots.running == 0


def test_a_waiting_job_reports_and_a_stopped_wait_takes_no_slot():
    slots, reports = JobSlots(1), []
    taken, release = threading.Event(), threading.Event()

    def holder() -> None:
        with slots.slot():
            taken.set()
            release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    assert taken.wait(5)

    def stop_after_three(waited: float) -> None:
        reports.append(waited)
        if len(reports) == 3:
            raise KeyboardInterrupt("the user left the page")

    with pytest.raises(KeyboardInterrupt):
        with slots.slot(stop_after_three, poll=0.01):
            pass
    assert len(reports) == 3 and reports == sorted(reports)
    release.set()
    thread.join()
    with slots.slot(poll=0.01) as waited:  # the abandoned wait did not keep a slot
        assert waited < 0.5 and slots.running == 1


def test_the_default_limit_is_the_core_count_unless_configured(monkeypatch):
    import os

    monkeypatch.delenv("PURIFY_LAB_JOBS", raising=False)
    assert default_job_limit() == (os.cpu_count() or 1)
    monkeypatch.setenv("PURIFY_LAB_JOBS", "3")
    assert default_job_limit() == 3
    for junk in ("lots", "²", "٣", "0", "-2", "99999", "3.5"):  # "²".isdigit() is True but int("²") fails; int("٣") is 3
        monkeypatch.setenv("PURIFY_LAB_JOBS", junk)
        with pytest.warns(RuntimeWarning, match="is not a whole number in"):
            assert default_job_limit() == (os.cpu_count() or 1)



def test_the_server_runs_torch_on_one_thread_unless_omp_num_threads_is_set(monkeypatch):
    import torch

    before, seen = torch.get_num_threads(), {}

    def server_thread() -> None:  # a thread of its own: this test's thread keeps its count
        try:
            torch.set_num_threads(2)
            monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
            seen["default"] = (one_torch_thread(), torch.get_num_threads())
            torch.set_num_threads(2)
            monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the operator's choice is kept
            seen["chosen"] = (one_torch_thread(), torch.get_num_threads())
        finally:
            torch.set_num_threads(before)

    worker = threading.Thread(target=server_thread)
    worker.start()
    worker.join(timeout=30)
    assert seen == {"default": (1, 1), "chosen": (2, 2)}

def test_a_purification_waits_for_a_free_slot_then_runs(monkeypatch):
    monkeypatch.setenv("PURIFY_LAB_JOBS", "1")
    slots = shared_slots(1)  # the same slots the app's sessions share
    taken, release = threading.Event(), threading.Event()

    def busy_server() -> None:
        with slots.slot():
            taken.set()
            release.wait(30)

    reports: list[float] = []
    plain_slot = slots.slot

    def reporting_slot(on_wait=None, poll: float = 0.5):
        """The page's own slot, freed once the page has said twice that it waits (one whole poll)."""
        def waiting(seconds: float) -> None:
            reports.append(seconds)
            on_wait(seconds)
            if len(reports) == 2:
                release.set()
        return plain_slot(waiting, poll)

    monkeypatch.setattr(slots, "slot", reporting_slot)
    thread = threading.Thread(target=busy_server)
    thread.start()
    assert taken.wait(5)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.query_params["purify_epochs"] = "1"
    at.run()
    at.switch_page("app_pages/purify.py").run()
    at.button(key="purify_run").click().run()
    thread.join()
    assert not at.exception
    (run,) = at.session_state["purify_runs"]
    assert len(reports) == 2 and reports[1] >= 0.5, reports
    assert run.status == "finished" and run.waited_s >= 0.5, (run.waited_s, reports)
    assert slots.running == 0
