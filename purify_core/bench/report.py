"""Writing benchmark results: one JSON file for machines, one markdown table for people."""

from __future__ import annotations

import json
import math
import platform
from pathlib import Path
from typing import Any, Sequence

import torch

__all__ = ["write_report", "markdown_table", "fmt", "machine"]


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], digits: int = 2) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(row.get(c), digits) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def write_report(out_dir: Path, name: str, payload: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    """`<name>.json` and `<name>.md` in `out_dir`, written whole (a temp file, then a rename)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = out_dir / f"{name}.json", out_dir / f"{name}.md"
    for path, text in zip(paths, (json.dumps(payload, indent=2, default=str), markdown)):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text + "\n")
        tmp.replace(path)
    return paths
