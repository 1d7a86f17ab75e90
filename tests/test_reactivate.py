"""The re-activation check: re-tuning private copies on a few poisoned images, the clean control, the CLI."""

from __future__ import annotations

import json

import pytest
import torch

from purify_core.study import purification_result
from purify_core.evaluation.clean_control import cached_clean_model, clean_cache_dir, clean_key, clean_model
from purify_core.cli import main
from purify_core.config import scenario_preset
from purify_core.errors import UserInputError
from purify_core.views.method_figures import before_after_figure, reactivation_figure
from purify_core.evaluation.neuron_change import infected, neuron_change
from purify_core.method.purify import PurifyConfig, purify
from purify_core.evaluation.reactivate import ReactivateConfig, reactivate, reactivation_set, run_reactivation
from purify_core.store.model_store import list_built

from app_helpers import weights_hash


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PURIFY_LAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_the_re_tuning_set_holds_the_asked_poisoned_images(tiny_backdoored):
    splits, attack = tiny_backdoored.splits(), tiny_backdoored.attack
    retune = reactivation_set(splits.train, attack, ReactivateConfig(images=60, poisoned=7, seed=3))
    assert len(retune) == 60
    poisoned = retune.x[:7]
    # BadNets is dirty-label: the first 7 are triggered (applying the trigger again changes nothing) and relabelled.
    assert torch.equal(attack.apply(poisoned), poisoned) and (retune.y[:7] == attack.target).all()
    assert not torch.equal(attack.apply(retune.x[7:]), retune.x[7:]), "the rest are clean images"
    again = reactivation_set(splits.train, attack, ReactivateConfig(images=60, poisoned=7, seed=3))
    assert torch.equal(again.x, retune.x), "same seed, same set"


def test_a_clean_label_attack_poisons_target_class_images_and_keeps_their_labels():
    from purify_core.store.backdoored import attack_for
    from purify_core.data.splits import load_splits

    scenario = scenario_preset("tiny", "sig")
    splits = load_splits(scenario.data)
    attack = attack_for(scenario, splits)
    retune = reactivation_set(splits.train, attack, ReactivateConfig(images=40, poisoned=5))
    assert (retune.y[:5] == attack.target).all() and len(retune) == 40
    with pytest.raises(UserInputError, match="target-class images"):
        reactivation_set(splits.train, attack, ReactivateConfig(images=1000, poisoned=900))


def test_the_given_models_are_never_changed_and_a_backdoor_stays_high(tiny_backdoored):
    model = tiny_backdoored.model
    before, mode = weights_hash(model), model.training
    splits = tiny_backdoored.splits()
    report = run_reactivation({"backdoored": model}, splits.train, splits.test, tiny_backdoored.attack, ReactivateConfig(epochs=2))
    assert weights_hash(model) == before and model.training == mode
    row = report.row("backdoored")
    assert row.before.asr > 0.9 and (row.after.asr >= 0.9 or row.after.asr > row.before.asr)


def test_re_tuning_on_many_poisoned_images_implants_the_backdoor_in_a_clean_model(tiny_backdoored, cache):
    """The check can fail: a clean model re-tuned on a heavily poisoned set gains a backdoor."""
    scenario, splits = tiny_backdoored.scenario, tiny_backdoored.splits()
    clean = clean_model(scenario, device="cpu")
    report = run_reactivation({"clean": clean}, splits.train, splits.test, tiny_backdoored.attack,
                              ReactivateConfig(images=300, poisoned=150, epochs=10, lr=0.05))
    row = report.row("clean")
    assert row.before.asr < 0.2 and row.after.asr > row.before.asr + 0.3, row


def test_a_purified_models_bounce_back_is_reported_beside_the_others(tiny_backdoored, cache):
    splits = tiny_backdoored.splits()
    purified = purification_result(purify(tiny_backdoored.model, splits.clean, PurifyConfig(epochs=2))).model
    models = {"purified": purified, "backdoored": tiny_backdoored.model, "clean": clean_model(tiny_backdoored.scenario, device="cpu")}
    items = list(reactivate(models, splits.train, splits.test, tiny_backdoored.attack, ReactivateConfig(epochs=2)))
    fractions = [i.fraction for i in items]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    report = items[-1].report
    assert [r.model for r in report.rows] == ["purified", "backdoored", "clean"]
    table = report.to_dict()
    assert "evaluator's view" in table["oracle"] and table["config"]["poisoned"] == 10
    assert all(0 <= r["asr_after"] <= 100 and 0 <= r["acc_after"] <= 100 for r in table["rows"])
    assert len(reactivation_figure(table["rows"]).data) == 2


@pytest.mark.parametrize("settings, message", [
    ({"poisoned": -1}, "poisoned images must be a whole number >= 1"),
    ({"poisoned": 0}, "poisoned images must be a whole number >= 1"),
    ({"poisoned": 10**6}, "do not fit in a re-tuning set of 100"),
    ({"images": 10**6}, "must hold 1 to 5000 images"),
    ({"epochs": 0}, "epochs must be a whole number from 1 to 100"),
    ({"epochs": 10**4}, "epochs must be a whole number from 1 to 100"),
    ({"lr": 0.0}, "learning rate must be in (0, 1]"),
    ({"lr": float("nan")}, "learning rate must be in (0, 1]"),
])
def test_bad_re_tuning_settings_are_refused_with_one_line(settings, message):
    with pytest.raises(UserInputError) as error:
        ReactivateConfig(**settings)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_the_clean_control_is_cached_outside_the_model_list_and_a_damaged_file_is_retrained(cache):
    scenario = scenario_preset("tiny", "badnets")
    first = clean_model(scenario, device="cpu")
    assert clean_key(scenario) == clean_key(scenario_preset("tiny", "blended")), "the attack plays no part"
    assert clean_key(scenario) != clean_key(scenario_preset("tiny", "badnets", seed=1))
    cached = cached_clean_model(scenario, device="cpu")
    assert cached is not None and weights_hash(cached) == weights_hash(first)
    assert list_built() == [], "the clean control is not a model the app lists"
    weights = clean_cache_dir() / f"{clean_key(scenario)}.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert cached_clean_model(scenario, device="cpu") is None
    assert weights_hash(clean_model(scenario, device="cpu")) == weights_hash(first), "retrained the same way, same weights"


def test_salience_and_tac_before_and_after_share_one_scale(tiny_backdoored):
    splits = tiny_backdoored.splits()
    model = tiny_backdoored.model
    before = weights_hash(model)
    change = neuron_change(model, model, splits.clean, tiny_backdoored.attack)
    assert weights_hash(model) == before
    tac = change.before["tac"]
    marked = infected(tac)
    assert all(int(m.sum()) >= 1 for m in marked.values())
    quiet = {name: torch.zeros_like(s) for name, s in tac.items()}
    fig = before_after_figure(tac, quiet, marked)
    z = fig.data[0].z
    assert z[0][: len(next(iter(tac.values())))].max() == 1.0 and (z[1][~(z[1] != z[1])] == 0).all(), "after=0 stays dark"
    assert [row["layer"] for row in change.layer_means("salience")] == list(tac)


def test_the_cli_reports_purified_and_backdoored_after_re_tuning(capsys, cache):
    code = main(["reactivate", "--scenario", "badnets", "--purify-epochs", "1", "--epochs", "1", "--no-clean", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["defense"] == "default"
    assert [r["model"] for r in out["rows"]] == ["purified (default)", "backdoored"]
    assert out["config"]["poisoned"] == 10 and "evaluator's view" in out["oracle"]


@pytest.mark.parametrize("argv, message", [
    (["--poisoned", "-3"], "poisoned images must be a whole number >= 1"),
    (["--poisoned", "1000000"], "do not fit in a re-tuning set of 100"),
    (["--epochs", "0"], "epochs must be a whole number from 1 to 100"),
    (["--defense", "nope"], "unknown defense 'nope'"),
])
def test_the_cli_refuses_bad_settings_with_one_error_line(argv, message, capsys):
    code = main(["reactivate", "--scenario", "badnets", "--purify-epochs", "1", "--no-clean", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err[-1].startswith("error: ") and message in err[-1], err


def test_the_benchmark_table_averages_over_draws():
    from purify_core.bench.reactivate import _summary, reactivate_markdown

    rows = [{"scenario": "mnist5k-smallcnn-badnets", "seed": s, "model": m, "acc_before": 97.0, "asr_before": 1.0,
             "acc_after": 90.0, "asr_after": a, "seconds": 1.0} for s, (m, a) in enumerate([("purified", 10.0), ("purified", 30.0), ("clean", 5.0)])]
    summary = _summary(rows)
    assert [(r["model"], r["ASR after re-tuning"], r["draws"]) for r in summary] == [("purified", 20.0, 2), ("clean", 5.0, 1)]
    raw = {"preset": "default", "seeds": [0, 1], "retune": ReactivateConfig().to_dict(), "summary": summary, "config": {}, "machine": {}}
    assert "| badnets | purified | 1.0 | 20.0 |" in reactivate_markdown(raw)


def test_the_cli_checks_your_own_checkpoint_too(capsys, cache):
    from purify_core.store.zoo import ZOO_DIR

    name = "mnist5k-smallcnn-wanet"
    code = main(["reactivate", "--checkpoint", str(ZOO_DIR / f"{name}.safetensors"), "--card", str(ZOO_DIR / f"{name}.json"),
                 "--defense", "finetune", "--purify-epochs", "1", "--epochs", "1", "--poisoned", "3", "--no-clean", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["scenario"] == name and out["defense"] == "finetune"
    assert [r["model"] for r in out["rows"]] == ["purified (finetune)", "backdoored"] and out["config"]["poisoned"] == 3


@pytest.mark.parametrize("make", [lambda seed: ReactivateConfig(seed=seed), lambda seed: PurifyConfig(seed=seed)])
def test_re_tuning_and_purification_seeds_follow_the_one_seed_rule(make):
    assert make(2**31 - 1).seed == 2**31 - 1
    for bad in (-1, 2**31, 2**70, True, 1.5):
        with pytest.raises(UserInputError, match=r"seed must be a whole number in \[0, 2147483647\]"):
            make(bad)
