"""Benchmark plumbing: the clean-only rule that picks the defaults, and the perf report."""

from __future__ import annotations

from dataclasses import replace

from purify_core.bench.defaults import choose, defaults_markdown
from purify_core.bench.perf import perf_markdown, run_perf
from purify_core.purify import PurifyConfig


def row(recipe, drop, asr="99.0", **settings):
    return {"recipe": recipe, **settings, "runs": 36, "mean_acc_drop": drop, "seconds": 1.0, "asr_not_used": asr}


def test_the_defaults_rule_reads_clean_accuracy_only():
    rows = [
        row("prune + head", 1.6, asr="0.0 | 0.0", reinit="dense", distill=0.5, regularizer="prune", threshold=0.5),  # over the ACC budget
        row("head + distil", 0.9, asr="90.0 | 90.0", reinit="dense", distill=0.5, regularizer="none", threshold=0.0),  # chosen: most aggressive within budget
        row("head + distil, more distillation", 0.5, asr="95.0 | 95.0", reinit="dense", distill=0.8, regularizer="none", threshold=0.0),
        row("AR", 0.2, asr="1.0 | 1.0", regularizer="ar", strength=0.05, threshold=0.1),
    ]
    assert choose(rows, budget=1.0) is rows[1]
    for asr in ("0.0 | 0.0", "100.0 | 100.0"):  # ASR, poisoned or shuffled, changes nothing
        flipped = [dict(r, asr_not_used=asr, **{f"asr_max_{k}": 0.0 for k in "ab"}) for r in rows]
        assert choose(flipped, budget=1.0) == flipped[1]
    shuffled = [dict(r, asr_not_used=rows[(i + 1) % 4]["asr_not_used"]) for i, r in enumerate(rows)]
    assert choose(shuffled, budget=1.0)["recipe"] == "head + distil"
    assert choose(rows, budget=2.0) is rows[0] and choose(rows, budget=0.1) is None
    same = [rows[1], dict(rows[1], recipe="same settings, smaller drop", mean_acc_drop=0.7)]
    assert choose(same, budget=1.0)["recipe"] == "same settings, smaller drop"
    text = defaults_markdown({"rows": rows, "chosen": rows[1], "budget": 1.0, "base": {}, "scenarios": ["a"]})
    assert "Chosen: **head + distil**" in text


def test_perf_measures_salience_against_one_forward_backward_pass():
    raw = run_perf(["badnets"], replace(PurifyConfig(), epochs=1), repeats=1)
    rows = {r["what"]: r for r in raw["rows"]}
    assert rows["one forward+backward pass over the defense set"]["ratio"] == 1.0
    salience = rows["ranking: salience"]
    assert salience["seconds"] > 0 and salience["ratio"] == salience["seconds"] / rows["one forward+backward pass over the defense set"]["seconds"]
    assert raw["peak_rss_mb"] > 0 and "| ranking: salience |" in perf_markdown(raw)


def test_a_benchmark_with_no_matching_scenario_is_a_clear_error(tmp_path, capsys):
    from purify_core.bench.__main__ import main

    assert main(["perf", "--scenarios", "nope", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "no shipped scenario matches 'nope'" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir()), "nothing is written for a failed benchmark"
