"""The CLI's new purification steps and `--checkpoint/--card`: purify any model, not only shipped ones."""

from __future__ import annotations

import json

from test_cli import run_cli


def test_purify_a_model_from_train_out_with_reinit_and_distillation(tmp_path, capsys):
    out = run_cli(capsys, "train", "--dataset", "digits", "--target", "3", "--poison-rate", "0.1", "--epochs", "2", "--seed", "5",
              "--no-clean-reference", "--out", str(tmp_path), "--json")
    assert out.returncode == 0, out.stderr
    card = next(tmp_path.glob("*.json"))
    weights = card.with_suffix(".safetensors")
    run = run_cli(capsys, "purify", "--checkpoint", str(weights), "--card", str(card), "--epochs", "1", "--reinit", "dense",
              "--distill", "0.3", "--distill-schedule", "linear", "--temperature", "3", "--distill-view", "both",
              "--classifier-init", "zero", "--json")
    assert run.returncode == 0, run.stderr
    payload = json.loads(run.stdout)
    assert payload["scenario"] == card.stem and payload["status"] == "finished"
    assert (payload["config"]["reinit"], payload["config"]["distill"], payload["config"]["distill_schedule"], payload["config"]["temperature"]) == (
        "dense", 0.3, "linear", 3.0)
    assert (payload["config"]["distill_view"], payload["config"]["classifier_init"]) == ("both", "zero")
    assert payload["before"]["asr"] is not None and payload["after"]["acc"] is not None
    rank = run_cli(capsys, "rank", "--checkpoint", str(weights), "--card", str(card), "--metric", "magnitude", "--json")
    assert rank.returncode == 0, rank.stderr
    assert json.loads(rank.stdout)["scenario"] == card.stem
    defend = run_cli(capsys, "defend", "--checkpoint", str(weights), "--card", str(card), "--defense", "finetune", "--epochs", "1", "--json")
    assert defend.returncode == 0, defend.stderr
    assert json.loads(defend.stdout)["config"]["reinit"] == "none", "a baseline runs without the lab's steps"


def test_a_named_layer_list_reaches_the_config(capsys):
    run = run_cli(capsys, "purify", "--scenario", "badnets", "--epochs", "1", "--reinit", "net.fc2", "--distill", "0", "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["config"]["reinit"] == ["net.fc2"]


def test_run_seed_redraws_the_run_and_keeps_the_clean_set(capsys):
    """`--seed` picks the clean defense set and, alone, the run's seed too; `--run-seed` moves only the run's
    (re-initialised weights, batch order), so a benchmark cell "draw d, seed s" is one CLI line."""
    flags = ("purify", "--scenario", "badnets", "--epochs", "1", "--threshold", "0", "--regularizer", "none", "--json")
    plain, other = (json.loads(run_cli(capsys, *flags, *more).stdout) for more in (("--seed", "1"), ("--seed", "1", "--run-seed", "7")))
    assert (plain["seed"], plain["config"]["seed"]) == (1, 1)
    assert (other["seed"], other["config"]["seed"]) == (1, 7)
    assert plain["before"] == other["before"], "the same clean set and test split: the same model before"
    assert plain["after"] != other["after"], "another re-initialisation and batch order: another purified model"
