"""Shared pieces of the benchmarks: the shipped scenarios and running a purification to its end."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from torch import nn

from ..data import Splits, redraw_defense
from ..errors import UserInputError
from ..evaluate import Metrics, evaluate
from ..purify import PurifyResult, StepMetrics
from ..zoo import BackdooredModel, load_shipped, shipped_scenarios

__all__ = ["Case", "cases", "finish", "load_own"]


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


def load_own(checkpoint: str | Path, card_file: str | Path) -> BackdooredModel:
    """A model from `train --out` or `import` (your own weights with their card), through the safe loader
    (`checkpoints.read_card` and `load_checkpoint`: the card checked, the sha256 matched, safetensors only)."""
    from ..attacks import build_attack
    from ..checkpoints import load_checkpoint, read_card
    from ..models import pick_device

    card = read_card(card_file)
    scenario = card.scenario_config
    model = load_checkpoint(checkpoint, card, map_location=pick_device())
    return BackdooredModel(scenario, model, card, build_attack(scenario.attack, card.input_shape, card.num_classes))


def finish(run: Iterator[StepMetrics | PurifyResult]) -> PurifyResult:
    """Drive a purification or defense generator to its result."""
    item = None
    for item in run:
        pass
    assert isinstance(item, PurifyResult)
    return item
