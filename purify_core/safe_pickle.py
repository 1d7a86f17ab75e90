"""A restricted unpickler for data files that come as pickles (CIFAR-10's python batches).

Plain `pickle.load` runs whatever a file asks for. This one resolves only the few globals that
a pickled numpy array needs, so a crafted file is refused instead of executed.
"""

from __future__ import annotations

import io
import pickle
from typing import IO, Any

from .errors import UserInputError

__all__ = ["safe_load"]

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store bytes
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes], source: str, encoding: str) -> None:
        super().__init__(file, encoding=encoding)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise UserInputError(
                f"refused to load {module}.{name} from {self.source}: only plain arrays, lists and dicts are allowed "
                "in pickled data files (this file is not a genuine dataset batch, or it is unsafe)"
            )
        return super().find_class(module, name)


def safe_load(data: bytes | IO[bytes], source: str = "a pickle", encoding: str = "latin1") -> Any:
    """Unpickle `data` allowing only numpy arrays and builtin containers; `source` names it in errors."""
    handle = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
    try:
        return _RestrictedUnpickler(handle, source, encoding).load()
    except UserInputError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise UserInputError(f"{source} is not a readable pickle file: {exc}") from None
