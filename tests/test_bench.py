"""Benchmark plumbing: the clean-only rule that picks the defaults, and the perf report."""

from __future__ import annotations

import json
from dataclasses import replace

from purify_core.bench.defaults import choose, defaults_markdown
from purify_core.bench.perf import perf_markdown, run_perf
from purify_core.method.purify import PurifyConfig
from purify_core.method.rankings import DEFENDER_METRICS


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


def test_a_timing_is_the_median_of_the_repeats_after_a_warm_up(monkeypatch):
    from purify_core.bench import perf

    clock = iter([0.0, 1.0, 10.0, 13.0, 20.0, 22.0])  # three timed calls: 1 s, 3 s, 2 s
    monkeypatch.setattr(perf.time, "perf_counter", lambda: next(clock))
    calls = []
    assert perf._median_seconds(lambda: calls.append(1), repeats=3) == 2.0
    assert len(calls) == 4, "one warm-up call, then the three timed ones"


def test_perf_gives_every_step_as_a_multiple_of_one_forward_backward_pass(monkeypatch):
    """Timings faked by hand (yardstick 0.5 s, every other step 2 s): each ratio must read 4."""
    from purify_core.bench import perf

    timings = iter([0.5] + [2.0] * 20)
    monkeypatch.setattr(perf, "_median_seconds", lambda fn, repeats: next(timings))
    raw = run_perf(["badnets"], replace(PurifyConfig(), epochs=1), repeats=1)
    rows = {r["what"]: r for r in raw["rows"]}
    assert rows.pop("one forward+backward pass over the defense set") == {
        "what": "one forward+backward pass over the defense set", "seconds": 0.5, "ratio": 1.0}
    assert {f"ranking: {m}" for m in DEFENDER_METRICS} < set(rows) and len(rows) == len(DEFENDER_METRICS) + 3
    assert all(r["seconds"] == 2.0 and r["ratio"] == 4.0 for r in rows.values()), rows
    assert raw["peak_rss_mb"] > 0 and "| ranking: salience | 2.000 | 4.000 |" in perf_markdown(raw)


def test_a_benchmark_with_no_matching_scenario_is_a_clear_error(tmp_path, capsys):
    from purify_core.bench.__main__ import main

    assert main(["perf", "--scenarios", "nope", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "no shipped scenario matches 'nope'" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir()), "nothing is written for a failed benchmark"


def test_the_default_preset_is_the_recipe_the_committed_grid_chose():
    """The `default` preset and benchmarks/defaults.json agree: the rule, re-applied to the grid's rows
    (ASR dropped), picks the recorded recipe, and that recipe on the grid's base is the preset."""
    import json
    from pathlib import Path

    from purify_core.bench.defaults import RECIPES
    from purify_core.method.purify import PURIFY_PRESETS

    raw = json.loads((Path(__file__).resolve().parents[1] / "benchmarks" / "defaults.json").read_text())
    rows = [{k: v for k, v in r.items() if not k.startswith("asr")} for r in raw["rows"]]
    chosen = choose(rows, raw["budget"])
    assert chosen is not None and chosen["recipe"] == raw["chosen"]["recipe"]
    grid = replace(PurifyConfig(**raw["base"]), **RECIPES[chosen["recipe"]])
    assert replace(grid, eval_every=10, seed=0) == replace(PURIFY_PRESETS["default"], eval_every=10, seed=0)


def test_claims_reuse_keeps_one_paper_loop_row_per_case_from_either_kind_of_earlier_file(tmp_path):
    from purify_core.bench.claims import LAB_DEFAULT, OLD_DEFAULT, _reused
    from purify_core.method.purify import PurifyConfig

    def case(defense, asr):
        return {"scenario": "s", "seed": 0, "defense": defense, "acc": 97.0, "asr": asr, "steps_to_erase": None, "status": "finished"}

    config = PurifyConfig().to_dict()
    before_split = {"config": config, "rankings": [], "regularizers": [], "defenses": [case(LAB_DEFAULT, 40.0)]}
    after_split = {"config": config, "rankings": [], "regularizers": [], "defenses": [case(OLD_DEFAULT, 40.0), case(LAB_DEFAULT, 0.5)]}
    for raw in (before_split, after_split):
        path = tmp_path / "claims.json"
        path.write_text(json.dumps(raw))
        kept = _reused(path, PurifyConfig())[("s", 0)]["defenses"]
        assert [(r["defense"], r["asr"]) for r in kept] == [(OLD_DEFAULT, 40.0)], "the lab default's old row is re-run, never kept as the paper's loop"
