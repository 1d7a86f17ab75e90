"""Benchmark plumbing: the clean-only rule that picks the defaults, and the perf report."""

from __future__ import annotations

from dataclasses import replace

from purify_core.bench.defaults import choose, defaults_markdown
from purify_core.bench.perf import perf_markdown, run_perf
from purify_core.purify import PurifyConfig


def row(lr, unmarked, strength, threshold, direction, drop, asr="99.0"):
    return {"lr": lr, "unmarked_lr": unmarked, "strength": strength, "threshold": threshold, "direction": direction,
            "mean_acc_drop": drop, "max_acc_drop": drop, "asr_not_used": asr}


def test_the_defaults_rule_reads_clean_accuracy_only():
    rows = [
        row(0.02, 1.0, 0.05, 0.3, "lowest", 3.0, asr="0.0"),  # erases everything, but over the ACC budget
        row(0.01, 1.0, 0.05, 0.3, "lowest", 1.4, asr="90.0"),
        row(0.01, 1.0, 0.05, 0.3, "highest", 1.2, asr="95.0"),  # same aggressiveness, smaller drop: chosen
        row(0.01, 1.0, 0.01, 0.3, "highest", 0.2, asr="1.0"),
    ]
    assert choose(rows, budget=1.5) is rows[2]
    flipped = [dict(r, asr_not_used="0.0") for r in rows]  # ASR changes nothing
    assert choose(flipped, budget=1.5) == flipped[2]
    assert choose(rows, budget=0.1) is None
    text = defaults_markdown({"rows": rows, "chosen": rows[2], "budget": 1.5, "base": {}, "scenarios": ["a"]})
    assert "Chosen: lr 0.01" in text and "direction highest" in text


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
