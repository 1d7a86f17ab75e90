"""Telling runs apart: a name that says how each run differs from the others, one colour per run,
one colour per ranking, and "-" where a number was not measured.

Pure functions, so the app and the HTML report name and colour the same runs the same way, and
the ROC and pruning charts give a ranking the same colour.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from plotly.colors import qualitative

from ..evaluation.verdict import verdict

if TYPE_CHECKING:
    from ..study import RunRecord

__all__ = ["RUN_COLORS", "RANKING_COLORS", "MISSING", "run_colors", "ranking_colors", "differing_settings",
           "compare_labels", "describe", "shown", "run_rows"]

#: One colour per run: Tableau 10 (plotly's T10), ten hues told apart at a glance; the app keeps at most 8 runs.
RUN_COLORS: tuple[str, ...] = tuple(qualitative.T10)
#: One colour per ranking: Dark2, a palette of its own so a ranking is never mistaken for a run.
RANKING_COLORS: tuple[str, ...] = tuple(qualitative.Dark2)
#: What a table shows where a number was not measured (a stopped or diverged run): never "None" or "nan".
MISSING = "-"
#: The pseudo-setting that says which method ran: a defense's name, or "purify" (its settings carry no "defense").
_METHOD = "method"


def run_colors(labels: Sequence[str]) -> dict[str, str]:
    """Each run's colour, by its place in the list shown: distinct for up to ten runs, then the hues repeat."""
    return {label: RUN_COLORS[i % len(RUN_COLORS)] for i, label in enumerate(labels)}


def ranking_colors(labels: Sequence[str], order: Sequence[str] = ()) -> dict[str, str]:
    """Each ranking's colour by its place in `order` (the registry's), so every chart that draws a
    ranking gives it the same colour whichever subset it shows; labels not in `order` come after it."""
    known = list(order) + [label for label in labels if label not in order]
    return {label: RANKING_COLORS[known.index(label) % len(RANKING_COLORS)] for label in labels}


def _flat(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings (a defense's own) as `name: value`, without the outer key: `prune_ratio`, not `defense_settings.prune_ratio`."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            flat.update(_flat(value, prefix))
        else:
            flat[f"{prefix}{key}"] = tuple(value) if isinstance(value, list) else value
    return flat


def _method(config: Mapping[str, Any]) -> str:
    return str(config.get("defense") or "purify")


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return "+".join(map(str, value))
    return MISSING if value is None else str(value)


def differing_settings(configs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """For each run, the settings whose values are not the same in every run (in the order they are
    first met), with the method (a defense's name, or "purify") first. A setting one run lacks (a
    defense's own) counts as differing and is named only in the runs that have it."""
    flats = [{_METHOD: _method(c), **_flat({k: v for k, v in c.items() if k != "defense"})} for c in configs]
    keys = list(dict.fromkeys(k for flat in flats for k in flat))
    differ = [k for k in keys if len({repr(flat.get(k, _Absent)) for flat in flats}) > 1]
    return [{k: flat[k] for k in differ if k in flat} for flat in flats]


class _Absent:  # a setting a run does not have: differs from every value, even None
    pass


def compare_labels(labels: Sequence[str], configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each run's name on a shared chart: its number (`#3`, the first word of its label) and every
    setting that differs between the runs shown, e.g. `#3 strength=0.2 lr=0.02`. A run that differs in
    nothing (one run, or the same settings twice) keeps its own label."""
    return [f"{label.split(' ', 1)[0]} {described}" if (described := describe(diff)) else label
            for label, diff in zip(labels, differing_settings(configs))]


def describe(diff: Mapping[str, Any]) -> str:
    """Settings as a legend reads them: the method bare, the others `name=value` ("" for none)."""
    return " ".join(_text(v) if k == _METHOD else f"{k}={_text(v)}" for k, v in diff.items())


def shown(value: Any) -> Any:
    """A table cell: `MISSING` for a value not measured (None or NaN), the value itself otherwise."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    return value


def run_rows(runs: Sequence["RunRecord"]) -> list[dict[str, Any]]:
    """The runs' table as the app and the report show it: each run, the settings it differs in from
    the others, its model, status and verdict, then its numbers (ACC before, ASR before, ...; None
    where not measured: shown as `MISSING`)."""
    diffs = differing_settings([r.config for r in runs])
    rows = []
    for run, diff in zip(runs, diffs):
        row = run.summary_row()
        judged = verdict(run.summary.before, run.summary.after) if run.summary else None
        if run.summary is None:
            row["seconds"] = None  # not measured (a stopped run), not 0 s
        rows.append({"run": row.pop("run"), "differs in": describe(diff) or MISSING, "model": row.pop("model"),
                     "status": row.pop("status"), "verdict": judged.word if judged else MISSING, **row})
    return rows


def named_histories(runs: Sequence["RunRecord"]) -> dict[str, list[dict[str, Any]]]:
    """Each run's steps under its `compare_labels` name, in order: what the overlay charts of the app
    and of the report draw, so both give a run the same name and (by `run_colors`) the same colour."""
    names = compare_labels([r.label for r in runs], [r.config for r in runs])
    return {name: run.history for name, run in zip(names, runs)}
