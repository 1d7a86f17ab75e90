"""Honest selection: no defense reads the evaluator (ACC/ASR on the test set, the trigger) to choose anything.

Every registered defense (new ones are picked up from the registry) and the paper's purification
presets run twice on the tiny backdoored model: once with no evaluator at all, once with an
evaluator that lies (a different random ACC, ASR and RA at every call). A run whose choices read
the evaluator would end with other weights; an honest one ends with exactly the same. A defense
never receives the trigger or the poisoned data: `run_defense` takes the model and the clean set
only, and the registry refuses a defense that declares `needs_trigger`.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
import torch

from purify_core.defenses import DEFENSES, run_defense
from purify_core.method.purify import PurifyConfig, purify, purify_preset
from purify_core.models.evaluate import Metrics
from purify_core.study import purification_result

#: The paper's presets the arena runs beside the defenses.
PRESETS = ("default", "reference")
#: Short runs: the point is the choices, not the result.
QUICK = PurifyConfig(epochs=1, eval_every=1)


class LyingEvaluator:
    """Returns made-up numbers and counts its calls: a defense steered by it would drift."""

    def __init__(self) -> None:
        self.calls = 0
        self._rng = random.Random(1234)

    def __call__(self, model: torch.nn.Module) -> Metrics:
        self.calls += 1
        r = self._rng.random
        return Metrics(acc=r(), asr=r(), n_clean=100, n_triggered=90, ra=r())


def _final_weights(run) -> dict[str, torch.Tensor]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # a defense that draws from the global generator draws the same numbers both times
        result = purification_result(run())
    assert result.model is not None, result.summary.reason
    return {k: v.detach().clone() for k, v in result.model.state_dict().items()}


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs when the evaluator lies: a choice read the evaluator"


@pytest.mark.parametrize("name", list(DEFENSES))
def test_a_defense_ends_with_the_same_weights_whatever_the_evaluator_says(name, tiny_backdoored):
    model, clean = tiny_backdoored.model, tiny_backdoored.splits().clean
    config = replace(QUICK, reinit="none", distill=0.0)
    liar = LyingEvaluator()
    honest = _final_weights(lambda: run_defense(name, model, clean, config, None))
    lied_to = _final_weights(lambda: run_defense(name, model, clean, config, liar))
    assert liar.calls >= 1  # the evaluator was there to be read
    _assert_same(honest, lied_to)
    assert not DEFENSES[name].needs_trigger and DEFENSES[name].selection.strip()  # says how its settings are chosen


@pytest.mark.parametrize("preset", PRESETS)
def test_the_papers_presets_end_with_the_same_weights_whatever_the_evaluator_says(preset, tiny_backdoored):
    model, clean = tiny_backdoored.model, tiny_backdoored.splits().clean
    config = replace(purify_preset(preset), epochs=1, eval_every=1)
    liar = LyingEvaluator()
    honest = _final_weights(lambda: purify(model, clean, config, None))
    lied_to = _final_weights(lambda: purify(model, clean, config, liar))
    assert liar.calls >= 1
    _assert_same(honest, lied_to)


def test_the_check_fails_for_a_defense_that_reads_the_evaluator(tiny_backdoored):
    """The test can fail: a run that picks its learning rate from the evaluator's ASR is caught."""
    model, clean = tiny_backdoored.model, tiny_backdoored.splits().clean

    def cheating(evaluator):
        lr = 0.05 if evaluator is not None and evaluator(model).asr > 0.5 else 0.01
        return run_defense("finetune", model, clean, replace(QUICK, lr=lr), evaluator)

    liar = LyingEvaluator()
    liar._rng = random.Random(0)  # its first ASR is 0.84: the cheat changes its learning rate
    with pytest.raises(AssertionError, match="a choice read the evaluator"):
        _assert_same(_final_weights(lambda: cheating(None)), _final_weights(lambda: cheating(liar)))
