"""Sessions share one model: rankings, neuron maps and attributions at the same time must not see each other."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch

from purify_core.views.attribution import attribute
from purify_core.views.neuron_view import mean_activation_map
from purify_core.method.rankings import rank_neurons


def test_concurrent_work_on_one_shared_model_gives_the_same_answers_as_alone(tiny_backdoored):
    model, defense = tiny_backdoored.model, tiny_backdoored.splits().clean
    jobs = {
        "activation": lambda: rank_neurons(model, defense, "activation"),
        "salience": lambda: rank_neurons(model, defense, "salience"),
        "gradxact": lambda: rank_neurons(model, defense, "gradxact"),
        "tac": lambda: rank_neurons(model, defense, "tac", attack=tiny_backdoored.attack),
        "map": lambda: {"m": mean_activation_map(model, defense.x, "net.conv2", 3)},
        "gradcam": lambda: {"m": attribute(model, defense.x[:8], "gradcam")},
    }
    alone = {name: job() for name, job in jobs.items()}
    with ThreadPoolExecutor(max_workers=12) as pool:
        futures = [(name, pool.submit(job)) for _ in range(4) for name, job in jobs.items()]
        together = [(name, future.result()) for name, future in futures]
    for name, result in together:
        for key, value in result.items():
            assert torch.allclose(value, alone[name][key], atol=1e-5), (name, key)
    assert not model._forward_hooks and all(not m._forward_hooks for m in model.modules()), "no hook left on the shared model"
