"""Finished runs kept on the server, so an identical run is replayed instead of computed again.

Why: runs are deterministic, so when a class presses Run on the same defaults, one computation is
enough. A run is replayed when the model's sha256, every setting (seed and device included), the
live probe, the library's code and torch's thread count are the same (`replay_key`). A stopped or diverged run is never
kept. What is kept is JSON (history, summary, settings) and the purified weights as safetensors:
nothing is unpickled. Entries appear atomically (a folder renamed into place) and the store is
bounded (`MAX_ENTRIES`, `MAX_BYTES`, oldest dropped first). `one_at_a_time` makes a second identical
run wait for the first instead of computing alongside it.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from purify_core.models.probe import PROBE_SIZE
from purify_core.method.purify import PurifySummary
from purify_core.models.evaluate import Metrics
from purify_core.store.model_store import default_cache_dir
from purify_core.study import RunRecord

PACKAGE = Path(__file__).resolve().parent.parent / "purify_core"
MAX_ENTRIES = 48
MAX_BYTES = 256 * 1024**2
FORMAT = 1
REPLAYED = "replayed from a cached identical run"


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """sha256 of the library's source: a changed loop, evaluation or default never replays an old run."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        digest.update(str(path.relative_to(PACKAGE)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def replay_key(model_sha256: str, settings: dict[str, Any]) -> str | None:
    """The run's identity: model weights, every setting (seed, device, defense), probe, code, and torch's
    thread count (sums split over threads round differently). None when the model has no sha256
    (nothing to vouch that the weights are the same)."""
    if not model_sha256:
        return None
    text = json.dumps({"model": model_sha256, "settings": settings, "probe": PROBE_SIZE, "code": code_version(), "format": FORMAT,
                       "threads": torch.get_num_threads()},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def kept_folder(variable: str, name: str) -> Path | None:
    """A folder the server keeps results in: `$variable`, else `name` next to the model cache ($PURIFY_LAB_CACHE),
    never inside the folder of models; None (keep nothing) when `$variable` is `off`."""
    chosen = os.environ.get(variable, "").strip()
    if chosen == "off":
        return None
    return Path(chosen).expanduser() if chosen else default_cache_dir().parent / name


def replay_dir() -> Path | None:
    """`$PURIFY_LAB_REPLAYS`, else `$PURIFY_LAB_CACHE/replays`; None (keep and replay nothing) when it is `off`."""
    return kept_folder("PURIFY_LAB_REPLAYS", "replays")


def save(key: str, run: RunRecord, folder: Path | None = None) -> bool:
    """Keep a finished run under `key`; False (nothing written) for any other run or a failed write."""
    if run.status != "finished" or run.summary is None or run.summary.status != "finished":
        return False
    from safetensors.torch import save_file

    folder = folder or replay_dir()
    if folder is None:
        return False
    target = folder / key
    if target.exists():
        return True
    try:
        folder.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".partial-", dir=folder))
        entry = {"format": FORMAT, "key": key, "config": run.config, "history": run.history, "summary": asdict(run.summary),
                 "status": run.status, "reason": run.reason, "has_model": run.model is not None}
        (work / "run.json").write_text(json.dumps(entry))
        if run.model is not None:
            save_file({k: v.detach().cpu().contiguous() for k, v in run.model.state_dict().items()}, str(work / "model.safetensors"))
        try:
            os.rename(work, target)  # atomic: a reader sees the whole entry or none
        except OSError:  # another server process kept the same run first
            shutil.rmtree(work, ignore_errors=True)
    except OSError:
        return False
    _prune(folder)
    return True


def load(key: str, template: nn.Module, folder: Path | None = None) -> dict[str, Any] | None:
    """The kept run under `key`: its history, summary, status and purified model (a copy of
    `template` with the kept weights); None when there is none or it cannot be read."""
    from safetensors.torch import load_file

    folder = folder or replay_dir()
    if folder is None:
        return None
    entry_dir = folder / key
    try:
        entry = json.loads((entry_dir / "run.json").read_text())
        if entry.get("format") != FORMAT or entry.get("key") != key or entry.get("status") != "finished":
            return None
        s = dict(entry["summary"])
        s["before"] = Metrics(**s["before"]) if s["before"] else None
        s["after"] = Metrics(**s["after"]) if s["after"] else None
        model = None
        if entry["has_model"]:
            model = copy.deepcopy(template)
            model.load_state_dict(load_file(str(entry_dir / "model.safetensors")), strict=True)
            model.eval()
        os.utime(entry_dir)  # used: dropped last
    except Exception:  # noqa: BLE001 - missing, half-removed or foreign entry: compute the run instead
        return None
    return {"history": entry["history"], "summary": PurifySummary(**s), "reason": entry["reason"], "model": model}


def fill(run: RunRecord, kept: dict[str, Any]) -> None:
    """Give a fresh run record the kept run's steps, numbers and model, and say it was replayed."""
    run.history = list(kept["history"])
    run.summary, run.model, run.status = kept["summary"], kept["model"], "finished"
    run.reason = f"{kept['reason']} ({REPLAYED})"


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file())


def _prune(folder: Path) -> None:
    """Drop the least recently used entries beyond `MAX_ENTRIES` or `MAX_BYTES` (and stale partial writes)."""
    try:
        entries = []
        for path in folder.iterdir():
            age = time.time() - path.stat().st_mtime
            if path.name.startswith(".partial-"):
                if age > 3600:
                    shutil.rmtree(path, ignore_errors=True)
                continue
            entries.append((path.stat().st_mtime, path, _size(path)))
    except OSError:
        return
    entries.sort(reverse=True)
    total = 0
    for n, (_, path, size) in enumerate(entries):
        total += size
        if n >= MAX_ENTRIES or total > MAX_BYTES:
            shutil.rmtree(path, ignore_errors=True)


_guard = threading.Lock()
_flights: dict[str, list] = {}  # key -> [lock, users]


@contextmanager
def one_at_a_time(key: str, waiting: Callable[[float], None], poll_s: float = 0.25) -> Iterator[None]:
    """Hold `key` for the block: an identical run started meanwhile waits here (`waiting(seconds)` is
    called while it does, so a page can say so and a Stop can end the wait), then finds this one kept."""
    with _guard:
        flight = _flights.setdefault(key, [threading.Lock(), 0])
        flight[1] += 1
    start = time.monotonic()
    try:
        while not flight[0].acquire(timeout=poll_s):
            waiting(time.monotonic() - start)
        try:
            yield
        finally:
            flight[0].release()
    finally:
        with _guard:
            flight[1] -= 1
            if flight[1] == 0:
                _flights.pop(key, None)
