"""Shared pieces of the benchmarks: the shipped scenarios and running a purification to its end."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

from torch import nn

from ..data import Splits, redraw_defense
from ..errors import UserInputError
from ..evaluate import Metrics, evaluate
from ..purify import PurifyResult, StepMetrics
from ..zoo import BackdooredModel, load_shipped, shipped_scenarios

__all__ = ["Case", "cases", "finish"]


@dataclass(frozen=True, eq=False)
class Case:
    """One shipped backdoored model with one draw of the clean defense set."""

    backdoored: BackdooredModel
    splits: Splits
    seed: int

    def evaluator(self, first: int | None = None) -> Callable[[nn.Module], Metrics]:
        """ACC and ASR on the test images (only the `first` ones: cheaper checks during a run)."""
        test = self.splits.test if first is None else self.splits.test.subset(range(min(first, len(self.splits.test))))
        return lambda model: evaluate(model, test, self.backdoored.attack)


def cases(names: list[str] | None, seeds: list[int]) -> Iterator[Case]:
    """Every requested shipped scenario (all by default) x every defense-set seed."""
    chosen = [s for s in shipped_scenarios() if not names or any(n in s.name for n in names)]
    if not chosen:
        known = ", ".join(s.name for s in shipped_scenarios())
        raise UserInputError(f"no shipped scenario matches {' '.join(names or [])!r}; shipped: {known}")
    if any(seed < 0 for seed in seeds):
        raise UserInputError("defense-set seeds must be >= 0")
    for scenario in chosen:
        backdoored = load_shipped(scenario.name)
        for seed in seeds:
            yield Case(backdoored, redraw_defense(backdoored.splits(), seed), seed)


def finish(run: Iterator[StepMetrics | PurifyResult]) -> PurifyResult:
    """Drive a purification or defense generator to its result."""
    item = None
    for item in run:
        pass
    assert isinstance(item, PurifyResult)
    return item
