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

The child gets the file on stdin and answers with safetensors bytes on stdout, which the parent
reads with safetensors (no pickle on this side), or with one line on stderr saying why not. It runs
`purify_core/store/_weights_child.py` by path with `python -P`, so it imports torch and safetensors and
nothing of this package: it starts in about the time `import torch` takes (measured with torch 2.14,
a CUDA build, on a 2-core machine: 1.7 s idle, about 4 s busy; see README "Security and limits").
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors

from ..errors import UserInputError
from .weights_format import short

__all__ = ["PARSE_SECONDS", "PARSE_MEMORY_MB", "MAX_TENSOR_MB", "parse_in_child"]

#: Wall-clock seconds the child may take, start-up included (a 50 MiB state dict takes a few).
PARSE_SECONDS = 30
#: Memory the child may take on top of what importing torch took (a 47 MiB file needed 150-300 MiB).
PARSE_MEMORY_MB = 512
#: Tensor bytes the child may hand back, in MiB: twice the 50 MiB upload limit (tied weights are listed twice),
#: while a stride-0 view can declare any size from a few bytes of storage.
MAX_TENSOR_MB = 128

_CHILD = Path(__file__).with_name("_weights_child.py")
_REFUSED, _OUT_OF_MEMORY = 2, 3


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
    argv = [sys.executable, "-P", str(_CHILD), str(int(seconds) + 1), str(int(memory_mb)), str(int(max_tensor_mb))]
    child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=_child_env(), start_new_session=True)  # its own group: a Ctrl-C reaches us, not it
    try:
        out, err = child.communicate(data, timeout=seconds)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        raise UserInputError(f"{name} took more than {seconds:g} s to read and was stopped: a state dict reads in a "
                             "second or two, so this file is malformed or built to hang the reader") from None
    finally:
        if child.poll() is None:  # interrupted (Ctrl-C, a Stop): never leave the child running
            child.kill()
            child.wait()
    if child.returncode == 0:
        try:
            return load_safetensors(out)
        except (SafetensorError, ValueError, RuntimeError) as exc:  # pragma: no cover - our own child's output
            raise UserInputError(f"{name}: the weights reader answered with unreadable tensors ({str(exc)[:100]})") from None
    if child.returncode == _OUT_OF_MEMORY or child.returncode in (-signal.SIGKILL, -signal.SIGSEGV, -signal.SIGABRT):
        raise UserInputError(f"{name} needed more than {memory_mb} MiB of memory to read and was stopped: a state dict "
                             "needs a few times its file size, so this file is malformed or built to exhaust memory")
    if child.returncode == -signal.SIGXCPU:
        raise UserInputError(f"{name} took more than {seconds:g} s of CPU to read and was stopped")
    lines = err.decode("utf-8", "replace").strip().splitlines()
    reason = lines[-1][:400] if lines else f"the reader exited with code {child.returncode}"
    if child.returncode == _REFUSED:
        raise UserInputError(f"{name} {reason}")
    raise UserInputError(f"{name} is not a readable state dict (the reader failed: {reason[:200]})")
