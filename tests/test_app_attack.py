"""The Attack lab and the sidebar's device and seed, driven headless through AppTest."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from purify_core.store.checkpoints import weights_bytes
from purify_core.store.model_store import list_built
from weight_files import untrained_weights  # a smallcnn for the digits, untrained: the app tier trains nothing

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Models trained or uploaded here go to a throw-away cache."""
    monkeypatch.setenv("PURIFY_LAB_CACHE", str(tmp_path))
    return tmp_path / "zoo"


def attack_lab(**query: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    at.switch_page("app_pages/attack_lab.py")
    return at.run()


def on_digits(at: AppTest) -> AppTest:
    return at.selectbox(key="attack_dataset").select("digits").run()


def test_the_attack_lab_previews_the_trigger_for_every_attack():
    at = attack_lab()
    assert not at.exception
    for attack in ("badnets", "blended", "wanet", "sig"):
        at.selectbox(key="attack_name").select(attack).run()
        assert not at.exception and not at.error, attack
        assert [c.key for c in at.get("plotly_chart")] == ["attack_preview"], attack
        assert not at.button(key="attack_train").disabled
        if attack == "blended":
            assert at.selectbox(key="attack_param_blended_pattern").options == ["noise", "stripes"], "no free-form server path"


def test_a_patch_larger_than_the_image_is_explained_and_blocks_training():
    at = on_digits(attack_lab())
    at.number_input(key="attack_param_badnets_size").set_value(20).run()
    assert not at.exception
    assert "does not fit a 8x8 image" in at.error[0].value
    assert at.button(key="attack_train").disabled and at.button(key="attack_upload").disabled


def test_training_ends_on_the_new_models_card_and_other_pages_can_open_it(private_cache):
    at = on_digits(attack_lab())
    at.number_input(key="attack_epochs").set_value(1).run()
    at.button(key="attack_train").click().run()
    assert not at.exception and not at.error
    built = list_built(private_cache)
    assert len(built) == 1 and built[0].name.startswith("digits-smallcnn-badnets-")
    assert built[0].name in at.success[0].value
    assert [m.label for m in at.metric][:2] == ["Clean accuracy (ACC)", "Attack success (ASR)"]
    assert at.metric[0].value == f"{built[0].acc:.1f}%"
    assert at.selectbox(key="scenario").value == built[0].name, "the sidebar now works on the new model"
    home = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    home.query_params["scenario"] = built[0].name
    home.run()
    assert not home.exception
    assert home.selectbox(key="scenario").value == built[0].name
    assert "(trained here)" in home.selectbox(key="scenario").format_func(built[0].name)


def test_uploaded_weights_open_and_bad_ones_are_refused(private_cache, tmp_path):
    at = on_digits(attack_lab())
    at.file_uploader(key="attack_file").upload("other.safetensors", weights_bytes(torch.nn.Linear(2, 2))[0]).run()
    at.button(key="attack_upload").click().run()
    assert not at.exception
    assert "does not fit smallcnn" in at.error[0].value and list_built(private_cache) == []

    marker = tmp_path / "pwned"
    evil = io.BytesIO()
    torch.save({"w": torch.zeros(1), "x": _Marker(str(marker))}, evil)
    at.file_uploader(key="attack_file").set_value(("evil.pt", evil.getvalue(), "application/octet-stream")).run()
    at.button(key="attack_upload").click().run()
    assert not at.exception and "refused" in at.error[0].value and not marker.exists()

    at.file_uploader(key="attack_file").set_value(("mine.safetensors", untrained_weights(), "application/octet-stream")).run()
    at.button(key="attack_upload").click().run()
    assert not at.exception and not at.error
    (card,) = list_built(private_cache)
    assert card.name.startswith("upload-") and card.name in at.success[0].value
    assert at.session_state["uploads"] == [card.name]
    assert at.selectbox(key="scenario").value == card.name
    assert card.name not in AppTest.from_file(str(ROOT / "app.py")).run().selectbox(key="scenario").options, \
        "another session does not list this upload"


class _Marker:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_the_sidebar_holds_device_and_seed_and_the_seed_comes_from_a_link():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params["seed"] = "7"
    at.run()
    assert not at.exception
    assert at.selectbox(key="device").value == ("cuda" if torch.cuda.is_available() else "cpu")
    assert at.number_input(key="seed").value == 7
    at.number_input(key="seed").set_value(11).run()
    assert not at.exception and at.session_state["seed"] == 11
    bad = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    bad.query_params["seed"] = "-3"
    bad.run()
    assert not bad.exception and bad.number_input(key="seed").value == 0
    assert any("seed=-3" in w.value for w in bad.warning)


def test_folder_datasets_come_only_from_the_servers_data_folder(tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.setenv("PURIFY_LAB_DATA", str(tmp_path / "data"))
    at = attack_lab()
    at.selectbox(key="attack_dataset").select("imagefolder").run()
    assert not at.exception and "no dataset folders yet" in at.info[0].value
    for label in ("cat", "dog"):
        (tmp_path / "data" / "pets" / label).mkdir(parents=True)
        for i in range(12):
            Image.new("RGB", (12 + i, 10), color=(20 * i, 100 if label == "cat" else 0, 50)).save(tmp_path / "data" / "pets" / label / f"{i}.png")
    at.run()
    assert not at.exception and at.selectbox(key="attack_root").options == ["pets"]
    assert not at.error, ([e.value for e in at.error], [i.value for i in at.info], at.selectbox(key="attack_root").value)
    assert "3x32x32, 2 classes" in at.caption[0].value, "mixed image sizes are resized"
    assert [c.key for c in at.get("plotly_chart")] == ["attack_preview"]
