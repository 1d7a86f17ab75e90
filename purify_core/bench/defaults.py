"""How the default purification settings were chosen, from clean data only.

A grid of recipes (the paper's AR marking, plain fine-tuning, and the lab's steps: re-initialising
the dense layers, distilling the original model, pruning 50%, 70% or 80% of the last conv layer by benign
salience or by activation, 20, 30 or 40 epochs, weight decay, the teacher's answers on the shifted, the clean or
both views, a zero classifier init, the student's images turned and scaled) runs on every shipped scenario, over 3 draws of the clean defense set x 3 seeds (the seed draws the re-initialised weights and the batch order). The
rule reads only clean accuracy on held-out clean test images: among recipes whose mean ACC drop
stays within `budget` points, take the most aggressive (the one that changes the model most: a
re-initialised head first, then the larger pruned share, then more epochs, then the smaller
distillation weight, i.e. less pull back to the original, then a linear distillation schedule over
a constant one; turning and scaling the images is augmentation, not a change to the model, and is not
in the order), and break ties by the smaller ACC drop.
ASR is recorded for the reader, and never read by the rule.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from ..method.purify import PurifyConfig
from .report import machine, markdown_table
from .sweep import Job, SweepOptions, run_sweep

__all__ = ["RECIPES", "run_defaults", "defaults_job", "choose", "aggressiveness", "defaults_markdown"]

_PLAIN = {"regularizer": "none", "threshold": 0.0}
_HEAD = {"reinit": "dense", "distill": 0.5}
_PRUNE = {"regularizer": "prune", "threshold": 0.5, "layers": "last-conv", "direction": "lowest"}


def _least_active(share: float, **more: Any) -> dict[str, Any]:
    """Prune `share` of the last conv layer's least active channels + re-init dense + distil 0.5, and `more`."""
    return {**_PRUNE, **_HEAD, "metric": "activation", "threshold": share, **more}


#: name -> the settings it changes from the base config (the base: today's loop, SGD 0.01, momentum 0.9,
#: cosine, 2-pixel shifts, 20 epochs, AR 0.05 on the 10% highest benign salience).
RECIPES: dict[str, dict[str, Any]] = {
    "re-init dense + distil 0.5": {**_PLAIN, **_HEAD},
    "prune 50% lowest salience conv + re-init dense + distil 0.5": {**_PRUNE, **_HEAD, "metric": "salience"},
    "prune 50% least active conv + re-init dense + distil 0.5": _least_active(0.5),
    "re-init dense + distil 0.5 linear": {**_PLAIN, **_HEAD, "distill_schedule": "linear"},
    "re-init dense + distil 0.5 + AR": dict(_HEAD),
    "re-init dense, task loss only": {**_PLAIN, "reinit": "dense"},
    "re-init 30% highest-salience neurons + distil 0.5": {"reinit": "marked", "threshold": 0.3, "regularizer": "none", "distill": 0.5},
    "prune 70% least active conv + re-init dense + distil 0.5": _least_active(0.7),
    "prune 70% least active conv + re-init dense + distil 0.5, 30 epochs": _least_active(0.7, epochs=30),
    "prune 70% least active conv + re-init dense + distil 0.5, 40 epochs": _least_active(0.7, epochs=40),
    "prune 70% least active conv + re-init dense + distil 0.5, 40 epochs, weight decay 0.001": _least_active(0.7, epochs=40, weight_decay=1e-3),
    "prune 70% least active conv + re-init dense + distil 0.5 on the clean view, 40 epochs": _least_active(0.7, epochs=40, distill_view="clean"),
    "prune 70% least active conv + re-init dense + distil 0.5 on both views, 40 epochs": _least_active(0.7, epochs=40, distill_view="both"),
    "prune 70% least active conv + re-init dense, classifier at zero + distil 0.5, 40 epochs": _least_active(0.7, epochs=40, classifier_init="zero"),
    "prune 70% least active conv + re-init dense, classifier at zero + distil 0.5 on both views, 40 epochs": _least_active(0.7, epochs=40, classifier_init="zero", distill_view="both"),
    "prune 80% least active conv + re-init dense + distil 0.5 on both views, 40 epochs": _least_active(0.8, epochs=40, distill_view="both"),
    "prune 80% least active conv + re-init dense + distil 0.5 on both views, the student's images turned up to 10 degrees and scaled up to 10%, 40 epochs":
        _least_active(0.8, epochs=40, distill_view="both", rotate=10.0, scale=0.1),
    "AR, highest salience 0.1 (the old default)": {},
    "plain fine-tuning": dict(_PLAIN),
    "prune 50% lowest salience conv + re-init dense + distil 0.5 linear, 40 epochs": {**_PRUNE, **_HEAD, "metric": "salience", "distill_schedule": "linear", "epochs": 40},
    "prune 50% least active conv + re-init dense + distil 0.5 linear, 40 epochs": _least_active(0.5, distill_schedule="linear", epochs=40),
}
#: Mean clean ACC drop allowed, points: the lab rule's budget since the first grid. The issue's
#: target (1 point) is what the result is held against in the README, not a knob tuned here.
BUDGET = 1.5
DRAWS, SEEDS = (0, 1, 2), (0, 1, 2)
#: Seeds per recipe (all on the same draws x seeds).
def seeds_for(recipe: str) -> tuple[int, ...]:
    return SEEDS


def defaults_job(recipe: str, scenario: str, draw: int, seed: int, base: dict[str, Any]) -> dict[str, Any]:
    """One run of the grid: a recipe on one scenario, clean-set draw and seed (the model read once per worker)."""
    from ..method.purify import purify
    from ..study import evaluator_for, purification_result
    from .common import case_for

    case = case_for(scenario, draw)
    config = replace(PurifyConfig(**base), eval_every=10**6, seed=seed, **RECIPES[recipe])
    start = time.perf_counter()
    s = purification_result(purify(case.backdoored.model, case.splits.clean, config, evaluator_for(case.backdoored.attack, case.splits.test))).summary
    return {"recipe": recipe, "scenario": scenario, "draw": draw, "seed": seed, "seconds": time.perf_counter() - start,
            "acc_before": 100 * s.before.acc, "acc": 100 * s.after.acc if s.after else None,
            "asr_before": 100 * s.before.asr, "asr": 100 * s.after.asr if s.after else None, "status": s.status}


def _job(recipe: str, scenario: str, draw: int, seed: int, base: dict[str, Any]) -> Job:
    return Job("purify_core.bench.defaults:defaults_job", {"recipe": recipe, "scenario": scenario, "draw": draw, "seed": seed, "base": base},
               f"{recipe} | {scenario} draw {draw} seed {seed}")


def _upgrade_log(path: Path, base: dict[str, Any]) -> None:
    """Lines written before the sweep runner (plain records, no job id) rewritten as sweep log entries, so they count as done."""
    lines = path.read_text().splitlines() if path.exists() else []
    old = []
    for line in (line for line in lines if line.strip() and '"id"' not in line):
        try:
            old.append(json.loads(line))
        except ValueError:
            continue  # a line cut short when that run was killed: it runs again
    if not old:
        return
    entries = [{"id": (job := _job(r["recipe"], r["scenario"], r["draw"], r["seed"], base)).id, "label": job.label, "fn": job.fn,
                "args": job.args, "record": r, "error": None, "seconds": r["seconds"]} for r in old if r["recipe"] in RECIPES]
    kept = [line for line in lines if '"id"' in line]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(line + "\n" for line in kept + [json.dumps(e) for e in entries]))
    tmp.replace(path)


def run_defaults(names: list[str] | None, base: PurifyConfig, log: Callable[[str], None] = print,
                 recipes: list[str] | None = None, sweep: SweepOptions = SweepOptions()) -> dict[str, Any]:
    """Every recipe x scenario x draw x seed, as sweep jobs; each finished run is appended to `sweep.log`
    at once, and runs already there are not repeated, so a stopped grid resumes."""
    from .common import chosen_scenarios

    scenarios = chosen_scenarios(names, list(DRAWS))
    if sweep.log is not None:
        _upgrade_log(sweep.log, base.to_dict())
    chosen = recipes or list(RECIPES)
    jobs = [_job(r, s, d, k, base.to_dict()) for r in chosen for s in scenarios for d in DRAWS for k in seeds_for(r)]
    runs = run_sweep("defaults", jobs, sweep, log).in_order(jobs)
    rows = [_summarise(name, [r for r in runs if r["recipe"] == name], scenarios) for name in chosen]
    return {"rows": rows, "runs": runs, "chosen": choose(rows), "budget": BUDGET, "base": base.to_dict(),
            "recipes": {n: RECIPES[n] for n in chosen}, "scenarios": scenarios, "draws": DRAWS, "seeds": SEEDS, "machine": machine()}


def _summarise(name: str, runs: list[dict[str, Any]], scenarios: list[str]) -> dict[str, Any]:
    drops = [r["acc_before"] - r["acc"] if r["acc"] is not None else float("inf") for r in runs]
    row: dict[str, Any] = {"recipe": name, **RECIPES[name], "runs": len(runs), "mean_acc_drop": statistics.fmean(drops),
                           "seconds": statistics.fmean(r["seconds"] for r in runs)}
    per = []
    for s in scenarios:
        mine = [r for r in runs if r["scenario"] == s]
        asr = [r["asr"] for r in mine if r["asr"] is not None]
        drop = [r["acc_before"] - r["acc"] for r in mine if r["acc"] is not None]
        per.append(f"{statistics.fmean(asr):.1f}/{statistics.fmean(drop):.1f}" if asr else "-")
        row[f"asr_max_{s}"] = max(asr) if asr else None
    row["asr_not_used"] = "; ".join(per)
    return row


def aggressiveness(row: dict[str, Any]) -> tuple:
    """How far a recipe moves the model from the original, from its settings alone (bigger = further)."""
    whole = row.get("reinit", "none") not in ("none", "marked")
    pruned = row.get("threshold", 0.0) if row.get("regularizer") == "prune" else 0.0
    return (whole, pruned, row.get("epochs", 20), -row.get("distill", 0.0), row.get("distill_schedule") == "linear",
            row.get("reinit", "none") == "marked",
            row.get("regularizer", "ar") in ("ar", "l1", "l2"))


def choose(rows: list[dict[str, Any]], budget: float = BUDGET) -> dict[str, Any] | None:
    """The clean-only rule: the most aggressive recipe within the ACC budget, then the smallest drop."""
    within = [r for r in rows if r["mean_acc_drop"] <= budget]
    if not within:
        return None
    return max(within, key=lambda r: (aggressiveness(r), -r["mean_acc_drop"]))


def defaults_markdown(raw: dict[str, Any]) -> str:
    chosen = raw["chosen"]
    verdict = (f"Chosen: **{chosen['recipe']}** (mean ACC drop {chosen['mean_acc_drop']:.2f} points)." if chosen
               else f"No recipe kept the mean ACC drop within {raw['budget']} points.")
    return "\n\n".join([
        "# Choosing the default purification settings",
        f"Generated by `python -m purify_core.bench defaults` on {', '.join(raw['scenarios'])}. " + (__doc__ or "").split("\n\n")[1].replace("\n", " "),
        f"Budget: {raw['budget']} points. Base settings: `{raw['base']}`; each recipe's changes: `{raw.get('recipes', {})}`. "
        "`asr_not_used` lists, per scenario in the order above, mean ASR / mean ACC drop (%, over draws x seeds), "
        "for the reader only; `seconds` is the mean wall time of one run on this shared machine (other jobs ran beside it); "
        "`runs`: scenarios x draws x seeds.",
        markdown_table(raw["rows"], ("recipe", "runs", "mean_acc_drop", "seconds", "asr_not_used")),
        verdict,
        *([raw["note"]] if raw.get("note") else []),
    ])
