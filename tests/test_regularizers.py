"""Regularizers: exact values and gradients around the AR knee, and pruned neurons staying at zero."""

from __future__ import annotations

import math

import pytest
import torch

from purify_core.errors import UserInputError
from purify_core.method.neurons import neuron_layers, owned_parameters
from purify_core.method.regularizers import adaptive_kappa, ar_penalty, build_regularizer

KAPPA = 0.5


def value_and_grad(w: float, kappa: float = KAPPA) -> tuple[float, float]:
    t = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    v = ar_penalty(t, kappa)
    (g,) = torch.autograd.grad(v, t)
    return float(v.detach()), float(g)


@pytest.mark.parametrize(
    "w, value, grad",
    [
        (0.2, 0.2, 1.0),  # below the knee: L1
        (-0.2, 0.2, -1.0),
        (0.5, 0.5, 1.0),  # at the knee: both branches agree
        (-0.5, 0.5, -1.0),
        (1.0, KAPPA * math.e, math.e),  # beyond: kappa * exp(|w|/kappa - 1), slope exp(|w|/kappa - 1)
        (-1.0, KAPPA * math.e, -math.e),  # negative side: same value, gradient with the sign of w
        (-1.5, KAPPA * math.e**2, -(math.e**2)),
        (0.0, 0.0, 0.0),
    ],
)
def test_ar_value_and_gradient(w, value, grad):
    v, g = value_and_grad(w)
    assert v == pytest.approx(value, rel=1e-12)
    assert g == pytest.approx(grad, rel=1e-12)


def test_ar_is_continuous_with_a_continuous_slope_at_the_knee():
    eps = 1e-7
    below, above = value_and_grad(KAPPA - eps), value_and_grad(KAPPA + eps)
    assert below[0] == pytest.approx(above[0], abs=1e-6)
    assert below[1] == pytest.approx(above[1], abs=1e-5)


def test_ar_gradient_always_points_away_from_zero_so_descent_shrinks_the_weight():
    w = torch.linspace(-3, 3, 61, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(ar_penalty(w, KAPPA).sum(), w)
    assert torch.all(torch.sign(g) == torch.sign(w.detach()))


def test_ar_gradients_of_small_and_large_weights_in_one_tensor_stay_separate():
    w = torch.tensor([0.01, 50.0], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(ar_penalty(w, 0.1).sum(), w)
    assert g[0] == 1.0 and float(g[1]) == pytest.approx(math.exp(499), rel=1e-9)


def test_adaptive_kappa_is_twice_the_spread_about_zero():
    w = torch.tensor([3.0, -3.0, 3.0, -3.0])
    assert adaptive_kappa(w) == pytest.approx(6.0)


def test_penalty_sums_exactly_over_the_marked_neurons_parameters(hand_net):
    conv, hidden = neuron_layers(hand_net)[:2]
    mask = {conv.name: torch.tensor([False, True, False]), hidden.name: torch.tensor([True, False, False, True])}
    for name, elementwise in {"l1": torch.abs, "l2": torch.square, "ar": lambda w: ar_penalty(w, 0.3)}.items():
        reg = build_regularizer(hand_net, mask, name, strength=0.7, kappa=0.3)
        expected = 0.0
        for layer in (conv, hidden):
            rows = torch.nonzero(mask[layer.name]).flatten()
            for p in owned_parameters(hand_net, layer).values():
                expected += float(elementwise(p.detach()[rows]).sum())
        assert float(reg.penalty().detach()) == pytest.approx(0.7 * expected, rel=1e-6)


def test_penalty_gradient_reaches_only_marked_rows(hand_net):
    layer = neuron_layers(hand_net)[1]
    mask = {layer.name: torch.tensor([False, True, False, False])}
    build_regularizer(hand_net, mask, "ar", strength=1.0).penalty().backward()
    grad = hand_net.hidden.weight.grad
    assert grad[1].abs().sum() > 0 and grad[[0, 2, 3]].abs().sum() == 0
    assert hand_net.conv.weight.grad is None


def test_pruned_neurons_stay_exactly_zero_through_optimiser_steps(hand_net, hand_batches):
    layers = neuron_layers(hand_net)
    mask = {layers[0].name: torch.tensor([True, False, False]), layers[1].name: torch.tensor([False, False, True, False])}
    reg = build_regularizer(hand_net, mask, "prune")
    optimizer = torch.optim.SGD(hand_net.parameters(), lr=0.5, momentum=0.9, weight_decay=0.1)
    hand_net.train()
    for x, y in hand_batches * 3:
        loss = torch.nn.functional.cross_entropy(hand_net(x), y) + reg.penalty()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        reg.after_step()
    for layer in layers[:2]:
        for p in owned_parameters(hand_net, layer).values():
            assert torch.all(p[mask[layer.name]] == 0)
            assert p[~mask[layer.name]].abs().sum() > 0
    assert float(reg.penalty()) == 0.0


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "l3"}, "unknown regularizer"),
    ({"strength": -1.0}, "strength"),
    ({"strength": float("nan")}, "strength"),
    ({"kappa": 0.0}, "kappa"),
])
def test_bad_regularizer_settings_are_refused(hand_net, kwargs, message):
    with pytest.raises(UserInputError, match=message):
        build_regularizer(hand_net, {}, **kwargs)


@pytest.mark.parametrize("field, value", [
    ("regularizer", "l3"), ("strength", -1.0), ("strength", float("inf")), ("kappa", 0.0), ("kappa", float("nan")),
    ("threshold", 0.9), ("threshold", float("nan")), ("scope", "model"), ("direction", "sideways"),
])
def test_a_bad_marking_or_penalty_setting_gets_the_same_line_from_the_config_and_the_function(hand_net, field, value):
    """One check per setting: PurifyConfig, `mark` and `build_regularizer` refuse it with the same words."""
    from dataclasses import replace

    from purify_core.method.marking import mark
    from purify_core.method.purify import PurifyConfig

    with pytest.raises(UserInputError) as from_config:
        replace(PurifyConfig(), **{field: value})
    scores = {layer.name: torch.arange(layer.width, dtype=torch.float64) for layer in neuron_layers(hand_net)}
    with pytest.raises(UserInputError) as from_function:
        if field in ("threshold", "scope", "direction"):
            mark(scores, **{"threshold": 0.1, "scope": "layer", "direction": "lowest", field: value})
        else:
            build_regularizer(hand_net, {}, **{"name" if field == "regularizer" else field: value})
    assert str(from_config.value) == str(from_function.value)
