"""Shared fixtures: a tiny hand-built network with fixed weights, and a tiny trained backdoored model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from purify_core.config import scenario_preset
from purify_core.zoo import train_scenario


class HandNet(nn.Module):
    """conv(1->3, 3x3) + BN + ReLU, hidden linear(12->4) + ReLU, classifier(4->2) on 1x4x4 images."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.hidden = nn.Linear(12, 4)
        self.out = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.bn(self.conv(x))))
        return self.out(torch.relu(self.hidden(x.flatten(1))))


@pytest.fixture
def hand_net() -> HandNet:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = HandNet()
        with torch.no_grad():
            net.bn.running_mean.copy_(torch.tensor([0.1, -0.2, 0.05]))
            net.bn.running_var.copy_(torch.tensor([0.5, 1.5, 1.0]))
            net.bn.weight.copy_(torch.tensor([1.2, 0.8, -0.5]))
            net.bn.bias.copy_(torch.tensor([0.1, 0.0, 0.3]))
    return net.eval()


@pytest.fixture
def hand_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [(torch.rand(5, 1, 4, 4, generator=g), torch.randint(0, 2, (5,), generator=g)) for _ in range(3)]


@pytest.fixture(scope="session")
def tiny_backdoored():
    """A BadNets model on scikit-learn's 8x8 digits, trained in seconds (not cached on disk)."""
    item = None
    for item in train_scenario(scenario_preset("tiny", "badnets"), with_clean_reference=False, device="cpu"):
        pass
    return item.result


SLOW_TESTS = Path(__file__).with_name("slow_tests.txt")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: took over 1 s when measured (tests/slow_tests.txt); the fast tier is -m 'not slow'")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the measured slow test functions (every parametrized case of them) so `-m 'not slow'` is the fast tier."""
    slow = {line.strip() for line in SLOW_TESTS.read_text().splitlines() if line.strip() and not line.startswith("#")}
    for item in items:
        if item.nodeid.split("[")[0] in slow:
            item.add_marker(pytest.mark.slow)
