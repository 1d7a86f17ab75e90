"""The child process of `weights_sandbox`: read one untrusted weights file, hand back plain tensors.

Run as a script (`python -P _weights_child.py SECONDS MEMORY_MB`), never imported by the package: it
imports only the standard library, torch and safetensors, so it starts as fast as torch imports.
The file's bytes arrive on stdin; on success the tensors leave as safetensors bytes on stdout
(exit 0). A refusal is one line on stderr (exit 2); running out of the memory budget exits 3.

Limits are set here, before a byte of the file is read: CPU seconds (a backstop if the parent is
gone; the parent kills on wall time), no core dumps, and an address-space and data budget of
MEMORY_MB on top of what importing torch already took (measured, so a heavier torch build does not
eat the parse's budget).
"""

import io
import math
import resource
import sys
import warnings

#: Exit codes the parent reads.
REFUSED, OUT_OF_MEMORY = 2, 3
#: Longer parameter names are refused (torchvision's longest are under 100 characters).
MAX_NAME_CHARS = 300
_ALLOWED = None  # the accepted dtypes, once torch is imported


def _limit(kind: int, value: int) -> None:
    hard = resource.getrlimit(kind)[1]
    resource.setrlimit(kind, (value if hard == resource.RLIM_INFINITY else min(value, hard), hard))


def _vm_bytes(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _refuse(message: str) -> None:
    sys.stderr.write(message.replace("\n", " ")[:400] + "\n")
    sys.exit(REFUSED)


def _short(name: object) -> str:
    text = name if isinstance(name, str) else f"<{type(name).__name__}>"
    text = "".join(c if c.isprintable() else "?" for c in text[:61])
    return text if len(text) <= 60 else text[:59] + "…"


def _check_tensor(name: str, tensor) -> None:
    import torch

    kind = f"dtype {str(tensor.dtype).replace('torch.', '')}, layout {str(tensor.layout).replace('torch.', '')}"
    if tensor.layout != torch.strided or tensor.is_quantized or tensor.is_meta or tensor.dtype not in _ALLOWED \
            or type(tensor) not in (torch.Tensor, torch.nn.Parameter):
        _refuse(f"holds tensor {_short(name)} ({kind}{', quantized' if tensor.is_quantized else ''}"
                f"{', meta' if tensor.is_meta else ''}): only dense real floating-point and integer tensors are loaded")


def _tensors(state: object, max_bytes: int) -> dict:
    import torch

    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # the common {"state_dict": ..., "epoch": ...} training checkpoint
    if not isinstance(state, dict) or not state:
        _refuse("holds no state dict (a mapping of parameter names to tensors)")
    total = 0
    for name, value in state.items():
        if not isinstance(name, str):
            _refuse(f"has a key of type {type(name).__name__}; a state dict's keys are parameter names (strings)")
        if len(name) > MAX_NAME_CHARS:
            _refuse(f"has a parameter name of {len(name)} characters ({_short(name)}); the limit is {MAX_NAME_CHARS}")
        if not isinstance(value, torch.Tensor):
            _refuse(f"entry {_short(name)} is a {type(value).__name__}, not a named tensor; save model.state_dict(), not the model")
        _check_tensor(name, value)
        total += math.prod(value.shape) * value.element_size()
        if total > max_bytes:
            _refuse(f"holds more than {max_bytes // 2**20} MiB of tensors (a view can declare more than its file holds)")
    return {name: value.detach().contiguous().clone() for name, value in state.items()}  # no shared storage, no views


def _parse(data: bytes, max_bytes: int) -> bytes:
    import pickle

    import torch
    from safetensors.torch import load, save

    if data.startswith(b"PK\x03\x04"):
        try:
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            reason = str(exc).splitlines()[0] if str(exc) else "it holds objects other than tensors"
            _refuse(f"was refused: only plain state dicts of tensors are loaded, and {reason[:200]}")
    else:
        state = load(data)
    return save(_tensors(state, max_bytes))


def main() -> None:
    global _ALLOWED
    seconds, memory_mb, max_tensor_mb = (int(a) for a in sys.argv[1:4])
    _limit(resource.RLIMIT_CPU, seconds + 1)
    _limit(resource.RLIMIT_CORE, 0)
    warnings.simplefilter("ignore")
    import pickle  # noqa: F401 - imported before the limit, like torch

    import safetensors.torch  # noqa: F401
    import torch

    _ALLOWED = {torch.float16, torch.bfloat16, torch.float32, torch.float64,
                torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64}
    budget = memory_mb * 2**20
    for kind, field in ((resource.RLIMIT_AS, "VmSize"), (resource.RLIMIT_DATA, "VmData")):
        used = _vm_bytes(field)
        if used:  # Linux; elsewhere (no /proc) only the time limits hold
            _limit(kind, used + budget)
    data = b""
    try:
        data = sys.stdin.buffer.read()
        out = _parse(data, max_tensor_mb * 2**20)
    except MemoryError:
        sys.exit(OUT_OF_MEMORY)
    except RuntimeError as exc:
        if "alloc" in str(exc) or "memory" in str(exc).lower():
            sys.exit(OUT_OF_MEMORY)
        _refuse(_damaged(data))
    except Exception:  # noqa: BLE001 - a malformed file fails in many ways (IndexError, KeyError, ...); none ran code
        _refuse(_damaged(data))
    sys.stdout.buffer.write(out)
    sys.stdout.flush()


def _damaged(data: bytes) -> str:
    """Plain words for a file the reader broke on. The reader's own error (`KeyError: 101`: a pickle byte
    it read as a memo index) tells the person who uploaded the file nothing, so it is left out."""
    if data.startswith(b"PK\x03\x04"):
        return ("is not a readable PyTorch state dict: it is a zip file like those torch.save writes, but what is inside "
                "is damaged or was not written by torch.save (truncated or corrupt?)")
    return "is not a readable safetensors file: its header looks right, but its contents are damaged (truncated or corrupt?)"


if __name__ == "__main__":
    main()
