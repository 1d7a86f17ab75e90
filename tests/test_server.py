"""The web server's own rules (ui/server.py): the upload limit and the data folders a browser may pick."""

from __future__ import annotations

import tomllib
from pathlib import Path

from purify_core.store.uploads import MAX_WEIGHTS_MB
from ui.server import MAX_UPLOAD_MB, data_folders

ROOT = Path(__file__).resolve().parent.parent


def test_the_upload_limit_is_streamlits_and_within_the_librarys_bound():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == MAX_UPLOAD_MB, "the page says one limit, Streamlit enforces another"
    assert MAX_UPLOAD_MB <= MAX_WEIGHTS_MB, "an upload Streamlit lets through would then be refused by the library"


def test_only_subfolders_of_the_data_root_are_offered(tmp_path, monkeypatch):
    root = tmp_path / "data"
    for name in ("gtsrb", "cifar", ".hidden"):
        (root / name).mkdir(parents=True)
    (root / "notes.txt").write_text("not a folder")
    monkeypatch.setenv("PURIFY_LAB_DATA", str(root))
    assert data_folders() == [root / "cifar", root / "gtsrb"]


def test_a_missing_data_root_offers_nothing_and_an_empty_variable_means_the_default(tmp_path, monkeypatch):
    monkeypatch.setenv("PURIFY_LAB_DATA", str(tmp_path / "nowhere"))
    assert data_folders() == []
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PURIFY_LAB_DATA", "  ")
    (tmp_path / ".cache" / "purify_lab" / "data" / "mine").mkdir(parents=True)
    assert data_folders() == [tmp_path / ".cache" / "purify_lab" / "data" / "mine"]
