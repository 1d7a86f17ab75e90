"""Re-initialisation and distillation: what they change, and that distillation at weight 0 is today's run."""

from __future__ import annotations

import copy
import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from purify_core.errors import UserInputError
from purify_core.models.evaluate import evaluate
from purify_core.method.marking import mark
from purify_core.method.purify import PRESET_LABELS, PURIFY_PRESETS, PurifyConfig, PurifyResult, fine_tune, purify, purify_preset
from purify_core.method.steps import Distillation, reinitialise

FAST = PurifyConfig(epochs=2, eval_every=3)


def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def changed(before, model):
    return {k for k, v in model.state_dict().items() if not torch.equal(before[k], v)}


def test_dense_reinit_changes_every_linear_layer_and_nothing_else(hand_net):
    before, rng = state(hand_net), torch.random.get_rng_state()
    assert reinitialise(hand_net, "dense", {}, seed=3) == ["hidden", "out"]
    assert changed(before, hand_net) == {"hidden.weight", "hidden.bias", "out.weight", "out.bias"}
    assert torch.equal(rng, torch.random.get_rng_state()), "the global RNG is never drawn from"
    bound = 1 / 12 ** 0.5  # PyTorch's default: uniform in +-1/sqrt(fan_in)
    assert hand_net.hidden.weight.abs().max() <= bound and hand_net.hidden.bias.abs().max() <= bound


def test_reinit_is_seeded(hand_net):
    a, b, c = copy.deepcopy(hand_net), copy.deepcopy(hand_net), copy.deepcopy(hand_net)
    reinitialise(a, "dense", {}, 0), reinitialise(b, "dense", {}, 0), reinitialise(c, "dense", {}, 1)
    assert torch.equal(a.out.weight, b.out.weight) and not torch.equal(a.out.weight, c.out.weight)


def test_a_zero_classifier_init_zeroes_only_the_reset_classifier(hand_net):
    default, zero = copy.deepcopy(hand_net), copy.deepcopy(hand_net)
    reinitialise(default, "dense", {}, 4), reinitialise(zero, "dense", {}, 4, classifier_init="zero")
    assert not zero.out.weight.any() and not zero.out.bias.any(), "the classifier starts at zero"
    assert default.out.weight.abs().sum() > 0, "(the default draw is not zero: the test can fail)"
    assert torch.equal(zero.hidden.weight, default.hidden.weight), "the layers under it get the same random draw"
    for reinit in ("none", ("conv",)):  # the classifier is not reset: zero is moot, nothing else changes
        a, b = copy.deepcopy(hand_net), copy.deepcopy(hand_net)
        reinitialise(a, reinit, {}, 0), reinitialise(b, reinit, {}, 0, classifier_init="zero")
        assert not changed(state(a), b) and b.out.weight.abs().sum() > 0
    with pytest.raises(UserInputError, match="unknown classifier init"):
        reinitialise(hand_net, "dense", {}, 0, classifier_init="ones")


def test_named_layer_reinit_changes_only_those_layers(hand_net):
    before = state(hand_net)
    reinitialise(hand_net, ("conv", "bn"), {}, 0)
    assert changed(before, hand_net) == {"conv.weight", "conv.bias", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"}
    assert torch.equal(hand_net.bn.weight, torch.ones(3)) and torch.equal(hand_net.bn.running_var, torch.ones(3))
    with pytest.raises(UserInputError, match="no layer named nope"):
        reinitialise(hand_net, ("nope",), {}, 0)
    with pytest.raises(UserInputError, match="only Linear, Conv2d and BatchNorm"):
        reinitialise(hand_net, ("pool",), {}, 0)


def test_marked_reinit_changes_only_the_marked_neurons_rows(hand_net):
    before = state(hand_net)
    mask = {"conv": torch.tensor([False, True, False]), "hidden": torch.tensor([True, False, False, True])}
    reinitialise(hand_net, "marked", mask, 0)
    after = hand_net.state_dict()
    for name, rows in [("conv", [1]), ("bn", [1]), ("hidden", [0, 3])]:
        keep = [i for i in range(len(before[f"{name}.weight"])) if i not in rows]
        for key in [k for k in before if k.startswith(name + ".") and before[k].ndim]:
            assert torch.equal(before[key][keep], after[key][keep]), f"{key}: an unmarked row changed"
            if name != "bn":
                assert not torch.equal(before[key][rows], after[key][rows]), f"{key}: a marked row kept its values"
    assert hand_net.bn.weight[1] == 1 and hand_net.bn.running_mean[1] == 0 and hand_net.bn.running_var[1] == 1, "BN row reset"
    for key in ("out.weight", "out.bias"):
        assert torch.equal(before[key], after[key]), "the classifier is not a neuron layer: untouched"


def test_distillation_at_weight_zero_is_todays_run_exactly(tiny_backdoored):
    model, defense = tiny_backdoored.model, tiny_backdoored.splits().clean
    scores = _scores(model, defense)
    mask = mark(scores, FAST.threshold, "layer", list(scores), FAST.direction)
    today = list(fine_tune(copy.deepcopy(model), defense, mask, FAST, None, scores))
    zero = list(fine_tune(copy.deepcopy(model), defense, mask, FAST, None, scores, extra_loss=Distillation.from_original(model, 0.0, 2.0, "constant")))
    assert [s.task_loss for s in today[1:-1]] == [s.task_loss for s in zero[1:-1]]
    assert all(s.distill_loss == 0.0 for s in zero[:-1])
    a, b = today[-1].model.state_dict(), zero[-1].model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # and the config's default (distill=0) is the same run as before the field existed
    assert purify_preset("reference").distill == 0.0 and PurifyConfig().reinit == "none"


def _scores(model, defense):
    from purify_core.method.rankings import rank_neurons

    return rank_neurons(model, defense, "magnitude")


def test_the_distillation_term_is_the_weighted_kl_at_temperature(tiny_backdoored):
    teacher = tiny_backdoored.model
    x = tiny_backdoored.splits().clean.x[:8]
    student = torch.randn(8, 10)
    term = Distillation.from_original(teacher, 0.25, 3.0, "constant")
    scale, extra = term(x, student, 0.7, torch.arange(8))
    with torch.no_grad():
        p = F.softmax(teacher.eval()(x) / 3.0, dim=1)
    q = F.log_softmax(student / 3.0, dim=1)
    expected = 0.25 * 9.0 * (p * (p.log() - q)).sum(1).mean()
    assert scale == 0.75 and torch.allclose(extra, expected, atol=1e-6)
    linear = Distillation.from_original(teacher, 0.5, 2.0, "linear")
    assert (linear.weight_at(0.0), linear.weight_at(0.5)) == (0.5, 0.25)


def test_the_clean_view_distils_the_teachers_answer_on_the_unshifted_image(tiny_backdoored):
    teacher = tiny_backdoored.model
    clean = tiny_backdoored.splits().clean.x[:12]
    shifted = torch.roll(clean, 2, dims=3)  # what the student sees: a moved copy
    rows = torch.tensor([5, 0, 11, 3])
    student = torch.randn(4, 10)
    term = Distillation.from_original(teacher, 0.5, 2.0, "constant", "clean", clean)
    _, extra = term(shifted[rows], student, 0.0, rows)
    with torch.no_grad():
        on_clean = F.softmax(teacher.eval()(clean[rows]) / 2.0, dim=1)
        on_shifted = F.softmax(teacher(shifted[rows]) / 2.0, dim=1)
    q = F.log_softmax(student / 2.0, dim=1)
    kl = lambda p: 0.5 * 4.0 * (p * (p.log() - q)).sum(1).mean()
    assert torch.allclose(extra, kl(on_clean), atol=1e-5), "the target is the teacher on each row's clean image"
    assert not torch.allclose(kl(on_clean), kl(on_shifted), atol=1e-5), "(the shifted view's term differs: the test can tell them apart)"
    shifted_view = Distillation.from_original(teacher, 0.5, 2.0, "constant")
    assert torch.allclose(shifted_view(shifted[rows], student, 0.0, rows)[1], kl(on_shifted), atol=1e-5)
    with pytest.raises(UserInputError, match="needs the clean images"):
        Distillation.from_original(teacher, 0.5, 2.0, "constant", "clean")


def test_the_both_view_distils_the_mean_of_the_two_answers(tiny_backdoored):
    teacher = tiny_backdoored.model
    clean = tiny_backdoored.splits().clean.x[:12]
    shifted, rows, student = torch.roll(clean, 2, dims=3), torch.tensor([2, 7, 9]), torch.randn(3, 10)
    both = Distillation.from_original(teacher, 1.0, 2.0, "constant", "both", clean)
    scale, extra = both(shifted[rows], student, 0.3, rows)
    with torch.no_grad():
        p = 0.5 * (F.softmax(teacher.eval()(clean[rows]) / 2.0, dim=1) + F.softmax(teacher(shifted[rows]) / 2.0, dim=1))
    q = F.log_softmax(student / 2.0, dim=1)
    assert scale == 0.0 and torch.allclose(extra, 4.0 * (p * (p.log() - q)).sum(1).mean(), atol=1e-5)


def test_a_zero_classifier_run_starts_from_uniform_answers(tiny_backdoored):
    from purify_core.method.neurons import classifier_name

    model, splits = tiny_backdoored.model, tiny_backdoored.splits()
    config = replace(FAST, reinit="dense", distill=0.5, regularizer="none", threshold=0.0, classifier_init="zero", epochs=1)
    untrained = list(purify(model, splits.clean, replace(config, epochs=0)))[-1].model
    logits = untrained(splits.clean.x[:5])
    assert torch.allclose(logits, torch.zeros_like(logits)), "0 epochs: the zeroed classifier answers 0 for every class"
    trained = list(purify(model, splits.clean, config))[-1]
    head = trained.model.get_submodule(classifier_name(trained.model))
    assert trained.summary.status == "finished" and head.weight.abs().sum() > 0, "gradients reach a zero classifier: it learns"


def test_without_shifts_the_two_views_are_the_same_run(tiny_backdoored):
    model, splits = tiny_backdoored.model, tiny_backdoored.splits()
    config = replace(FAST, reinit="dense", distill=0.5, regularizer="none", threshold=0.0, shift=0)
    runs = [list(purify(model, splits.clean, replace(config, distill_view=view)))[-1] for view in ("shifted", "clean")]
    for a, b in zip(*(r.model.state_dict().values() for r in runs)):
        assert torch.allclose(a.float(), b.float(), atol=1e-4)
    assert [s.distill_loss for s in runs[0].history] == pytest.approx([s.distill_loss for s in runs[1].history], abs=1e-4)


def test_reinit_and_distillation_purify_a_private_copy_and_stream_the_term(tiny_backdoored):
    model, splits = tiny_backdoored.model, tiny_backdoored.splits()
    original = state(model)
    config = replace(FAST, reinit="dense", distill=0.5, regularizer="none", threshold=0.0)
    items = list(purify(model, splits.clean, config, lambda m: evaluate(m, splits.test, tiny_backdoored.attack)))
    result = items[-1]
    assert isinstance(result, PurifyResult) and result.summary.status == "finished"
    assert not changed(original, model), "the caller's model is never changed"
    assert all(s.distill_loss > 0 for s in result.history[1:])
    before = evaluate(model, splits.test, tiny_backdoored.attack)
    assert result.summary.before.acc == before.acc, "'before' is the model as given, not the re-initialised copy"


@pytest.mark.parametrize("overrides, message", [
    ({"reinit": "all"}, "unknown re-initialisation"), ({"reinit": ()}, "non-empty tuple"), ({"reinit": 3}, "reinit must be"),
    ({"distill": 1.5}, "distillation weight"), ({"distill": -0.1}, "distillation weight"),
    ({"temperature": 0.0}, "temperature"), ({"distill_schedule": "cubic"}, "schedule"), ({"distill_view": "mixup"}, "distillation view"), ({"classifier_init": "ones"}, "classifier init"),
])
def test_bad_step_settings_are_refused(overrides, message):
    with pytest.raises(UserInputError, match=message):
        purify_preset("default", **overrides)


def test_reinit_from_json_is_a_tuple_again():
    config = PurifyConfig(reinit=["net.fc1"])
    assert config.reinit == ("net.fc1",) and config.to_dict()["reinit"] == ["net.fc1"]
    assert PurifyConfig(**PurifyConfig(reinit=("a",)).to_dict()) == PurifyConfig(reinit=("a",))


def test_the_presets_say_what_they_are():
    assert set(PRESET_LABELS) == set(PURIFY_PRESETS) >= {"default", "reference", "authors-code"}
    ref, code = purify_preset("reference"), purify_preset("authors-code")
    assert ref.direction == "lowest" and code.direction == "highest"
    assert (code.variant, code.layers, code.dynamic, code.beta, code.regularizer, code.kappa, code.strength) == (
        "ema-signed", "final-linear", True, 0.5, "ar", 1.0, 0.01)
    assert (ref.reinit, ref.distill, code.reinit, code.distill) == ("none", 0.0, "none", 0.0), "the paper's presets add no lab step"


def test_a_run_with_the_new_steps_is_deterministic(tiny_backdoored):
    model, defense = tiny_backdoored.model, tiny_backdoored.splits().clean
    config = replace(FAST, reinit="dense", distill=0.5, distill_schedule="linear", regularizer="prune", threshold=0.3, layers="last-conv")
    a, b = (list(purify(model, defense, config))[-1].model.state_dict() for _ in range(2))
    c = list(purify(model, defense, replace(config, seed=1)))[-1].model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a) and not all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("arch, shape", [("smallvgg", (3, 32, 32)), ("preactresnet18", (3, 32, 32)), ("tv:resnet18", (3, 32, 32))])
def test_the_lab_default_runs_on_every_architecture(arch, shape):
    """The default was chosen on SmallCNN; a user's VGG or ResNet gets the same steps: 80% of its last conv
    layer's channels held at zero, every linear layer redrawn, the caller's model untouched."""
    from purify_core.config import ModelConfig
    from purify_core.data.image_set import ImageSet
    from purify_core.method.neurons import neuron_layers, select_layers
    from purify_core.models.architectures import build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(arch), shape, 10).eval()
    clean = ImageSet(torch.rand(24, *shape), torch.arange(24) % 10)
    original = state(model)
    result = list(purify(model, clean, purify_preset("default", epochs=1)))[-1]
    assert isinstance(result, PurifyResult) and result.summary.status == "finished", result.summary.reason
    assert not changed(original, model), "the caller's model is never changed"

    (last,) = select_layers(neuron_layers(model), "last-conv")
    marked = result.mask[last.name]
    assert all(not m.any() for n, m in result.mask.items() if n != last.name), "only the last conv layer is marked"
    assert int(marked.sum()) == round(0.8 * last.width) == result.summary.marked
    rows = result.model.get_submodule(last.name).weight.detach().flatten(1)
    assert torch.equal(rows[marked].abs().sum(1), torch.zeros(int(marked.sum()))), "the pruned channels stay exactly zero"
    assert bool((rows[~marked].abs().sum(1) > 0).all())
    linears = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(not torch.equal(original[f"{n}.weight"], result.model.state_dict()[f"{n}.weight"]) for n in linears)
    with torch.no_grad():
        assert bool(torch.isfinite(result.model(clean.x[:4])).all())


def test_random_affine_draws_nothing_when_off_and_turns_each_image_its_own_way():
    from purify_core.data.augment import random_affine

    g = torch.Generator().manual_seed(4)
    x = torch.zeros(6, 1, 15, 15)
    x[:, :, 7, 2:13] = 1.0  # the same horizontal bar through the centre in every image
    before = g.get_state()
    assert random_affine(x, 0.0, 0.0, g) is x and torch.equal(g.get_state(), before), "off: the same batch, no draw"
    turned = random_affine(x, 30.0, 0.0, g)
    assert turned.shape == x.shape and not torch.equal(turned, x)
    assert len({tuple(t.flatten().tolist()) for t in turned}) == 6, "each image its own angle"
    assert bool((turned[:, 0, 7, 7] > 0.9).all()), "a turn is about the centre: the centre pixel stays lit"
    again = random_affine(x, 30.0, 0.0, torch.Generator().manual_seed(4))
    assert torch.equal(again, turned), "seeded"
    small = random_affine(x, 0.0, 0.3, torch.Generator().manual_seed(5))
    assert torch.equal(small[:, :, :5], torch.zeros_like(small[:, :, :5])), "scaling alone keeps a bar horizontal"
    assert not torch.equal(small, x)


class _Recorder:
    """An extra loss that records what it was given, next to what the student was fed (a forward pre-hook)."""

    def __init__(self, model):
        self.teacher_x, self.student_x = [], []
        model.register_forward_pre_hook(lambda _m, args: self.student_x.append(args[0].detach().clone()))

    def __call__(self, x, logits, progress, index):
        self.teacher_x.append(x.detach().clone())
        return 1.0, logits.sum() * 0


def test_the_student_alone_is_turned_and_scaled_a_teacher_answers_the_image_as_shifted(tiny_backdoored):
    model, defense = copy.deepcopy(tiny_backdoored.model), tiny_backdoored.splits().clean
    config = replace(FAST, epochs=1, shift=0, regularizer="none", threshold=0.0, rotate=20.0, scale=0.2)
    recorder = _Recorder(model)
    list(fine_tune(model, defense, {}, config, extra_loss=recorder))
    order = torch.randperm(len(defense), generator=torch.Generator().manual_seed(config.seed))
    first = defense.x[order[: config.batch_size]]
    assert torch.equal(recorder.teacher_x[0].contiguous(), first), "the teacher's input: the batch as shifted (here not at all)"
    assert not torch.allclose(recorder.student_x[0].contiguous(), first), "the student's: turned and scaled"
    assert len(recorder.teacher_x) == len(recorder.student_x) == math.ceil(len(defense) / config.batch_size)
    plain = copy.deepcopy(tiny_backdoored.model)
    off = _Recorder(plain)
    list(fine_tune(plain, defense, {}, replace(config, rotate=0.0, scale=0.0), extra_loss=off))
    assert all(torch.equal(a, b) for a, b in zip(off.teacher_x, off.student_x)), "off: both see the same images"


@pytest.mark.parametrize("field, value, message", [
    ("rotate", -1.0, "rotate must be a number of degrees from 0 to 45"), ("rotate", 90.0, "from 0 to 45, got 90.0"),
    ("rotate", float("nan"), "rotate must be"), ("scale", 0.6, "scale must be a number from 0 to 0.5"),
    ("scale", float("inf"), "scale must be"), ("scale", "0.1", "scale must be"),
])
def test_bad_turns_and_scalings_are_refused(field, value, message):
    with pytest.raises(UserInputError, match=message):
        PurifyConfig(**{field: value})
