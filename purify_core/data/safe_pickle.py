"""A restricted unpickler for data files that come as pickles (CIFAR-10's python batches).

Plain `pickle.load` runs whatever a file asks for, so a crafted "dataset" could execute code.
This unpickler resolves only the few globals a pickled numpy array needs; any other global is
refused before it is imported or called, so a malicious file fails instead of running.

It is Python's own pure-Python unpickler with the dict opcodes checked: a key must be text, bytes
or a whole number before it is hashed. A few hundred bytes of pickle can build a key of tuples
nested 40 deep that share their halves; hashing it takes 2^40 steps inside C code that holds the
GIL, which froze every session of the server (the same class of file that weights uploads are
read in a child process for). Sets are refused for the same reason: a data batch holds none.
"""

from __future__ import annotations

import io
import pickle
from typing import IO, Any, Callable

import numpy as np

from ..errors import UserInputError

__all__ = ["safe_load"]

try:  # numpy >= 2 keeps the implementation in numpy._core; numpy.core is a deprecated alias
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """`_codecs.encode` as protocol-2 pickles of bytes use it: only latin-1, never another codec."""
    if encoding.replace("-", "").replace("_", "").lower() not in ("latin1", "iso88591") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode is only allowed on text with latin1, not {type(text).__name__} with {encoding!r}")
    return text.encode("latin1", errors)


# Resolved here, not by importing what the file names: old files name numpy.core, whose import
# warns on numpy 2. Nothing outside this table can be reached from a pickle.
_ALLOWED: dict[tuple[str, str], Callable[..., Any]] = {
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy.core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


_KEY_TYPES = (str, bytes, int)


def _checked_key(key: Any) -> Any:
    if type(key) not in _KEY_TYPES:  # exact types: a subclass could hash however it likes
        raise pickle.UnpicklingError(f"a dict key is a {type(key).__name__}; only text, bytes and whole numbers are allowed")
    return key


class _RestrictedUnpickler(pickle._Unpickler):  # the pure-Python unpickler, whose opcodes can be checked one by one
    """An unpickler whose globals are limited to `_ALLOWED` and whose dict keys are never hashed unchecked."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def _load_dict(self) -> None:
        items = self.pop_mark()
        self.append({_checked_key(items[i]): items[i + 1] for i in range(0, len(items) - 1, 2)})

    def _load_setitem(self) -> None:
        value, key = self.stack.pop(), self.stack.pop()
        self.stack[-1][_checked_key(key)] = value

    def _load_setitems(self) -> None:
        items = self.pop_mark()
        target = self.stack[-1]
        for i in range(0, len(items) - 1, 2):
            target[_checked_key(items[i])] = items[i + 1]

    def _refuse_set(self) -> None:
        raise pickle.UnpicklingError("sets are not allowed in a data batch")

    dispatch[pickle.DICT[0]] = _load_dict
    dispatch[pickle.SETITEM[0]] = _load_setitem
    dispatch[pickle.SETITEMS[0]] = _load_setitems
    for _opcode in (pickle.EMPTY_SET, pickle.ADDITEMS, pickle.FROZENSET):
        dispatch[_opcode[0]] = _refuse_set
    del _opcode

    def __init__(self, file: IO[bytes], source: str, encoding: str) -> None:
        super().__init__(file, encoding=encoding)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UserInputError(
                f"the safe pickle reader refuses to load {module}.{name} from {self.source}: only plain arrays, "
                "lists and dicts are allowed in pickled data files. This file is not a genuine dataset batch "
                "(or it was tampered with); delete it and download the dataset again from its official source."
            ) from None


def safe_load(data: bytes | bytearray | memoryview | IO[bytes], *, source: str | None = None, encoding: str = "latin1") -> Any:
    """Unpickle `data` (bytes or a binary file) allowing only numpy arrays and builtin containers.

    `source` names the file in error messages (default: the file object's name); `encoding`
    decodes Python 2 strings, and latin1 is what numpy arrays pickled by Python 2 need.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        handle: IO[bytes] = io.BytesIO(data)
        source = source or "the pickled data"
    else:
        handle = data
        source = source or str(getattr(data, "name", "the pickled data"))
    try:
        return _RestrictedUnpickler(handle, source, encoding).load()
    except UserInputError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, MemoryError, OverflowError) as exc:
        raise UserInputError(
            f"{source} is not a readable pickle file ({type(exc).__name__}: {exc}); it is truncated or not a dataset "
            "batch: download the dataset again"
        ) from None
