"""What a web user may do on this server: the upload size limit and the dataset folders they may pick.

These are rules of the web app, not of the torch library: the CLI takes any path and reads any
weights file up to the library's own bound (`purify_core.store.uploads.MAX_WEIGHTS_MB`). Nothing here
imports Streamlit, so a benchmark that drives the server can read the same rules.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["MAX_UPLOAD_MB", "data_folders"]

#: The largest weights file a browser may upload, in MiB: `.streamlit/config.toml` sets the same
#: `maxUploadSize`, and it is at most the library's `MAX_WEIGHTS_MB`.
MAX_UPLOAD_MB = 50


def data_folders() -> list[Path]:
    """Dataset folders a web user may pick: the subfolders of `$PURIFY_LAB_DATA` (default ~/.cache/purify_lab/data).

    The app never takes a free-form server path from a browser; a server owner puts CIFAR-10,
    GTSRB or ImageFolder trees there (the CLI takes any path).
    """
    root = Path(os.environ.get("PURIFY_LAB_DATA", "").strip() or Path.home() / ".cache" / "purify_lab" / "data").expanduser()
    try:  # an empty variable means unset (not the working directory); an unreadable folder offers nothing
        return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []
    except OSError:
        return []
