"""Time estimates shown before long work, from what was measured: so nobody waits without knowing for how long.

Training: the seconds per image and epoch of models already trained with the same data and
architecture (their cards keep `train_seconds`). Pruning curves: the number of evaluations times
one evaluation of this model, timed on this server.
"""

from __future__ import annotations

import statistics
from typing import Iterable

from purify_core.store.cards import Card


def training_estimate(cards: Iterable[Card], dataset: str, arch: str, epochs: int, n_train: int) -> tuple[float, int] | None:
    """(seconds, how many trainings it is drawn from) for `epochs` epochs on `n_train` images, from the
    cards of the same data set and architecture; None when none was trained yet."""
    rates = []
    for card in cards:
        scenario = card.scenario
        try:
            same = scenario["data"]["dataset"] == dataset and scenario["model"]["arch"] == arch
            per_image_epoch = card.train_seconds / (scenario["train"]["epochs"] * card.n_train)
        except (KeyError, TypeError, ZeroDivisionError):
            continue
        if same and per_image_epoch > 0:
            rates.append(per_image_epoch)
    if not rates:
        return None
    return statistics.median(rates) * epochs * n_train, len(rates)


def seconds_text(seconds: float) -> str:
    """A duration as people say it: "about 40 s", "about 3 min"."""
    return f"about {seconds:.0f} s" if seconds < 90 else f"about {seconds / 60:.0f} min"


def time_left(elapsed: float, fraction: float) -> str:
    """What a progress bar says about the rest, from the pace so far (nothing before 2% is done)."""
    if fraction < 0.02 or fraction >= 1:
        return ""
    return f" · {seconds_text(elapsed * (1 - fraction) / fraction)} left"
