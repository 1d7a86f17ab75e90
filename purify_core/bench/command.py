"""`python -m purify_core bench claims|perf|defaults|reactivate|heldout|arena`: results as JSON and a
markdown table in `--out` (default `benchmarks/`). Registered with the CLI like any subcommand."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

from ..cli.registry import command
from ..errors import UserInputError
from .sweep import SweepIncomplete, SweepOptions

__all__ = ["BENCHMARKS"]

BENCHMARKS = ("claims", "perf", "defaults", "reactivate", "heldout", "arena")


def _options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("which", choices=BENCHMARKS)
    sub.add_argument("--scenarios", nargs="*", help="substrings of shipped scenario names (default: all)")
    sub.add_argument("--seeds", "--draws", dest="seeds", type=int, default=3, help="draws of the clean defense set (claims, reactivate, arena)")
    sub.add_argument("--defenses", nargs="*", help="arena: only these defenses or paper presets (default: every registered one + default, reference)")
    sub.add_argument("--preset", default="default", help="purification preset the runs start from")
    sub.add_argument("--epochs", type=int, help="override the preset's epochs (quick checks)")
    sub.add_argument("--out", type=Path, default=Path("benchmarks"))
    sub.add_argument("--workers", type=int, default=0, help="jobs at once: local worker processes (default 0: one per core; "
                     "1: serially in this process), or the CPUs of a local Ray (--ray auto)")
    sub.add_argument("--ray", metavar="ADDRESS", help="run the grid's jobs on Ray: 'auto' starts a local Ray (or joins RAY_ADDRESS), "
                     "or give a cluster's address (ray://head:10001); every node needs this checkout and its zoo")
    sub.add_argument("--gpus-per-job", type=float, default=0.0, help="Ray: GPUs each job asks for (e.g. 0.5: two jobs share one)")
    sub.add_argument("--threads", type=int, default=1, help="torch threads per job, the same in every mode (so the records are too)")
    sub.add_argument("--recipes", type=int, help="defaults: only the first N recipes of the grid")
    sub.add_argument("--models", type=Path, help="heldout: a folder of models from train --out")
    sub.add_argument("--reuse", type=Path, help="claims: keep the rows of this earlier claims.json (same paper's loop) and run only the lab default's")
    sub.add_argument("--zoo", type=Path, help="claims: the models of this zoo folder (checkpoints with their cards, as `zoo build --out` "
                     "writes) instead of the shipped ones; --scenarios then names them exactly (default: all of them)")


def _sweep(args: argparse.Namespace) -> SweepOptions:
    """Where the grid's jobs run; the log that makes the benchmark resumable is `<out>/<which>.partial.jsonl`."""
    if args.workers < 0 or args.threads < 1 or args.gpus_per_job < 0:
        raise UserInputError("--workers must be >= 0, --threads >= 1 and --gpus-per-job >= 0")
    if args.gpus_per_job and not args.ray:
        raise UserInputError("--gpus-per-job asks Ray for GPUs: give --ray auto or --ray ADDRESS too")
    return SweepOptions(workers=args.workers, ray=args.ray, gpus_per_job=args.gpus_per_job, threads=args.threads,
                        log=args.out / f"{args.which}.partial.jsonl")


def _zoo_names(zoo: Path, asked: list[str] | None) -> list[str]:
    """The models of a zoo folder that `--scenarios` names exactly (all of them when it names none)."""
    from ..store.zoo import list_zoo

    if not zoo.is_dir():
        raise UserInputError(f"--zoo {zoo}: no such folder")
    there = [card.name for card in list_zoo(zoo)]
    if not there:
        raise UserInputError(f"--zoo {zoo}: no model card (*.json) in it")
    unknown = [name for name in asked or [] if name not in there]
    if unknown:
        raise UserInputError(f"--zoo {zoo} has no model named {', '.join(unknown)}; it holds {', '.join(there)}")
    return list(asked) if asked else there


def _run(args: argparse.Namespace, log: Callable[[str], None]) -> tuple[Any, str]:
    """The chosen benchmark's raw results and its markdown."""
    from ..method.purify import PurifyConfig, purify_preset

    if args.seeds < 1:
        raise UserInputError(f"--seeds must be at least 1, got {args.seeds}")
    sweep = _sweep(args)
    epochs = {"epochs": args.epochs} if args.epochs is not None else {}
    config = purify_preset(args.preset, **epochs)
    seeds = list(range(args.seeds))
    if args.which == "claims":
        from .claims import claims_markdown, run_claims

        names = _zoo_names(args.zoo, args.scenarios) if args.zoo else args.scenarios
        raw = run_claims(names, seeds, config, log, reuse=args.reuse, sweep=sweep, epochs=args.epochs,
                         zoo=str(args.zoo) if args.zoo else None)
        return raw, claims_markdown(raw)
    if args.which == "perf":
        from .perf import perf_markdown, run_perf

        raw = run_perf(args.scenarios, config)
        return raw, perf_markdown(raw)
    if args.which == "reactivate":
        from .reactivate import reactivate_markdown, run_reactivate

        raw = run_reactivate(args.scenarios, seeds, args.preset, config, log=log, sweep=sweep)
        return raw, reactivate_markdown(raw)
    if args.which == "arena":
        from .arena import arena_markdown, arena_sweep, contenders
        from .common import chosen_scenarios

        chosen = contenders(args.defenses)  # unknown names refused before any model loads
        raw = arena_sweep(chosen_scenarios(args.scenarios, seeds), seeds, chosen, args.epochs, log, sweep)
        return raw, arena_markdown(raw)
    if args.which == "heldout":
        from .heldout import heldout_markdown, run_heldout

        if args.models is None:
            raise UserInputError("heldout needs --models DIR (models from: python -m purify_core train ... --out DIR)")
        raw = run_heldout(args.models, seeds, config, log)
        return raw, heldout_markdown(raw)
    from .defaults import RECIPES, defaults_markdown, run_defaults

    # The grid's recipes are written against the dataclass's own defaults (the paper's AR loop),
    # not against a preset, so the chosen default does not feed back into its own grid.
    recipes = list(RECIPES)[: args.recipes] if args.recipes else None
    raw = run_defaults(args.scenarios, PurifyConfig(**epochs), log, recipes=recipes, sweep=sweep)
    return raw, defaults_markdown(raw)


@command("bench", "run a benchmark: claims, perf, defaults, reactivate, heldout or arena (results in benchmarks/)", _options, json=False)
def bench(args: argparse.Namespace) -> int:
    from .report import write_report

    try:
        raw, markdown = _run(args, lambda line: print(line, file=sys.stderr, flush=True))
    except SweepIncomplete as exc:  # the finished jobs stay in the log; the next start runs only the rest
        print(f"error: {exc}", file=sys.stderr)
        return 1
    paths = write_report(args.out, args.which, raw, markdown)  # only once the benchmark ran: a failed one writes nothing
    _sweep(args).log.unlink(missing_ok=True)  # every record is in the report now; a later run measures afresh
    print(markdown)
    print(f"\nwrote {paths[0]} and {paths[1]}", file=sys.stderr)
    return 0
