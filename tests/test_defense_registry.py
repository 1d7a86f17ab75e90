"""A new defense (or ranking) is one file: the registry finds it, and the CLI and the app offer it."""

from __future__ import annotations

import json
import sys

import pytest
import torch

import purify_core.defenses as defenses
import purify_core.method.rankings as rankings
from purify_core.defenses import DEFENSES, Defense
from purify_core.errors import UserInputError
from purify_core.params import ParamSpec, check_settings
from tests.app_helpers import open_page
from tests.test_cli import run_cli

#: A whole defense module as a contributor would write it: prune nothing, fine-tune 0 epochs.
EXTRA = '''
"""A test defense: zero the first `share` of the first layer's neurons, no fine-tuning."""
from dataclasses import replace

import torch

from ..method.neurons import neuron_layers, zero_neurons
from ..method.purify import fine_tune
from ..params import ParamSpec
from .base import Defense


def run(model, clean, settings, config, evaluator, should_stop):
    before = evaluator(model) if evaluator else None
    layers = neuron_layers(model)
    mask = {l.name: torch.zeros(l.width, dtype=torch.bool) for l in layers}
    first = layers[0]
    mask[first.name] = torch.arange(first.width) < int(settings["share"] * first.width)
    zero_neurons(model, mask)
    none = {name: torch.zeros_like(m) for name, m in mask.items()}
    yield from fine_tune(model, clean, none, replace(config, epochs=0, regularizer="none", threshold=0.0), evaluator, None,
                         should_stop, before=before)


DEFENSE = Defense(name="lab-extra", label="Lab extra", summary="zero some first-layer neurons", source="this test",
                  selection="a fixed share", params={"share": ParamSpec(0.25, "share of the first layer zeroed", low=0.0, high=1.0)},
                  run=run)
'''


def _found_with(package, module: str, source: str, tmp_path, monkeypatch) -> dict:
    """What `package`'s registry finds, by name, once `module`.py holding `source` is dropped into it
    (from `tmp_path`; the module is never left imported)."""
    (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.setattr(package, "__path__", [*package.__path__, str(tmp_path)])
    monkeypatch.delitem(sys.modules, f"{package.__name__}.{module}", raising=False)
    try:
        return {entry.name: entry for entry in package._found()}
    finally:
        sys.modules.pop(f"{package.__name__}.{module}", None)


@pytest.fixture
def extra_defense(tmp_path, monkeypatch):
    """The registry as it is after `lab_extra.py` is dropped into purify_core/defenses/."""
    found = _found_with(defenses, "lab_extra", EXTRA, tmp_path, monkeypatch)
    assert set(found) == set(DEFENSES) | {"lab-extra"}
    monkeypatch.setitem(DEFENSES, "lab-extra", found["lab-extra"])
    return found["lab-extra"]


def test_a_defense_module_dropped_into_the_package_is_registered_after_the_baselines(extra_defense):
    assert list(DEFENSES)[:3] == ["finetune", "fine-pruning", "magnitude-pruning"]
    assert extra_defense.params["share"].default == 0.25 and not extra_defense.needs_trigger


@pytest.mark.parametrize("change, message", [("needs_trigger=True", "needs the trigger"), ("name='finetune'", "two defenses are named 'finetune'")])
def test_the_registry_refuses_a_trigger_needing_or_duplicate_defense(tmp_path, monkeypatch, change, message):
    (tmp_path / "lab_bad.py").write_text(EXTRA + f"\nDEFENSE = replace(DEFENSE, {change})\n")
    monkeypatch.setattr(defenses, "__path__", [*defenses.__path__, str(tmp_path)])
    monkeypatch.delitem(sys.modules, "purify_core.defenses.lab_bad", raising=False)
    try:
        with pytest.raises(ValueError, match=message):
            defenses._found()
    finally:
        sys.modules.pop("purify_core.defenses.lab_bad", None)


def test_the_cli_offers_a_new_defense_and_its_settings_as_flags(extra_defense, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PURIFY_LAB_CACHE", str(tmp_path))
    help_text = run_cli(capsys, "defend", "--help").stdout
    assert "lab-extra" in help_text and "--lab-extra-share SHARE" in help_text and "share of the first layer zeroed" in help_text
    bad = run_cli(capsys, "defend", "--scenario", "badnets", "--defense", "lab-extra", "--lab-extra-share", "2")
    assert bad.returncode == 1 and bad.stderr.strip() == "error: lab-extra setting share=2.0 must be <= 1.0"
    out = run_cli(capsys, "defend", "--scenario", "badnets", "--defense", "lab-extra", "--lab-extra-share", "0.5", "--json")
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert payload["defense"] == "lab-extra" and payload["settings"] == {"share": 0.5} and payload["steps"] == 0
    assert payload["after"] != payload["before"]  # half of the first layer zeroed: the numbers moved without a step


def test_the_purify_page_offers_a_new_defense_with_its_settings_and_a_link_sets_them(extra_defense, tmp_path, monkeypatch):
    monkeypatch.setenv("PURIFY_LAB_CACHE", str(tmp_path))
    at = open_page("app_pages/purify.py", purify_defense="lab-extra", **{"defense_lab-extra_share": "0.5"})
    assert not at.exception and "Lab extra" in at.selectbox(key="purify_defense").options
    assert at.selectbox(key="purify_defense").value == "lab-extra"
    assert at.number_input(key="defense_lab-extra_share").value == 0.5
    at.button(key="purify_run_defense").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    runs = at.session_state["purify_runs"]
    assert [r.status for r in runs] == ["finished"] and runs[0].label == "#1 lab-extra share=0.5"
    assert at.query_params["defense_lab-extra_share"] in ("0.5", ["0.5"])


def test_a_bad_setting_in_a_link_is_ignored_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("PURIFY_LAB_CACHE", str(tmp_path))
    at = open_page("app_pages/purify.py", purify_defense="fine-pruning", **{"defense_fine-pruning_margin": "7"})
    assert not at.exception and at.number_input(key="defense_fine-pruning_margin").value == 0.04
    assert any("defense_fine-pruning_margin=7" in w.value for w in at.warning)


def test_settings_are_checked_by_their_specs_with_one_line():
    params = {"share": ParamSpec(0.25, "share", low=0.0, high=1.0), "mode": ParamSpec("a", "mode", choices=("a", "b"))}
    assert check_settings("x", params, {"share": "0.5"}) == {"share": 0.5, "mode": "a"}
    for given, message in [({"share": float("nan")}, "x setting share=nan must be a finite number"),
                           ({"mode": "c"}, "x setting mode='c': choose one of a, b"),
                           ({"shape": 1}, "x has no setting shape; its settings are: share, mode")]:
        with pytest.raises(UserInputError, match=message):
            check_settings("x", params, given)


def test_a_ranking_module_dropped_into_the_package_is_offered_to_defenders(tmp_path, monkeypatch, hand_net, hand_batches):
    found = _found_with(rankings, "lab_ranking", "from .base import Ranking\nfrom .magnitude import magnitude\n\n"
                        "RANKING = Ranking('lab-rank', 'lab rank', 'magnitude again', 'lowest', lambda model, data: magnitude(model))\n",
                        tmp_path, monkeypatch)
    names = list(found)
    assert names[:4] == ["salience", "activation", "magnitude", "gradxact"] and names[-1] == "tac"  # the oracle last
    assert set(names) == set(rankings.RANKINGS) | {"lab-rank"}
    monkeypatch.setitem(rankings.RANKINGS, "lab-rank", found["lab-rank"])
    scores = rankings.rank_neurons(hand_net, hand_batches, "lab-rank")
    assert all(torch.equal(scores[k], v) for k, v in rankings.magnitude(hand_net).items())
    with pytest.raises(UserInputError, match="the lab-rank ranking takes no options"):
        rankings.rank_neurons(hand_net, hand_batches, "lab-rank", eta=0.5)


def test_a_defense_gets_the_page_loop_without_the_labs_turns(monkeypatch, hand_net):
    """The app hands a defense the Purify page's config (under the lab default: turned and scaled images); a defense
    runs as published, so those steps never reach it, while the loop's epochs, learning rate and seed do."""
    from purify_core.data.image_set import ImageSet
    from purify_core.defenses import run_defense
    from purify_core.method.purify import purify_preset

    seen = []

    def record(model, clean, settings, config, evaluator, should_stop):
        seen.append(config)
        yield from ()

    monkeypatch.setitem(DEFENSES, "recorder", Defense(name="recorder", label="Recorder", summary="records its config",
                                                      source="this test", selection="none", params={}, run=record))
    page = purify_preset("default", epochs=7, lr=0.02, seed=5)
    assert (page.rotate, page.scale) == (10.0, 0.1), "the lab default turns and scales"
    list(run_defense("recorder", hand_net, ImageSet(torch.rand(4, 1, 4, 4), torch.tensor([0, 1, 0, 1])), page))
    (config,) = seen
    assert (config.rotate, config.scale) == (0.0, 0.0)
    assert (config.epochs, config.lr, config.seed) == (7, 0.02, 5)
