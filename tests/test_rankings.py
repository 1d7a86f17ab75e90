"""Rankings: checked against reference computations, and never changing the model they are given."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from purify_core.errors import UserInputError
from purify_core.method.marking import mark, normalise_within_layer
from purify_core.method.neurons import neuron_layers, owned_parameters, select_layers, zero_neurons
from purify_core.method.rankings import METRICS, rank_neurons
from purify_core.method.rankings.quality import infected_neurons, pruning_curve, ranking_quality, spearman_matrix


def reference_salience(model, batches, variant):
    """The definition, written the plain way: backward on a copy, -w * grad summed per neuron."""
    work = copy.deepcopy(model).eval()
    totals, emas = {}, {}
    for x, y in batches:
        work.zero_grad()
        F.cross_entropy(work(x), y).backward()
        for layer in neuron_layers(work):
            t = 0
            for name, p in owned_parameters(work, layer).items():
                s = -p.detach() * p.grad
                emas[name] = s if name not in emas else 0.9 * emas[name] + 0.1 * s
                t = t + (s.flatten(1).sum(1) if s.ndim > 1 else s)
            totals.setdefault(layer.name, []).append(t)
    if variant == "ema-signed":
        return {
            layer.name: sum((emas[n].flatten(1).sum(1) if emas[n].ndim > 1 else emas[n]) for n in owned_parameters(work, layer))
            for layer in neuron_layers(work)
        }
    f = torch.abs if variant == "abs" else torch.square
    return {name: torch.stack([f(t) for t in ts]).mean(0) for name, ts in totals.items()}


def test_neuron_layers_skip_the_classifier_and_find_the_batchnorm(hand_net):
    layers = neuron_layers(hand_net)
    assert [(l.name, l.kind, l.width, l.norm) for l in layers] == [("conv", "conv", 3, "bn"), ("hidden", "linear", 4, None)]
    assert list(owned_parameters(hand_net, layers[0])) == ["conv.weight", "conv.bias", "bn.weight", "bn.bias"]
    assert [l.name for l in select_layers(layers, "final-linear")] == ["hidden"]
    with pytest.raises(UserInputError, match="no neuron layer named nope"):
        select_layers(layers, ["nope"])


@pytest.mark.parametrize("variant", ["abs", "squared", "ema-signed"])
def test_benign_salience_matches_the_plain_definition(hand_net, hand_batches, variant):
    got = rank_neurons(hand_net, hand_batches, "salience", variant=variant)
    expected = reference_salience(hand_net, hand_batches, variant)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-7)


def test_magnitude_is_the_mean_absolute_incoming_weight(hand_net):
    scores = rank_neurons(hand_net, [], "magnitude")
    torch.testing.assert_close(scores["hidden"], hand_net.hidden.weight.detach().abs().mean(1))
    torch.testing.assert_close(scores["conv"], hand_net.conv.weight.detach().abs().flatten(1).mean(1))


def test_activation_is_the_mean_post_relu_output(hand_net, hand_batches):
    scores = rank_neurons(hand_net, hand_batches, "activation")
    x = torch.cat([b[0] for b in hand_batches])
    with torch.no_grad():
        conv = torch.relu(hand_net.bn(hand_net.conv(x))).mean(dim=(0, 2, 3))
    torch.testing.assert_close(scores["conv"], conv)


def test_gradient_x_activation_through_captum_matches_autograd(hand_net, hand_batches):
    scores = rank_neurons(hand_net, hand_batches, "gradxact")
    # the same quantity by hand: a = BN output, dL_i/da per image, |sum over positions of a * g|
    total, n = 0, 0
    for x, y in hand_batches:
        a = hand_net.bn(hand_net.conv(x)).detach().requires_grad_(True)
        h = hand_net.pool(torch.relu(a))
        losses = F.cross_entropy(hand_net.out(torch.relu(hand_net.hidden(h.flatten(1)))), y, reduction="none")
        (g,) = torch.autograd.grad(losses.sum(), a)  # per-image losses: the sum's gradient is each image's
        total = total + (a * g).detach().flatten(2).sum(2).abs().sum(0)
        n += len(x)
    torch.testing.assert_close(scores["conv"], total / n, rtol=1e-5, atol=1e-8)


def test_tac_is_zero_for_an_attack_that_changes_nothing_and_needs_an_attack(hand_net, hand_batches):
    class Nothing:
        def apply(self, x):
            return x.clone()

    scores = rank_neurons(hand_net, hand_batches, "tac", attack=Nothing())
    assert all(float(s.abs().sum()) == 0 for s in scores.values())
    with pytest.raises(UserInputError, match="needs the scenario's attack"):
        rank_neurons(hand_net, hand_batches, "tac")


def snapshot(model):
    return (
        {k: v.clone() for k, v in model.state_dict().items()},
        {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()},
        [m.training for m in model.modules()],
        [len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules()],
        [p.requires_grad for p in model.parameters()],
    )


def assert_same(before, after):
    for k in before[0]:
        assert torch.equal(before[0][k], after[0][k]), k
    for k in before[1]:
        assert (before[1][k] is None and after[1][k] is None) or torch.equal(before[1][k], after[1][k]), k
    assert before[2:] == after[2:]


class Boom(Exception):
    pass


@pytest.mark.parametrize("metric", sorted(METRICS))
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_a_ranking_leaves_the_model_exactly_as_given_even_when_it_raises(hand_net, hand_batches, metric, mode):
    class Shift:
        def apply(self, x):
            return x + 0.5

    hand_net.train(mode == "train")
    hand_net.hidden.weight.grad = torch.full_like(hand_net.hidden.weight, 3.0)  # a caller's .grad must survive
    before = snapshot(hand_net)
    rank_neurons(hand_net, hand_batches, metric, attack=Shift())
    assert_same(before, snapshot(hand_net))

    def failing():
        yield hand_batches[0]
        raise Boom()

    if metric != "magnitude":  # magnitude reads no data
        with pytest.raises(Boom):
            rank_neurons(hand_net, failing(), metric, attack=Shift())
        assert_same(before, snapshot(hand_net))


def test_marking_lowest_highest_per_layer_and_global():
    scores = {"a": torch.tensor([5.0, 1.0, 3.0, 2.0]), "b": torch.tensor([10.0, 40.0, 20.0, 30.0])}
    assert mark(scores, 0.25)["a"].tolist() == [False, True, False, False]
    assert mark(scores, 0.5, direction="highest")["b"].tolist() == [False, True, False, True]
    only_b = mark(scores, 0.5, layers=["b"])
    assert not only_b["a"].any() and only_b["b"].tolist() == [True, False, True, False]
    # global: min-max within each layer, then the lowest 25% of all 8 = 2 neurons: a[1] and b[0] (both 0.0)
    pooled = mark(scores, 0.25, scope="global")
    assert pooled["a"].tolist() == [False, True, False, False] and pooled["b"].tolist() == [True, False, False, False]
    torch.testing.assert_close(normalise_within_layer(scores["b"]), torch.tensor([0.0, 1.0, 1 / 3, 2 / 3], dtype=torch.float64))


@pytest.mark.parametrize("kwargs, message", [
    ({"threshold": 0.85}, "threshold"), ({"threshold": -0.1}, "threshold"),
    ({"threshold": 0.1, "scope": "everything"}, "scope"), ({"threshold": 0.1, "direction": "up"}, "direction"),
    ({"threshold": 0.1, "layers": ["zzz"]}, "no scores for layer zzz"),
])
def test_bad_marking_settings_are_refused(kwargs, message):
    with pytest.raises(UserInputError, match=message):
        mark({"a": torch.ones(4)}, **kwargs)


def test_ranking_quality_statistics():
    tac = {"a": torch.tensor([0.0, 9.0, 1.0, 2.0, 3.0]), "b": torch.tensor([5.0, 1.0, 0.0, 2.0, 3.0])}
    infected = infected_neurons(tac, 0.2)
    assert infected["a"].tolist() == [False, True, False, False, False] and infected["b"].tolist() == [True, False, False, False, False]
    perfect = {"a": -tac["a"], "b": -tac["b"]}  # low score exactly where TAC is high
    q = ranking_quality(perfect, tac, 0.2)
    assert q.auc == 1.0 and q.precision_at_k == 1.0 and q.spearman == pytest.approx(-1.0)
    assert ranking_quality(perfect, tac, 0.2, direction="highest").auc == 0.0
    names, matrix = spearman_matrix({"x": perfect, "y": tac})
    assert names == ["x", "y"] and matrix[0, 1] == pytest.approx(-1.0) and matrix[0, 0] == 1.0


def test_pruning_curve_starts_at_the_model_and_leaves_it_alone(hand_net, hand_batches):
    from purify_core.models.evaluate import Metrics, accuracy
    from purify_core.data.image_set import ImageSet

    data = ImageSet(torch.cat([b[0] for b in hand_batches]), torch.cat([b[1] for b in hand_batches]))
    before = snapshot(hand_net)
    scores = rank_neurons(hand_net, hand_batches, "magnitude")
    curve = pruning_curve(hand_net, scores, lambda m: Metrics(accuracy(m, data), None, len(data), 0), fractions=(0.0, 0.5))
    assert curve[0].acc == accuracy(hand_net, data)
    pruned = copy.deepcopy(hand_net)
    zero_neurons(pruned, mark(scores, 0.5))
    assert curve[1].acc == accuracy(pruned, data)
    assert_same(before, snapshot(hand_net))
