"""The arena benchmark on the tiny preset: every row graded, the clean control run, the table and rules written."""

from __future__ import annotations

import pytest

from purify_core.bench.arena import PRESETS, arena_markdown, arena_results_for, contenders, run_arena
from purify_core.defenses import DEFENSES
from purify_core.errors import UserInputError
from purify_core.evaluation.clean_control import clean_model
from purify_core.method.purify import PRESET_LABELS
from purify_core.study import case_of


def test_the_arena_holds_every_registered_defense_then_the_papers_presets():
    names = [c.name for c in contenders()]
    assert names == [*DEFENSES, *PRESETS]
    assert [c.name for c in contenders(["default", "finetune", "default"])] == ["default", "finetune"]
    with pytest.raises(UserInputError, match="unknown defense 'nope' for the arena"):
        contenders(["finetune", "nope"])


def test_a_benchmark_arena_with_an_unknown_defense_writes_nothing(tmp_path, capsys):
    from purify_core.bench.__main__ import main

    assert main(["arena", "--defenses", "nope", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "unknown defense 'nope'" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())


def test_the_arena_on_a_tiny_model_grades_each_contender_and_its_clean_control(tiny_backdoored, tmp_path):
    lines: list[str] = []
    chosen = contenders(["finetune", "default"])
    controls: list[str] = []

    def control_of(scenario):
        controls.append(scenario.data.dataset)
        return clean_model(scenario, cache_dir=tmp_path, device="cpu")

    cases = [case_of(tiny_backdoored, seed) for seed in (0, 1)]
    raw = run_arena(cases, chosen, control_of, epochs=1, log=lines.append)
    assert controls == ["digits"], "one clean control per model, reused across draws"
    rows = raw["rows"]
    assert [(r["draw"], r["defense"]) for r in rows] == [(0, "finetune"), (0, "default"), (1, "finetune"), (1, "default")]
    for r in rows:
        assert r["status"] == "finished" and 0.0 <= r["der"] <= 1.0
        assert 0 <= r["ra"] <= 100 and r["asr"] + r["ra"] <= 100.0 + 1e-6  # a triggered image is the target, its class or neither
        assert r["control_acc"] is not None and r["control_drop"] == pytest.approx(r["control_acc_before"] - r["control_acc"], abs=0.011)
    assert sum("finetune: ACC" in line for line in lines) == 2, "a progress line per run"
    summary = arena_results_for(raw, tiny_backdoored.name)
    assert [s["defense"] for s in summary] == ["finetune", "default"] and all(s["draws"] == 2 for s in summary)
    fine = [r["acc"] for r in rows if r["defense"] == "finetune"]
    assert summary[0]["acc"] == pytest.approx(sum(fine) / 2) and summary[0]["acc_sd"] >= 0.0
    assert arena_results_for(raw, "another-model") == []
    text = arena_markdown(raw)
    assert "| scenario | defense | ACC | ASR | RA | DER | clean control ACC drop |" in text
    assert f"**finetune** (Fine-tuning): {DEFENSES['finetune'].selection}" in text and f"**default** ({PRESET_LABELS['default']})" in text
    assert "Total time:" in text


def test_the_summary_drop_is_the_mean_of_each_draws_own_drop():
    """Each draw evaluates on other test images, so its ACC before differs: a drop from draw 0's before would mislead."""
    from purify_core.bench.arena import _summary

    def row(draw: int, before: float, after: float) -> dict:
        return {"scenario": "s", "defense": "d", "draw": draw, "status": "finished", "acc_before": before, "asr_before": 100.0,
                "acc": after, "asr": 1.0, "ra": 90.0, "der": 0.9, "control_acc": 95.0, "control_drop": 1.0, "seconds": 1.0}

    [entry] = _summary([row(0, 97.6, 97.1), row(1, 97.0, 96.0), row(2, 96.7, 95.7)])
    assert entry["acc_drop"] == pytest.approx((0.5 + 1.0 + 1.0) / 3)
    assert entry["acc_before"] == pytest.approx((97.6 + 97.0 + 96.7) / 3)


def test_every_baseline_outside_the_app_fine_tunes_in_one_loop_the_lab_default_does_not_move(monkeypatch):
    from dataclasses import replace

    from purify_core.bench.arena import Contender
    from purify_core.bench.reactivate import _plain
    from purify_core.cli import build_parser
    from purify_core.cli.method import purify_config
    from purify_core.method import purify as P

    monkeypatch.setitem(P.PURIFY_PRESETS, "default", replace(P.PURIFY_PRESETS["default"], epochs=99, lr=0.5))
    assert Contender("finetune", "defense").config() == P.BASELINE_FINE_TUNING
    assert _plain(P.purify_preset("default", seed=3)) == P.baseline_config(seed=3)
    defend = ["defend", "--scenario", "badnets", "--defense", "finetune"]
    assert purify_config(build_parser().parse_args([*defend, "--seed", "2"]), baseline=True) == P.baseline_config(seed=2)
    assert purify_config(build_parser().parse_args([*defend, "--epochs", "5"]), baseline=True).epochs == 5
    assert purify_config(build_parser().parse_args([*defend, "--preset", "reference"]), baseline=True).momentum == 0.0
    assert (P.BASELINE_FINE_TUNING.epochs, P.BASELINE_FINE_TUNING.reinit, P.BASELINE_FINE_TUNING.distill) == (20, "none", 0.0)
