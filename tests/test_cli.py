"""The command line: JSON output, and bad input answered in one line, never a traceback.

Most tests call `main` in this process (`run_cli`): starting Python again adds nothing to what they
check. A few run `python -m purify_core` for real (`cli`): the help, a listing, a train-then-evaluate
round trip, and the exit codes a shell sees.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from purify_core.cli import main
from purify_core.store.zoo import SHIPPED_ATTACKS, ZOO_DIR

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str) -> subprocess.CompletedProcess:
    """`python -m purify_core ARGS` in a new process, as a shell runs it."""
    return subprocess.run([sys.executable, "-m", "purify_core", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


@dataclass(frozen=True)
class Ran:
    """What `main` returned (or exited with) and printed: the fields of a finished process."""

    returncode: int
    stdout: str
    stderr: str


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> Ran:
    """`main(ARGS)` in this process; a usage error's SystemExit becomes its exit code, as in a shell."""
    capsys.readouterr()  # only this command's output
    try:
        code = main(list(args))
    except SystemExit as exit:
        code = exit.code
    out = capsys.readouterr()
    return Ran(code, out.out, out.err)


def test_help_lists_every_subcommand_and_exits_zero():
    out = cli("--help")
    assert out.returncode == 0, out.stderr
    for name in ("zoo", "train", "import", "evaluate", "rank", "compare", "purify", "defend", "reactivate", "bench"):
        assert f"    {name} " in out.stdout, name


@pytest.mark.parametrize("args", [["--help"], [], ["zoo", "fly"], ["train", "--out", "x", "--epochs", "many"], ["evaluate"]],
                         ids=["help", "nothing", "zoo fly", "train --epochs many", "evaluate without its files"])
def test_help_and_usage_errors_do_not_import_torch(args):
    """The cost of a usage error is the imports: none of torch, so the answer is immediate."""
    code = f"import sys\nfrom purify_core.cli import main\ntry:\n    main({args!r})\nexcept SystemExit:\n    pass\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stdout + out.stderr


def test_a_usage_error_exits_2_and_a_refused_input_exits_1_in_a_shell():
    usage = cli("train", "--out", "x", "--epochs", "many")
    refused = cli("zoo", "list", "--zoo-dir", "/no/such/zoo")
    assert (usage.returncode, refused.returncode) == (2, 1)
    assert usage.stderr.startswith("error: ") and refused.stderr.startswith("error: ") and "Traceback" not in usage.stderr + refused.stderr


def test_zoo_list_json_names_every_shipped_scenario():
    out = cli("zoo", "list", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert {r["name"] for r in rows} >= {f"mnist5k-smallcnn-{a}" for a in SHIPPED_ATTACKS}
    assert all(r["asr"] >= 95 for r in rows)


def test_zoo_verify_json_reports_every_checkpoint_matching_its_card(capsys):
    out = run_cli(capsys, "zoo", "verify", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    rows = json.loads(out.stdout)
    assert len(rows) == len(list(ZOO_DIR.glob("*.json"))) and all(r["ok"] for r in rows)
    assert all(abs(r["acc"] - r["card_acc"]) <= 0.5 and abs(r["asr"] - r["card_asr"]) <= 0.5 for r in rows)


def test_train_then_evaluate_round_trip(tmp_path):
    out = cli(
        "train", "--dataset", "digits", "--attack", "blended", "--attack-param", "alpha=0.3", "--poison-rate", "0.1",
        "--target", "2", "--epochs", "3", "--batch-size", "32", "--lr", "0.05", "--no-clean-reference", "--out", str(tmp_path), "--json",
    )
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout)
    assert Path(row["weights"]).is_file() and Path(row["card"]).is_file()
    card = json.loads(Path(row["card"]).read_text())
    assert card["trigger"]["params"]["alpha"] == 0.3 and card["trigger"]["target"] == 2
    ev = cli("evaluate", "--checkpoint", row["weights"], "--card", row["card"], "--json")
    assert ev.returncode == 0, ev.stderr
    measured = json.loads(ev.stdout)
    assert measured["acc"] == pytest.approx(card["acc"], abs=0.01) and measured["asr"] == pytest.approx(card["asr"], abs=0.01)


BAD = [
    (["train", "--out", "x", "--poison-rate", "0.7"], "poison rate must be in"),
    (["train", "--out", "x", "--poison-rate", "0"], "poison rate must be in"),
    (["train", "--out", "x", "--target", "12"], "target class 12 is out of range"),
    (["train", "--out", "x", "--attack", "trojan"], "unknown attack"),
    (["train", "--out", "x", "--attack-param", "size=40"], "does not fit"),
    (["train", "--out", "x", "--attack-param", "nonsense"], "expected key=value"),
    (["train", "--out", "x", "--dataset", "cifar10"], "needs a root folder"),
    (["train", "--out", "x", "--dataset", "cifar10", "--data-root", "/no/such/dir"], "/no/such/dir"),
    (["train", "--out", "x", "--model", "resnet9000"], "unknown architecture"),
    (["train", "--out", "x", "--epochs", "many"], "invalid int value"),
    (["train"], "--out"),
    (["evaluate", "--checkpoint", "/no/such.safetensors", "--card", "/no/such.json"], "does not exist"),
    (["zoo", "build", "--only", "nope", "--zoo-dir", str(ZOO_DIR)], "no scenario named 'nope'"),
    (["zoo", "fly"], "invalid choice"),
    ([], "required"),
    (["purify", "--scenario", "nope"], "no shipped scenario matches 'nope'"),
    (["purify", "--scenario", "mnist5k"], "more than one shipped scenario"),
    (["purify", "--scenario", "badnets", "--threshold", "0.9"], "threshold must be in [0, 0.8]"),
    (["purify", "--scenario", "badnets", "--strength", "-1"], "strength must be a finite number >= 0"),
    (["purify", "--scenario", "badnets", "--regularizer", "l3"], "unknown regularizer 'l3'"),
    (["purify", "--scenario", "badnets", "--layers", "net.nope"], "no neuron layer named net.nope"),
    (["purify", "--scenario", "badnets", "--seed", "-1"], "--seed must be a whole number in [0, 2147483647]"),
    (["rank", "--scenario", "badnets", "--metric", "vibes"], "unknown ranking 'vibes'"),
    (["rank", "--scenario", "badnets", "--variant", "cubed"], "the salience ranking setting variant='cubed': choose one of abs, squared"),
    (["rank", "--scenario", "badnets", "--metric", "magnitude", "--setting", "eta=0.5"], "the magnitude ranking takes no options (got eta)"),
    (["rank", "--scenario", "badnets", "--setting", "eta=1.5"], "the salience ranking setting eta=1.5 must be <= 0.999"),
    (["compare", "--scenario", "badnets", "--top", "2"], "--top must be a fraction"),
    (["defend", "--scenario", "badnets", "--defense", "prayer"], "unknown defense 'prayer'"),
    (["defend", "--scenario", "badnets", "--defense", "finetune", "--margin", "0.1"], "finetune has no setting margin; its settings are: none"),
    (["defend", "--scenario", "badnets", "--defense", "fine-pruning", "--margin", "3"], "fine-pruning setting margin=3.0 must be <= 1.0"),
    (["defend", "--scenario", "badnets", "--defense", "fine-pruning", "--fine-pruning-margin", "wide"],
     "fine-pruning setting margin='wide' must be a float"),
    (["defend", "--scenario", "badnets", "--defense", "finetune", "--magnitude-pruning-margin", "0.1"],
     "--magnitude-pruning-margin is a setting of magnitude-pruning, not of finetune"),
]


@pytest.mark.parametrize("args, message", BAD, ids=[" ".join(a) or "nothing" for a, _ in BAD])
def test_bad_input_exits_non_zero_with_one_clear_line(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # `--out x` is relative: a refused command must leave no folder behind
    out = run_cli(capsys, *args)
    assert list(tmp_path.iterdir()) == [], "a refused command created files or folders"
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], out.stderr


def test_evaluate_refuses_a_checkpoint_whose_sha256_does_not_match(tmp_path, capsys):
    name = "mnist5k-smallcnn-badnets"
    weights = tmp_path / "w.safetensors"
    weights.write_bytes((ZOO_DIR / f"{name}.safetensors").read_bytes()[:-4] + b"\0\0\0\0")
    out = run_cli(capsys, "evaluate", "--checkpoint", str(weights), "--card", str(ZOO_DIR / f"{name}.json"))
    assert out.returncode == 1 and "sha256" in out.stderr and "Traceback" not in out.stderr
