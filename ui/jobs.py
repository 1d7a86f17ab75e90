"""The app's heavy-job limit: one `JobSlots` shared by every session of this server."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import streamlit as st

from ui.job_slots import shared_slots


@contextmanager
def heavy_job(what: str) -> Iterator[float]:
    """Run the block in a free slot; while none is free, say so on the page (and let Stop end the wait).

    Yields the seconds spent waiting.
    """
    slots = shared_slots()
    notice = st.empty()

    def waiting(seconds: float) -> None:
        notice.info(f"Waiting for a free slot to run {what}: {slots.limit} heavy jobs (training, purification, "
                    f"baseline defenses) run at once on this server, and all are busy. Waited {seconds:.0f} s.",
                    icon=":material/hourglass_top:")

    with slots.slot(waiting) as waited:
        notice.empty()
        yield waited
