"""No weights file can hang or exhaust the process that reads it.

The payloads are built here from pickle opcodes: a 1.5 KB `.pt` whose dict key is a tuple nested
so that hashing it takes exponential time in C code holding the GIL, a pickle asking for
gigabytes (`torch.Size(bytearray(n))`), and a compressed zip record that inflates to a GiB. Each is
stopped within its limit while a heartbeat thread in this process keeps running, which is what
"another session keeps getting answers" needs: a frozen GIL would stop the heartbeat too.
"""

from __future__ import annotations

import io
import math
import os
import select
import subprocess
import sys
import threading
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
import torch
from safetensors.torch import save

from purify_core.store import weights_sandbox
from purify_core.config import scenario_preset
from purify_core.errors import UserInputError
from purify_core.store.uploads import import_weights, read_state_dict
from purify_core.store.weights_format import MAX_TENSORS, check_safetensors, check_torch_zip, describe
from purify_core.store.weights_sandbox import parse_in_child
from weight_files import nested_key, size_balloon, torch_zip  # the payloads, built from pickle opcodes

ROOT = Path(__file__).resolve().parent.parent
HANG_DEPTH = 31  # hashing the key visits 2**31 tuples: minutes in one C call (0.1 s at depth 22, doubling per level)
HANG_SECONDS = 8  # the test's time limit for the child (the default, PARSE_SECONDS, is longer)
BALLOON_ITEMS = 2 * 10**8  # torch.Size of that many ints: a 1.6 GB tuple, from a file of 200 bytes
MAX_GAP_S = 2.0  # the heartbeat ticks every 10 ms; in-process, depth 26 stopped it 1.4 s, a quarter balloon 2.1 s


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024


def _reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w") as refs:  # "5" resets VmHWM to the current RSS
        refs.write("5")


@contextmanager
def heartbeat() -> Iterator[dict[str, float]]:
    """A thread ticking every 10 ms; yields {'max_gap': longest gap between ticks, 'ticks': count} once done."""
    stats, stop = {"max_gap": 0.0, "ticks": 0}, threading.Event()

    def tick() -> None:
        last = time.monotonic()
        while not stop.wait(0.01):
            now = time.monotonic()
            stats["max_gap"], stats["ticks"] = max(stats["max_gap"], now - last), stats["ticks"] + 1
            last = now

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield stats
    finally:
        stop.set()
        thread.join()


def test_the_nested_key_pickle_really_hangs_torch_load(tmp_path):
    """The payload is real: a plain `torch.load(weights_only=True)` is still hashing 3 s after it starts."""
    path = tmp_path / "hang.pt"
    path.write_bytes(torch_zip(nested_key(HANG_DEPTH)))
    assert path.stat().st_size < 1600
    code = "import sys, torch; print('ready', flush=True); torch.load(sys.argv[1], weights_only=True); print('done')"
    child = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        with pytest.raises(subprocess.TimeoutExpired):
            child.wait(timeout=3)
    finally:
        child.kill()
        child.wait()


def test_an_upload_that_would_hang_is_stopped_at_its_time_limit_while_the_process_keeps_serving(monkeypatch):
    monkeypatch.setattr(weights_sandbox, "PARSE_SECONDS", HANG_SECONDS)
    data = torch_zip(nested_key(HANG_DEPTH))
    check_torch_zip(data, "hang.pt")  # the cheap checks cannot see it: only the limit stops it
    start = time.monotonic()
    with heartbeat() as beat, pytest.raises(UserInputError, match=f"took more than {HANG_SECONDS} s to read and was stopped"):
        read_state_dict(data, "hang.pt")
    elapsed = time.monotonic() - start
    assert HANG_SECONDS <= elapsed < HANG_SECONDS + 20, elapsed
    assert beat["max_gap"] < MAX_GAP_S and beat["ticks"] > 100, beat


def test_a_pickle_that_asks_for_gigabytes_is_stopped_at_its_memory_limit_while_the_process_keeps_serving():
    data = torch_zip(size_balloon(BALLOON_ITEMS))
    check_torch_zip(data, "balloon.pt")  # a valid, stored zip: it passes the directory check
    _reset_peak_rss()
    before = _peak_rss_mb()
    with heartbeat() as beat, pytest.raises(UserInputError, match="needed more than 512 MiB of memory to read and was stopped"):
        read_state_dict(data, "balloon.pt")
    assert _peak_rss_mb() - before < 200, "the balloon grew in this process"
    assert beat["max_gap"] < MAX_GAP_S, beat


def test_a_compressed_record_is_refused_before_it_inflates_and_the_child_would_stop_it_too():
    bomb = torch_zip(nested_key(1), compress=True, padding=2**30)  # 1 GiB of zeros after the pickle's STOP
    assert len(bomb) < 2 * 2**20
    _reset_peak_rss()
    before = _peak_rss_mb()
    with pytest.raises(UserInputError, match="holds a compressed or encrypted zip record"):
        read_state_dict(bomb, "bomb.pt")
    with heartbeat() as beat, pytest.raises(UserInputError, match="needed more than 256 MiB of memory"):
        parse_in_child(bomb, "bomb.pt", memory_mb=256)  # past the directory check, torch would inflate it
    assert _peak_rss_mb() - before < 200, "the bomb inflated in this process"
    assert beat["max_gap"] < MAX_GAP_S, beat


def test_a_non_string_key_is_refused_without_printing_it():
    with pytest.raises(UserInputError, match="has a key of type tuple") as refusal:
        read_state_dict(torch_zip(nested_key(22)), "keys.pt")  # its repr would be 4 million tuples long
    assert len(str(refusal.value)) < 300


def _saved(state: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("tensor, shown", [
    (torch.full((2,), complex(float("nan"), 0)), "dtype complex64"),
    (torch.full((2,), float("nan")).to(torch.float8_e4m3fn), "dtype float8_e4m3fn"),
    (torch.quantize_per_tensor(torch.ones(2), 0.1, 0, torch.qint8), "quantized"),
    (torch.empty(2, device="meta"), "meta"),
    (torch.eye(2).to_sparse(), "layout sparse_coo"),
    (torch.zeros(2, dtype=torch.bool), "dtype bool"),
])
def test_only_dense_real_float_and_integer_tensors_are_loaded(tensor, shown):
    with pytest.raises(UserInputError, match="only dense real floating-point and integer tensors") as refusal:
        read_state_dict(_saved({"net.conv1.weight": tensor}), "odd.pt")
    assert "net.conv1.weight" in str(refusal.value) and shown in str(refusal.value)


def test_a_view_declaring_a_gibibyte_from_four_bytes_is_refused_before_it_is_copied():
    view = torch.zeros(1).expand(2**28)  # stride 0: torch.save keeps the 4-byte storage, the load rebuilds the view
    with pytest.raises(UserInputError, match="holds more than 128 MiB of tensors"):
        read_state_dict(_saved({"net.conv1.weight": view}), "view.pt")


@pytest.mark.parametrize("dtype", ["C64", "F8_E4M3", "BOOL"])
def test_a_safetensors_file_of_another_dtype_is_refused_from_its_header(dtype):
    header = f'{{"w":{{"dtype":"{dtype}","shape":[1],"data_offsets":[0,8]}}}}'.encode()
    with pytest.raises(UserInputError, match=f"of dtype {dtype}; only dense real floating-point and integer"):
        check_safetensors(len(header).to_bytes(8, "little") + header + bytes(8), "w.safetensors")


def test_a_huge_safetensors_header_is_refused_before_it_is_parsed():
    entries = ",".join(f'"t{i}":{{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}' for i in range(MAX_TENSORS + 1))
    header = ("{" + entries + "}").encode()
    with pytest.raises(UserInputError, match=f"lists {MAX_TENSORS + 1} tensors; the limit is {MAX_TENSORS}"):
        read_state_dict(len(header).to_bytes(8, "little") + header, "many.safetensors")
    with pytest.raises(UserInputError, match="has a safetensors header of 40.0 MiB; the limit is 4 MiB"):
        read_state_dict((40 * 2**20).to_bytes(8, "little") + b"{" + bytes(40 * 2**20), "huge.safetensors")
    deep = b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"  # json.loads gives up (RecursionError)
    with pytest.raises(UserInputError, match="header is not valid JSON"):
        read_state_dict(len(deep).to_bytes(8, "little") + deep, "deep.safetensors")


def test_a_zip_with_too_many_records_is_refused_before_zipfile_reads_them():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for i in range(20_000):
            archive.writestr(f"archive/data/{i}", b"")
    with pytest.raises(UserInputError, match="zip directory of 1.2 MiB|holds 20000 zip records"):
        check_torch_zip(out.getvalue(), "many.pt")


@pytest.mark.parametrize("data, filename, message", [
    (save({"w": torch.zeros(2)}), "w.pt", "is a safetensors file, but a .pt/.pth file must be a state dict saved with torch.save"),
    (b"hello, these are not weights\n", "notes.pt", "is text, but a .pt/.pth file must be"),
    (_saved({"w": torch.zeros(2)}), "w.safetensors", "is a PyTorch zip file (torch.save), not a safetensors file"),
    (b"\x89HDF\r\n\x1a\n" + bytes(100), "model.pth", "is an HDF5 file (Keras?), but"),
    (b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19" + bytes(50), "old.pt", "legacy format"),
])
def test_a_file_of_another_kind_is_named_with_what_was_expected(data, filename, message):
    with pytest.raises(UserInputError) as refusal:
        read_state_dict(data, filename)
    assert message in str(refusal.value)


def test_describe_names_the_common_kinds():
    assert describe(b"") == "an empty file"
    assert describe(_saved({"w": torch.zeros(1)})) == "a PyTorch zip file (torch.save)"
    assert describe(save({"w": torch.zeros(1)})) == "a safetensors file"
    assert describe(bytes(range(256))) == "binary data of an unknown format"


TINY = scenario_preset("tiny", "badnets")


@pytest.mark.parametrize("change", ["huge weights", "std of 0"])
def test_weights_that_give_non_finite_outputs_get_no_card(tiny_backdoored, tmp_path, change):
    state = {k: v.clone() for k, v in tiny_backdoored.model.state_dict().items()}
    if change == "huge weights":
        state = {k: torch.full_like(v, 3e38) if v.is_floating_point() and k.startswith("net.") else v for k, v in state.items()}
    else:
        state["normalize.std"] = torch.zeros_like(state["normalize.std"])
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    with pytest.raises(UserInputError, match="gives NaN or infinite outputs on 16 test images"):
        import_weights(save({k: v.contiguous() for k, v in state.items()}), "big.safetensors", TINY, tmp_path)
    assert list(tmp_path.iterdir()) == []


def _a_real_pt() -> bytes:
    return _saved({"net.conv1.weight": torch.arange(6.0).reshape(2, 3), "net.conv1.bias": torch.zeros(2)})


def test_a_good_pt_round_trips_through_the_child_as_plain_tensors():
    state = read_state_dict(_a_real_pt(), "good.pt")
    assert torch.equal(state["net.conv1.weight"], torch.arange(6.0).reshape(2, 3))
    assert all(type(v) is torch.Tensor and v.is_contiguous() for v in state.values())
    assert math.isclose(float(state["net.conv1.bias"].sum()), 0.0)


def _children_of(pid: int) -> list[int]:
    """The processes whose parent is `pid`, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


def test_one_zygote_forks_a_fresh_reader_per_file_and_no_reader_outlives_its_file(monkeypatch):
    """A good file, a refused one and one killed at its time limit: one zygote serves them all, and once each call
    has returned, no reader of it is left (the killed one included)."""
    monkeypatch.setattr(weights_sandbox, "PARSE_SECONDS", 3)
    read_state_dict(_a_real_pt(), "good.pt")
    zygote = weights_sandbox._ZYGOTE.process.pid
    with pytest.raises(UserInputError, match="has a key of type tuple"):
        read_state_dict(torch_zip(nested_key(22)), "keys.pt")
    assert _children_of(zygote) == []
    with pytest.raises(UserInputError, match="took more than 3 s to read and was stopped"):
        read_state_dict(torch_zip(nested_key(HANG_DEPTH)), "hang.pt")
    assert _children_of(zygote) == [], "the reader killed at its time limit is still there"
    assert torch.equal(read_state_dict(_a_real_pt(), "good.pt")["net.conv1.bias"], torch.zeros(2))
    assert weights_sandbox._ZYGOTE.process.pid == zygote and _children_of(zygote) == []


def test_a_zygote_that_died_is_started_again():
    read_state_dict(_a_real_pt(), "good.pt")
    dead = weights_sandbox._ZYGOTE.process
    dead.kill()
    dead.wait()
    assert torch.equal(read_state_dict(_a_real_pt(), "good.pt")["net.conv1.bias"], torch.zeros(2))
    assert weights_sandbox._ZYGOTE.process.pid != dead.pid


def test_the_zygote_ends_with_the_process_that_started_it():
    code = ("import io, torch; from purify_core.store import weights_sandbox as w; b = io.BytesIO(); "
            "torch.save({'w': torch.ones(1)}, b); w.parse_in_child(b.getvalue(), 'a.pt'); print(w._ZYGOTE.process.pid)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    try:
        zygote = os.pidfd_open(int(done.stdout.split()[-1]))
    except ProcessLookupError:
        return  # already gone
    try:
        assert select.select([zygote], [], [], 60)[0], "the zygote outlived the process that started it"
    finally:
        os.close(zygote)
