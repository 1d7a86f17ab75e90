"""A server-wide limit on concurrent heavy jobs (training, purification, baseline defenses): a rule of the web app.

Streamlit-free (the load benchmark reads the limit too), and no part of the torch library: the CLI
and the benchmarks run one job at a time and never need it.

Thirty students pressing Run at once on a 2-core server would each get a fifteenth of a core and
every page would freeze. Instead, at most `limit` jobs run; the others wait for a free slot and
keep telling their user so (`on_wait`), which also gives a web page the chance to stop the wait.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from contextlib import contextmanager
from typing import Callable, Iterator

__all__ = ["JobSlots", "MAX_JOBS", "default_job_limit", "shared_slots", "one_torch_thread"]

_SHARED: dict[int, "JobSlots"] = {}
_SHARED_LOCK = threading.Lock()


#: The largest `$PURIFY_LAB_JOBS` taken.
MAX_JOBS = 1024


def default_job_limit() -> int:
    """`$PURIFY_LAB_JOBS` if it is a whole number in [1, MAX_JOBS], else the number of CPU cores.

    Only ASCII digits count: `str.isdigit` also accepts "²" (which `int` refuses) and `int` also
    reads "٣", so either would surprise whoever set it. Anything else is ignored with a warning
    in the server's log, never a traceback on a student's page.
    """
    cores = max(1, os.cpu_count() or 1)
    raw = os.environ.get("PURIFY_LAB_JOBS", "").strip()
    if not raw:
        return cores
    if raw.isascii() and raw.isdigit() and 1 <= int(raw) <= MAX_JOBS:
        return int(raw)
    warnings.warn(f"PURIFY_LAB_JOBS={raw[:20]!r} is not a whole number in [1, {MAX_JOBS}] (ASCII digits); using {cores}, "
                  "the number of CPU cores", RuntimeWarning, stacklevel=2)
    return cores


class JobSlots:
    """At most `limit` holders at once; the rest wait in `slot`, reporting every `poll` seconds."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"a job limit must be >= 1, got {limit}")
        self.limit = limit
        self._semaphore = threading.BoundedSemaphore(limit)
        self._lock = threading.Lock()
        self._running = 0

    @property
    def running(self) -> int:
        """Jobs holding a slot now."""
        return self._running

    @contextmanager
    def slot(self, on_wait: Callable[[float], None] | None = None, poll: float = 0.5) -> Iterator[float]:
        """Hold a slot for the `with` block; yields the seconds spent waiting for it.

        `on_wait(seconds_waited)` is called while waiting; an exception it raises (a page that
        was stopped or navigated away) ends the wait without taking a slot.
        """
        start = time.monotonic()
        acquired = self._semaphore.acquire(blocking=False)
        while not acquired:
            if on_wait is not None:
                on_wait(time.monotonic() - start)
            acquired = self._semaphore.acquire(timeout=poll)
        with self._lock:
            self._running += 1
        try:
            yield time.monotonic() - start
        finally:
            with self._lock:
                self._running -= 1
            self._semaphore.release()


def shared_slots(limit: int | None = None) -> JobSlots:
    """The process-wide slots for `limit` (default `default_job_limit()`): every session of a server shares them.

    A module-level registry rather than a Streamlit cache: "Clear cache" must never hand out a
    second set of slots while jobs still hold the first.
    """
    limit = default_job_limit() if limit is None else limit
    with _SHARED_LOCK:
        return _SHARED.setdefault(limit, JobSlots(limit))


def one_torch_thread() -> int:
    """Run torch on one thread in this server process, unless `$OMP_NUM_THREADS` chose a number; returns the count.

    Why: the server runs a job per core (`default_job_limit`) next to the pages' own work and, on a
    laptop, the browser. A torch job with a thread per core stalls at every parallel op while another
    process holds a core: on this 2-core machine at load 11 the default purification streamed in the app
    in 186 s with two threads and 27 s with one (benchmarks/app.md). One thread is also what a Ray
    worker (one CPU) runs, so a run computed here and one computed on Ray are the same to the last bit.
    Cheap on every script run: each new thread starts at the count set here.
    """
    import torch

    if os.environ.get("OMP_NUM_THREADS", "").strip():
        return torch.get_num_threads()
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)
    return 1
