"""Shared fixtures (a tiny hand-built network with fixed weights, a tiny trained backdoored model) and the test tiers."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis.configuration import set_hypothesis_home_dir
from torch import nn

from purify_core.config import scenario_preset
from purify_core.store.backdoored import train_scenario
from tiers import CHROMIUM, TIER_MARKS, TRAINING_FIXTURES, drives_the_app, empty_tiers, longest_first, measured_slow


# Hypothesis keeps its example database and caches out of the tree (a test run leaves `git status` clean),
# in the system's temporary folder, where a failing example is still replayed on the next run.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "purify-lab-hypothesis")


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


@pytest.fixture
def tiny_zoo(tiny_backdoored, tmp_path):
    """The tiny model written as a zoo folder, so sweep jobs and `bench claims --zoo` read it by name like a shipped one."""
    from purify_core.store.backdoored import save_model

    zoo = tmp_path / "zoo"
    zoo.mkdir()
    save_model(tiny_backdoored, zoo / f"{tiny_backdoored.name}.safetensors", zoo / f"{tiny_backdoored.name}.json")
    return str(zoo), tiny_backdoored.name


@pytest.fixture
def case(tiny_backdoored):
    """The tiny model, its splits and an evaluator on its test split (the evaluator's view only)."""
    from purify_core.models.evaluate import evaluate

    splits = tiny_backdoored.splits()
    return tiny_backdoored, splits, lambda m: evaluate(m, splits.test, tiny_backdoored.attack)


def _fixture_funcs(item: pytest.Item) -> list:
    info = getattr(item, "_fixtureinfo", None)
    return [d.func for defs in (info.name2fixturedefs.values() if info else ()) for d in defs]


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook, which reads the xdist_group marks added below
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Sort every test into one tier (pytest.ini): app from the code, slow from tests/slow_tests.txt or a training fixture."""
    slow = measured_slow()
    for item in items:
        func = getattr(item, "function", None)
        if func is not None and (drives_the_app(func) or any(drives_the_app(f) for f in _fixture_funcs(item))):
            item.add_marker(pytest.mark.app)
        if item.nodeid.split("[")[0] in slow or any(item.get_closest_marker(m) for m in TIER_MARKS) \
                or set(TRAINING_FIXTURES) & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    # .ci/run runs three tiers in one pytest: each must still have tests
    if os.environ.get("PURIFY_LAB_REQUIRE_TIERS") == "1" and (empty := empty_tiers([{m.name for m in item.iter_markers()} for item in items])):
        raise pytest.UsageError(f"no test is in the tier(s) {', '.join(empty)} (pytest.ini): .ci/run needs every tier")
    # the longest tests first (tests/longest_tests.txt), the rest in their usual order: the workers of
    # `pytest -n 2` then finish together instead of one running a long test alone at the end
    items[:] = longest_first(items, lambda item: item.nodeid)
    # under `pytest -n N --dist loadgroup` the Chromium tests run one after another on one worker (one app server
    # and one Chromium, as in one process) while the other workers take the rest
    for item in items:
        if item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.xdist_group("browser"))


_REPLAYS = Path(tempfile.gettempdir()) / f"purify-lab-test-replays-{os.getpid()}"

# Rankings kept on disk (ui/ranking_cache.py) are shared by this run's processes (the pytest workers and the app
# servers they start, each of which has a model cache of its own), so the Compare page's ANP ranking is computed
# once per run: beside the run's model cache when $PURIFY_LAB_CACHE names one (.ci/run), else in a folder of this
# run; never in the user's cache.
if not os.environ.get("PURIFY_LAB_RANKINGS", "").strip():
    _RUN_CACHE = os.environ.get("PURIFY_LAB_CACHE", "").strip()
    os.environ["PURIFY_LAB_RANKINGS"] = str(Path(_RUN_CACHE) / "rankings" if _RUN_CACHE else Path(tempfile.gettempdir())
                                            / f"purify-lab-test-rankings-{os.environ.get('PYTEST_XDIST_TESTRUNUID', os.getpid())}")


@pytest.fixture(autouse=True)
def _replays_per_test(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test keeps finished runs in a folder of its own (made only if a run is kept): no test
    replays another's run, and none writes into the user's cache."""
    name = hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:16]
    monkeypatch.setenv("PURIFY_LAB_REPLAYS", str(_REPLAYS / name))


@pytest.fixture(autouse=True)
def _apptest_only_in_the_app_tier(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that opens the app without being marked `app` fails, so the fast tier stays fast."""
    module = sys.modules.get("streamlit.testing.v1.app_test")
    if module is None or request.node.get_closest_marker("app"):
        return

    def refuse(self, *args, **kwargs) -> None:
        pytest.fail(f"{request.node.nodeid} opens the app through AppTest: mark it @pytest.mark.app "
                    "(tests/conftest.py finds direct uses and helpers in tests/ on its own)")

    monkeypatch.setattr(module.AppTest, "__init__", refuse)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Browser tests need Playwright and Debian's Chromium: skipped without them, failed when CI asks for them."""
    if not item.get_closest_marker("browser"):
        return
    missing = [what for what, there in (("playwright", importlib.util.find_spec("playwright") is not None),
                                        (CHROMIUM, Path(CHROMIUM).exists())) if not there]
    if missing:
        reason = f"the browser tier needs {' and '.join(missing)} (.ci/run installs Chromium)"
        if os.environ.get("PURIFY_LAB_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{reason}; PURIFY_LAB_REQUIRE_BROWSER=1 makes this a failure, not a skip", pytrace=False)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """One app server for the Chromium tests of a run (tests/test_browser*.py): what one page computes (the Compare
    page's grading, a trained model) is cached for the next, as on a class's server. The load test starts its own."""
    from benchmarks.app_server import start_app, stop_app

    try:
        proc, url = start_app(tmp_path_factory.mktemp("cache"), poll_s=0.5)
    except RuntimeError as error:
        pytest.fail(str(error))
    yield url
    stop_app(proc)


@pytest.fixture(scope="session")
def browser():
    """One Debian Chromium for the Chromium tests of a run; each test opens its own pages in it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield b
        b.close()
