"""A user's own weights: accepted formats, every refusal, and that no pickle ever runs."""

from __future__ import annotations

import io
import json
import pickle
from dataclasses import replace

import pytest
import torch
from safetensors.torch import save

from purify_core.store.checkpoints import weights_bytes
from purify_core.config import ModelConfig, TrainConfig, scenario_preset
from purify_core.data.splits import load_splits
from purify_core.errors import UserInputError
from purify_core.models.evaluate import evaluate
from purify_core.models.architectures import build_model
from purify_core.models.train import train_model
from purify_core.store.uploads import import_weights, model_from_weights, read_state_dict
from purify_core.store.model_store import list_built, open_model

TINY = scenario_preset("tiny", "badnets")
SHAPE, CLASSES = (1, 8, 8), 10


class _Marker:
    """Unpickling this would create the marker file: the proof that a pickle ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _safetensors(model: torch.nn.Module) -> bytes:
    return weights_bytes(model)[0]


def test_an_upload_round_trips_and_opens_by_its_name_from_the_disk_cache(tiny_backdoored, tmp_path):
    saved = import_weights(_safetensors(tiny_backdoored.model), "mine.safetensors", TINY, tmp_path)
    assert saved.card.name.startswith("upload-") and saved.card.trigger["source"] == "uploaded as mine.safetensors"
    splits = load_splits(TINY.data)
    metrics = evaluate(tiny_backdoored.model, splits.test, tiny_backdoored.attack)
    assert saved.card.acc == round(100 * metrics.acc, 2) and saved.card.asr == round(100 * metrics.asr, 2)
    reopened = open_model(saved.card.name, cache_dir=tmp_path)
    for key, value in tiny_backdoored.model.state_dict().items():
        assert torch.equal(reopened.model.state_dict()[key], value)
    assert [c.name for c in list_built(tmp_path)] == [saved.card.name]
    again = import_weights(_safetensors(tiny_backdoored.model), "copy.safetensors", TINY, tmp_path)
    assert again.card.name == saved.card.name, "same bytes, same name: no duplicate"


def test_a_pt_state_dict_and_a_bare_networks_weights_load(tiny_backdoored):
    buffer = io.BytesIO()
    torch.save({"state_dict": tiny_backdoored.model.state_dict(), "epoch": 3}, buffer)
    state = read_state_dict(buffer.getvalue(), "ckpt.pt")
    model = model_from_weights(state, "smallcnn", SHAPE, CLASSES)
    x = torch.rand(4, *SHAPE)
    assert torch.allclose(model(x), tiny_backdoored.model(x))
    bare = {k[len("net."):]: v for k, v in tiny_backdoored.model.state_dict().items() if k.startswith("net.")}
    model = model_from_weights(read_state_dict(save(bare), "bare.safetensors"), "smallcnn", SHAPE, CLASSES)
    assert torch.equal(model.normalize.mean, torch.zeros(1, 1, 1, 1)), "a bare network sees [0, 1] pixels"


@pytest.mark.parametrize("how", ["torch.save", "plain pickle"])
def test_a_crafted_pickle_is_refused_and_never_runs(tmp_path, how):
    marker = tmp_path / "pwned"
    buffer = io.BytesIO()
    if how == "torch.save":
        torch.save({"weight": torch.zeros(2), "payload": _Marker(str(marker))}, buffer)
    else:
        pickle.dump(_Marker(str(marker)), buffer)
    assert not marker.exists()
    with pytest.raises(UserInputError, match="refused|not a readable|must be a state dict saved with torch.save"):
        read_state_dict(buffer.getvalue(), "evil.pt")
    assert not marker.exists(), "the pickle's payload ran"


def _tiny_weights(**changes) -> bytes:
    model = build_model(ModelConfig(changes.get("arch", "smallcnn")), changes.get("shape", SHAPE), changes.get("classes", CLASSES))
    return _safetensors(model)


@pytest.mark.parametrize("data, filename, message", [
    (b"", "empty.safetensors", "is empty"),
    (b"weights", "notes.txt", "must be a .safetensors file"),
    (b"\x08\x00\x00\x00\x00\x00\x00\x00{\"a\":", "cut.safetensors", "not a readable safetensors"),
    (b"PK\x03\x04garbage", "broken.pt", "not a readable PyTorch state dict"),
    (save({}), "nothing.safetensors", "holds no state dict"),
])
def test_unreadable_files_get_a_clear_refusal(data, filename, message):
    with pytest.raises(UserInputError, match=message):
        read_state_dict(data, filename)


def test_a_truncated_safetensors_file_is_refused():
    data = _tiny_weights()
    with pytest.raises(UserInputError, match="not a readable safetensors"):
        read_state_dict(data[: len(data) // 2], "half.safetensors")


def test_a_file_over_the_size_limit_is_refused_before_it_is_parsed():
    with pytest.raises(UserInputError, match="the limit is 1 MiB"):
        read_state_dict(b"\0" * (2 * 1024 * 1024), "big.safetensors", max_mb=1)


def test_a_pt_file_of_something_other_than_tensors_is_refused():
    buffer = io.BytesIO()
    torch.save({"weight": [1, 2, 3]}, buffer)
    with pytest.raises(UserInputError, match="not a named tensor"):
        read_state_dict(buffer.getvalue(), "list.pt")


@pytest.mark.parametrize("changes, message", [
    ({"arch": "smallvgg", "shape": (1, 8, 8)}, "does not fit smallcnn"),
    ({"classes": 3}, "does not fit smallcnn.*shape"),
    ({"shape": (3, 8, 8)}, "does not fit smallcnn.*shape"),
])
def test_weights_for_another_model_are_refused(changes, message):
    state = read_state_dict(_tiny_weights(**changes), "other.safetensors")
    with pytest.raises(UserInputError, match=message):
        model_from_weights(state, "smallcnn", SHAPE, CLASSES)


def test_nan_weights_are_refused():
    state = read_state_dict(_tiny_weights(), "nan.safetensors")
    next(v for k, v in state.items() if k.endswith("weight")).fill_(float("nan"))
    with pytest.raises(UserInputError, match="NaN or infinite"):
        model_from_weights(state, "smallcnn", SHAPE, CLASSES)


def test_a_refused_upload_writes_nothing(tmp_path):
    with pytest.raises(UserInputError):
        import_weights(_tiny_weights(classes=3), "wrong.safetensors", TINY, tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("key", ["../../etc/passwd", "a/b", "", "..", "x" * 300, "no-such-model"])
def test_open_model_refuses_names_that_are_not_models(key, tmp_path):
    with pytest.raises(UserInputError):
        open_model(key, cache_dir=tmp_path)


def test_the_built_list_skips_broken_cards(tiny_backdoored, tmp_path):
    import_weights(_safetensors(tiny_backdoored.model), "ok.safetensors", TINY, tmp_path)
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "broken.safetensors").write_bytes(b"x")
    (tmp_path / "orphan.json").write_text(json.dumps({"name": "orphan"}))
    assert len(list_built(tmp_path)) == 1


def test_training_that_diverges_stops_with_a_reason():
    splits = load_splits(TINY.data)
    model = build_model(ModelConfig("smallcnn"), SHAPE, CLASSES)
    with pytest.raises(UserInputError, match="training diverged.*lower the learning rate"):
        for _ in train_model(model, splits.train, replace(TrainConfig(), lr=10.0, epochs=3), seed=0):
            pass
