"""The defense arena: every registered defense and the paper's presets on the same models.

For every shipped scenario and clean-set draw, each contender (every defense in the registry,
then the paper's `default` and `reference` purification presets) runs on the backdoored model
and, as a control, on the scenario's clean model (same data, architecture, training and seed,
no poisoning: `evaluation.clean_control`) with the same clean set, so its collateral ACC cost
is seen where there is no backdoor to remove. Graded by the evaluator: ACC, ASR, robust
accuracy (RA) and BackdoorBench's DER (`evaluation.grading`), mean +- sd over draws. No
contender reads the trigger, the poisoned data or ASR (tests/test_honest_selection.py).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Callable, Iterable

from torch import nn

from ..defenses import DEFENSES, run_defense
from ..errors import UserInputError
from ..evaluation.grading import der_of
from ..method.purify import PRESET_LABELS, PurifyConfig, PurifyResult, baseline_config, purify, purify_preset
from ..models.evaluate import Metrics, evaluate, percent
from ..study import Case, purification_result
from .common import case_for
from .report import fmt, machine, markdown_table
from .sweep import Job, SweepOptions, run_sweep

__all__ = ["PRESETS", "contenders", "run_arena", "arena_sweep", "arena_job", "arena_jobs", "arena_markdown", "arena_results_for"]

#: The paper's purification presets that enter the arena beside the registered defenses.
PRESETS = ("default", "reference")
#: How the presets' settings were chosen (the defenses say it in their `selection` field).
PRESET_SELECTION = {
    "default": "chosen by `bench defaults` from clean defense-set accuracy only (benchmarks/defaults.md)",
    "reference": "the paper as written (ICLR text): no choice made here",
}
SUMMARY_METRICS = ("acc", "asr", "ra", "der", "control_acc", "control_drop", "seconds")


@dataclass(frozen=True)
class Contender:
    """One entry of the arena: a registered defense or one of the paper's presets."""

    name: str
    kind: str  # "defense" or "preset"

    def label(self) -> str:
        if self.kind == "defense":
            return DEFENSES[self.name].label
        return PRESET_LABELS.get(self.name, f"preset {self.name}")  # "default" is the lab's recipe, not the paper's

    def selection(self) -> str:
        return DEFENSES[self.name].selection if self.kind == "defense" else PRESET_SELECTION.get(self.name, PRESET_LABELS.get(self.name, ""))

    def config(self, epochs: int | None = None) -> PurifyConfig:
        """A defense's shared fine-tuning knobs are `BASELINE_FINE_TUNING` (as `defend` runs it: as
        published); a preset is itself. `epochs` overrides (quick checks)."""
        override = {} if epochs is None else {"epochs": epochs}
        if self.kind == "defense":
            return baseline_config(**override)
        return purify_preset(self.name, **override)

    def run(self, model: nn.Module, case: Case, epochs: int | None, evaluator: Callable[[nn.Module], Metrics]) -> PurifyResult:
        """Drive this contender to its result on `model` with the case's clean set (its draw seeds the run)."""
        config = replace(self.config(epochs), seed=case.seed, eval_every=10**6)  # evaluated before and after only
        if self.kind == "defense":
            return purification_result(run_defense(self.name, model, case.splits.clean, config, evaluator))
        return purification_result(purify(model, case.splits.clean, config, evaluator))


def contenders(wanted: list[str] | None = None) -> list[Contender]:
    """Every registered defense, then the paper's presets; `wanted` names a subset (exact names)."""
    every = [Contender(n, "defense") for n in DEFENSES] + [Contender(p, "preset") for p in PRESETS]
    if not wanted:
        return every
    known = {c.name: c for c in every}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise UserInputError(f"unknown defense {unknown[0]!r} for the arena; choose from {', '.join(known)}")
    return [known[w] for w in dict.fromkeys(wanted)]


def _numbers(before: Metrics | None, result: PurifyResult) -> dict[str, Any]:
    after = result.summary.after
    rating = der_of(before, after)
    return {"status": result.summary.status, "acc_before": percent(before.acc) if before else None,
            "asr_before": percent(before.asr) if before else None, "acc": percent(after.acc) if after else None,
            "asr": percent(after.asr) if after else None, "ra": percent(after.ra) if after else None,
            "der": None if rating is None else round(rating, 4), "seconds": round(result.summary.seconds, 2)}


def arena_row(case: Case, contender: Contender, control: nn.Module, epochs: int | None) -> dict[str, Any]:
    """One contender on one case and on the case's clean control: one graded row."""
    evaluator, test, attack = case.evaluator(), case.splits.test, case.backdoored.attack
    before = evaluator(case.backdoored.model)
    row = {"scenario": case.backdoored.name, "draw": case.seed, "defense": contender.name, "kind": contender.kind,
           **_numbers(before, contender.run(case.backdoored.model, case, epochs, evaluator))}
    control_before = evaluate(control, test, attack)
    control_after = contender.run(control, case, epochs, lambda m: evaluate(m, test, attack)).summary
    row |= {"control_acc_before": percent(control_before.acc), "control_acc": percent(control_after.after.acc) if control_after.after else None,
            "control_status": control_after.status}
    row["control_drop"] = None if row["control_acc"] is None else round(row["control_acc_before"] - row["control_acc"], 2)
    return row


def _log_row(log: Callable[[str], None], row: dict[str, Any], where: str) -> None:
    log(f"[{row['scenario']} draw {row['draw']}{where}] {row['defense']}: ACC {fmt(row['acc'], 1)}, ASR {fmt(row['asr'], 1)}, "
        f"RA {fmt(row['ra'], 1)}, DER {fmt(row['der'], 3)}; clean control ACC {fmt(row['control_acc_before'], 1)} -> "
        f"{fmt(row['control_acc'], 1)} ({row['seconds']:.1f} s)")


def run_arena(cases: Iterable[Case], chosen: list[Contender], clean_model_of: Callable[[Any], nn.Module],
              epochs: int | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every contender on every case and on the case's clean control, in this process; `clean_model_of(scenario)`
    gives the control (cached on disk by `clean_control.clean_model`). `epochs` overrides every contender's (quick checks).
    `arena_sweep` runs the same rows as sweep jobs."""
    rows, start, controls = [], time.perf_counter(), {}
    for case in cases:
        name = case.backdoored.name
        if name not in controls:
            t = time.perf_counter()
            controls[name] = clean_model_of(case.backdoored.scenario)
            log(f"{name}: clean control ready ({time.perf_counter() - t:.1f} s; 0 when cached)")
        for i, contender in enumerate(chosen, 1):
            rows.append(arena_row(case, contender, controls[name], epochs))
            _log_row(log, rows[-1], f" {i}/{len(chosen)}")
    return arena_raw(rows, chosen, epochs, time.perf_counter() - start)


@lru_cache(maxsize=4)
def _control(scenario: Any) -> nn.Module:
    from ..evaluation.clean_control import clean_model

    return clean_model(scenario, device="cpu")  # from the disk cache: `arena_sweep` trained it before fanning out


def arena_job(scenario: str, draw: int, contender: str, kind: str, epochs: int | None, zoo: str | None = None) -> dict[str, Any]:
    """One arena row as a sweep job: the model and its clean control read from disk once per worker."""
    case = case_for(scenario, draw, zoo)
    return arena_row(case, Contender(contender, kind), _control(case.backdoored.scenario), epochs)


def arena_jobs(scenarios: list[str], draws: list[int], chosen: list[Contender], epochs: int | None, zoo: str | None = None) -> list[Job]:
    return [Job("purify_core.bench.arena:arena_job", {"scenario": s, "draw": d, "contender": c.name, "kind": c.kind, "epochs": epochs, "zoo": zoo},
                f"{s} draw {d} {c.name}") for s in scenarios for d in draws for c in chosen]


def arena_sweep(scenarios: list[str], draws: list[int], chosen: list[Contender], epochs: int | None = None,
                log: Callable[[str], None] = print, sweep: SweepOptions = SweepOptions(), zoo: str | None = None) -> dict[str, Any]:
    """`run_arena` as sweep jobs (serially, on local workers or on Ray): each scenario's clean control is
    trained or read here first, so every worker reads it from the disk cache."""
    start = time.perf_counter()
    for name in scenarios:
        t = time.perf_counter()
        _control(case_for(name, draws[0], zoo).backdoored.scenario)
        log(f"{name}: clean control ready ({time.perf_counter() - t:.1f} s; about 0 when cached)")
    jobs = arena_jobs(scenarios, draws, chosen, epochs, zoo)
    rows = run_sweep("arena", jobs, sweep, log).in_order(jobs)
    return arena_raw(rows, chosen, epochs, time.perf_counter() - start)


def arena_raw(rows: list[dict[str, Any]], chosen: list[Contender], epochs: int | None, seconds: float) -> dict[str, Any]:
    """The arena's JSON: the contenders and their settings, every row, the summary over draws."""
    return {"contenders": [{"name": c.name, "kind": c.kind, "label": c.label(), "selection": c.selection(),
                            "config": c.config(epochs).to_dict()} for c in chosen], "epochs_override": epochs, "draws": sorted({r["draw"] for r in rows}), "rows": rows, "summary": _summary(rows),
            "total_seconds": round(seconds, 1), "machine": machine()}


def _mean_sd(values: list[float | None]) -> tuple[float | None, float | None]:
    kept = [v for v in values if v is not None]
    if not kept:
        return None, None
    return statistics.fmean(kept), statistics.stdev(kept) if len(kept) > 1 else 0.0


def _summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sd over draws per scenario and contender (a diverged draw counts in `diverged`, not in the means)."""
    out = []
    for scenario in dict.fromkeys(r["scenario"] for r in rows):
        for defense in dict.fromkeys(r["defense"] for r in rows if r["scenario"] == scenario):
            mine = [r for r in rows if r["scenario"] == scenario and r["defense"] == defense]
            entry: dict[str, Any] = {"scenario": scenario, "defense": defense, "draws": len(mine),
                                     "diverged": sum(r["status"] == "diverged" for r in mine),
                                     "acc_before": _mean_sd([r["acc_before"] for r in mine])[0],
                                     "asr_before": _mean_sd([r["asr_before"] for r in mine])[0]}
            for key in SUMMARY_METRICS:
                entry[key], entry[f"{key}_sd"] = _mean_sd([r[key] for r in mine])
            # each draw's test images differ, so its "before" does too: the drop is the mean of the per-draw drops
            entry["acc_drop"] = _mean_sd([None if r["acc"] is None or r["acc_before"] is None else r["acc_before"] - r["acc"] for r in mine])[0]
            out.append(entry)
    return out


def arena_results_for(raw: dict[str, Any], scenario: str) -> list[dict[str, Any]]:
    """The arena's summary rows for one model (what the Purify page adds to its Pareto chart)."""
    return [r for r in raw.get("summary", []) if isinstance(r, dict) and r.get("scenario") == scenario]


def _pm(mean: float | None, sd: float | None, digits: int) -> str:
    return "-" if mean is None else f"{mean:.{digits}f} ± {sd or 0.0:.{digits}f}"


def arena_markdown(raw: dict[str, Any]) -> str:
    table = [{"scenario": r["scenario"].replace("mnist5k-smallcnn-", ""), "defense": r["defense"],
              "ACC": _pm(r["acc"], r["acc_sd"], 1), "ASR": _pm(r["asr"], r["asr_sd"], 1), "RA": _pm(r["ra"], r["ra_sd"], 1),
              "DER": _pm(r["der"], r["der_sd"], 3), "seconds": _pm(r["seconds"], r["seconds_sd"], 1),
              "clean control ACC drop": _pm(r["control_drop"], r["control_drop_sd"], 1),
              "diverged": r["diverged"]} for r in raw["summary"]]
    befores = {r["scenario"]: (r["acc_before"], r["asr_before"]) for r in raw["summary"]}
    selection = "\n".join(f"- **{c['name']}** ({c['label']}): {c['selection']}" for c in raw["contenders"])
    shared = next((c["config"] for c in raw["contenders"] if c["kind"] == "defense"), None)
    return "\n\n".join([
        "# The defense arena",
        f"Generated by `python -m purify_core bench arena` (clean-set draws {raw['draws']}). "
        + " ".join((__doc__ or "").split("\n\n")[1].split()),
        "ACC, ASR and RA in % on the test set, mean ± sd over draws; DER is a fraction in [0, 1] "
        "(0.5 = no change, 1 = erased at no ACC cost), computed per draw from fractions. "
        "*clean control ACC drop*: ACC points the same defense costs the scenario's clean model on the same clean set.",
        "Before any defense (ACC / ASR, mean over draws: each draw holds other test images): " + "; ".join(f"{s.replace('mnist5k-smallcnn-', '')} {fmt(a, 1)} / {fmt(b, 1)}" for s, (a, b) in befores.items()) + ".",
        markdown_table(table, ("scenario", "defense", "ACC", "ASR", "RA", "DER", "clean control ACC drop", "seconds", "diverged")),
        "## How each contender's settings were chosen\n\n" + selection,
        ("" if shared is None else
         f"The defenses' shared fine-tuning settings: {shared['epochs']} epochs, lr {shared['lr']}, momentum {shared['momentum']}, "
         f"weight decay {shared['weight_decay']}, batch {shared['batch_size']}, cosine {shared['cosine']}, shift {shared['shift']} "
         "(`BASELINE_FINE_TUNING`: the optimiser the lab's grid starts from, with no re-init or distillation, as `defend` runs them); "
         "a defense's own settings are its registry defaults; each draw's seed seeds the run. Every contender's settings are in arena.json."),
        f"Total time: {raw['total_seconds']:.0f} s. Machine: `{raw['machine']}`.",
    ])
