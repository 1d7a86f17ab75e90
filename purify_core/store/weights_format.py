"""What a weights file is, from its bytes alone, and the cheap checks made before anything parses it.

A weights file comes from a user, so nothing here trusts it: the checks read a few bytes, a bounded
JSON header or a bounded zip directory, never the tensors, and never unpickle. They run in the
server's own process, so each is linear in a size that is bounded first:

- a safetensors header is at most `MAX_HEADER_BYTES` and lists at most `MAX_TENSORS` tensors, of
  the accepted dtypes only, whose byte ranges tile the data exactly (safetensors' own rule);
- a `.pt`/`.pth` file must be `torch.save`'s zip format: a central directory of at most
  `MAX_DIRECTORY_BYTES` (read before `zipfile` builds one object per record), at most
  `MAX_ZIP_RECORDS` records, every record stored (a compressed record inflates in memory before
  anything could check its size; `torch.save` never compresses), sizes within the file, and one
  `data.pkl` of at most `MAX_PICKLE_BYTES`.

Messages name what the file is (`describe`) and what was expected, and quote untrusted names only
cut to `short(...)`.
"""

from __future__ import annotations

import io
import json
import math
import struct
import zipfile

from ..errors import UserInputError

__all__ = ["MAX_HEADER_BYTES", "MAX_TENSORS", "MAX_DIRECTORY_BYTES", "MAX_ZIP_RECORDS", "MAX_PICKLE_BYTES",
           "SAFETENSORS_DTYPES", "describe", "short", "check_safetensors", "check_torch_zip"]

#: A safetensors JSON header larger than this is refused (a 1,000-tensor model needs about 100 KB).
MAX_HEADER_BYTES = 4 * 2**20
#: More tensors than this in one file are refused (the largest torchvision classifiers have ~1,000).
MAX_TENSORS = 10_000
#: A `.pt` zip directory larger than this is refused before `zipfile` reads it (~65 bytes a record).
MAX_DIRECTORY_BYTES = 4 * 2**20
#: Records in a `.pt` zip: one per storage, plus a handful of `torch.save`'s own.
MAX_ZIP_RECORDS = MAX_TENSORS + 16
#: The pickle inside a `.pt` describes the tensors (~150 bytes each); larger ones are refused.
MAX_PICKLE_BYTES = 8 * 2**20
#: Bytes per element of the safetensors dtypes accepted: dense real floating-point and integer only.
SAFETENSORS_DTYPES = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8, "U8": 1, "I8": 1, "I16": 2, "I32": 4, "I64": 8}

_EOCD, _ZIP64_LOCATOR, _ZIP64_EOCD = b"PK\x05\x06", b"PK\x06\x07", b"PK\x06\x06"


def short(text: object, limit: int = 60) -> str:
    """An untrusted name cut to `limit` characters, printable, for a message (never the object's repr)."""
    text = text if isinstance(text, str) else f"<{type(text).__name__}>"
    text = "".join(c if c.isprintable() else "?" for c in text[: limit + 1])
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _safetensors_header_length(data: bytes) -> int | None:
    if len(data) < 10:
        return None
    length = int.from_bytes(data[:8], "little")
    return length if 2 <= length <= len(data) - 8 and data[8:9] == b"{" else None


def describe(data: bytes) -> str:
    """What the bytes look like, from their first bytes: 'a safetensors file', 'text', ..."""
    if not data:
        return "an empty file"
    if _safetensors_header_length(data) is not None:
        return "a safetensors file"
    if data.startswith(b"PK\x03\x04"):
        return "a PyTorch zip file (torch.save)" if b"data.pkl" in data else "a zip archive that is not a PyTorch file"
    if data.startswith(b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"):
        return "a PyTorch file in the legacy format (torch.save before 1.6, or _use_new_zipfile_serialization=False)"
    if data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle"
    magic = {b"\x89HDF": "an HDF5 file (Keras?)", b"\x93NUMPY": "a NumPy .npy file", b"\x1f\x8b": "a gzip file",
             b"\x08\x01\x12": "an ONNX or other protobuf file", b"GGUF": "a GGUF file"}
    for start, what in magic.items():
        if data.startswith(start):
            return what
    try:
        data[:4096].decode("utf-8")
    except UnicodeDecodeError:
        return "binary data of an unknown format"
    return "text"


def _refuse(filename: str, message: str) -> UserInputError:
    return UserInputError(f"{short(filename, 80)} {message}")


def check_safetensors(data: bytes, filename: str) -> None:
    """Refuse a safetensors file whose header is oversized, malformed, or lists what we do not load."""
    length = int.from_bytes(data[:8], "little") if len(data) >= 10 else 0
    if data[8:9] != b"{" or length < 2:
        raise _refuse(filename, f"is {describe(data)}, not a safetensors file (an 8-byte header length, then a JSON header)")
    if length > MAX_HEADER_BYTES:
        raise _refuse(filename, f"has a safetensors header of {length / 2**20:.1f} MiB; the limit is {MAX_HEADER_BYTES // 2**20} MiB")
    if length > len(data) - 8:
        raise _refuse(filename, f"is not a readable safetensors file (truncated or corrupt?): its header claims {length} bytes, "
                                f"but only {len(data) - 8} follow the length")
    try:
        header = json.loads(data[8:8 + length])
    except (ValueError, RecursionError):
        raise _refuse(filename, "is not a readable safetensors file (truncated or corrupt?): its header is not valid JSON") from None
    if not isinstance(header, dict):
        raise _refuse(filename, "is not a readable safetensors file: its header is not a JSON object")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _refuse(filename, "is not a readable safetensors file: its __metadata__ is not a mapping of strings")
    if len(header) > MAX_TENSORS:
        raise _refuse(filename, f"lists {len(header)} tensors; the limit is {MAX_TENSORS}")
    spans = []
    for name, entry in header.items():
        spans.append((*_tensor_span(entry, name, filename), name))
    end = 0
    for begin, stop, name in sorted(spans):
        if begin != end:
            raise _refuse(filename, f"is not a readable safetensors file (truncated or corrupt?): tensor {short(name)} starts at byte {begin}, not {end}")
        end = stop
    if end != len(data) - 8 - length:
        raise _refuse(filename, f"is not a readable safetensors file (truncated or corrupt?): its header describes {end} bytes of "
                                f"tensors but {len(data) - 8 - length} follow it")


def _tensor_span(entry: object, name: str, filename: str) -> tuple[int, int]:
    """The [begin, end) byte range one header entry claims, after checking its dtype and shape agree with it."""
    if not isinstance(entry, dict) or not isinstance(entry.get("dtype"), str) or not isinstance(entry.get("shape"), list) \
            or not isinstance(entry.get("data_offsets"), list) or len(entry["data_offsets"]) != 2:
        raise _refuse(filename, f"is not a readable safetensors file: the header entry for {short(name)} is malformed")
    dtype, shape, (begin, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in SAFETENSORS_DTYPES:
        raise _refuse(filename, f"holds tensor {short(name)} of dtype {short(dtype, 12)}; only dense real floating-point and "
                                f"integer tensors are loaded ({', '.join(SAFETENSORS_DTYPES)})")
    if not all(type(d) is int and d >= 0 for d in (*shape, begin, end)) or begin > end:
        raise _refuse(filename, f"is not a readable safetensors file: the header entry for {short(name)} has a bad shape or offsets")
    if math.prod(shape) * SAFETENSORS_DTYPES[dtype] != end - begin:
        raise _refuse(filename, f"is not a readable safetensors file: tensor {short(name)}'s shape does not match its "
                                f"{end - begin} bytes")
    return begin, end


def _directory_size(data: bytes) -> int:
    """The central directory's size as `zipfile` will read it (the same search for the end record, zip64 included)."""
    at = len(data) - 22 if data[-22:-18] == _EOCD else data.rfind(_EOCD, max(0, len(data) - 22 - 65535))
    if at < 0:
        raise ValueError("no end of central directory")
    size = struct.unpack("<I", data[at + 12:at + 16])[0]
    locator = at - 20
    if locator >= 0 and data[locator:locator + 4] == _ZIP64_LOCATOR:
        record = struct.unpack("<Q", data[locator + 8:locator + 16])[0]
        if data[record:record + 4] == _ZIP64_EOCD:
            size = struct.unpack("<Q", data[record + 40:record + 48])[0]
    return size


def check_torch_zip(data: bytes, filename: str) -> None:
    """Refuse a `.pt` that is not `torch.save`'s zip format, or whose zip directory could balloon or lie."""
    if not data.startswith(b"PK\x03\x04"):
        raise _refuse(filename, f"is {describe(data)}, but a .pt/.pth file must be a state dict saved with torch.save "
                                "(torch 1.6 or later: a zip file)")
    try:
        directory = _directory_size(data)
    except (ValueError, struct.error):
        raise _refuse(filename, "is not a readable PyTorch state dict (truncated or corrupt?): its zip directory is missing") from None
    if directory > MAX_DIRECTORY_BYTES:
        raise _refuse(filename, f"has a zip directory of {directory / 2**20:.1f} MiB; the limit is {MAX_DIRECTORY_BYTES // 2**20} MiB")
    try:
        records = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, ValueError, struct.error, EOFError, OSError, OverflowError):
        raise _refuse(filename, "is not a readable PyTorch state dict (truncated or corrupt?): its zip directory is broken") from None
    if len(records) > MAX_ZIP_RECORDS:
        raise _refuse(filename, f"holds {len(records)} zip records; the limit is {MAX_ZIP_RECORDS}")
    for record in records:
        if record.compress_type != zipfile.ZIP_STORED or record.flag_bits & 0x1:
            raise _refuse(filename, f"holds a compressed or encrypted zip record ({short(record.filename)}); torch.save stores "
                                    "records uncompressed, and compressed ones are refused before they inflate")
        if record.file_size != record.compress_size or record.header_offset + record.file_size > len(data):
            raise _refuse(filename, f"is not a readable PyTorch state dict (truncated or corrupt?): record "
                                    f"{short(record.filename)} declares more bytes than the file holds")
    pickles = [r for r in records if r.filename.endswith("data.pkl")]
    if len(pickles) != 1:
        raise _refuse(filename, "is not a PyTorch state dict: a torch.save zip holds exactly one data.pkl")
    if pickles[0].file_size > MAX_PICKLE_BYTES:
        raise _refuse(filename, f"has a data.pkl of {pickles[0].file_size / 2**20:.1f} MiB; the limit is {MAX_PICKLE_BYTES // 2**20} MiB")
