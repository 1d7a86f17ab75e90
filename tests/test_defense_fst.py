"""FST (feature shift tuning): lowers ASR on the tiny backdoored model, keeps the head's norm, works on
a private copy, stops on request, refuses bad settings, and never reads the trigger or ASR."""

from __future__ import annotations

import ast
import inspect

import pytest
import torch

from purify_core.data.image_set import ImageSet
from purify_core.defenses import DEFENSES, fst, run_defense
from purify_core.errors import UserInputError
from purify_core.method.purify import PurifyConfig, PurifyResult, StepMetrics
from purify_core.models.evaluate import evaluate

from app_helpers import run_all, weights_hash

FAST = PurifyConfig(epochs=5, eval_every=1000)
#: Names a defense may not read: the attack, its trigger, poisoned data, ASR.
ORACLE_NAMES = {"attack", "trigger", "poison", "poisoned", "asr", "tac", "backdoored"}


def code_names(module) -> set[str]:
    """Every identifier and attribute name the module's code uses (docstrings and comments aside)."""
    tree = ast.parse(inspect.getsource(module))
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    names |= {a.arg for n in ast.walk(tree) if isinstance(n, ast.arguments) for a in n.args + n.kwonlyargs}
    return {name.lower() for name in names}


@pytest.fixture
def small_clean(hand_net):
    g = torch.Generator().manual_seed(3)
    return ImageSet(torch.rand(24, 1, 4, 4, generator=g), torch.randint(0, 2, (24,), generator=g))


def test_fst_is_registered_with_its_paper_and_needs_no_trigger():
    defense = DEFENSES["fst"]
    assert "NeurIPS 2023" in defense.source and not defense.needs_trigger
    assert set(defense.params) == {"alpha"} and defense.params["alpha"].default == 0.2


def test_the_head_is_redrawn_and_keeps_its_original_norm_and_no_hook_is_left(hand_net, small_clean):
    original = hand_net.out.weight.detach().clone()
    before = weights_hash(hand_net)
    _, result = run_all(run_defense("fst", hand_net, small_clean, PurifyConfig(epochs=2, batch_size=8, shift=0)))
    head = result.model.out.weight.detach()
    assert weights_hash(hand_net) == before and result.model is not hand_net
    assert float(head.norm()) == pytest.approx(float(original.norm()), rel=1e-5)
    assert not torch.allclose(head, original)
    # the penalty pushed the new head away from the old one: their inner product is below ||W0||^2
    assert float((head * original).sum()) < float((original * original).sum())
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in result.model.modules())


def test_a_step_projects_the_head_back_to_the_original_norm_as_the_reference_does(hand_net, small_clean):
    """After step k the head's weight norm is ||W0||, whatever the step did to it (ft.py: after optimizer.step())."""
    norm = float(hand_net.out.weight.detach().norm())
    run = run_defense("fst", hand_net, small_clean, PurifyConfig(epochs=1, batch_size=8, shift=0, lr=0.5))
    items = list(run)
    assert items[-1].summary.status == "finished"
    assert float(items[-1].model.out.weight.detach().norm()) == pytest.approx(norm, rel=1e-5)


def test_fst_lowers_asr_on_the_tiny_backdoored_model_on_a_private_copy(case):
    backdoored, splits, evaluator = case
    before = weights_hash(backdoored.model)
    steps, result = run_all(run_defense("fst", backdoored.model, splits.clean, FAST, evaluator))
    summary = result.summary
    assert summary.status == "finished" and steps[0].asr == summary.before.asr
    assert summary.before.asr > 0.9
    assert summary.after.asr < summary.before.asr - 0.5  # measured: 100% -> 0% (ACC 99.4% -> 55.8%)
    assert weights_hash(backdoored.model) == before and result.model is not backdoored.model


def test_the_evaluator_only_reports_weights_are_the_same_without_it(case):
    backdoored, splits, evaluator = case
    config = PurifyConfig(epochs=2, eval_every=3)
    with_oracle = run_all(run_defense("fst", backdoored.model, splits.clean, config, evaluator))[1].model
    without = run_all(run_defense("fst", backdoored.model, splits.clean, config, None))[1].model
    assert weights_hash(with_oracle) == weights_hash(without)


def test_the_code_never_touches_the_attack_trigger_or_asr():
    assert not code_names(fst) & ORACLE_NAMES


def test_stop_on_request_ends_at_the_next_step_with_a_result(hand_net, small_clean):
    calls = iter(range(1000))
    steps, result = run_all(run_defense("fst", hand_net, small_clean, PurifyConfig(epochs=3, batch_size=8),
                                        should_stop=lambda: next(calls) >= 4))
    assert result.summary.status == "stopped" and result.summary.steps == 4 and steps[-1].step == 4
    assert result.model is not None and float(result.model.out.weight.detach().norm()) == pytest.approx(float(hand_net.out.weight.detach().norm()), rel=1e-5)


def test_closing_the_run_removes_its_hook(hand_net, small_clean):
    run = run_defense("fst", hand_net, small_clean, PurifyConfig(epochs=3, batch_size=8))
    next(run), next(run)
    head = run.gi_frame.f_locals["model"].out
    assert head._forward_pre_hooks
    run.close()
    assert not head._forward_pre_hooks


def test_a_blown_up_loss_ends_as_diverged_with_a_reason(hand_net, small_clean):
    # the penalty is bounded (the head's norm is fixed), so it takes a wild learning rate to blow up
    _, result = run_all(run_defense("fst", hand_net, small_clean, PurifyConfig(epochs=2, batch_size=8, lr=1e30)))
    assert result.summary.status == "diverged" and result.model is None and "loss became" in result.summary.reason


@pytest.mark.parametrize("settings, config, message", [
    ({"alpha": -0.1}, PurifyConfig(), "alpha=-0.1 must be >= 0"),
    ({"alpha": "much"}, PurifyConfig(), "must be a float"),
    ({"alpha": float("nan")}, PurifyConfig(), "finite"),
    ({"beta": 1.0}, PurifyConfig(), "fst has no setting beta; its settings are: alpha"),
    ({}, PurifyConfig(epochs=0), "epochs must be at least 1"),
])
def test_bad_settings_are_refused_with_one_line_before_any_work(hand_net, small_clean, settings, config, message):
    before = weights_hash(hand_net)
    with pytest.raises(UserInputError, match=message.replace("(", r"\(")) as error:
        run_defense("fst", hand_net, small_clean, config, settings=settings)
    assert "\n" not in str(error.value) and weights_hash(hand_net) == before


def test_a_model_without_a_linear_head_is_refused(small_clean):
    conv_only = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    with pytest.raises(UserInputError, match="final nn.Linear"):
        run_defense("fst", conv_only, small_clean, PurifyConfig())
