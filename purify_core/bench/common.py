"""Shared pieces of the benchmarks: which shipped scenarios and clean-set draws they loop over,
and a model of your own. The steps every front end shares (a `Case`, running a purification to
its end) live in `purify_core.study`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Iterator

from ..store.backdoored import BackdooredModel
from ..errors import UserInputError
from ..study import Case, case_of
from ..store.zoo import load_shipped, shipped_scenarios

__all__ = ["cases", "chosen_scenarios", "case_for", "load_own"]


def chosen_scenarios(names: list[str] | None, seeds: list[int]) -> list[str]:
    """The names of every requested shipped scenario (all by default); the seeds checked too."""
    chosen = [s.name for s in shipped_scenarios() if not names or any(n in s.name for n in names)]
    if not chosen:
        known = ", ".join(s.name for s in shipped_scenarios())
        raise UserInputError(f"no shipped scenario matches {' '.join(names or [])!r}; shipped: {known}")
    if any(seed < 0 for seed in seeds):
        raise UserInputError("defense-set seeds must be >= 0")
    return chosen


def cases(names: list[str] | None, seeds: list[int]) -> Iterator[Case]:
    """Every requested shipped scenario (all by default) x every defense-set seed."""
    for name in chosen_scenarios(names, seeds):
        backdoored = load_shipped(name)
        for seed in seeds:
            yield case_of(backdoored, seed)


@lru_cache(maxsize=4)
def _backdoored(name: str, zoo: str | None) -> BackdooredModel:
    return load_shipped(name) if zoo is None else load_shipped(name, Path(zoo))


@lru_cache(maxsize=8)
def case_for(name: str, draw: int, zoo: str | None = None) -> Case:
    """A sweep job's case, read from the zoo on disk (`zoo`: another zoo folder, e.g. a test's) once per
    worker process and kept: jobs get names, never models. Jobs only read it (purification works on a copy)."""
    return case_of(_backdoored(name, zoo), draw)


def load_own(checkpoint: str | Path, card_file: str | Path) -> BackdooredModel:
    """A model from `train --out` or `import` (your own weights with their card), through the safe loader
    (`checkpoints.read_card` and `load_checkpoint`: the card checked, the sha256 matched, safetensors only)."""
    from ..attacks import build_attack
    from ..store.checkpoints import load_checkpoint, read_card
    from ..models.architectures import pick_device

    card = read_card(card_file)
    scenario = card.scenario_config
    model = load_checkpoint(checkpoint, card, map_location=pick_device())
    return BackdooredModel(scenario, model, card, build_attack(scenario.attack, card.input_shape, card.num_classes))

