"""`python -m purify_core.bench claims|perf|defaults|reactivate|heldout`: results as JSON and a markdown table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from ..errors import UserInputError
from ..purify import purify_preset


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m purify_core.bench", description=__doc__)
    parser.add_argument("which", choices=("claims", "perf", "defaults", "reactivate", "heldout"))
    parser.add_argument("--scenarios", nargs="*", help="substrings of shipped scenario names (default: all)")
    parser.add_argument("--seeds", type=int, default=3, help="draws of the clean defense set (claims)")
    parser.add_argument("--preset", default="default", help="purification preset the runs start from")
    parser.add_argument("--epochs", type=int, help="override the preset's epochs (quick checks)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks"))
    parser.add_argument("--workers", type=int, default=2, help="parallel runs (defaults)")
    parser.add_argument("--recipes", type=int, help="defaults: only the first N recipes of the grid")
    parser.add_argument("--models", type=Path, help="heldout: a folder of models from train --out")
    parser.add_argument("--reuse", type=Path, help="claims: keep the rows of this earlier claims.json (same paper's loop) and run only the lab default's")
    args = parser.parse_args(argv)
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    try:
        if args.seeds < 1:
            raise UserInputError(f"--seeds must be at least 1, got {args.seeds}")
        config = purify_preset(args.preset, **({"epochs": args.epochs} if args.epochs is not None else {}))
        if args.which == "claims":
            from .claims import claims_markdown, run_claims

            raw = run_claims(args.scenarios, list(range(args.seeds)), config, log, reuse=args.reuse)
            markdown = claims_markdown(raw)
        elif args.which == "perf":
            from .perf import perf_markdown, run_perf

            raw = run_perf(args.scenarios, config)
            markdown = perf_markdown(raw)
        elif args.which == "reactivate":
            from .reactivate import reactivate_markdown, run_reactivate

            raw = run_reactivate(args.scenarios, list(range(args.seeds)), args.preset, config, log=log)
            markdown = reactivate_markdown(raw)
        elif args.which == "heldout":
            from .heldout import heldout_markdown, run_heldout

            if args.models is None:
                raise UserInputError("heldout needs --models DIR (models from: python -m purify_core train ... --out DIR)")
            raw = run_heldout(args.models, list(range(args.seeds)), config, log)
            markdown = heldout_markdown(raw)
        else:
            from ..purify import PurifyConfig
            from .defaults import defaults_markdown, run_defaults

            # The grid's recipes are written against the dataclass's own defaults (the paper's AR loop),
            # not against a preset, so the chosen default does not feed back into its own grid.
            base = PurifyConfig(**({"epochs": args.epochs} if args.epochs is not None else {}))
            from .defaults import RECIPES

            recipes = list(RECIPES)[: args.recipes] if args.recipes else None
            raw = run_defaults(args.scenarios, base, log, partial=args.out / "defaults.partial.jsonl", workers=args.workers, recipes=recipes)
            markdown = defaults_markdown(raw)
    except UserInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    from .report import write_report

    paths = write_report(args.out, args.which, raw, markdown)
    print(markdown)
    print(f"\nwrote {paths[0]} and {paths[1]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
