"""The method's subcommands: `rank`, `compare`, `purify`, `defend` (registered by `cli`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

from ..errors import UserInputError

__all__ = ["add_method_commands"]


def _scenario(args: argparse.Namespace):
    """The model to work on: a shipped scenario (`--scenario`, full name or a unique part such as
    `badnets`), or your own (`--checkpoint FILE --card FILE`); exactly one of the two."""
    from ..bench.common import Case, load_own
    from ..config import check_seed
    from ..data import redraw_defense
    from ..zoo import list_zoo, load_shipped

    own = (args.checkpoint is not None, args.card is not None)
    if args.scenario is not None and any(own):
        raise UserInputError("give either --scenario NAME or --checkpoint FILE --card FILE, not both")
    if args.scenario is None and not any(own):
        raise UserInputError("which model? give --scenario NAME (a shipped one) or --checkpoint FILE --card FILE (your own)")
    if any(own) and not all(own):
        raise UserInputError("--checkpoint and --card go together: the weights file and the card that describes it")
    check_seed(args.seed, "--seed")  # the one rule for every seed
    if all(own):
        backdoored = load_own(args.checkpoint, args.card)
        return Case(backdoored, redraw_defense(backdoored.splits(), args.seed), args.seed)
    names = [card.name for card in list_zoo()]
    matches = [n for n in names if n == args.scenario] or [n for n in names if args.scenario in n]
    if len(matches) != 1:
        raise UserInputError(
            f"{'no' if not matches else 'more than one'} shipped scenario matches {args.scenario!r}; shipped: {', '.join(names)}"
        )
    backdoored = load_shipped(matches[0])
    return Case(backdoored, redraw_defense(backdoored.splits(), args.seed), args.seed)


def _percent(x: float | None) -> float | None:
    return None if x is None else round(100 * x, 2)


def _rank(args: argparse.Namespace, show: Callable) -> int:
    from ..rankings import rank_neurons

    case = _scenario(args)
    options = {"variant": args.variant} if args.metric == "salience" else {}
    scores = rank_neurons(case.backdoored.model, case.splits.defense, args.metric, attack=case.backdoored.attack, **options)
    payload = {"scenario": case.backdoored.name, "metric": args.metric, "scores": {n: [round(float(v), 6) for v in s] for n, s in scores.items()}}
    rows = [{"layer": n, "neurons": len(s), "min": float(s.min()), "median": float(s.median()), "max": float(s.max()),
             "lowest 5": " ".join(str(int(i)) for i in s.argsort()[:5])} for n, s in scores.items()]
    show(payload, rows, ["layer", "neurons", "min", "median", "max", "lowest 5"])
    return 0


def _compare(args: argparse.Namespace, show: Callable) -> int:
    from ..rankings import DEFENDER_METRICS, rank_neurons
    from ..rankings.quality import pruning_curve, ranking_quality

    if not 0 < args.top < 1:
        raise UserInputError(f"--top must be a fraction in (0, 1), got {args.top}")
    case = _scenario(args)
    model, defense, attack = case.backdoored.model, case.splits.defense, case.backdoored.attack
    tac = rank_neurons(model, defense, "tac", attack=attack)
    rows, curves = [], {}
    for metric in DEFENDER_METRICS:
        scores = rank_neurons(model, defense, metric)
        low, high = ranking_quality(scores, tac, args.top, "lowest"), ranking_quality(scores, tac, args.top, "highest")
        rows.append({"metric": metric, "auc_low": round(low.auc, 3), "precision_low": round(low.precision_at_k, 3),
                     "auc_high": round(high.auc, 3), "precision_high": round(high.precision_at_k, 3), "spearman_tac": round(low.spearman, 3)})
        if args.curves:
            points = pruning_curve(model, scores, case.evaluator(), direction=args.direction)
            curves[metric] = [{"fraction": p.fraction, "acc": _percent(p.acc), "asr": _percent(p.asr)} for p in points]
    payload = {"scenario": case.backdoored.name, "top": args.top, "seed": args.seed, "oracle": "TAC and ASR use the trigger: the evaluator's view",
               "rankings": rows, "pruning_curves": curves}
    show(payload, rows, list(rows[0]))
    return 0


def _finish(run, args: argparse.Namespace) -> Any:
    item = None
    for item in run:
        if getattr(item, "acc", None) is not None:
            print(f"  step {item.step}/{item.steps}: ACC {100 * item.acc:.1f}%, ASR {100 * (item.asr or 0):.1f}%", file=sys.stderr)
    return item


def _result_payload(case, result) -> dict[str, Any]:
    summary = result.summary.as_dict()
    return {"scenario": case.backdoored.name, "seed": case.seed, **summary, "config": result.config.to_dict()}


def _result_rows(payload: dict[str, Any]) -> list[dict[str, Any]]:
    before, after = payload["before"] or {}, payload["after"] or {}
    return [{"status": payload["status"], "marked": payload["marked"], "steps": payload["steps"],
             "ACC before": before.get("acc"), "ACC after": after.get("acc"), "ASR before": before.get("asr"),
             "ASR after": after.get("asr"), "steps to ASR<5%": payload["steps_to_erase"], "seconds": round(payload["seconds"], 1)}]


def _report(show: Callable, payload: dict[str, Any], result) -> int:
    """Print the result; a diverged run also says why on stderr and exits 1."""
    show(payload, _result_rows(payload), None)
    if result.summary.status == "diverged":
        print(f"error: the run diverged: {result.summary.reason}", file=sys.stderr)
        return 1
    return 0


def _purify_config(args: argparse.Namespace):
    from ..config import check_seed
    from ..neurons import LAYER_PRESETS
    from ..steps import REINIT_CHOICES
    from ..purify import purify_preset

    overrides = {k: v for k, v in {
        "threshold": args.threshold, "regularizer": args.regularizer, "strength": args.strength, "epochs": args.epochs,
        "direction": args.direction, "scope": args.scope, "lr": args.lr, "kappa": args.kappa, "metric": args.metric,
        "reinit": args.reinit if args.reinit is None or args.reinit in REINIT_CHOICES else tuple(args.reinit.split(",")),
        "distill": args.distill, "temperature": args.temperature, "distill_schedule": args.distill_schedule,
        "layers": args.layers if args.layers is None or args.layers in LAYER_PRESETS else tuple(args.layers.split(",")),
    }.items() if v is not None}
    return purify_preset(args.preset, seed=check_seed(args.seed, "--seed"), **overrides)  # named as the flag, before the config's own check


def _purify(args: argparse.Namespace, show: Callable) -> int:
    from ..purify import purify

    config = _purify_config(args)
    case = _scenario(args)
    result = _finish(purify(case.backdoored.model, case.splits.defense, config, case.evaluator()), args)
    payload = _result_payload(case, result)
    return _report(show, payload, result)


def _defend(args: argparse.Namespace, show: Callable) -> int:
    from dataclasses import replace

    from ..defenses import run_defense

    # a baseline is run as published: the preset's fine-tuning loop, without the lab's re-init or distillation
    config = replace(_purify_config(args), reinit="none", distill=0.0)
    case = _scenario(args)
    result = _finish(run_defense(args.defense, case.backdoored.model, case.splits.defense, config, case.evaluator(), margin=args.margin), args)
    payload = {"defense": args.defense, **_result_payload(case, result)}
    return _report(show, payload, result)


def _purify_options(sub: argparse.ArgumentParser) -> None:
    from ..purify import PURIFY_PRESETS

    sub.add_argument("--preset", default="default", choices=list(PURIFY_PRESETS))
    sub.add_argument("--threshold", type=float, help="fraction of neurons to mark, in [0, 0.5]")
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


def add_method_commands(command: Callable[..., argparse.ArgumentParser], show_factory: Callable) -> None:
    """Register the method's subcommands with `cli.build_parser`'s `command` helper."""

    def wrap(func: Callable) -> Callable[[argparse.Namespace], int]:
        return lambda args: func(args, show_factory(args))

    def common(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument("--scenario", help="a shipped scenario, e.g. mnist5k-smallcnn-badnets or just badnets")
        sub.add_argument("--checkpoint", help="your own model's weights (.safetensors, e.g. from train --out); needs --card")
        sub.add_argument("--card", help="the JSON card that describes --checkpoint (its scenario, attack and sha256)")
        sub.add_argument("--seed", type=int, default=0, help="which clean defense set (0 = the scenario's own) and shuffle seed")
        return sub

    rank = common(command("rank", wrap(_rank), help="score every neuron with one ranking"))
    rank.add_argument("--metric", default="salience", help="salience, activation, magnitude, gradxact or tac (oracle)")
    rank.add_argument("--variant", default="abs", help="benign salience variant: abs, squared or ema-signed")
    compare = common(command("compare", wrap(_compare), help="ranking quality against TAC (the evaluator's view)"))
    compare.add_argument("--top", type=float, default=0.05, help="share of each layer that counts as infected by TAC")
    compare.add_argument("--curves", action="store_true", help="add pruning curves (ACC and ASR vs fraction zeroed)")
    compare.add_argument("--direction", default="lowest", help="prune the lowest or highest scores in the curves")
    _purify_options(common(command("purify", wrap(_purify), help="mark neurons and purify a private copy")))
    defend = common(command("defend", wrap(_defend), help="run a baseline defense: finetune, fine-pruning, magnitude-pruning"))
    defend.add_argument("--defense", required=True, help="finetune, fine-pruning or magnitude-pruning")
    defend.add_argument("--margin", type=float, default=0.04, help="defense-set accuracy a pruning defense may give up")
    _purify_options(defend)
