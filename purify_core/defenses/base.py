"""The one contract every defense follows: a `Defense` record, one per module (`DEFENSE = ...`).

A defense says what it is (name, label, one line, its paper), how its settings are chosen (never
from the trigger, the poisoned data or ASR: it gets neither) and what its settings are
(`ParamSpec`s, the type attacks use, so the CLI and the app build flags and widgets from them).
`run` does the work on a private copy that `run_defense` made, with settings already checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Mapping

from torch import nn

from ..data.image_set import ImageSet
from ..method.purify import Evaluator, PurifyConfig, PurifyResult, StepMetrics
from ..params import ParamSpec, ParamValue

__all__ = ["Defense", "DefenseRun", "Settings", "ShouldStop", "Steps"]

Settings = Mapping[str, ParamValue]
ShouldStop = Callable[[], bool]
Steps = Iterator[StepMetrics | PurifyResult]
#: run(model_copy, clean_set, settings, config, evaluator, should_stop): StepMetrics items, then one
#: PurifyResult. `model_copy` is the defense's own (change it freely); `config` holds the shared
#: fine-tuning knobs (epochs, lr, momentum, weight decay, batch size, shift, seed, eval_every);
#: `evaluator` (ACC/ASR on the test set) only reports and may be None; `should_stop` ends the run
#: at the next step with a result. `method.purify.fine_tune` is the loop most defenses end with.
DefenseRun = Callable[[nn.Module, ImageSet, Settings, PurifyConfig, "Evaluator | None", "ShouldStop | None"], Steps]


@dataclass(frozen=True)
class Defense:
    """What a defense is and how to run it; registered by `defenses/__init__.py` under `name`."""

    name: str  # the CLI and link value: lower-case words joined by '-'
    label: str  # a short title for menus ("Fine-Pruning")
    summary: str  # one line: what it does
    source: str  # the paper (authors, venue, year) or "baseline"
    selection: str  # how its settings are chosen: from clean data only, never from ASR
    params: dict[str, ParamSpec]
    run: DefenseRun
    #: A defense that needs the trigger is refused by the registry: a defender does not have it.
    needs_trigger: bool = False
