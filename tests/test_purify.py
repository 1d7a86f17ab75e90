"""Purification and baseline defenses on a tiny trained backdoored model."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch

from purify_core.defenses import DEFENSES, run_defense
from purify_core.errors import UserInputError
from purify_core.models.evaluate import evaluate
from purify_core.method.neurons import neuron_layers, owned_parameters
from purify_core.method.purify import PurifyConfig, PurifyResult, StepMetrics, purify, purify_preset

from app_helpers import run_all

FAST = PurifyConfig(epochs=3, eval_every=3)


def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_purify_streams_steps_and_ends_with_a_purified_private_copy(case):
    backdoored, splits, evaluator = case
    original = weights(backdoored.model)
    steps, result = run_all(purify(backdoored.model, splits.clean, FAST, evaluator))
    per_epoch = -(-len(splits.clean) // FAST.batch_size)
    assert [s.step for s in steps] == list(range(3 * per_epoch + 1))
    assert all(s.acc is not None for s in steps if s.step % 3 == 0 or s.step == steps[-1].steps)
    assert all(s.acc is None for s in steps if s.step % 3 and s.step != steps[-1].steps)
    assert steps[0].acc == pytest.approx(result.summary.before.acc) and result.summary.status == "finished"
    assert result.model is not backdoored.model
    assert all(torch.equal(original[k], v) for k, v in backdoored.model.state_dict().items())
    assert result.summary.after.acc == pytest.approx(evaluator(result.model).acc)
    assert any(not torch.equal(original[k], v) for k, v in result.model.state_dict().items())
    assert result.summary.marked == sum(int(m.sum()) for m in result.mask.values()) > 0


def test_runs_are_reproducible(case):
    backdoored, splits, evaluator = case
    a = run_all(purify(backdoored.model, splits.clean, FAST, evaluator))[1]
    b = run_all(purify(backdoored.model, splits.clean, FAST, evaluator))[1]
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k])
    assert a.summary.after == b.summary.after


def test_closing_the_generator_stops_cleanly_and_should_stop_keeps_what_was_done(case):
    backdoored, splits, evaluator = case
    gen = purify(backdoored.model, splits.clean, FAST, evaluator)
    next(gen), next(gen)
    gen.close()
    calls = {"n": 0}

    def stop_after_four() -> bool:
        calls["n"] += 1
        return calls["n"] > 4

    steps, result = run_all(purify(backdoored.model, splits.clean, FAST, evaluator, should_stop=stop_after_four))
    assert result.summary.status == "stopped" and result.summary.steps == 4 and steps[-1].step == 4
    assert result.model is not None and result.summary.after is not None


def test_an_exploding_loss_stops_with_a_reason_and_no_model(case):
    backdoored, splits, evaluator = case
    steps, result = run_all(purify(backdoored.model, splits.clean, replace(FAST, lr=1e6, strength=0.0), evaluator))
    assert result.summary.status == "diverged" and result.model is None
    assert "lower the learning rate" in result.summary.reason
    assert all(torch.isfinite(torch.tensor(s.task_loss)) for s in steps[1:])


def test_prune_keeps_marked_neurons_at_zero_through_purification(case):
    backdoored, splits, _ = case
    _, result = run_all(purify(backdoored.model, splits.clean, replace(FAST, regularizer="prune", threshold=0.25)))
    for layer in neuron_layers(result.model):
        marked = result.mask[layer.name]
        assert marked.sum() == round(0.25 * layer.width)
        for p in owned_parameters(result.model, layer).values():
            assert torch.all(p[marked] == 0)


def test_ar_shrinks_marked_weights_more_than_plain_fine_tuning(case):
    backdoored, splits, _ = case
    config = replace(FAST, threshold=0.25, strength=0.5, layers="final-linear")
    _, ar = run_all(purify(backdoored.model, splits.clean, config))
    _, none = run_all(purify(backdoored.model, splits.clean, replace(config, regularizer="none")))
    layer = "net.fc1"
    marked = ar.mask[layer]
    norm = lambda m: float(m.get_submodule(layer).weight.detach()[marked].abs().sum())  # noqa: E731
    assert norm(ar.model) < 0.7 * norm(none.model)
    assert all(not ar.mask[n].any() for n in ar.mask if n != layer)  # final-linear scope marks one layer


def test_the_dynamic_schedule_grows_the_marked_set_from_beta_to_all(case):
    backdoored, splits, _ = case
    config = replace(FAST, threshold=0.5, dynamic=True, beta=0.5, epochs=3)
    steps, result = run_all(purify(backdoored.model, splits.clean, config))
    total = result.summary.marked
    by_epoch = {s.epoch: s.marked for s in steps[1:]}
    assert by_epoch[1] < by_epoch[2] < by_epoch[3] == total
    assert by_epoch[1] == pytest.approx(total / 2, abs=len(result.mask))


def test_the_reference_preset_is_the_authors_setup():
    ref = purify_preset("reference")
    assert (ref.variant, ref.eta, ref.layers, ref.dynamic, ref.beta, ref.regularizer, ref.kappa, ref.strength, ref.lr, ref.momentum) == (
        "ema-signed", 0.9, "final-linear", True, 0.5, "ar", 1.0, 0.01, 0.01, 0.0)


@pytest.mark.parametrize("overrides, message", [
    ({"threshold": 0.9}, "threshold"), ({"strength": -1.0}, "strength"), ({"lr": 0.0}, "learning rate"),
    ({"epochs": -1}, "epochs"), ({"epochs": 1001}, "epochs"), ({"metric": "tac"}, "oracle-only"), ({"regularizer": "l3"}, "regularizer"),
    ({"kappa": -1.0}, "kappa"), ({"nonsense": 1}, "unknown purification setting"),
])
def test_bad_purification_settings_are_refused(overrides, message):
    with pytest.raises(UserInputError, match=message):
        purify_preset("default", **overrides)


@pytest.mark.parametrize("name", DEFENSES)
def test_baseline_defenses_run_on_a_private_copy(case, name):
    backdoored, splits, evaluator = case
    original = weights(backdoored.model)
    steps, result = run_all(run_defense(name, backdoored.model, splits.clean, FAST, evaluator))
    assert result.summary.status == "finished" and result.model is not None
    assert steps[0].acc == pytest.approx(evaluator(backdoored.model).acc)  # "before" is the backdoored model
    assert all(torch.equal(original[k], v) for k, v in backdoored.model.state_dict().items())
    if name == "finetune":
        assert result.summary.marked == 0
    if name == "fine-pruning":
        last_conv = [l.name for l in neuron_layers(result.model) if l.kind == "conv"][-1]
        assert set(n for n, m in result.mask.items() if m.any()) <= {last_conv}


def test_zero_epochs_take_no_step_and_still_give_a_fresh_result(case):
    """A pruning-only defense (ANP) ends with fine_tune at 0 epochs: the weights are the caller's."""
    from purify_core.method.neurons import zero_neurons
    from purify_core.method.purify import fine_tune

    backdoored, splits, evaluator = case
    before = evaluator(backdoored.model)
    pruned = copy.deepcopy(backdoored.model)
    layers = neuron_layers(pruned)
    mask = {l.name: torch.zeros(l.width, dtype=torch.bool) for l in layers}
    zero_neurons(pruned, {**mask, layers[0].name: torch.arange(layers[0].width) < layers[0].width // 2})
    expected = weights(pruned)
    config = replace(FAST, epochs=0, regularizer="none", threshold=0.0)
    steps, result = run_all(fine_tune(pruned, splits.clean, mask, config, evaluator, before=before))
    assert [s.step for s in steps] == [0] and result.summary.steps == 0 and result.summary.status == "finished"
    assert all(torch.equal(expected[k], v) for k, v in result.model.state_dict().items())
    assert result.summary.before == before and result.summary.after == evaluator(pruned) != before


def test_a_defense_refuses_bad_settings_before_any_work(case):
    backdoored, splits, _ = case
    for settings, message in [({"margin": 2.0}, "fine-pruning setting margin=2.0 must be <= 1.0"),
                              ({"margin": "wide"}, "fine-pruning setting margin='wide' must be a float"),
                              ({"nope": 1}, "fine-pruning has no setting nope; its settings are: margin")]:
        with pytest.raises(UserInputError, match=message):
            run_defense("fine-pruning", backdoored.model, splits.clean, FAST, settings=settings)
    with pytest.raises(UserInputError, match="finetune has no setting margin; its settings are: none"):
        run_defense("finetune", backdoored.model, splits.clean, FAST, settings={"margin": 0.1})
    with pytest.raises(UserInputError, match="unknown defense 'anp-oracle'; choose one of finetune, fine-pruning"):
        run_defense("anp-oracle", backdoored.model, splits.clean, FAST)


def test_fine_pruning_chooses_its_amount_from_clean_accuracy_only(case):
    from purify_core.defenses import largest_safe_mask
    from purify_core.models.evaluate import accuracy
    from purify_core.method.neurons import zero_neurons
    from purify_core.method.rankings import rank_neurons

    backdoored, splits, _ = case
    scores = rank_neurons(backdoored.model, splits.clean, "activation")
    mask, fraction = largest_safe_mask(backdoored.model, scores, splits.clean, 0.04, [0.1, 0.2, 0.3, 0.4, 0.5])
    pruned = copy.deepcopy(backdoored.model)
    zero_neurons(pruned, mask)
    assert accuracy(pruned, splits.clean) >= accuracy(backdoored.model, splits.clean) - 0.04
    assert fraction in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)


def test_fine_pruning_never_marks_more_than_the_threshold_limit(case):
    backdoored, splits, _ = case
    # a margin of 1 never stops the search: it must end at half the layer, not raise
    _, result = run_all(run_defense("fine-pruning", backdoored.model, splits.clean, FAST, settings={"margin": 1.0}))
    last_conv = [l for l in neuron_layers(result.model) if l.kind == "conv"][-1]
    assert int(result.mask[last_conv.name].sum()) == last_conv.width // 2


def test_a_conv_net_trains_channels_last_on_the_cpu_and_comes_back_in_the_default_layout(case, tmp_path):
    from safetensors.torch import save_file

    from purify_core._utils import to_channels_last

    backdoored, splits, _ = case
    work = copy.deepcopy(backdoored.model)
    assert to_channels_last(work)
    conv = next(m for m in work.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not to_channels_last(torch.nn.Sequential(torch.nn.Linear(3, 2)))  # nothing to gain without a conv
    result = run_all(purify(backdoored.model, splits.clean, replace(FAST, distill=0.5, reinit="dense")))[1]
    assert all(t.is_contiguous() for t in result.model.state_dict().values())
    save_file(result.model.state_dict(), tmp_path / "purified.safetensors")  # refuses a tensor that is not contiguous
