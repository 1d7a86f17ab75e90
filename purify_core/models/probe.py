"""Live numbers from a small fixed probe of the test split; the run's own numbers from all of it.

Why: on two CPU cores one evaluation of the whole test split costs as much as a few dozen training
steps, so a run that streams ACC/ASR every 10 steps spent most of its time evaluating, and its chart
stayed empty for the first steps. A `ProbedEvaluator` answers the run's live points from the first
`probe_size` test images, at a few well-placed steps (early ones first), while `before` and `after`
(what tables, cards, exports and benchmarks read) stay on the whole split. The CLI and the benchmarks
pass a plain evaluator and get exactly what they got before.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Callable

import torch
from torch import nn

from .evaluate import Metrics, evaluate

if TYPE_CHECKING:
    from ..attacks import Attack
    from ..data.image_set import ImageSet

__all__ = ["ProbedEvaluator", "MetricsMemo", "probed_evaluator", "weights_fingerprint", "PROBE_SIZE"]

Evaluator = Callable[[nn.Module], Metrics]

#: Test images the live points are measured on (the first ones of the split: a fixed probe).
PROBE_SIZE = 128


def weights_fingerprint(model: nn.Module) -> str:
    """sha256 of every parameter and buffer, in order: the same weights give the same numbers."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class MetricsMemo:
    """Full-split numbers by weights fingerprint, bounded and thread-safe: a server shares one, so
    a model's "before" is measured once, not at the start of every session's run."""

    def __init__(self, max_entries: int = 64) -> None:
        self.max_entries = max_entries
        self._items: OrderedDict[str, Metrics] = OrderedDict()
        self._lock = threading.Lock()

    def __reduce__(self):  # a copy sent to another process (a Ray worker) starts empty: a lock does not travel
        return (MetricsMemo, (self.max_entries,))

    def get(self, key: str) -> Metrics | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
            return self._items.get(key)

    def put(self, key: str, metrics: Metrics) -> None:
        with self._lock:
            self._items[key] = metrics
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)


@dataclass(frozen=True, eq=False)
class ProbedEvaluator:
    """Called like any evaluator: the whole split (memoised by weights when `memo` is given).
    `live` is the probe, `due` says at which steps a run evaluates it.

    `scope` names what is evaluated (the model's test set and attack): memo keys carry it, so two
    scenarios never share an entry. `points`: about this many evenly spaced live points per run,
    plus the `early` steps, where the ASR moves most."""

    full: Evaluator
    probe: Evaluator
    probe_size: int
    scope: str = ""
    points: int = 12
    early: tuple[int, ...] = (1, 2, 4)
    memo: MetricsMemo | None = field(default=None, repr=False)

    def __call__(self, model: nn.Module) -> Metrics:
        if self.memo is None:
            return self.full(model)
        key = f"{self.scope}:{weights_fingerprint(model)}"
        known = self.memo.get(key)
        if known is None:
            known = self.full(model)
            self.memo.put(key, known)
        return known

    def live(self, model: nn.Module) -> Metrics:
        """ACC and ASR on the probe: a streamed point, never a run's before or after."""
        return self.probe(model)

    def due(self, step: int, steps: int) -> bool:
        """Whether step `step` of `steps` gets a live point (the last step always does)."""
        every = max(1, math.ceil(steps / max(1, self.points)))
        return step in self.early or step % every == 0 or step == steps


def probed_evaluator(attack: "Attack", test: "ImageSet", scope: str, memo: MetricsMemo | None = None,
                     probe_size: int = PROBE_SIZE) -> ProbedEvaluator:
    """The evaluator's view of `test` under `attack`, live points from its first `probe_size` images."""
    probe = test.subset(range(min(probe_size, len(test))))  # partials, not lambdas: a job that carries it can be pickled
    return ProbedEvaluator(full=partial(evaluate, test=test, attack=attack), probe=partial(evaluate, test=probe, attack=attack),
                           probe_size=len(probe), scope=scope, memo=memo)
