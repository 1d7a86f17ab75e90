"""Fuzzing the parsers a student's input reaches: uploads (safetensors, torch zips and their pickles), links,
model cards and model names. Each input ends as valid data or one clear refusal, never a traceback or a hang.

The table of named bad inputs (and what each one's message says) is `tests/test_bad_inputs.py`.
"""

from __future__ import annotations

import io
import json
import re

import torch
from hypothesis import example, given, settings, strategies as st

from purify_core.errors import UserInputError
from purify_core.store.checkpoints import Card
from purify_core.store.model_store import open_model
from purify_core.store.uploads import read_state_dict
from purify_core.store.zoo import ZOO_DIR
from ui import untrusted
from ui.links import from_link, ignored
from weight_files import saved

SHIPPED = "mnist5k-smallcnn-badnets"


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=2048), name=st.sampled_from(["w.safetensors", "w.pt", "w.pth", "w.bin", "w"]))
def test_fuzzed_uploads_give_tensors_or_a_clear_refusal(data, name):
    try:
        state = read_state_dict(data, name)
    except UserInputError as error:
        assert str(error)
    else:
        assert all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=512).filter(lambda d: len(d) != 8))
@example(data=bytes(range(8))).via("the only length the header allows: read by the child")
@example(data=b"\xff" * 8).via("two NaNs: read by the child too (a model check refuses them later)")
def test_fuzzed_bytes_behind_a_valid_safetensors_header_are_refused_or_read(data):
    """Every length but the header's 8 bytes is refused by the cheap check in this process; 8 bytes are any two
    float32s, which the child reads alike, so two examples take the child (a process each; random ones took
    about 20 of the 200 examples and 26 s)."""
    header = b'{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
    blob = len(header).to_bytes(8, "little") + header + data
    try:
        state = read_state_dict(blob, "w.safetensors")
    except UserInputError as error:
        assert len(data) != 8 and "\n" not in str(error), (data, error)
    else:
        assert list(state) == ["w"] and state["w"].dtype == torch.float32 and state["w"].numpy().tobytes() == data, (data, state)


_HEADER_ENTRY = st.fixed_dictionaries({
    "dtype": st.sampled_from(["F32", "F16", "I64", "C64", "F8_E4M3", "BOOL", "X", 3]),
    "shape": st.lists(st.one_of(st.integers(-2, 4), st.just(2**62), st.text(max_size=2)), max_size=3),
    "data_offsets": st.lists(st.integers(-1, 64), min_size=0, max_size=3),
})


@settings(max_examples=300, deadline=None)
@given(header=st.dictionaries(st.text(max_size=8), _HEADER_ENTRY, max_size=4), tail=st.integers(0, 64))
def test_fuzzed_safetensors_headers_pass_the_cheap_checks_only_when_safetensors_would_read_them(header, tail):
    """The header check (sizes, dtypes, byte ranges) refuses in one line, or the file loads (no child here)."""
    from safetensors.torch import load

    from purify_core.store.weights_format import check_safetensors

    text = json.dumps(header).encode()
    blob = len(text).to_bytes(8, "little") + text + bytes(tail)
    try:
        check_safetensors(blob, "w.safetensors")
    except UserInputError as error:
        assert "\n" not in str(error) and len(str(error)) < 400
    else:
        assert all(isinstance(v, torch.Tensor) for v in load(blob).values())


def _a_real_pt() -> bytes:
    return saved({"net.conv1.weight": torch.arange(6.0).reshape(2, 3), "net.conv1.bias": torch.zeros(2)})


@settings(max_examples=300, deadline=None)
@given(cuts=st.lists(st.tuples(st.integers(0, 4000), st.binary(min_size=1, max_size=8)), max_size=4))
def test_fuzzed_torch_zips_pass_or_fail_the_zip_directory_check_in_one_line(cuts):
    """Bytes of a real torch.save zip overwritten here and there: the directory check refuses in one line or passes."""
    from purify_core.store.weights_format import check_torch_zip

    data = bytearray(_a_real_pt())
    for at, chunk in cuts:
        data[at % len(data):at % len(data) + len(chunk)] = chunk
    try:
        check_torch_zip(bytes(data), "f.pt")
    except UserInputError as error:
        assert "\n" not in str(error) and len(str(error)) < 400


@settings(max_examples=6, deadline=None)
@given(at=st.integers(0, 400), chunk=st.binary(min_size=1, max_size=4))
def test_fuzzed_pickles_inside_a_valid_zip_give_tensors_or_a_clear_refusal(at, chunk):
    """End to end, through the child (a few seconds each, so few examples): a corrupted data.pkl in a well-formed zip."""
    import zipfile

    real = zipfile.ZipFile(io.BytesIO(_a_real_pt()))
    pickle_bytes = bytearray(real.read("archive/data.pkl"))
    pickle_bytes[at % len(pickle_bytes):at % len(pickle_bytes) + len(chunk)] = chunk
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:  # the real records, with the corrupted pickle
        for record in real.infolist():
            archive.writestr(record.filename, bytes(pickle_bytes) if record.filename.endswith("data.pkl") else real.read(record))
    try:
        state = read_state_dict(out.getvalue(), "f.pt")
    except UserInputError as error:
        assert "\n" not in str(error) and len(str(error)) < 500
    else:
        assert all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())


@settings(max_examples=300, deadline=None)
@given(raw=st.text(max_size=40) | st.text(st.sampled_from("`![](){}<>:$*_~#|&@\\/ ax1.\n"), max_size=40))
def test_fuzzed_link_values_are_valid_or_ignored(raw):
    threshold = from_link(raw, float, bounds=(0.0, 0.5))
    assert threshold is None or 0.0 <= threshold <= 0.5
    epochs = from_link(raw, int, bounds=(1, 60))
    assert epochs is None or (isinstance(epochs, int) and 1 <= epochs <= 60)
    choice = from_link(raw, choices=("ar", "l2"))
    assert choice in (None, "ar", "l2")
    warning = ignored("purify_epochs", raw, 20)  # what the page shows for a value it ignores: the value only as text
    assert untrusted.markup(warning) == "Ignored  in the link: not a valid value here. Using ."
    assert untrusted.read(warning).startswith("Ignored purify_epochs=")


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=20)
_SHIPPED_CARD = json.loads((ZOO_DIR / f"{SHIPPED}.json").read_text())


def _card_or_refusal(d) -> None:
    try:
        card = Card.from_dict(d)
    except UserInputError as error:
        assert str(error)
    else:
        assert isinstance(card, Card) and len(card.classes) == card.num_classes
        card.scenario_config  # a card that was accepted describes a valid scenario


@settings(max_examples=200, deadline=None)
@given(d=_JSON)
def test_fuzzed_json_is_a_card_or_a_clear_refusal(d):
    _card_or_refusal(d)


@settings(max_examples=300, deadline=None)
@given(path=st.lists(st.sampled_from(["scenario", "data", "model", "attack", "train", "params", "input_shape", "classes", "trigger",
                                      "seed", "size", "arch", "lr", "acc", "num_classes", "sha256", "name", "versions"]), min_size=1, max_size=3),
       value=_JSON)
def test_a_shipped_card_with_one_field_fuzzed_is_a_card_or_a_clear_refusal(path, value):
    import copy

    card = copy.deepcopy(_SHIPPED_CARD)
    node = card
    for key in path[:-1]:  # walk as deep as the path exists, then overwrite one field
        if not isinstance(node.get(key), dict):
            break
        node = node[key]
    node[path[-1]] = value
    _card_or_refusal(card)


@settings(max_examples=200, deadline=None)
@given(key=st.text(max_size=60))
def test_fuzzed_model_names_from_a_link_open_a_model_or_are_refused(key, tmp_path_factory):
    try:
        open_model(key, cache_dir=tmp_path_factory.getbasetemp() / "no-cache")
    except UserInputError:
        pass
    else:
        assert re.fullmatch(r"[A-Za-z0-9._-]+", key) and (ZOO_DIR / f"{key}.json").is_file()
