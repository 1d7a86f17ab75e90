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
