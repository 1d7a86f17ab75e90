"""`python -m purify_core reactivate`: does a purification stay erased? (registered by `cli`).

Purifies the scenario's model with a preset (or runs a baseline defense), then re-tunes the
purified, the backdoored and a clean model briefly on the same small poisoned set and prints the
ASR each bounces back to. The check uses the trigger: the evaluator's view.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

from ..errors import UserInputError

__all__ = ["add_reactivate_command"]


def _config(args: argparse.Namespace):
    from ..config import check_seed
    from ..reactivate import ReactivateConfig

    return ReactivateConfig(images=args.images, poisoned=args.poisoned, epochs=args.epochs, lr=args.lr,
                            seed=check_seed(args.seed, "--seed"))  # named as the flag, before the config's own check


def _defend(args: argparse.Namespace, case) -> Any:
    """The purified model: the named preset's purification, or the named baseline defense."""
    from .method import _finish
    from ..defenses import DEFENSES, run_defense
    from ..purify import PURIFY_PRESETS, purify, purify_preset

    overrides = {"seed": args.seed, **({"epochs": args.purify_epochs} if args.purify_epochs is not None else {})}
    model, defense = case.backdoored.model, case.splits.defense
    if args.defense in PURIFY_PRESETS:
        run = purify(model, defense, purify_preset(args.defense, **overrides), case.evaluator())
    elif args.defense in DEFENSES:
        run = run_defense(args.defense, model, defense, purify_preset("default", **overrides), case.evaluator())
    else:
        raise UserInputError(f"unknown defense {args.defense!r}; choose a preset ({', '.join(PURIFY_PRESETS)}) "
                             f"or a baseline ({', '.join(DEFENSES)})")
    result = _finish(run, args)
    if result.model is None:
        raise UserInputError(f"the {args.defense} run diverged: {result.summary.reason}")
    return result


def _reactivate(args: argparse.Namespace, show: Callable) -> int:
    from .method import _scenario
    from ..clean_control import clean_model
    from ..reactivate import run_reactivation

    config = _config(args)  # bad settings fail here, before anything is trained
    if args.purify_epochs is not None and not 1 <= args.purify_epochs <= 1000:
        raise UserInputError(f"--purify-epochs must be a whole number from 1 to 1000, got {args.purify_epochs}")
    case = _scenario(args)
    result = _defend(args, case)
    models = {f"purified ({args.defense})": result.model, "backdoored": case.backdoored.model}
    if not args.no_clean:
        print("clean control: trained once per dataset and architecture, then cached ...", file=sys.stderr)
        models["clean"] = clean_model(case.backdoored.scenario)
    print(f"re-tuning {len(models)} models on {config.images} images, {config.poisoned} poisoned, {config.epochs} epochs ...", file=sys.stderr)
    report = run_reactivation(models, case.splits.train, case.splits.test, case.backdoored.attack, config)
    payload = {"scenario": case.backdoored.name, "seed": case.seed, "defense": args.defense,
               "purification": result.summary.as_dict(), "purify_config": result.config.to_dict(), **report.as_dict()}
    rows = [{"model": r["model"], "ACC before": r["acc_before"], "ASR before": r["asr_before"], "ACC after re-tuning": r["acc_after"],
             "ASR after re-tuning": r["asr_after"], "seconds": r["seconds"]} for r in report.as_dict()["rows"]]
    show(payload, rows, None)
    return 0


def add_reactivate_command(command: Callable[..., argparse.ArgumentParser], show_factory: Callable) -> None:
    """Register `reactivate` with `cli.build_parser`'s `command` helper."""
    from ..reactivate import ReactivateConfig

    d = ReactivateConfig()
    sub = command("reactivate", lambda args: _reactivate(args, show_factory(args)),
                  help="does it stay erased? re-tune the purified, backdoored and clean models on a few poisoned images (evaluator's view)")
    sub.add_argument("--scenario", help="a shipped scenario, e.g. mnist5k-smallcnn-badnets or just badnets")
    sub.add_argument("--checkpoint", help="your own model's weights (.safetensors, e.g. from train --out); needs --card")
    sub.add_argument("--card", help="the JSON card that describes --checkpoint (its scenario, attack and sha256)")
    sub.add_argument("--seed", type=int, default=0, help="clean defense set draw, and the re-tuning set's draw and order")
    sub.add_argument("--defense", default="default", help="a purification preset (default, reference, ...) or a baseline (finetune, ...)")
    sub.add_argument("--purify-epochs", type=int, help="override the purification's epochs (quick checks)")
    sub.add_argument("--images", type=int, default=d.images, help=f"size of the re-tuning set (default {d.images})")
    sub.add_argument("--poisoned", type=int, default=d.poisoned, help=f"how many of them carry the trigger (default {d.poisoned})")
    sub.add_argument("--epochs", type=int, default=d.epochs, help=f"re-tuning epochs (default {d.epochs})")
    sub.add_argument("--lr", type=float, default=d.lr, help=f"re-tuning learning rate (default {d.lr})")
    sub.add_argument("--no-clean", action="store_true", help="skip the clean control (it trains once, about a minute, then is cached)")
