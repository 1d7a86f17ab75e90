"""The shared steps (purify_core/study.py): each gives what its callers used to compute by hand."""

from __future__ import annotations

import pytest

from purify_core.errors import UserInputError
from purify_core.models.evaluate import Metrics, evaluate, percent
from purify_core.method.purify import PurifyConfig, PurifySummary, StepMetrics, purify
from purify_core.method.rankings import DEFENDER_METRICS, rank_neurons
from purify_core.method.rankings.quality import ranking_quality, roc_points
from purify_core.study import (
    SUMMARY_COLUMNS, Case, RunRecord, case_of, evaluator_for, summary_dict, grade_rankings, purification_result, ranking_report, run_to_end, summary_row,
)
from purify_core.store.zoo import load_shipped


@pytest.fixture(scope="module")
def case() -> Case:
    return case_of(load_shipped("mnist5k-smallcnn-badnets"), 0)


def test_percent_rounds_to_two_decimals_and_keeps_none():
    assert percent(0.123456) == 12.35 and percent(1.0) == 100.0 and percent(None) is None
    assert Metrics(0.5, None, 1, 0).as_percent() == {"acc": 50.0, "asr": None, "ra": None}
    assert Metrics(0.5, 0.25, 4, 4, ra=0.75).as_percent() == {"acc": 50.0, "asr": 25.0, "ra": 75.0}


def test_the_evaluator_is_evaluate_on_the_test_set_or_its_first_images(case):
    model, attack, test = case.backdoored.model, case.backdoored.attack, case.splits.test
    small = test.subset(range(600))
    assert evaluator_for(attack, small)(model) == evaluate(model, small, attack)
    assert evaluator_for(attack, small, 10**9)(model) == evaluate(model, small, attack)  # more than there are: all
    assert case.evaluator(300)(model) == evaluate(model, test.subset(range(300)), attack)


def test_run_to_end_returns_the_last_item_and_shows_each():
    seen: list[int] = []
    assert run_to_end(iter([1, 2, 3]), seen.append) == 3 and seen == [1, 2, 3]
    with pytest.raises(ValueError):
        run_to_end(iter([]))


def test_purification_result_refuses_a_run_that_ends_without_a_result():
    with pytest.raises(TypeError):
        purification_result(iter([StepMetrics(step=0, steps=1, epoch=0, task_loss=0.0, reg_loss=0.0, seconds=0.0, marked=0)]))


def test_grading_gives_what_the_callers_computed_each_way(tiny_backdoored):
    """On the tiny model: the ways agree on any model, and every ranking on the shipped one took 8 s."""
    case = case_of(tiny_backdoored, 0)
    model, defense, attack = case.backdoored.model, case.splits.clean, case.backdoored.attack
    tac = rank_neurons(model, defense, "tac", attack=attack)
    scores = {m: rank_neurons(model, defense, m) for m in DEFENDER_METRICS}
    grades = grade_rankings(scores, tac, 0.1)
    assert [g.metric for g in grades] == list(DEFENDER_METRICS)
    for grade in grades:
        for direction in ("lowest", "highest"):
            assert grade.toward(direction) == ranking_quality(scores[grade.metric], tac, 0.1, direction)
        row = grade.to_dict(3)
        assert row["auc_low"] == round(grade.lowest.auc, 3) and row["precision_high"] == round(grade.highest.precision_at_k, 3)
        assert row["spearman_tac"] == round(grade.lowest.spearman, 3)
    with pytest.raises(UserInputError, match="fraction in"):
        grade_rankings(scores, tac, 1.0)
    report = ranking_report(scores, tac, 0.1, "highest", {"salience": "benign salience"})
    assert [r["ranking"] for r in report["rows"]] == ["benign salience", *DEFENDER_METRICS[1:]]
    assert report["names"] == ["benign salience", *DEFENDER_METRICS[1:], "tac"]
    for row, metric in zip(report["rows"], DEFENDER_METRICS):
        q = ranking_quality(scores[metric], tac, 0.1, "highest")
        assert (row["ROC AUC"], row["precision@k"], row["Spearman with TAC"]) == (q.auc, q.precision_at_k, q.spearman)
        fpr, tpr, auc = report["roc"][row["ranking"]]
        assert auc == q.auc and (fpr == roc_points(scores[metric], tac, 0.1, "highest")[0]).all()


def test_a_run_record_keeps_steps_and_result_and_makes_its_summary_row(case):
    record = RunRecord(label="#1 ar", config={"regularizer": "ar"}, source=case.backdoored.card)
    result = purification_result(purify(case.backdoored.model, case.splits.clean.subset(range(128)), PurifyConfig(epochs=2, eval_every=3), case.evaluator(200)),
                                 on_step=record.record)
    record.record(result)
    assert record.status == result.summary.status == "finished" and record.model is result.model
    assert [h["step"] for h in record.history] == [s.step for s in result.history]
    s = result.summary
    row = record.summary_row()
    assert list(row) == ["run", "model", "status", *SUMMARY_COLUMNS]
    assert row["ACC before"] == s.to_dict()["before"]["acc"] and row["ASR after"] == s.to_dict()["after"]["asr"]
    assert row["steps to ASR<5%"] == s.steps_to_erase and row["seconds"] == round(s.seconds, 1)
    assert record.summary_dict() == summary_dict(s) == {**s.to_dict(), "der": row["DER"]} and not record.settle()


def test_a_run_cut_short_settles_as_stopped_with_empty_numbers(case):
    record = RunRecord(label="#2 l2", config={}, source=case.backdoored.card)
    record.record(StepMetrics(step=3, steps=9, epoch=1, task_loss=0.1, reg_loss=0.0, seconds=0.1, marked=2))
    assert record.settle() and record.status == "stopped" and "after 3 steps" in record.reason
    assert summary_row(None) == {**dict.fromkeys(SUMMARY_COLUMNS[:-1]), "seconds": 0.0}
    assert record.summary_dict() is None


def test_summary_row_of_a_diverged_run_has_no_after_numbers():
    summary = PurifySummary(status="diverged", reason="nan", steps=4, seconds=1.26, marked=3,
                            before=Metrics(0.9, 0.99, 10, 9), after=None, steps_to_erase=None)
    assert summary_row(summary) == {"ACC before": 90.0, "ASR before": 99.0, "ACC after": None, "ASR after": None,
                                    "RA after": None, "DER": None, "steps to ASR<5%": None, "seconds": 1.3}


def test_summary_row_shows_robust_accuracy_and_der_of_a_finished_run():
    summary = PurifySummary(status="finished", reason="", steps=4, seconds=1.0, marked=3, before=Metrics(0.97, 1.0, 10, 9, ra=0.0),
                            after=Metrics(0.96, 0.0, 10, 9, ra=0.9), steps_to_erase=2)
    row = summary_row(summary)
    assert row["RA after"] == 90.0 and row["DER"] == 0.995  # (1 - 0.01 + 1) / 2, fractions not percents
    assert summary_dict(summary)["der"] == 0.995 and summary_dict(summary)["after"]["ra"] == 90.0


def test_records_are_built_by_keyword_only():
    with pytest.raises(TypeError):
        StepMetrics(0, 1, 0, 0.0, 0.0, 0.0, 0)  # type: ignore[misc]
    with pytest.raises(TypeError):
        RunRecord("#1", {}, None)  # type: ignore[misc]


def test_a_card_or_config_naming_adam_is_refused_with_one_line():
    """Adam was an option nothing trained with; it is refused, not silently trained with SGD."""
    from purify_core.config import TrainConfig

    with pytest.raises(UserInputError, match="optimizer must be 'sgd'"):
        TrainConfig(optimizer="adam")
