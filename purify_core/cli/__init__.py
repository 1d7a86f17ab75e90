"""`python -m purify_core`: the command line over the same functions the app uses.

Every subcommand prints a readable table, or JSON with `--json`. Bad input exits non-zero with
one line on stderr (`error: ...`), never a traceback. Progress goes to stderr, results to stdout.

Each module in `COMMAND_MODULES` registers its subcommands when imported (`registry.command`);
a new subcommand is a function with `@command` in one of them. The benchmarks register `bench`
the same way from their own package: the CLI names that module, it never uses the benchmarks' code.
"""

from __future__ import annotations

import argparse
import sys
from importlib import import_module
from typing import Sequence

from ..errors import UserInputError, one_line
from .registry import COMMANDS, Parser, add_commands

__all__ = ["main", "build_parser", "COMMAND_MODULES"]

#: Imported in this order, which is the order `--help` lists their subcommands.
COMMAND_MODULES = ("purify_core.cli.zoo", "purify_core.cli.models", "purify_core.cli.method", "purify_core.cli.reactivate",
                   "purify_core.bench.command")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every registered subcommand (their options are added when one is used)."""
    for name in COMMAND_MODULES:
        import_module(name)
    parser = Parser(prog="python -m purify_core", description="Purify Lab: backdoored models and their purification.")
    add_commands(parser, COMMANDS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UserInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the disk filled up or a folder became unwritable half-way: say which file, not a traceback
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: {one_line(f'{exc.strerror or exc}{where}')}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
