"""Parse an untrusted weights file in a child process that is killed if it runs too long or too big.

Why: `torch.load(weights_only=True)` runs no code from the file, but its bytes still steer it. A
pickle of 200 bytes can build a dict key of nested tuples whose hash takes exponential time in C code that
holds the GIL: in the server's process that freezes every session, and only SIGKILL ends it. A
pickle can also ask for gigabytes (`torch.Size(bytearray(n))`), and a compressed zip record
inflates before anything can check its size. No check inside the process can interrupt C code, so
the parse runs in a process of its own, and the server only waits on a pipe (the GIL is free).

The limits (constants below):
- wall time `PARSE_SECONDS`: the parent waits that long for the child's answer, then SIGKILLs it
  (the child also sets `RLIMIT_CPU` to a little more, so it dies even if the parent is gone);
- memory `PARSE_MEMORY_MB`: the child sets `RLIMIT_AS` and `RLIMIT_DATA` to what importing torch
  took plus this budget, before it reads a byte of the file; an allocation past it fails at once
  (MemoryError) instead of growing, so nothing is ever swapped or OOM-killed;
- `MAX_TENSOR_MB`: the tensors it may hand back (a view can declare more than its file holds).

The child gets the file on a socket and answers on it with safetensors bytes, which the parent reads
with safetensors (no pickle on this side), or with one line saying why not. Each file gets a fresh
process, forked by a zygote: `purify_core/store/_weights_child.py`, run by path with `python -P`
once per server process (at the first upload, then kept), which imports torch and safetensors and
nothing of this package, and never reads a file itself. A reader so starts in milliseconds; the
child started for each file used to pay `import torch` every time (measured with torch 2.14, a CUDA
build, on a 2-core machine: 1.7 s idle, about 4 s busy). The server holds a pidfd for each reader,
so it kills exactly that process.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors

from ..errors import UserInputError
from ._weights_child import ANSWER, FAILED, LENGTH, OUT_OF_MEMORY, PID, REFUSED, REQUEST, receive_message
from .weights_format import short

__all__ = ["PARSE_SECONDS", "PARSE_MEMORY_MB", "MAX_TENSOR_MB", "parse_in_child"]

#: Wall-clock seconds a reader may take from its fork (a 50 MiB state dict takes a few); the zygote's own start,
#: with the first file, is bounded apart (`ZYGOTE_START_SECONDS`).
PARSE_SECONDS = 30
#: Memory the child may take on top of what importing torch took (a 47 MiB file needed 150-300 MiB).
PARSE_MEMORY_MB = 512
#: Tensor bytes the child may hand back, in MiB: twice the 50 MiB upload limit (tied weights are listed twice),
#: while a stride-0 view can declare any size from a few bytes of storage.
MAX_TENSOR_MB = 128
#: Seconds to wait for a reader to end once it has answered or been killed (it ends in milliseconds).
READER_EXIT_SECONDS = 10
#: Seconds the zygote may take to start (it imports torch: 1.7 s on an idle 2-core machine, about 4 s busy).
ZYGOTE_START_SECONDS = 120

_CHILD = Path(__file__).with_name("_weights_child.py")


def _child_env() -> dict[str, str]:
    """One thread and no GPU: the child only parses."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", PYTHONSAFEPATH="1",
               PYTHONDONTWRITEBYTECODE="1")
    return env


def parse_in_child(data: bytes, filename: str, seconds: float | None = None, memory_mb: int | None = None,
                   max_tensor_mb: int | None = None) -> dict[str, torch.Tensor]:
    """The named tensors in `data` (safetensors or a `torch.save` zip), parsed by a child process.

    Raises `UserInputError` with one line if the file is refused, malformed, or the child runs past
    `seconds` (it is killed) or `memory_mb` (its allocations fail). Run the cheap checks of
    `weights_format` first: they refuse most bad files without starting a process. The limits
    default to the module's constants, read at call time.
    """
    seconds = PARSE_SECONDS if seconds is None else seconds
    memory_mb = PARSE_MEMORY_MB if memory_mb is None else memory_mb
    max_tensor_mb = MAX_TENSOR_MB if max_tensor_mb is None else max_tensor_mb
    name = short(filename, 80)
    sock, pid, pidfd = _fork_reader(int(seconds) + 1, int(memory_mb), int(max_tensor_mb), name)
    deadline = time.monotonic() + seconds  # the reader's time: the zygote's start (the first file here) is not counted
    # the bytes go in from a thread while this one waits for the answer (the GIL is free while it waits)
    sender = threading.Thread(target=_send, args=(sock, data), name="purify-lab-weights-sender", daemon=True)
    answered = False
    try:
        sender.start()
        header = _receive(sock, ANSWER.size, deadline)
        if header is None:
            raise TimeoutError
        status, answer = FAILED, b""
        if len(header) == ANSWER.size:  # else it died without a word: killed at its memory limit
            status, size = ANSWER.unpack(header)
            if size <= max_tensor_mb * 2**20 + 2**20:
                answer = _receive(sock, size, deadline)
                if answer is None:
                    raise TimeoutError
                answered = len(answer) == size
    except TimeoutError:
        raise UserInputError(f"{name} took more than {seconds:g} s to read and was stopped: a state dict reads in a "
                             "second or two, so this file is malformed or built to hang the reader") from None
    finally:
        if not answered:  # past its time, or interrupted (Ctrl-C, a Stop): never leave it running
            _kill(pid, pidfd)
        if pidfd is not None:
            _readable(pidfd, READER_EXIT_SECONDS)  # a pidfd is readable once its process has ended
        try:
            sock.shutdown(socket.SHUT_RDWR)  # a write still under way in the sender fails at once
        except OSError:
            pass
        sender.join()
        sock.close()
        if pidfd is not None:
            os.close(pidfd)
    # no answer: killed by its memory limit (an allocation that failed in C: SIGKILL, SIGSEGV or SIGABRT)
    if not answered or status == OUT_OF_MEMORY:
        raise UserInputError(f"{name} needed more than {memory_mb} MiB of memory to read and was stopped: a state dict "
                             "needs a few times its file size, so this file is malformed or built to exhaust memory")
    if status == 0:
        try:
            return load_safetensors(answer)
        except (SafetensorError, ValueError, RuntimeError) as exc:  # pragma: no cover - our own child's output
            raise UserInputError(f"{name}: the weights reader answered with unreadable tensors ({str(exc)[:100]})") from None
    reason = answer.decode("utf-8", "replace").strip()[:400] or f"status {status}"
    if status == REFUSED:
        raise UserInputError(f"{name} {reason}")
    raise UserInputError(f"{name} is not a readable state dict (the reader failed: {reason[:200]})")


class _Zygote:
    """The process that forks the readers, and this side of its socket (one per server process)."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        try:
            self.process = subprocess.Popen([sys.executable, "-P", str(_CHILD), str(theirs.fileno())], pass_fds=(theirs.fileno(),),
                                            stdin=subprocess.DEVNULL, env=_child_env(), start_new_session=True)
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        self.control = ours

    def close(self) -> None:
        self.control.close()  # the zygote ends when its socket closes
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


_ZYGOTE: _Zygote | None = None
_ZYGOTE_LOCK = threading.Lock()


def _fork_reader(seconds: int, memory_mb: int, max_tensor_mb: int, name: str) -> tuple[socket.socket, int, int | None]:
    """A fresh reader with those limits: this side of its socket, its pid, and a pidfd for it (None where Linux's
    pidfds are missing, or if it has already ended).

    The zygote is started with the first file (it imports torch: seconds, at most `ZYGOTE_START_SECONDS`) and
    started again if it has died."""
    global _ZYGOTE
    with _ZYGOTE_LOCK:
        for _ in range(2):  # a zygote that died is started again, once
            if _ZYGOTE is None or _ZYGOTE.process.poll() is not None:
                if _ZYGOTE is not None:
                    _ZYGOTE.close()
                _ZYGOTE = _Zygote()
            ours, theirs = socket.socketpair()
            try:
                socket.send_fds(_ZYGOTE.control, [REQUEST.pack(seconds, memory_mb, max_tensor_mb)], [theirs.fileno()])
                if not _readable(_ZYGOTE.control.fileno(), ZYGOTE_START_SECONDS):
                    _ZYGOTE.close()
                    _ZYGOTE = None
                    ours.close()
                    raise UserInputError(f"{name} could not be read: the weights reader did not start in time; try again")
                message, fds = receive_message(_ZYGOTE.control, PID.size)
            except OSError:
                message, fds = b"", []
            finally:
                theirs.close()
            if len(message) == PID.size:
                return ours, PID.unpack(message)[0], (fds[0] if fds else None)
            ours.close()
            for fd in fds:
                os.close(fd)
            _ZYGOTE.close()  # it died or answered nonsense: start another, once
            _ZYGOTE = None
    raise UserInputError(f"{name} could not be read: the weights reader could not be started")


def _readable(fd: int, seconds: float) -> bool:
    """Whether `fd` has something to read (or has closed) within `seconds`. poll, not select: a busy server's
    descriptors can be numbered past select's limit of 1024."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(max(0.0, seconds) * 1000))


def _kill(pid: int, pidfd: int | None) -> None:
    """SIGKILL the reader: through its pidfd, which cannot name another process; by pid where there is none (then a
    pid reused in the moment between the reader's own end and this kill is the one case not ruled out)."""
    try:
        if pidfd is not None:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        elif pid > 0:
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:  # it has ended
        pass


def _receive(sock: socket.socket, size: int, deadline: float) -> bytes | None:
    """`size` bytes from the reader; fewer if its socket closed first (it died); None past the deadline."""
    data = bytearray()
    while len(data) < size:
        if not _readable(sock.fileno(), deadline - time.monotonic()):
            return None
        try:
            chunk = sock.recv(min(size - len(data), 2**20))
        except OSError:
            chunk = b""
        if not chunk:
            break
        data += chunk
    return bytes(data)


def _send(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(LENGTH.pack(len(data)))
        sock.sendall(data)
    except OSError:  # the reader ended before it read everything (a limit, or it was stopped)
        pass
