"""`reactivate`: does a purification stay erased?

Purifies the scenario's model with a preset (or runs a baseline defense), then re-tunes the
purified, the backdoored and a clean model briefly on the same small poisoned set and prints the
ASR each bounces back to. The check uses the trigger: the evaluator's view.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import UserInputError
from .arguments import case_from, model_options
from .method import run_printing_steps
from .output import print_result
from .registry import command

__all__: list[str] = []


def _config(args: argparse.Namespace) -> Any:
    from ..config import check_seed
    from ..evaluation.reactivate import ReactivateConfig

    return ReactivateConfig(images=args.images, poisoned=args.poisoned, epochs=args.epochs, lr=args.lr,
                            seed=check_seed(args.seed, "--seed"))  # named as the flag, before the config's own check


def _defend(args: argparse.Namespace, case: Any) -> Any:
    """The purified model: the named preset's purification, or the named baseline defense."""
    from ..defenses import DEFENSES, run_defense
    from ..method.purify import PURIFY_PRESETS, baseline_config, purify, purify_preset

    overrides = {"seed": args.seed, **({"epochs": args.purify_epochs} if args.purify_epochs is not None else {})}
    model, defense = case.backdoored.model, case.splits.clean
    if args.defense in PURIFY_PRESETS:
        run = purify(model, defense, purify_preset(args.defense, **overrides), case.evaluator())
    elif args.defense in DEFENSES:
        run = run_defense(args.defense, model, defense, baseline_config(**overrides), case.evaluator())
    else:
        raise UserInputError(f"unknown defense {args.defense!r}; choose a preset ({', '.join(PURIFY_PRESETS)}) "
                             f"or a baseline ({', '.join(DEFENSES)})")
    result = run_printing_steps(run)
    if result.model is None:
        raise UserInputError(f"the {args.defense} run diverged: {result.summary.reason}")
    return result


def _options(sub: argparse.ArgumentParser) -> None:
    from ..evaluation.reactivate import ReactivateConfig  # its defaults are the help's: read when this command is used

    d = ReactivateConfig()
    model_options(sub, "clean defense set draw, and the re-tuning set's draw and order")
    sub.add_argument("--defense", default="default", help="a purification preset (default, reference, ...) or a baseline (finetune, ...)")
    sub.add_argument("--purify-epochs", type=int, help="override the purification's epochs (quick checks)")
    sub.add_argument("--images", type=int, default=d.images, help=f"size of the re-tuning set (default {d.images})")
    sub.add_argument("--poisoned", type=int, default=d.poisoned, help=f"how many of them carry the trigger (default {d.poisoned})")
    sub.add_argument("--epochs", type=int, default=d.epochs, help=f"re-tuning epochs (default {d.epochs})")
    sub.add_argument("--lr", type=float, default=d.lr, help=f"re-tuning learning rate (default {d.lr})")
    sub.add_argument("--no-clean", action="store_true", help="skip the clean control (it trains once, about a minute, then is cached)")


@command("reactivate", "does it stay erased? re-tune the purified, backdoored and clean models on a few poisoned images (evaluator's view)",
         _options)
def reactivate(args: argparse.Namespace) -> int:
    from ..evaluation.clean_control import clean_model
    from ..evaluation.reactivate import run_reactivation

    config = _config(args)  # bad settings fail here, before anything is trained
    if args.purify_epochs is not None and not 1 <= args.purify_epochs <= 1000:
        raise UserInputError(f"--purify-epochs must be a whole number from 1 to 1000, got {args.purify_epochs}")
    case = case_from(args)
    result = _defend(args, case)
    models = {f"purified ({args.defense})": result.model, "backdoored": case.backdoored.model}
    if not args.no_clean:
        print("clean control: trained once per dataset and architecture, then cached ...", file=sys.stderr)
        models["clean"] = clean_model(case.backdoored.scenario)
    print(f"re-tuning {len(models)} models on {config.images} images, {config.poisoned} poisoned, {config.epochs} epochs ...", file=sys.stderr)
    report = run_reactivation(models, case.splits.train, case.splits.test, case.backdoored.attack, config)
    report_dict = report.to_dict()
    payload = {"scenario": case.backdoored.name, "seed": case.seed, "defense": args.defense,
               "purification": result.summary.to_dict(), "purify_config": result.config.to_dict(), **report_dict}
    rows = [{"model": r["model"], "ACC before": r["acc_before"], "ASR before": r["asr_before"], "ACC after re-tuning": r["acc_after"],
             "ASR after re-tuning": r["asr_after"], "seconds": r["seconds"]} for r in report_dict["rows"]]
    print_result(args, payload, rows)
    return 0
