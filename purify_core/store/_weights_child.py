"""The reader processes of `weights_sandbox`: read one untrusted weights file each, hand back plain tensors.

Run as a script (`python -P _weights_child.py FD`): it imports only the standard library, torch and
safetensors. The package imports this module only for the protocol below (its constants and
`receive_message`), which needs nothing but the standard library. It runs as a zygote: it imports those once, then waits on the
Unix socket FD (a stream socket pair with the server) for requests, and forks one fresh reader per
file, so a reader starts in milliseconds instead of the seconds `import torch` takes. The zygote never
reads a file; it ends when the server's end of the socket closes.

A request is the reader's limits (three unsigned 32-bit ints: seconds, memory MiB, tensor MiB) with
one file descriptor: the reader's own socket to the server. The zygote answers with the reader's pid
(a signed 32-bit int) and a pidfd for it (Linux; none elsewhere, or if it could not be opened), so the
server can kill exactly that process. The reader then reads the file's length (8 bytes) on its socket, sets its limits,
reads the file, and answers with a status byte (0 tensors as safetensors bytes, 1 the reader failed,
2 refused with one line, 3 out of its memory budget), the answer's length (8 bytes) and the answer.
A reader killed at a limit answers nothing: its socket just closes.

Limits are set before a byte of the file is read: CPU seconds (a backstop if the server is gone; the
server kills on wall time), no core dumps, and an address-space and data budget of MEMORY_MB on top of
what the process already holds with torch imported (measured, so a heavier torch build does not eat
the parse's budget).
"""

import io
import math
import os
import resource
import signal
import socket
import struct
import sys
import warnings

#: Status bytes the server reads.
FAILED, REFUSED, OUT_OF_MEMORY = 1, 2, 3
#: A request: the reader's limits; the zygote's answer: the reader's pid.
REQUEST, PID = struct.Struct("!III"), struct.Struct("!i")
#: Lengths on a reader's socket, and its answer's status byte with the answer's length.
LENGTH, ANSWER = struct.Struct("!Q"), struct.Struct("!BQ")
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


class _Refused(Exception):
    """Why the file is refused, in one line."""


def _refuse(message: str) -> None:
    raise _Refused(message.replace("\n", " ")[:400])


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


def _receive(sock: socket.socket, size: int) -> bytes:
    data = bytearray(size)
    view, got = memoryview(data), 0
    while got < size:
        n = sock.recv_into(view[got:])
        if n == 0:
            raise EOFError("the server closed the socket")
        got += n
    return bytes(data)


def receive_message(sock: socket.socket, size: int) -> tuple[bytes, list[int]]:
    """One fixed-size message and the file descriptor sent with it (if any); fewer bytes when the other end has
    closed. A stream socket may split the bytes; the descriptor comes with the first of them."""
    message, fds, _, _ = socket.recv_fds(sock, size, 1)
    while message and len(message) < size:
        more = sock.recv(size - len(message))
        if not more:
            break
        message += more
    return message, fds


def _read(sock: socket.socket, seconds: int, memory_mb: int, max_tensor_mb: int) -> tuple[int, bytes]:
    """What one reader does with its socket: (status, answer)."""
    size = LENGTH.unpack(_receive(sock, LENGTH.size))[0]  # sent once the server holds this reader's pidfd
    os.setsid()  # a session of its own: a Ctrl-C to the server's process group does not reach it
    _limit(resource.RLIMIT_CPU, seconds + 1)
    _limit(resource.RLIMIT_CORE, 0)
    budget = memory_mb * 2**20
    for kind, field in ((resource.RLIMIT_AS, "VmSize"), (resource.RLIMIT_DATA, "VmData")):
        used = _vm_bytes(field)
        if used:  # Linux; elsewhere (no /proc) only the time limits hold
            _limit(kind, used + budget)
    data = b""
    try:
        data = _receive(sock, size)
        return 0, _parse(data, max_tensor_mb * 2**20)
    except _Refused as refusal:
        return REFUSED, str(refusal).encode()
    except MemoryError:
        return OUT_OF_MEMORY, b""
    except RuntimeError as exc:
        if "alloc" in str(exc) or "memory" in str(exc).lower():
            return OUT_OF_MEMORY, b""
        return REFUSED, _damaged(data).encode()
    except Exception:  # noqa: BLE001 - a malformed file fails in many ways (IndexError, KeyError, ...); none ran code
        return REFUSED, _damaged(data).encode()


def _reader(fd: int, seconds: int, memory_mb: int, max_tensor_mb: int) -> None:
    """The forked reader: answer on its socket, then leave at once (`os._exit`: nothing of the zygote runs)."""
    status = FAILED
    try:
        with socket.socket(fileno=fd) as sock:
            try:
                status, answer = _read(sock, seconds, memory_mb, max_tensor_mb)
            except BaseException as exc:  # noqa: BLE001 - the server hears of it as one line
                status, answer = FAILED, type(exc).__name__.encode()
            sock.sendall(ANSWER.pack(status, len(answer)))
            sock.sendall(answer)
    finally:
        os._exit(status)


def main() -> None:
    """The zygote: import torch once, then fork a reader for each request until the server closes the socket."""
    warnings.simplefilter("ignore")
    global _ALLOWED
    import safetensors.torch  # noqa: F401 - the readers find it imported
    import torch

    _ALLOWED = {torch.float16, torch.bfloat16, torch.float32, torch.float64,
                torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64}
    torch.set_num_threads(1)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # readers are reaped as they end; none becomes a zombie
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C reaches the server, which ends the zygote by closing
    control = socket.socket(fileno=int(sys.argv[1]))
    while True:
        try:
            message, fds = receive_message(control, REQUEST.size)
        except OSError:
            return
        if len(message) != REQUEST.size or len(fds) != 1:  # the server is gone (an empty message), or a bug
            return
        limits = REQUEST.unpack(message)
        pid = os.fork()
        if pid == 0:
            control.close()
            _reader(fds[0], *limits)
        os.close(fds[0])
        try:
            pidfd = [os.pidfd_open(pid)]
        except (AttributeError, OSError):  # not Linux; or it has already ended (it waits for the server, so only if it failed)
            pidfd = []
        try:
            socket.send_fds(control, [PID.pack(pid)], pidfd)
        except OSError:
            return
        finally:
            for fd in pidfd:
                os.close(fd)


def _damaged(data: bytes) -> str:
    """Plain words for a file the reader broke on. The reader's own error (`KeyError: 101`: a pickle byte
    it read as a memo index) tells the person who uploaded the file nothing, so it is left out."""
    if data.startswith(b"PK\x03\x04"):
        return ("is not a readable PyTorch state dict: it is a zip file like those torch.save writes, but what is inside "
                "is damaged or was not written by torch.save (truncated or corrupt?)")
    return "is not a readable safetensors file: its header looks right, but its contents are damaged (truncated or corrupt?)"


if __name__ == "__main__":
    main()
