"""Demo polish (issue 12): what a viewer sees of Streamlit, the card's wording, the thumbnails, and the upload flow."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from streamlit.testing.v1 import AppTest

from purify_core.config import ModelConfig
from purify_core.models.architectures import build_model
from purify_core.store.checkpoints import weights_bytes
from purify_core.store.model_store import open_model
from purify_core.store.zoo import ZOO_DIR
from purify_core.views.image_figures import image_figure, trigger_preview_figure
from tests.test_bad_inputs import torch_zip
from ui.card import clean_model_gap

ROOT = Path(__file__).resolve().parent.parent


def test_viewers_get_no_developer_menu_and_one_stop_button():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["client"]["toolbarMode"] == "viewer", "a Deploy button and developer menu in a demo"
    assert config["ui"]["hideTopBar"] is True, "Streamlit's own Stop beside the app's"


def test_the_clean_models_accuracy_is_worded_against_the_backdoored_one():
    assert clean_model_gap(96.8, 97.2) == "0.4 pts above the backdoored"
    assert clean_model_gap(97.5, 97.2) == "0.3 pts below the backdoored"
    assert clean_model_gap(97.21, 97.2) == "same as the backdoored"
    assert "+" not in clean_model_gap(90.0, 97.2), "a signed delta under the clean number reads as the clean model's gain"


def test_the_scenario_page_shows_the_clean_models_accuracy_in_those_words():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    clean = [m for m in at.metric if m.label == "Clean model ACC"]
    assert not at.exception and clean and clean[0].delta.endswith(" the backdoored") and "+" not in clean[0].delta, \
        [(m.label, m.delta) for m in at.metric]


def test_thumbnails_draw_no_axes():
    import torch

    images = torch.rand(2, 1, 8, 8)
    for fig in (image_figure(images[0], "t"), trigger_preview_figure(images[0], images, images, "0")):
        axes = [fig.layout[name] for name in fig.layout if name.startswith(("xaxis", "yaxis"))]
        assert axes and all(axis.visible is False for axis in axes)


def test_an_uploaded_card_that_is_not_json_or_nested_too_deep_is_one_plain_line():
    import pytest

    from purify_core.errors import UserInputError
    from purify_core.store.upload_card import read_upload_card

    for data, message in ((b"{nope", "mine.json is not a model card: it is not valid JSON"),
                          (b"[" * 100_000, "mine.json is nested too deeply to be a model card"),
                          (b"[1]", "mine.json: not a valid model card: expected a JSON object")):
        with pytest.raises(UserInputError, match=message.replace(".", r"\.")):
            read_upload_card(data, "mine.json")


def _weights() -> bytes:
    return weights_bytes(build_model(ModelConfig("smallcnn"), (1, 8, 8), 10))[0]


def _card(attack: dict) -> bytes:
    card = json.loads((ZOO_DIR / "mnist5k-smallcnn-badnets.json").read_text())
    card["scenario"]["data"]["dataset"] = "digits"
    card["scenario"]["attack"] = attack
    return json.dumps(card).encode()


def _upload_tab(tmp_path, monkeypatch) -> AppTest:
    monkeypatch.setenv("PURIFY_LAB_CACHE", str(tmp_path / "cache"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.run()
    at.switch_page("app_pages/attack_lab.py").run()
    return at.selectbox(key="attack_dataset").select("digits").run()


def test_an_upload_with_a_card_is_measured_with_the_cards_attack_and_target(tmp_path, monkeypatch):
    at = _upload_tab(tmp_path, monkeypatch)
    at.file_uploader(key="attack_file").upload("mine.safetensors", _weights()).run()
    assert any("No card: ASR is measured with the attack chosen above (badnets" in w.value for w in at.warning)
    blended = {"name": "blended", "target": 3, "poison_rate": 0.1, "params": {"alpha": 0.2, "pattern": "noise", "pattern_seed": 0}}
    at.file_uploader(key="attack_card_file").upload("mine.json", _card(blended)).run()
    assert not at.warning and any("**blended**, target **3**" in i.value for i in at.info), [i.value for i in at.info]
    at.button(key="attack_upload").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    card = open_model(at.session_state["attack_made"], tmp_path / "cache" / "zoo").card
    assert card.scenario["attack"]["name"] == "blended" and card.trigger["target"] == 3, card.trigger


def test_a_card_naming_a_server_file_is_refused_before_the_weights_are_read(tmp_path, monkeypatch):
    at = _upload_tab(tmp_path, monkeypatch)
    at.file_uploader(key="attack_file").upload("mine.safetensors", _weights()).run()
    path = {"name": "blended", "target": 3, "poison_rate": 0.1, "params": {"alpha": 0.2, "pattern": "/etc/passwd", "pattern_seed": 0}}
    at.file_uploader(key="attack_card_file").upload("mine.json", _card(path)).run()
    assert any("a browser never names a file on the server" in e.value for e in at.error), [e.value for e in at.error]
    assert at.button(key="attack_upload").disabled


def test_a_junk_upload_after_a_good_one_says_so_in_plain_words_without_the_old_banner(tmp_path, monkeypatch):
    at = _upload_tab(tmp_path, monkeypatch)
    at.file_uploader(key="attack_file").upload("good.safetensors", _weights()).run()
    at.button(key="attack_upload").click().run()
    assert any("is ready" in s.value for s in at.success), "the good upload opened"
    at.file_uploader(key="attack_file").upload("junk.pt", torch_zip(b"hello")).run()
    at.button(key="attack_upload").click().run()
    assert not at.exception and not at.success, [s.value for s in at.success]
    errors = [e.value for e in at.error]
    assert any("damaged or was not written by torch.save" in e for e in errors), errors
    assert not any("Error" in e or ": 101" in e for e in errors), errors


def test_a_selection_names_a_neuron_only_when_it_points_at_one():
    import torch

    from purify_core.views.neuron_view import picked_neuron

    scores = {"net.conv1": torch.rand(16), "net.fc1": torch.rand(128)}
    assert picked_neuron([{"curve_number": 2, "x": 7, "y": "net.fc1"}], scores) == ("net.fc1", 7)
    assert picked_neuron([{"x": 3, "y": "net.conv1"}, {"x": 5.0, "y": "net.fc1"}], scores) == ("net.fc1", 5), "the last click"
    for nothing in ([], [{"x": 16, "y": "net.conv1"}], [{"x": -1, "y": "net.conv1"}], [{"x": 2.5, "y": "net.fc1"}],
                    [{"x": True, "y": "net.fc1"}], [{"x": 1, "y": "net.fc9"}], [{"x": "1", "y": "net.fc1"}], [{"y": "net.fc1"}]):
        assert picked_neuron(nothing, scores) is None, nothing


def test_a_close_up_opens_on_the_first_marked_neuron_that_fires():
    import torch

    from purify_core.views.neuron_view import first_neuron

    scores = torch.tensor([0.0, 0.3, 0.0, 0.9, 0.1])
    assert first_neuron(scores, "highest") == 3
    assert first_neuron(scores, "lowest") == 4, "neurons 0 and 2 never fire on the clean images: blank maps"
    assert first_neuron(torch.zeros(3), "lowest") == 0


def test_the_strips_chart_makes_every_cell_clickable_and_keeps_the_marks():
    import torch

    from purify_core.method.marking import mark
    from purify_core.views.method_figures import salience_strips_figure
    from purify_core.views.neuron_figures import activation_maps_figure, pickable

    scores = {"a": torch.rand(4), "b": torch.rand(6)}
    fig = pickable(salience_strips_figure(scores, mark(scores, 0.5)), scores)
    picker = fig.data[-1]
    assert sorted(zip(picker.y, picker.x)) == sorted((n, i) for n in scores for i in range(len(scores[n])))
    assert all(t.unselected.marker.opacity == 1 for t in fig.data[1:-1]), "the marked x's must not fade when a cell is picked"
    maps = activation_maps_figure([torch.full((3, 3), 2.0), torch.full((3, 3), 2.5)], ["clean", "triggered"])
    assert maps.layout.coloraxis.showscale is not False and (maps.layout.coloraxis.cmin, maps.layout.coloraxis.cmax) == (0.0, 2.5)
    from streamlit.elements.lib import streamlit_plotly_theme as theme

    placeholders = {v.lower() for k, v in vars(theme).items() if k.startswith(("CATEGORY_", "SEQUENTIAL_", "DIVERGING_"))}
    assert placeholders and not {str(c).lower() for _, c in maps.layout.coloraxis.colorscale} & placeholders, \
        "Streamlit's theme swaps these colours in the browser (Inferno's #000004 turned pale pink)"


def _click(at: AppTest, chart_key: str, points: list[dict]) -> AppTest:
    """What the browser sends when a cell is clicked: the chart's selection as its widget state. AppTest
    cannot click a plotly chart, so the state is added to the widget states of the next run."""
    from streamlit.proto.WidgetStates_pb2 import WidgetState

    chart = next(c for c in at.get("plotly_chart") if c.proto.id and chart_key in c.proto.id)
    states = at._tree.get_widget_states()
    states.widgets.append(WidgetState(id=chart.proto.id, string_value=json.dumps(
        {"selection": {"points": points, "point_indices": [p.get("point_index", 0) for p in points], "box": [], "lasso": []}})))
    return at._run(states)


def _neurons_shown(at: AppTest) -> list[tuple[int, float]]:
    """The neuron slider's options as (index, score), lowest score first: its labels read "#17 (0.0123)"."""
    import re

    return [(int(m[1]), float(m[2])) for m in (re.fullmatch(r"#(\d+) \((.+)\)", o) for o in at.select_slider(key="salience_neuron").options)]


def test_clicking_a_heatmap_cell_opens_that_neurons_close_up(tmp_path, monkeypatch):
    monkeypatch.setenv("PURIFY_LAB_CACHE", str(tmp_path / "cache"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.run()
    at.switch_page("app_pages/salience.py").run()
    assert not at.exception
    layer, neurons = at.selectbox(key="salience_layer").value, _neurons_shown(at)
    first = {"highest": neurons[-1][0], "lowest": next(i for i, score in neurons if score != 0)}  # the first marked (that fires)
    direction = at.session_state["purify_direction"]
    assert at.session_state["salience_neuron"] == first[direction], (direction, neurons[:3], neurons[-3:])
    direction = "highest" if direction == "lowest" else "lowest"  # the other one: one of the two is never the lowest score
    at.radio(key="purify_direction").set_value(direction).run()
    opened = at.session_state["salience_neuron"]
    assert not at.exception and opened == first[direction], (direction, opened)
    _click(at, "salience_strips", [{"curve_number": 2, "point_number": 140, "point_index": 140, "x": 17, "y": "net.fc1"}])
    assert not at.exception
    assert at.selectbox(key="salience_layer").value == "net.fc1" and at.session_state["salience_neuron"] == 17
    assert at.select_slider(key="salience_neuron").value == 17, "the close-up shows the clicked neuron"
    at.selectbox(key="salience_layer").set_value(layer).run()
    assert not at.exception and at.session_state["salience_neuron"] == opened, "a layer opened anew starts on its first marked neuron"


def test_a_failed_training_after_a_good_upload_shows_its_error_alone(tmp_path, monkeypatch):
    at = _upload_tab(tmp_path, monkeypatch)
    at.file_uploader(key="attack_file").upload("good.safetensors", _weights()).run()
    at.button(key="attack_upload").click().run()
    assert any("is ready" in s.value for s in at.success)
    (tmp_path / "a_file").write_text("not a folder")
    monkeypatch.setenv("PURIFY_LAB_CACHE", str(tmp_path / "a_file"))  # checked before training: nothing trains
    at.button(key="attack_train").click().run()
    assert not at.exception and not at.success, [s.value for s in at.success]
    assert any("cannot write to the model cache" in e.value.replace("\\", "") for e in at.error), [e.value for e in at.error]
