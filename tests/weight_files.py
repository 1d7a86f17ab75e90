"""Weights files the tests build in the real on-disk formats: untrained weights as safetensors, a
`torch.save` file, a torch-shaped zip around any pickle, and the crafted pickles that once hung or
exhausted a reader (built from pickle opcodes). Shared by the bad-input, fuzz, sandbox and app tests.
"""

from __future__ import annotations

import io

import torch

from purify_core.config import ModelConfig
from purify_core.models.architectures import build_model
from purify_core.store.checkpoints import weights_bytes


def untrained_weights(arch: str = "smallcnn", shape=(1, 8, 8), classes: int = 10) -> bytes:
    """An untrained model's weights as safetensors (the digits smallcnn by default): the app tier trains nothing."""
    return weights_bytes(build_model(ModelConfig(arch), shape, classes))[0]


def torch_zip(pickle_bytes: bytes, compress: bool = False, padding: int = 0) -> bytes:
    """A `torch.save`-shaped zip around our own pickle (plus `padding` zero bytes, in MiB steps, after its STOP)."""
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as archive:
        with archive.open("archive/data.pkl", "w") as record:
            record.write(pickle_bytes)
            for _ in range(padding // 2**20):
                record.write(bytes(2**20))
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/version", "3\n")
    return out.getvalue()


def nested_key(depth: int) -> bytes:
    """A pickle of {t_depth: 1}, t_0 = () and t_k = (t_(k-1), t_(k-1)) through the memo: hashing visits 2**depth tuples."""
    return b"\x80\x02})" + b"q\x00h\x00\x86" * depth + b"K\x01s."


def size_balloon(items: int) -> bytes:
    """A pickle of torch.Size(bytearray(items)): both are on weights_only's allow list; 8 bytes an item."""
    import struct

    return b"\x80\x02ctorch\nSize\ncbuiltins\nbytearray\nJ" + struct.pack("<i", items) + b"\x85R\x85R."


def saved(state: dict[str, torch.Tensor]) -> bytes:
    """`state` as `torch.save` writes it (a zip with data.pkl and one record per tensor)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()
