"""The table of subcommands: each command module registers its own with `@command`, and
`add_commands` turns the table into argparse subparsers.

A subcommand's options are added only when that subcommand is parsed (or its `--help` shown):
option definitions may need the core's constants, which import torch, and `--help` or a mistyped
command must not wait seconds for that.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, NoReturn, Sequence

from ..errors import one_line

__all__ = ["Parser", "Command", "command", "group", "add_commands", "COMMANDS"]

Options = Callable[[argparse.ArgumentParser], None]
Handler = Callable[[argparse.Namespace], int]


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one clear line and exit code 2, and options may come late."""

    def __init__(self, *args: Any, options: Options | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._pending_options = options

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {one_line(message)} (see: {self.prog} --help)\n")

    def add_pending_options(self) -> None:
        """Add this subcommand's options now (once): it is about to be parsed or described."""
        pending, self._pending_options = self._pending_options, None
        if pending is not None:
            pending(self)

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None) -> Any:
        self.add_pending_options()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self.add_pending_options()
        return super().format_help()


@dataclass(frozen=True)
class Command:
    """One subcommand: `name` (under `group`, e.g. `zoo list`), what it does, its options, its handler."""

    name: str
    run: Handler
    help: str
    options: Options | None = None
    group: str | None = None
    json: bool = True  # every command that prints results can print them as JSON


COMMANDS: list[Command] = []  # in registration order: the order `--help` lists them
GROUPS: dict[str, str] = {}  # a group of subcommands (`zoo`) -> its help


def group(name: str, help: str) -> None:
    """Declare a group of subcommands, e.g. `zoo` for `zoo list|build|verify`."""
    GROUPS[name] = help


def command(name: str, help: str, options: Options | None = None, *, group: str | None = None,
            json: bool = True) -> Callable[[Handler], Handler]:
    """Register the decorated function as subcommand `name`; it gets the parsed args and returns the exit code."""

    def register(run: Handler) -> Handler:
        if group is not None and group not in GROUPS:
            raise ValueError(f"declare the group {group!r} before its commands")
        COMMANDS.append(Command(name, run, help, options, group, json))
        return run

    return register


def _add_options(cmd: Command, sub: argparse.ArgumentParser) -> None:
    if cmd.json:
        sub.add_argument("--json", action="store_true", help="print JSON instead of a table")
    if cmd.options is not None:
        cmd.options(sub)


def add_commands(parser: argparse.ArgumentParser, commands: Sequence[Command]) -> None:
    """Every registered command as a subparser of `parser` (groups as a second level)."""
    top = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    groups: dict[str, Any] = {}
    for cmd in commands:
        parent = top
        if cmd.group is not None:
            if cmd.group not in groups:
                grouped = top.add_parser(cmd.group, help=GROUPS[cmd.group])
                groups[cmd.group] = grouped.add_subparsers(dest=f"{cmd.group}_command", required=True, parser_class=Parser)
            parent = groups[cmd.group]
        sub = parent.add_parser(cmd.name, help=cmd.help, options=partial(_add_options, cmd))
        sub.set_defaults(func=cmd.run)
