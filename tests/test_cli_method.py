"""The method's CLI commands and the benchmark command on a shipped scenario (in this process: see test_cli)."""

from __future__ import annotations

import json

from purify_core.bench.__main__ import main as bench_main
from purify_core.method.purify import purify_preset

from test_cli import run_cli


def test_rank_json_gives_one_score_per_neuron_per_layer(capsys):
    out = run_cli(capsys, "rank", "--scenario", "badnets", "--metric", "magnitude", "--json")
    assert out.returncode == 0, out.stderr
    scores = json.loads(out.stdout)["scores"]
    assert {k: len(v) for k, v in scores.items()} == {"net.conv1": 16, "net.conv2": 32, "net.conv3": 64, "net.fc1": 128}


def test_compare_json_grades_every_defender_ranking_against_tac_with_pruning_curves(capsys, tiny_backdoored, tmp_path):
    """On the tiny model given as your own checkpoint (a shipped scenario's rankings and curves took 18.6 s)."""
    from purify_core.store.backdoored import save_model

    weights, card = tmp_path / "tiny.safetensors", tmp_path / "tiny.json"
    save_model(tiny_backdoored, weights, card)
    out = run_cli(capsys, "compare", "--checkpoint", str(weights), "--card", str(card), "--curves", "--json")
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    from purify_core.method.rankings import DEFENDER_METRICS  # every registered defender ranking, the paper's rivals first

    assert [r["metric"] for r in payload["rankings"]] == list(DEFENDER_METRICS)
    assert list(DEFENDER_METRICS)[:4] == ["salience", "activation", "magnitude", "gradxact"]
    for row in payload["rankings"]:
        assert 0 <= row["auc_low"] <= 1 and abs(row["auc_low"] + row["auc_high"] - 1) < 1e-2
    curve = payload["pruning_curves"]["salience"]
    assert curve[0]["fraction"] == 0 and curve[0]["asr"] > 90  # nothing zeroed: the backdoor is intact


def test_purify_json_reports_before_and_after_and_the_settings_used(capsys):
    out = run_cli(capsys, "purify", "--scenario", "wanet", "--epochs", "2", "--regularizer", "l1", "--threshold", "0.2", "--json")
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert payload["status"] == "finished" and payload["steps"] == 14
    erased, costly = payload["after"]["asr"] < 5, payload["before"]["acc"] - payload["after"]["acc"] > 5  # the app's rule
    assert payload["verdict"] == (("erased at a cost" if costly else "erased") if erased else "not erased")
    assert payload["config"]["regularizer"] == "l1" and payload["config"]["threshold"] == 0.2
    assert payload["before"]["asr"] > 90 and 0 <= payload["after"]["acc"] <= 100
    assert 0 <= payload["after"]["ra"] <= 100 - payload["after"]["asr"] + 0.01 and 0 <= payload["der"] <= 1  # RA in %, DER a fraction


def test_defend_json_runs_fine_pruning(capsys):
    out = run_cli(capsys, "defend", "--scenario", "sig", "--defense", "fine-pruning", "--epochs", "1", "--json")
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert payload["defense"] == "fine-pruning" and payload["config"]["regularizer"] == "prune"
    assert payload["config"]["layers"] == ["net.conv3"]


def test_claims_benchmark_writes_json_and_markdown(tmp_path, capsys, tiny_zoo):
    """`python -m purify_core.bench` still works: the same command as `python -m purify_core bench`.

    On the tiny model as a zoo of its own (`--zoo`): the grid's 17 jobs as on a shipped model, in seconds (on the
    shipped BadNets model the test took 75 s alone and 155-160 s beside the other pytest worker, most of it ANP's
    ranking). One draw, one worker (the jobs run here, one after another). The tables' mean and standard deviation
    over draws are checked on its rows repeated as a second draw, with known spreads.
    """
    from purify_core.bench.claims import claims_markdown, summarise

    zoo, name = tiny_zoo
    assert bench_main(["claims", "--zoo", zoo, "--seeds", "1", "--epochs", "1", "--workers", "1", "--out", str(tmp_path)]) == 0
    raw = json.loads((tmp_path / "claims.json").read_text())
    assert {r["seed"] for r in raw["rankings"]} == {0} and raw["seeds"] == [0]
    assert {r["regularizer"] for r in raw["regularizers"]} == {"ar", "l2", "l1", "prune", "none"}
    assert {r["defense"] for r in raw["defenses"]} == {
        "none (the backdoored model)", "purify (ours, defaults)", "purify (AR only: the paper's loop, the old default)",
        "finetune", "fine-pruning", "magnitude-pruning"}
    assert raw["lab_default"]["reinit"] == purify_preset("default").reinit and raw["config"]["reinit"] == "none"
    markdown = (tmp_path / "claims.md").read_text()
    assert "Claim 1" in markdown and "Claim 3" in markdown and f"| {name} | salience |" in markdown
    assert "x 1 draws" in markdown

    def again(row: dict, field: str, by: float) -> dict:  # the same row as draw 1, one number moved by `by`
        return {**row, "seed": 1, field: None if row[field] is None else row[field] + by}

    two = {**raw, "seeds": [0, 1], "rankings": raw["rankings"] + [again(r, "auc_low", 0.2) for r in raw["rankings"]],
           "regularizers": raw["regularizers"] + [again(r, "asr", 4.0) for r in raw["regularizers"]],
           "defenses": raw["defenses"] + [again(r, "acc", 2.0) for r in raw["defenses"]]}
    table = summarise(two)
    assert len(table["defenses"]) == len(raw["defenses"]) and len(table["rankings"]) == len(raw["rankings"])
    assert all(abs(r["auc_low_std"] - 0.2 / 2**0.5) < 1e-9 for r in table["rankings"])
    assert all(r["asr_std"] is None or abs(r["asr_std"] - 4 / 2**0.5) < 1e-9 for r in table["regularizers"])
    assert all(r["acc_std"] is None or abs(r["acc_std"] - 2**0.5) < 1e-9 for r in table["defenses"])
    assert all(r["erased"].endswith("/2") for r in table["defenses"]) and "x 2 draws" in claims_markdown(two)


def test_claims_on_a_zoo_refuses_a_missing_folder_or_name_in_one_line(tmp_path, capsys, tiny_zoo):
    zoo, name = tiny_zoo
    for args, said in [(["--zoo", str(tmp_path / "nope")], "no such folder"),
                       (["--zoo", str(tmp_path)], "no model card (*.json) in it"),
                       (["--zoo", zoo, "--scenarios", "other"], f"has no model named other; it holds {name}")]:
        assert bench_main(["claims", *args, "--seeds", "1", "--out", str(tmp_path / "out")]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and said in err, err
    assert not (tmp_path / "out").exists()


def test_bench_is_a_subcommand_and_a_failed_benchmark_writes_nothing(tmp_path, capsys):
    out = run_cli(capsys, "bench", "perf", "--scenarios", "nope", "--out", str(tmp_path))
    assert out.returncode == 1 and out.stderr.strip().splitlines() == [
        out.stderr.strip()] and "no shipped scenario matches 'nope'" in out.stderr, out.stderr
    assert not list(tmp_path.iterdir())
