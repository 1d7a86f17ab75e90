"""The paper's three claims, measured on every shipped scenario over several clean defense sets.

1. Benign salience finds infected neurons (TAC top 5%) better than activation and magnitude.
2. AR erases the backdoor faster and more stably (smaller std over seeds) than L2, L1, prune, none.
3. Our purification erases the backdoor at little ACC cost, better than the baseline defenses.
Claims 1 and 2 run on the paper's loop (`PurifyConfig()`: AR on the 10% highest benign salience, no
re-initialisation, no distillation), the baselines in `BASELINE_FINE_TUNING` (the same optimiser and
length, every defense setting its own marking); claim 3 adds the lab default (the preset, with its
re-initialisation and distillation) as its own row next to AR's.
Numbers go in as measured, whichever way they point.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from dataclasses import replace
from typing import Any, Callable

import json
from pathlib import Path

from ..defenses import run_defense
from ..errors import UserInputError
from ..method.purify import PurifyConfig, PurifyResult, baseline_config, purify
from ..method.rankings import DEFENDER_METRICS, METRICS, rank_neurons
from ..study import Case, grade_rankings, purification_result
from .common import case_for, chosen_scenarios
from .report import machine, markdown_table
from .sweep import Job, SweepOptions, run_sweep

__all__ = ["run_claims", "claims_jobs", "claims_job", "claims_markdown", "STRENGTHS", "LAB_DEFAULT", "OLD_DEFAULT"]

LAB_DEFAULT = "purify (ours, defaults)"
OLD_DEFAULT = "purify (AR only: the paper's loop, the old default)"

STRENGTHS = (0.01, 0.05, 0.2)
PENALTIES = ("ar", "l2", "l1")


#: The baselines claim 3 compares with (its recorded numbers ran these); `bench arena` runs every registered defense.
CLAIMS_BASELINES = ("finetune", "fine-pruning", "magnitude-pruning")

def _mean_std(values: list[float | None]) -> tuple[float | None, float | None]:
    got = [v for v in values if v is not None]
    if not got:
        return None, None
    return statistics.fmean(got), statistics.stdev(got) if len(got) > 1 else 0.0


#: During a run ACC/ASR are checked every `CHECK_EVERY` steps on the first `CHECK_IMAGES` test
#: images (for steps-to-erase); the final numbers use the whole test set.
CHECK_EVERY, CHECK_IMAGES = 14, 500


def _outcome(result: PurifyResult, case: Case) -> dict[str, Any]:
    s = result.summary
    final = case.evaluator()(result.model) if result.model is not None else None
    return {
        "acc": 100 * final.acc if final else None,
        "asr": 100 * final.asr if final and final.asr is not None else None,
        "steps_to_erase": s.steps_to_erase,
        "status": s.status,
    }


def _run(case: Case, config: PurifyConfig, defense: str | None = None) -> dict[str, Any]:
    model, data, check = case.backdoored.model, case.splits.clean, case.evaluator(CHECK_IMAGES)
    config = replace(config, seed=case.seed, eval_every=CHECK_EVERY)
    run = purify(model, data, config, check) if defense is None else run_defense(defense, model, data, config, check)
    return _outcome(purification_result(run), case)


def backdoored_row(case: Case) -> dict[str, Any]:
    """The model before any defense, on the same test draw: what every defense starts from."""
    m = case.evaluator()(case.backdoored.model)
    return {"scenario": case.backdoored.name, "seed": case.seed, "defense": "none (the backdoored model)",
            "acc": 100 * m.acc, "asr": 100 * m.asr, "steps_to_erase": None, "status": "-"}


def _reused(path: Path, base: PurifyConfig) -> dict[tuple[str, int], dict[str, list[dict[str, Any]]]]:
    """Rows of an earlier claims run, per (scenario, seed), if it ran the same paper's loop as `base`."""
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserInputError(f"cannot read the earlier claims run {path}: {exc}") from None
    same = {k: v for k, v in base.to_dict().items() if k in old["config"] and k != "eval_every"}
    if {k: old["config"][k] for k in same} != same:
        raise UserInputError(f"{path} ran other settings than the paper's loop; re-run everything")
    # A file from before the lab default differed from the paper's loop has no OLD_DEFAULT rows: its
    # LAB_DEFAULT rows are the paper's loop. A later file has both: its lab default rows are the ones re-run.
    split = any(row["defense"] == OLD_DEFAULT for row in old["defenses"])
    rows: dict[tuple[str, int], dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for part in ("rankings", "regularizers", "defenses"):
        for row in old[part]:
            if part == "defenses" and row["defense"] == LAB_DEFAULT:
                if split:
                    continue
                row = {**row, "defense": OLD_DEFAULT}  # that run's default was AR only
            rows[(row["scenario"], row["seed"])][part].append(row)
    return rows


def claims_job(scenario: str, draw: int, part: str, config: dict[str, Any] | None = None, defense: str | None = None,
               zoo: str | None = None) -> dict[str, Any]:
    """One cell of the claims grid on one case: the rankings' grades, the backdoored model, or one run
    (`config`, with `defense` for a baseline). The model is read from the zoo on disk, once per worker."""
    case = case_for(scenario, draw, zoo)
    if part == "rankings":
        model, clean = case.backdoored.model, case.splits.clean
        scores = {m: rank_neurons(model, clean, m, attack=case.backdoored.attack) for m in METRICS}
        return {"rows": [{"scenario": case.backdoored.name, "seed": case.seed, "metric": g.metric, "auc_low": g.lowest.auc,
                          "precision_low": g.lowest.precision_at_k, "auc_high": g.highest.auc, "spearman": g.lowest.spearman}
                         for g in grade_rankings({m: scores[m] for m in DEFENDER_METRICS}, scores["tac"])]}
    if part == "backdoored":
        return backdoored_row(case)
    return _run(case, PurifyConfig(**(config or {})), defense)


def _penalty_grid(base: PurifyConfig) -> list[tuple[str, float, PurifyConfig]]:
    """Claim 2's runs: every penalty at every strength, then prune and plain fine-tuning at the base strength."""
    grid = []
    for regularizer in PENALTIES + ("prune", "none"):
        for strength in STRENGTHS if regularizer in PENALTIES else (base.strength,):
            cfg = replace(base, regularizer=regularizer, strength=strength)
            grid.append((regularizer, strength, replace(cfg, threshold=0.0) if regularizer == "none" else cfg))
    return grid


def claims_jobs(scenarios: list[str], seeds: list[int], config: PurifyConfig, base: PurifyConfig,
                only_default: set[tuple[str, int]] = frozenset(), zoo: str | None = None) -> dict[tuple[str, int, str], Job]:
    """The claims grid as independent jobs keyed by (scenario, draw, row), per case in the order of the
    tables (`only_default`: cases whose other rows are carried over from an earlier run)."""
    jobs: dict[tuple[str, int, str], Job] = {}
    for name in scenarios:
        for seed in seeds:
            def add(key: str, part: str, **extra: Any) -> None:
                jobs[(name, seed, key)] = Job("purify_core.bench.claims:claims_job",
                                              {"scenario": name, "draw": seed, "part": part, **extra, "zoo": zoo}, f"{name} draw {seed} {key}")
            if (name, seed) not in only_default:
                add("rankings", "rankings")
                for regularizer, strength, cfg in _penalty_grid(base):
                    add(f"{regularizer} {strength}", "run", config=cfg.to_dict())
                add("backdoored", "backdoored")
                baseline = baseline_config(epochs=base.epochs).to_dict()  # the loop every baseline runs in, at the paper loop's length
                for d in CLAIMS_BASELINES:
                    add(d, "run", config=baseline, defense=d)
            add("lab default", "run", config=config.to_dict())
    return jobs


def run_claims(names: list[str] | None, seeds: list[int], config: PurifyConfig, log: Callable[[str], None] = print,
               reuse: Path | None = None, sweep: SweepOptions = SweepOptions(), zoo: str | None = None,
               epochs: int | None = None) -> dict[str, Any]:
    """Raw per-seed results for the three claims; `summarise` turns them into tables.

    `reuse`: an earlier claims.json measured on the same paper's loop; its rows are kept and only
    the lab default's row is run (the paper's loop is the same code path, `distill=0` included).
    `sweep`: where the grid's jobs run (serially by default); `zoo`: another zoo folder, `names` its exact names.
    The paper's loop and the baselines run `PurifyConfig()`'s own length, not the lab default's (which may
    change, and did), unless `epochs` overrides every run (quick checks).
    """
    rankings, penalties, defenses = [], [], []
    start = time.perf_counter()
    base = replace(PurifyConfig(), **({} if epochs is None else {"epochs": epochs}))
    old = _reused(reuse, base) if reuse else None
    scenarios = list(names or []) if zoo else chosen_scenarios(names, seeds)
    jobs = claims_jobs(scenarios, seeds, config, base, set(old or {}), zoo)
    done = run_sweep("claims", list(jobs.values()), sweep, log)
    for name in scenarios:
        for seed in seeds:
            row = {"scenario": name, "seed": seed}
            got = {key: done.records[job.id] for (s, d, key), job in jobs.items() if (s, d) == (name, seed)}
            if old is not None and (name, seed) in old:
                kept = old[(name, seed)]
                rankings += kept["rankings"]
                penalties += kept["regularizers"]
                defenses += kept["defenses"]
                defenses.append({**row, "defense": LAB_DEFAULT, **got["lab default"]})
                continue
            rankings += got["rankings"]["rows"]
            for regularizer, strength, _ in _penalty_grid(base):
                penalties.append({**row, "regularizer": regularizer, "strength": strength if regularizer in PENALTIES else None,
                                  **got[f"{regularizer} {strength}"]})
            defenses.append(got["backdoored"])
            defenses.append({**row, "defense": OLD_DEFAULT, **got[f"{base.regularizer} {base.strength}"]})
            defenses.append({**row, "defense": LAB_DEFAULT, **got["lab default"]})
            defenses += [{**row, "defense": d, **got[d]} for d in CLAIMS_BASELINES]
    return {"rankings": rankings, "regularizers": penalties, "defenses": defenses,
            "config": base.to_dict(), "lab_default": config.to_dict(), "reused": str(reuse) if reuse else None, "seeds": seeds,
            "seconds": time.perf_counter() - start, "job_seconds": {job.label: round(done.seconds[job.id], 2) for job in jobs.values()},
            "machine": machine()}


def _group(rows: list[dict[str, Any]], keys: tuple[str, ...], fields: tuple[str, ...]) -> list[dict[str, Any]]:
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[tuple(row[k] for k in keys)].append(row)
    table = []
    for key, members in groups.items():
        row = dict(zip(keys, key))
        for f in fields:
            mean, std = _mean_std([m[f] for m in members])
            row[f"{f}_mean"], row[f"{f}_std"] = mean, std
        if "steps_to_erase" in fields:
            row["erased"] = f"{sum(m['steps_to_erase'] is not None for m in members)}/{len(members)}"
        table.append(row)
    return table


def summarise(raw: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    per = ("acc", "asr", "steps_to_erase")
    return {
        "rankings": _group(raw["rankings"], ("scenario", "metric"), ("auc_low", "precision_low", "auc_high", "spearman")),
        "regularizers": _group(raw["regularizers"], ("scenario", "regularizer", "strength"), per),
        "defenses": _group(raw["defenses"], ("scenario", "defense"), per),
    }


def claims_markdown(raw: dict[str, Any]) -> str:
    s = summarise(raw)
    seeds = len(raw["seeds"])
    return "\n\n".join([
        "# Claims benchmark",
        f"Generated by `python -m purify_core.bench claims`: every shipped scenario x {seeds} draws of the clean "
        f"defense set (seed 0 = the scenario's own split). Mean and standard deviation over the draws; "
        f"ACC and ASR in % on the test images; {raw['seconds']:.0f} s on {raw['machine']['cpu']} "
        f"({raw['machine']['threads']} threads). The paper's loop (claims 1-2, AR row and baselines): `{raw['config']}`. "
        f"The lab default (`{LAB_DEFAULT}`): `{raw.get('lab_default')}`."
        + (f" Every row but the lab default's was carried over from the earlier run in `{raw['reused']}` "
           "(same scenarios, draws and code path); the seconds count only the new rows." if raw.get("reused") else ""),
        "## Claim 1: finding infected neurons (TAC top 5% per layer, the evaluator's view)",
        "`auc_low`: ROC AUC of \"low score means infected\" (the paper's premise; 0.5 = chance). "
        "`auc_high`: the same for \"high score means infected\". `precision_low`: precision@k, k = number infected.",
        markdown_table(s["rankings"], ("scenario", "metric", "auc_low_mean", "auc_low_std", "precision_low_mean", "auc_high_mean", "spearman_mean")),
        "## Claim 2: AR against other regularizers (same marking, loop and strengths)",
        f"`steps_to_erase`: first step with ASR < 5% on the first {CHECK_IMAGES} test images, checked every {CHECK_EVERY} steps "
        "(mean over the draws that got there; `erased` says how many). "
        "\"More stable\" = smaller std.",
        markdown_table(s["regularizers"], ("scenario", "regularizer", "strength", "acc_mean", "acc_std", "asr_mean", "asr_std", "steps_to_erase_mean", "steps_to_erase_std", "erased")),
        "## Claim 3: our purification against the baseline defenses",
        markdown_table(s["defenses"], ("scenario", "defense", "acc_mean", "acc_std", "asr_mean", "asr_std", "erased")),
    ])
