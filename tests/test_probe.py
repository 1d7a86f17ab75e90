"""The live probe: streamed points from a few test images, a run's before and after from all of them."""

from __future__ import annotations

from dataclasses import replace

import torch

from purify_core.models.probe import MetricsMemo, ProbedEvaluator, probed_evaluator, weights_fingerprint
from purify_core.defenses import run_defense
from purify_core.method.purify import PurifyConfig, live_metrics, purify
from purify_core.models.evaluate import Metrics, evaluate
from tests.app_helpers import run_all

CONFIG = PurifyConfig(epochs=2, batch_size=8, eval_every=10**6, seed=1)


def _counted(value: float, calls: list[str], name: str):
    def evaluator(model) -> Metrics:
        calls.append(name)
        return Metrics(acc=value, asr=value, n_clean=1, n_triggered=1)
    return evaluator


def test_the_schedule_has_early_points_a_few_even_ones_and_the_last_step():
    probed = ProbedEvaluator(full=lambda m: None, probe=lambda m: None, probe_size=8, points=4, early=(1, 2))
    assert [s for s in range(1, 41) if probed.due(s, 40)] == [1, 2, 10, 20, 30, 40]
    assert [s for s in range(1, 4) if probed.due(s, 3)] == [1, 2, 3]


def test_the_memo_answers_the_same_weights_once_and_stays_bounded(hand_net):
    calls: list[str] = []
    memo = MetricsMemo(max_entries=2)
    probed = ProbedEvaluator(full=_counted(0.5, calls, "full"), probe=_counted(0.1, calls, "probe"), probe_size=8, scope="m", memo=memo)
    probed(hand_net), probed(hand_net)
    assert calls == ["full"]
    before = weights_fingerprint(hand_net)
    with torch.no_grad():
        hand_net.out.weight[0, 0] += 1.0
    assert weights_fingerprint(hand_net) != before
    probed(hand_net)
    assert calls == ["full", "full"]
    memo.put("a", Metrics(1, 1, 1, 1)), memo.put("b", Metrics(1, 1, 1, 1))
    assert len(memo._items) == 2 and memo.get(f"m:{before}") is None


def test_live_points_come_from_the_probe_and_before_after_from_the_whole_split(case):
    backdoored, splits, plain = case
    calls: list[str] = []
    full = lambda m: (calls.append("full"), plain(m))[1]  # noqa: E731
    probed = ProbedEvaluator(full=full, probe=_counted(0.123, calls, "probe"), probe_size=8, points=3, early=(1,))
    steps, result = run_all(purify(backdoored.model, splits.clean, CONFIG, probed))
    last = steps[-1].step
    shown = {s.step: s.acc for s in steps if s.acc is not None}
    assert set(shown) == {s.step for s in steps if probed.due(s.step, last)} | {0}
    assert all(acc == 0.123 for step, acc in shown.items() if step not in (0, last)), shown  # the probe's
    assert shown[last] != 0.123 and calls.count("full") == 2  # before and the last step: the whole split
    reference = run_all(purify(backdoored.model, splits.clean, CONFIG, plain))[1]
    assert result.summary.after == reference.summary.after == evaluate(result.model, splits.test, backdoored.attack)
    assert result.summary.before == reference.summary.before


def test_a_stopped_run_with_a_probe_ends_on_the_whole_split(case):
    backdoored, splits, plain = case
    seen = []
    probed = probed_evaluator(backdoored.attack, splits.test, "tiny", probe_size=4)
    probed = replace(probed, points=1000)  # a probe point at every step, so the stop lands right after one
    run = purify(backdoored.model, splits.clean, CONFIG, probed, should_stop=lambda: len(seen) >= 3)
    for item in run:
        seen.append(item)
    result = seen[-1]
    assert result.summary.status == "stopped" and seen[-2].acc is not None
    assert result.summary.after == plain(result.model) and result.summary.after.n_clean == len(splits.test)


def test_live_metrics_is_one_schedule_for_every_loop():
    calls: list[str] = []
    probed = ProbedEvaluator(full=_counted(0.5, calls, "full"), probe=_counted(0.1, calls, "probe"), probe_size=8, points=2, early=(1,))
    points = {s: live_metrics(probed, None, s, 10, eval_every=3) for s in range(1, 11)}
    assert {s: m.acc for s, m in points.items() if m} == {1: 0.1, 5: 0.1, 10: 0.5}  # the probe's steps; the last on the whole split
    assert live_metrics(probed, None, 10, 10, 3, last_is_after=False).acc == 0.1  # ANP's last mask step: still a probe point
    plain = _counted(0.7, calls, "plain")
    assert [s for s in range(1, 11) if live_metrics(plain, None, s, 10, eval_every=3)] == [3, 6, 9, 10]
    assert live_metrics(None, None, 10, 10, 3) is None


def test_ibau_streams_the_probe_and_ends_on_the_whole_split(case):
    backdoored, splits, plain = case
    probed = ProbedEvaluator(full=plain, probe=_counted(0.123, [], "probe"), probe_size=8, points=3, early=(1,))
    steps, result = run_all(run_defense("i-bau", backdoored.model, splits.clean, CONFIG, probed, {"rounds": 1, "batch_size": 16}))
    shown = {s.step: s.acc for s in steps if s.acc is not None}
    last = steps[-1].step
    assert shown[0] != 0.123 and shown[last] != 0.123  # before and the last step: the whole split
    assert any(acc == 0.123 for step, acc in shown.items() if step not in (0, last)), shown  # live points: the probe
    assert result.summary.after == evaluate(result.model, splits.test, backdoored.attack)
