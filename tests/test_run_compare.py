"""Comparable runs (names, colours, "-", the table) and the verdict after a run: pure functions, no model."""

from __future__ import annotations

import math

import numpy as np
import pytest

from purify_core.evaluation.verdict import COSTLY_ACC_DROP, ERASED_ASR, verdict
from purify_core.method.purify import PurifyConfig, PurifySummary
from purify_core.method.rankings import METRIC_LABELS
from purify_core.method.rankings.quality import PruningPoint
from purify_core.models.evaluate import Metrics
from purify_core.store.cards import Card
from purify_core.study import RunRecord
from purify_core.views.method_figures import (PERCENT_RANGE, live_run_figure, pruning_curves_figure, roc_figure, run_curves_figure,
                                              runs_overlay_figure)
from purify_core.views.run_compare import (MISSING, RUN_COLORS, compare_labels, differing_settings, named_histories, ranking_colors,
                                           run_colors, run_rows, shown)

BASE = PurifyConfig().to_dict()


# --- names -------------------------------------------------------------------------------------

def test_labels_name_every_setting_that_differs_and_nothing_else():
    configs = [BASE, {**BASE, "strength": 0.2, "lr": 0.02}, {**BASE, "lr": 0.02}]
    assert compare_labels(["#1 ar t=0.1", "#2 ar t=0.1", "#3 ar t=0.1"], configs) == [
        "#1 strength=0.05 lr=0.01", "#2 strength=0.2 lr=0.02", "#3 strength=0.05 lr=0.02"]


def test_two_runs_that_read_alike_today_are_told_apart():
    """The issue's case: two different runs both read "#... ar t=0.2 highest"."""
    a, b = {**BASE, "threshold": 0.2}, {**BASE, "threshold": 0.2, "strength": 0.5, "reinit": ("dense",)}
    first, second = compare_labels(["#1 ar t=0.2 highest", "#2 ar t=0.2 highest"], [a, b])
    assert first == "#1 strength=0.05 reinit=none" and second == "#2 strength=0.5 reinit=dense"


def test_a_lone_run_or_identical_runs_keep_their_own_labels():
    assert compare_labels(["#1 ar t=0.1 highest"], [BASE]) == ["#1 ar t=0.1 highest"]
    assert compare_labels(["#1 ar", "#2 ar"], [BASE, dict(BASE)]) == ["#1 ar", "#2 ar"]
    assert compare_labels([], []) == []


def test_a_defense_is_named_by_its_method_and_its_own_settings_only_where_it_has_them():
    defense = {"defense": "fine-pruning", "defense_settings": {"prune_ratio": 0.2}, **BASE}
    diffs = differing_settings([BASE, defense])
    assert diffs == [{"method": "purify"}, {"method": "fine-pruning", "prune_ratio": 0.2}]
    assert compare_labels(["#1 ar", "#2 fine-pruning"], [BASE, defense]) == ["#1 purify", "#2 fine-pruning prune_ratio=0.2"]


def test_a_missing_setting_differs_from_none():
    assert differing_settings([{"kappa": None}, {}]) == [{"kappa": None}, {}]


# --- colours -----------------------------------------------------------------------------------

def test_each_run_gets_a_distinct_colour_for_as_many_runs_as_the_app_keeps():
    colors = run_colors([f"#{i}" for i in range(1, 9)])
    assert len(set(colors.values())) == 8 and list(colors.values()) == list(RUN_COLORS[:8])
    assert run_colors(["a", "b"]) == run_colors(["a", "b"]), "the same runs, the same colours (app and report)"


def test_a_ranking_keeps_its_colour_whichever_rankings_a_chart_shows():
    order = list(METRIC_LABELS.values())
    everything = ranking_colors(order, order)
    some = ranking_colors([order[3], order[1]], order)
    assert some == {order[3]: everything[order[3]], order[1]: everything[order[1]]}
    assert len(set(everything.values())) == len(order)


def _trace_colors(fig, suffix=""):
    return {t.name.removesuffix(suffix): t.line.color for t in fig.data if t.name.endswith(suffix)}


def test_the_roc_and_the_pruning_chart_give_each_ranking_the_same_colour():
    labels = list(METRIC_LABELS.values())[:4]
    roc = roc_figure({label: (np.array([0.0, 1.0]), np.array([0.0, 1.0]), 0.5) for label in labels})
    points = [PruningPoint(fraction=f, acc=0.9, asr=0.5) for f in (0.0, 0.1)]
    pruning = pruning_curves_figure({label: points for label in labels})
    roc_colors = {t.name.split(" (AUC")[0]: t.line.color for t in roc.data if t.name != "chance"}
    assert roc_colors == _trace_colors(pruning, ": ACC") == _trace_colors(pruning, ": ASR")
    assert len(set(roc_colors.values())) == 4


# --- fixed axes --------------------------------------------------------------------------------

def _history(acc: float, asr: float) -> list[dict]:
    return [{"step": s, "task_loss": 1.0 / (s + 1), "reg_loss": 0.0, "distill_loss": 0.0, "acc": acc, "asr": asr} for s in (0, 10)]


def test_acc_and_asr_axes_are_fixed_0_to_100_and_runs_keep_their_colour_on_every_panel():
    runs = {"#1 a": _history(0.97, 1.0), "#2 b": _history(0.95, 0.01)}
    fig = runs_overlay_figure(runs)
    ranges = [fig.layout[f"yaxis{'' if i == 1 else i}"].range for i in range(1, 6)]
    assert ranges[3] == ranges[4] == PERCENT_RANGE and PERCENT_RANGE[0] <= 0 and PERCENT_RANGE[1] >= 100
    assert ranges[0] is None, "the loss panels scale to their data"
    legend = [t for t in fig.data if t.showlegend]
    assert [t.name for t in legend] == ["#1 a", "#2 b"], "one legend entry per run, not one per panel"
    for name, color in zip(runs, RUN_COLORS):
        assert {t.line.color for t in fig.data if t.name == name} == {color}
    live = live_run_figure("#1 a", runs["#1 a"])
    assert {t.line.color for t in live.data} == {RUN_COLORS[0]}, "a session's first run: the same colour live and overlaid"
    assert live.layout.yaxis4.range == live.layout.yaxis5.range == PERCENT_RANGE
    single = run_curves_figure(runs, "acc", "ACC", percent=True)
    assert single.layout.yaxis.range == PERCENT_RANGE and {t.line.color for t in single.data} == set(RUN_COLORS[:2])


# --- the verdict -------------------------------------------------------------------------------

def _metrics(acc: float, asr: float | None) -> Metrics:
    return Metrics(acc, asr, 100, 90)


@pytest.mark.parametrize("acc_after, asr_after, word", [
    (0.96, 0.0, "erased"),
    (0.96, ERASED_ASR - 0.001, "erased"),
    (0.96, ERASED_ASR, "not erased"),  # the bar is strict: 5% is not below 5%
    (0.96, 0.6, "not erased"),
    (0.97 - COSTLY_ACC_DROP - 0.01, 0.0, "erased at a cost"),
    (0.96, None, "-"),
])
def test_the_verdict_is_one_documented_rule(acc_after, asr_after, word):
    judged = verdict(_metrics(0.97, 1.0), _metrics(acc_after, asr_after))
    assert judged.word == word
    assert judged.sentence().lower().startswith({"-": "not measured"}.get(word, word))


def test_the_verdict_sentence_gives_before_and_after_and_the_bar():
    text = verdict(_metrics(0.972, 1.0), _metrics(0.969, 0.004)).sentence()
    assert text == "Erased: ASR 100.0% -> 0.4%; ACC 97.2% -> 96.9% (ASR below 5%)."
    assert "before the run already" in verdict(_metrics(0.97, 0.01), _metrics(0.97, 0.0)).sentence()
    assert verdict(None, None).word == "-" and not verdict(None, _metrics(0.5, 0.0)).costly


# --- the table ---------------------------------------------------------------------------------

def _card() -> Card:
    from purify_core.store.zoo import list_zoo

    return next(c for c in list_zoo() if c.name == "mnist5k-smallcnn-badnets")


def _summary(acc_after: float, asr_after: float) -> PurifySummary:
    return PurifySummary(status="finished", reason="", steps=10, seconds=1.0, marked=4, before=_metrics(0.97, 1.0),
                         after=_metrics(acc_after, asr_after), steps_to_erase=None)


def test_the_table_has_asr_before_a_verdict_and_missing_values_not_none():
    source = _card()
    runs = [RunRecord(label="#1 ar", config=BASE, source=source, status="finished", summary=_summary(0.96, 0.01)),
            RunRecord(label="#2 l1", config={**BASE, "regularizer": "l1"}, source=source, status="stopped")]
    rows = run_rows(runs)
    assert list(rows[0])[:9] == ["run", "differs in", "model", "status", "verdict", "ACC before", "ASR before", "ACC after", "ASR after"]
    assert rows[0]["ASR before"] == 100.0 and rows[0]["verdict"] == "erased" and rows[0]["differs in"] == "regularizer=ar"
    assert rows[1]["verdict"] == MISSING and rows[1]["ASR after"] is None, "numbers stay numbers; the display shows '-'"
    assert rows[1]["seconds"] is None and rows[0]["seconds"] == 1.0, "a stopped run's time was not measured: not 0 s"
    assert [shown(v) for v in (None, math.nan, 0.0, "x")] == [MISSING, MISSING, 0.0, "x"]
    assert list(named_histories(runs)) == ["#1 regularizer=ar", "#2 regularizer=l1"]
