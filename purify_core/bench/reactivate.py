"""Does it stay erased? The re-activation check for the default purification and plain fine-tuning.

For every shipped scenario and clean-set draw: purify with the preset and, separately, fine-tune
plainly; then re-tune the purified, the fine-tuned, the backdoored and a clean model on the same
small poisoned set (`ReactivateConfig` defaults) and record the ASR each bounces back to. The
clean control is trained once per dataset and architecture and cached. Evaluator's view only.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace
from functools import lru_cache
from typing import Any, Callable

from torch import nn

from ..evaluation.clean_control import clean_model
from ..defenses import run_defense
from ..method.purify import PRESET_LABELS, PurifyConfig, baseline_config, purify
from ..evaluation.reactivate import ReactivateConfig, run_reactivation
from ..study import Case, purification_result
from .common import case_for, chosen_scenarios
from .report import machine, markdown_table
from .sweep import Job, SweepOptions, run_sweep

__all__ = ["run_reactivate", "reactivate_job", "reactivate_markdown"]

BASELINE = "finetune"


def _plain(config: PurifyConfig) -> PurifyConfig:
    """Plain fine-tuning as every baseline runs it (`BASELINE_FINE_TUNING`), with the run's seed."""
    return baseline_config(seed=config.seed)


def reactivate_rows(case: Case, config: PurifyConfig, retune: ReactivateConfig, clean: nn.Module) -> tuple[list[dict[str, Any]], float]:
    """One case: purify and fine-tune, then re-tune those, the backdoored and the clean model; rows and seconds to defend."""
    run = replace(config, seed=case.seed, eval_every=10**6)
    start = time.perf_counter()
    purified = purification_result(purify(case.backdoored.model, case.splits.clean, run, case.evaluator()))
    tuned = purification_result(run_defense(BASELINE, case.backdoored.model, case.splits.clean, _plain(run), case.evaluator()))
    defend_seconds = time.perf_counter() - start
    models = {"purified": purified.model, BASELINE: tuned.model, "backdoored": case.backdoored.model, "clean": clean}
    models = {k: v for k, v in models.items() if v is not None}  # a diverged run has no model
    report = run_reactivation(models, case.splits.train, case.splits.test, case.backdoored.attack, replace(retune, seed=case.seed))
    return [{"scenario": case.backdoored.name, "seed": case.seed, **r} for r in report.to_dict()["rows"]], defend_seconds


@lru_cache(maxsize=4)
def _clean(scenario: Any) -> nn.Module:
    return clean_model(scenario, device="cpu")  # trained or read once in the parent before the jobs fan out, then read from disk


def reactivate_job(scenario: str, draw: int, config: dict[str, Any], retune: dict[str, Any], zoo: str | None = None) -> dict[str, Any]:
    """One case of the check as a sweep job."""
    case = case_for(scenario, draw, zoo)
    rows, seconds = reactivate_rows(case, PurifyConfig(**config), ReactivateConfig(**retune), _clean(case.backdoored.scenario))
    return {"rows": rows, "defend_seconds": seconds}


def run_reactivate(names: list[str] | None, seeds: list[int], preset: str, config: PurifyConfig,
                   retune: ReactivateConfig = ReactivateConfig(), log: Callable[[str], None] = print,
                   sweep: SweepOptions = SweepOptions(), zoo: str | None = None) -> dict[str, Any]:
    """Every scenario x draw as a sweep job (serially by default); `zoo`: another zoo folder, `names` its exact names."""
    scenarios = list(names or []) if zoo else chosen_scenarios(names, seeds)
    for name in scenarios:
        start = time.perf_counter()
        _clean(case_for(name, seeds[0], zoo).backdoored.scenario)
        log(f"clean control for {name}: {time.perf_counter() - start:.1f} s (about 0 when cached)")
    jobs = [Job("purify_core.bench.reactivate:reactivate_job", {"scenario": s, "draw": d, "config": config.to_dict(),
                "retune": retune.to_dict(), "zoo": zoo}, f"{s} draw {d}") for s in scenarios for d in seeds]
    rows = []
    for job, record in zip(jobs, run_sweep("reactivate", jobs, sweep, log).in_order(jobs)):
        rows += record["rows"]
        log(f"{job.label}: " + ", ".join(f"{r['model']} {r['asr_after']:.1f}%" for r in record["rows"]) + f" ASR after re-tuning ({record['defend_seconds']:.1f} s to defend)")
    return {"preset": preset, "preset_label": PRESET_LABELS.get(preset, preset), "config": config.to_dict(), "retune": retune.to_dict(), "seeds": seeds, "rows": rows,
            "summary": _summary(rows), "machine": machine()}


def _summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean (and spread) over draws per scenario and model."""
    out = []
    for scenario in dict.fromkeys(r["scenario"] for r in rows):
        for model in dict.fromkeys(r["model"] for r in rows if r["scenario"] == scenario):
            mine = [r for r in rows if r["scenario"] == scenario and r["model"] == model]
            after = [r["asr_after"] for r in mine]
            out.append({"scenario": scenario.replace("mnist5k-smallcnn-", ""), "model": model,
                        "ASR before": statistics.fmean(r["asr_before"] for r in mine),
                        "ASR after re-tuning": statistics.fmean(after),
                        "sd": statistics.stdev(after) if len(after) > 1 else 0.0,
                        "ACC before": statistics.fmean(r["acc_before"] for r in mine),
                        "ACC after re-tuning": statistics.fmean(r["acc_after"] for r in mine), "draws": len(mine)})
    return out


def reactivate_markdown(raw: dict[str, Any]) -> str:
    r = raw["retune"]
    return "\n\n".join([
        "# Does it stay erased? The re-activation check",
        f"Generated by `python -m purify_core.bench reactivate` (preset `{raw['preset']}`: {raw.get('preset_label', raw['preset'])}; "
        f"clean-set draws {raw['seeds']}). "
        + " ".join((__doc__ or "").split("\n\n")[1].split()),
        f"Re-tuning: {r['images']} training images of which {r['poisoned']} carry the trigger, {r['epochs']} epochs, "
        f"SGD lr {r['lr']} (momentum 0.9, cosine), batch {r['batch_size']}; the re-tuning set is drawn with the draw's seed. "
        "ACC and ASR in %, means over draws (sd: spread of the ASR after re-tuning). "
        f"`purified` is the `{raw['preset']}` preset; `{BASELINE}` is plain fine-tuning as every baseline runs it (`BASELINE_FINE_TUNING`: 20 epochs of the same SGD, no re-init or distillation).",
        markdown_table(raw["summary"], ("scenario", "model", "ASR before", "ASR after re-tuning", "sd", "ACC before", "ACC after re-tuning", "draws"), digits=1),
        f"Purification settings: `{raw['config']}`. Machine: `{raw['machine']}`.",
    ])
