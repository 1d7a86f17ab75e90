"""Every model and export names its own source: cached uploads per scenario, exports per run."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from streamlit.delta_generator import DeltaGenerator
from streamlit.testing.v1 import AppTest

from purify_core.store.checkpoints import weights_bytes
from purify_core.config import scenario_preset
from purify_core.store.model_store import open_model
from purify_core.store.uploads import save_upload
from purify_core.store.zoo import list_zoo
from ui import untrusted

ROOT = Path(__file__).resolve().parent.parent


def test_the_same_bytes_checked_against_another_attack_get_their_own_card(tmp_path, tiny_backdoored):
    """Two students, one file, two attacks: neither sees the other's card, trigger or file name."""
    model, sha = copy.deepcopy(tiny_backdoored.model), weights_bytes(tiny_backdoored.model)[1]
    badnets, blended = scenario_preset("tiny", "badnets"), scenario_preset("tiny", "blended")
    first = save_upload(model, badnets, "mine.safetensors", tmp_path)
    first_card = (tmp_path / f"{first.card.name}.json").read_bytes()
    second = save_upload(model, blended, "theirs.pt", tmp_path)
    assert first.card.name == f"upload-{sha[:12]}-{badnets.fingerprint}" != second.card.name
    for name, attack, file in ((first.card.name, "badnets", "mine.safetensors"), (second.card.name, "blended", "theirs.pt")):
        card = open_model(name, tmp_path).card
        assert card.trigger["name"] == attack and card.trigger["source"] == f"uploaded as {file}"
        assert card.scenario["attack"]["name"] == attack
    assert (tmp_path / f"{first.card.name}.json").read_bytes() == first_card, "the first card was rewritten"
    again = save_upload(model, badnets, "renamed.safetensors", tmp_path)  # same bytes, same scenario: the kept one
    assert again.card.name == first.card.name and (tmp_path / f"{first.card.name}.json").read_bytes() == first_card


def test_two_sessions_uploading_one_file_for_two_attacks_each_see_their_own_card(tmp_path, monkeypatch):
    from weight_files import untrained_weights  # a smallcnn for the digits, untrained: the app tier trains nothing

    monkeypatch.setenv("PURIFY_LAB_CACHE", str(tmp_path / "cache"))
    weights = untrained_weights()
    sessions = {}
    for attack, file in (("badnets", "mine.safetensors"), ("blended", "theirs.safetensors")):
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
        at.switch_page("app_pages/attack_lab.py").run()
        at.selectbox(key="attack_dataset").select("digits").run()
        at.selectbox(key="attack_name").select(attack).run()
        at.file_uploader(key="attack_file").upload(file, weights).run()
        at.button(key="attack_upload").click().run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        sessions[attack, file] = at
    names = set()
    for (attack, file), at in sessions.items():
        at.switch_page("app_pages/home.py").run()  # after the other session's upload
        card = untrusted.read(at.markdown[0].value)
        assert f"uploaded as {file}; ASR is measured with a **{attack}** trigger" in card, card
        names.add(at.selectbox(key="scenario").value)
    assert len(names) == 2


def test_an_export_after_switching_models_names_the_run_s_own_model(monkeypatch):
    """Run on model A, switch the sidebar to B, export: every file names A and carries A's sha256."""
    made: list[tuple[str, object, str]] = []
    download_button = DeltaGenerator.download_button

    def recording(self, label, data, file_name=None, *args, **kwargs):
        made.append((label, data, file_name))
        return download_button(self, label, data, file_name, *args, **kwargs)

    monkeypatch.setattr(DeltaGenerator, "download_button", recording)
    cards = {c.name: c for c in list_zoo()}
    source, other = cards["mnist5k-smallcnn-badnets"], cards["mnist5k-smallcnn-wanet"]
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.query_params["purify_epochs"] = "1"
    at.run()
    at.switch_page("app_pages/purify.py").run()
    at.button(key="purify_run").click().run()
    assert not at.exception and at.session_state["purify_runs"][0].source.sha256 == source.sha256
    made.clear()
    at.selectbox(key="scenario").select(other.name).run()
    assert not at.exception and at.selectbox(key="scenario").value == other.name
    files = {label: (data, name) for label, data, name in made}
    assert files["Weights (.safetensors)"][1] == f"{source.name}-purified.safetensors"
    assert files["Card (.json)"][1] == f"{source.name}-purified.json"
    assert files["Report (.html)"][1] == f"{source.name}-report.html"
    card = json.loads(files["Card (.json)"][0]())
    assert card["name"] == f"{source.name}-purified"
    assert card["source"]["name"] == source.name and card["source"]["sha256"] == source.sha256
    assert card["source"]["scenario"]["attack"]["name"] == "badnets"
    report = files["Report (.html)"][0]()
    assert f"<title>Purify Lab report: {source.name}</title>" in report and source.sha256 in report
    assert other.name not in report and other.sha256 not in report
    at.switch_page("app_pages/explain.py").run()  # the Explain page offers only runs on the model it shows
    assert not at.exception and at.selectbox(key="explain_run").options == []
    assert any("No purified model of this model" in i.value for i in at.info)
    at.selectbox(key="scenario").select(source.name).run()
    assert not at.exception and at.selectbox(key="explain_run").options == [at.session_state["purify_runs"][0].label]
