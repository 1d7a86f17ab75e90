"""The method's subcommands: `rank`, `compare`, `purify` and `defend`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import UserInputError
from .arguments import case_from, key_value, model_options
from .output import print_result, print_step
from .registry import command

__all__ = ["purify_options", "purify_config", "run_printing_steps", "setting_flag", "defense_settings"]

_SEED_HELP = "which clean defense set (0 = the scenario's own) and shuffle seed"


class _PresetNames:
    """The purification presets as argparse choices, read when first needed (the presets import torch)."""

    def _names(self) -> list[str]:
        from ..method.purify import PURIFY_PRESETS

        return list(PURIFY_PRESETS)

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __iter__(self):
        return iter(self._names())


def purify_options(sub: argparse.ArgumentParser) -> None:
    """The settings of a purification (`purify`, and the fine-tuning loop of `defend`)."""
    sub.add_argument("--preset", default="default", choices=_PresetNames(),
                     help="purify: the recipe (default: the lab default); defend: the fine-tuning loop (default: the baselines' own, 20 epochs)")
    sub.add_argument("--threshold", type=float, help="fraction of neurons to mark, in [0, 0.8]")
    sub.add_argument("--regularizer", help="ar, l2, l1, prune or none")
    sub.add_argument("--strength", type=float, help="regularization strength (lambda)")
    sub.add_argument("--kappa", type=float, help="AR knee (default: 2 x each layer's weight spread)")
    sub.add_argument("--epochs", type=int)
    sub.add_argument("--lr", type=float)
    sub.add_argument("--direction", help="mark the lowest or highest scores")
    sub.add_argument("--scope", help="layer or global")
    sub.add_argument("--layers", help="all, conv, last-conv, final-linear, or comma-separated layer names")
    sub.add_argument("--metric", help="ranking that marks: salience, activation, magnitude, gradxact")
    sub.add_argument("--reinit", help="re-initialise before fine-tuning: none, dense, marked, or comma-separated layer names")
    sub.add_argument("--distill", type=float, help="weight of distillation from the original model, in [0, 1] (0 = off)")
    sub.add_argument("--temperature", type=float, help="distillation temperature")
    sub.add_argument("--distill-schedule", help="constant, or linear (the weight falls to 0 over the run)")
    sub.add_argument("--distill-view", help="the teacher's answers on: shifted (the step's own shifted images), "
                     "clean (each image as it is), or both (their mean)")
    sub.add_argument("--classifier-init", help="default, or zero: a re-initialised classifier starts at zero")
    sub.add_argument("--rotate", type=float, help="purify: turn each fine-tuning image by up to this many degrees, for the "
                     "purified model only (the distillation teacher answers it unturned); 0 = off; a defense runs without it")
    sub.add_argument("--scale", type=float, help="purify: scale each fine-tuning image by a factor in [1 - S, 1 + S], for the "
                     "purified model only; 0 = off; a defense runs without it")
    sub.add_argument("--run-seed", type=int, help="the run's own seed: the re-initialised weights and the batch order "
                     "(default: --seed); with --seed fixed, another run seed keeps the same clean defense set")


def purify_config(args: argparse.Namespace, baseline: bool = False) -> Any:
    """The preset with the flags that were given laid over it. `baseline` (`defend`): the preset
    "default" stands for the baselines' own loop, `BASELINE_FINE_TUNING`, not the lab's recipe."""
    from ..config import check_seed
    from ..method.neurons import LAYER_PRESETS
    from ..method.purify import baseline_config, purify_preset
    from ..method.steps import REINIT_CHOICES

    overrides = {k: v for k, v in {
        "threshold": args.threshold, "regularizer": args.regularizer, "strength": args.strength, "epochs": args.epochs,
        "direction": args.direction, "scope": args.scope, "lr": args.lr, "kappa": args.kappa, "metric": args.metric,
        "reinit": args.reinit if args.reinit is None or args.reinit in REINIT_CHOICES else tuple(args.reinit.split(",")),
        "distill": args.distill, "temperature": args.temperature, "distill_schedule": args.distill_schedule,
        "distill_view": args.distill_view, "classifier_init": args.classifier_init, "rotate": args.rotate, "scale": args.scale,
        "layers": args.layers if args.layers is None or args.layers in LAYER_PRESETS else tuple(args.layers.split(",")),
    }.items() if v is not None}
    seed = check_seed(args.seed, "--seed")  # named as the flag, before the config's own check
    if args.run_seed is not None:  # the benchmarks' draws x seeds: one clean set (--seed), several runs on it
        seed = check_seed(args.run_seed, "--run-seed")
    if baseline and args.preset == "default":
        return baseline_config(seed=seed, **overrides)
    return purify_preset(args.preset, seed=seed, **overrides)


def run_printing_steps(run: Any) -> Any:
    """A purification or defense run driven to its result, each measured step on stderr."""
    from ..study import purification_result

    return purification_result(run, on_step=print_step)


def _rank_options(sub: argparse.ArgumentParser) -> None:
    model_options(sub, _SEED_HELP)
    from ..method.rankings import RANKINGS

    listed = ", ".join(f"{r.name} ({r.label})" for r in RANKINGS.values())
    sub.add_argument("--metric", default="salience", help=f"one of the registered rankings: {listed}")
    sub.add_argument("--variant", help="benign salience variant: abs, squared or ema-signed (= --setting variant=V)")
    sub.add_argument("--setting", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                     help="a setting of the ranking (repeatable); each ranking's settings: "
                          + "; ".join(f"{r.name}: {', '.join(r.params)}" for r in RANKINGS.values() if r.params))


def _compare_options(sub: argparse.ArgumentParser) -> None:
    model_options(sub, _SEED_HELP)
    sub.add_argument("--top", type=float, default=0.05, help="share of each layer that counts as infected by TAC")
    sub.add_argument("--curves", action="store_true", help="add pruning curves (ACC and ASR vs fraction zeroed)")
    sub.add_argument("--direction", default="lowest", help="prune the lowest or highest scores in the curves")


def _purify_options(sub: argparse.ArgumentParser) -> None:
    model_options(sub, _SEED_HELP)
    purify_options(sub)


def setting_flag(defense: str, key: str) -> str:
    """A defense setting's flag: `--<defense>-<setting>`, e.g. `--fine-pruning-margin`."""
    return f"--{defense}-{key.replace('_', '-')}"


def _defend_options(sub: argparse.ArgumentParser) -> None:
    """The registry's defenses as choices, and each one's settings as a group of flags."""
    from ..defenses import DEFENSES

    model_options(sub, _SEED_HELP)
    def text(words: str) -> str:
        return words.replace("%", "%%")  # argparse formats help with %

    sub.add_argument("--defense", required=True, metavar="NAME", help=f"one of: {', '.join(DEFENSES)} (each is described below)")
    sub.add_argument("--margin", help="the chosen defense's margin setting, if it has one (the pruning defenses)")
    for d in DEFENSES.values():
        group = sub.add_argument_group(f"--defense {d.name}", f"{d.label}: {d.summary}. {d.source}. Settings: {d.selection}.")
        for key, spec in d.params.items():
            choices = f"; one of {', '.join(spec.choices)}" if spec.choices else ""
            group.add_argument(setting_flag(d.name, key), dest=f"setting:{d.name}:{key}", metavar=key.upper(),
                               help=text(f"{spec.help} (default {spec.default}{choices})"))
    purify_options(sub)


def defense_settings(args: argparse.Namespace) -> dict[str, str]:
    """The chosen defense's settings from its flags (checked by its ParamSpecs in `run_defense`).

    A flag of another defense is refused: it would silently do nothing.
    """
    from ..defenses import DEFENSES

    if args.defense not in DEFENSES:
        raise UserInputError(f"unknown defense {args.defense!r}; choose one of {', '.join(DEFENSES)}")
    settings: dict[str, str] = {}
    for dest, value in vars(args).items():
        if not dest.startswith("setting:") or value is None:
            continue
        _, owner, key = dest.split(":", 2)
        if owner != args.defense:
            raise UserInputError(f"{setting_flag(owner, key)} is a setting of {owner}, not of {args.defense}")
        settings[key] = value
    if args.margin is not None:
        settings.setdefault("margin", args.margin)
    return settings


@command("rank", "score every neuron with one ranking", _rank_options)
def rank(args: argparse.Namespace) -> int:
    from ..method.rankings import rank_neurons

    case = case_from(args)
    options = dict(args.setting)
    if args.variant is not None:
        options.setdefault("variant", args.variant)
    scores = rank_neurons(case.backdoored.model, case.splits.clean, args.metric, attack=case.backdoored.attack, **options)
    payload = {"scenario": case.backdoored.name, "metric": args.metric, "scores": {n: [round(float(v), 6) for v in s] for n, s in scores.items()}}
    rows = [{"layer": n, "neurons": len(s), "min": float(s.min()), "median": float(s.median()), "max": float(s.max()),
             "lowest 5": " ".join(str(int(i)) for i in s.argsort()[:5])} for n, s in scores.items()]
    print_result(args, payload, rows)
    return 0


@command("compare", "ranking quality against TAC (the evaluator's view)", _compare_options)
def compare(args: argparse.Namespace) -> int:
    from ..models.evaluate import percent
    from ..method.rankings import DEFENDER_METRICS, rank_neurons
    from ..method.rankings.quality import pruning_curve
    from ..study import grade_rankings

    if not 0 < args.top < 1:
        raise UserInputError(f"--top must be a fraction in (0, 1), got {args.top}")
    case = case_from(args)
    model, defense, attack = case.backdoored.model, case.splits.clean, case.backdoored.attack
    tac = rank_neurons(model, defense, "tac", attack=attack)
    scores = {metric: rank_neurons(model, defense, metric) for metric in DEFENDER_METRICS}
    rows = [grade.to_dict(digits=3) for grade in grade_rankings(scores, tac, args.top)]
    curves = {}
    if args.curves:
        evaluator = case.evaluator()
        for metric, metric_scores in scores.items():
            points = pruning_curve(model, metric_scores, evaluator, direction=args.direction)
            curves[metric] = [{"fraction": p.fraction, "acc": percent(p.acc), "asr": percent(p.asr)} for p in points]
    payload = {"scenario": case.backdoored.name, "top": args.top, "seed": args.seed, "oracle": "TAC and ASR use the trigger: the evaluator's view",
               "rankings": rows, "pruning_curves": curves}
    print_result(args, payload, rows)
    return 0


def _result_payload(case: Any, result: Any) -> dict[str, Any]:
    from ..study import summary_dict  # ACC, ASR, RA in %, and DER (a fraction in [0, 1])

    return {"scenario": case.backdoored.name, "seed": case.seed, **summary_dict(result.summary),
            "verdict": _verdict(result.summary), "config": result.config.to_dict()}


def _verdict(summary: Any) -> str:
    """Erased or not, by the one rule the app and the report use (`evaluation.verdict`)."""
    from ..evaluation.verdict import verdict

    return verdict(summary.before, summary.after).word


#: The CLI's columns for a run: its state, then the summary row (ACC before and after, then ASR).
_RUN_COLUMNS = ("status", "verdict", "marked", "steps", "ACC before", "ACC after", "ASR before", "ASR after", "RA after", "DER", "steps to ASR<5%", "seconds")


def _run_row(summary: Any) -> dict[str, Any]:
    from ..study import summary_row

    return {"status": summary.status, "verdict": _verdict(summary), "marked": summary.marked, "steps": summary.steps, **summary_row(summary)}


def _report(args: argparse.Namespace, payload: dict[str, Any], result: Any) -> int:
    """Print the result; a diverged run also says why on stderr and exits 1."""
    print_result(args, payload, [_run_row(result.summary)], _RUN_COLUMNS)
    if result.summary.status == "diverged":
        print(f"error: the run diverged: {result.summary.reason}", file=sys.stderr)
        return 1
    return 0


@command("purify", "mark neurons and purify a private copy", _purify_options)
def purify(args: argparse.Namespace) -> int:
    from ..method.purify import purify as run_purify

    config = purify_config(args)
    case = case_from(args)
    result = run_printing_steps(run_purify(case.backdoored.model, case.splits.clean, config, case.evaluator()))
    return _report(args, _result_payload(case, result), result)


@command("defend", "run a registered defense (fine-tuning, Fine-Pruning, ...) on a private copy", _defend_options)
def defend(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..defenses import check_defense_settings, run_defense

    # a baseline is run as published: the baselines' fine-tuning loop (or a named preset's), without the lab's re-init,
    # distillation, turns or scalings; asking for one of those here is a mistake worth a line, not a silent no-op
    lab_steps = {"--reinit": args.reinit, "--distill": args.distill, "--temperature": args.temperature,
                 "--distill-schedule": args.distill_schedule, "--distill-view": args.distill_view,
                 "--classifier-init": args.classifier_init, "--rotate": args.rotate, "--scale": args.scale}
    if given := [flag for flag, value in lab_steps.items() if value is not None]:
        raise UserInputError(f"{', '.join(given)}: purify's own step{'s' if len(given) > 1 else ''}, which a defense does not take "
                             "(it runs as published); use purify for them")
    config = replace(purify_config(args, baseline=True), reinit="none", distill=0.0)
    settings = defense_settings(args)
    check_defense_settings(args.defense, settings)  # before the model is loaded
    case = case_from(args)
    result = run_printing_steps(run_defense(args.defense, case.backdoored.model, case.splits.clean, config, case.evaluator(), settings=settings))
    return _report(args, {"defense": args.defense, "settings": check_defense_settings(args.defense, settings),
                          **_result_payload(case, result)}, result)
