"""Helpers the app and method tests share: open a page through AppTest, and hash a model's weights."""

from __future__ import annotations

import hashlib
from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent


def open_page(page: str, **query: str) -> AppTest:
    """The app opened on `page` (a path under the repository) with `query` in its link, as a shared link to that page
    opens it: app.py (its sidebar and navigation) runs with that page, and the home page is never drawn on the way
    (drawing it first cost each test half a second to a second)."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    for key, value in query.items():
        at.query_params[key] = value
    at.switch_page(page)
    return at.run()


def weights_hash(model) -> str:
    """A digest of every tensor in the state dict: equal only when no weight or buffer changed."""
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().numpy().tobytes())
    return digest.hexdigest()


def run_all(gen):
    """A purification or defense run drained: its steps, then its one result (checked to come last)."""
    from purify_core.method.purify import PurifyResult, StepMetrics

    items = list(gen)
    assert all(isinstance(i, StepMetrics) for i in items[:-1]) and isinstance(items[-1], PurifyResult)
    return items[:-1], items[-1]
