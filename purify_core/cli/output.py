"""What every subcommand prints: results on stdout (a table, or JSON with `--json`), progress on stderr."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any, Sequence

__all__ = ["json_safe", "table", "print_result", "EpochProgress", "print_step"]


def json_safe(value: Any) -> Any:
    """NaN and infinities become null: JSON has no such numbers, and the output must parse anywhere."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    """Rows as left-aligned text columns, a header line first."""
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def print_result(args: argparse.Namespace, payload: Any, rows: list[dict[str, Any]], columns: Sequence[str] | None = None,
                 empty: str | None = None) -> None:
    """`payload` as JSON with `--json`; otherwise `rows` as a table (of `columns`, default: the first
    row's keys), or the line `empty` when there are no rows."""
    if args.json:
        print(json.dumps(json_safe(payload), indent=2, allow_nan=False))
    elif not rows and empty is not None:
        print(empty)
    else:
        print(table(rows, columns or list(rows[0])))


class EpochProgress:
    """One stderr line per epoch and stage, so a long build shows it is alive."""

    def __init__(self) -> None:
        self.last: tuple[str, int] | None = None

    def __call__(self, item: Any) -> None:
        step = item.step
        if step is None or step.batch != step.batches or (item.stage, step.epoch) == self.last:
            return
        self.last = (item.stage, step.epoch)
        print(f"  {item.stage}: epoch {step.epoch}/{step.epochs}, loss {step.loss:.3f}, {step.elapsed:.0f}s", file=sys.stderr)


def print_step(item: Any) -> None:
    """A purification step's ACC and ASR on stderr, when it was measured."""
    if getattr(item, "acc", None) is not None:
        print(f"  step {item.step}/{item.steps}: ACC {100 * item.acc:.1f}%, ASR {100 * (item.asr or 0):.1f}%", file=sys.stderr)
