"""The package's front doors: `purify_core`'s public names load on first use, and the CLI's
subcommands register themselves and add their options only when used."""

from __future__ import annotations

import argparse
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

import purify_core
from purify_core.cli.registry import Command, Parser, add_commands


@pytest.mark.parametrize("name", purify_core.__all__)
def test_every_public_name_loads_from_its_module(name):
    value = getattr(purify_core, name)
    assert not inspect.ismodule(value), f"purify_core.{name} is a module, not the public {name}"


def test_purify_and_evaluate_stay_functions_after_their_modules_load():
    import purify_core.models.evaluate  # noqa: F401  (loads the submodules of the same names)
    import purify_core.method.purify  # noqa: F401
    from purify_core import evaluate, purify

    assert inspect.isfunction(purify) and inspect.isfunction(evaluate)


def test_a_name_that_is_not_public_is_an_attribute_error():
    with pytest.raises(AttributeError):
        purify_core.no_such_name  # noqa: B018


def test_a_registered_command_gets_its_options_only_when_it_is_parsed():
    added: list[str] = []

    def options(sub: argparse.ArgumentParser) -> None:
        added.append(sub.prog)
        sub.add_argument("--size", type=int, default=3)

    parser = Parser(prog="tool")
    add_commands(parser, [Command("grow", lambda args: args.size, "grow it", options), Command("other", lambda args: 0, "other")])
    assert added == [] and "grow it" in parser.format_help()
    args = parser.parse_args(["grow", "--size", "5", "--json"])
    assert added == ["tool grow"] and args.func(args) == 5 and args.json
    assert parser.parse_args(["other"]).func is not None and added == ["tool grow"]


def test_every_benchmark_script_imports_as_python_m_imports_it():
    """`python -m benchmarks.NAME` first imports the module from the repository root, without tests/ on the path
    (pytest puts it there): upload_health once reached its hostile files through a test module and failed there."""
    root = Path(__file__).resolve().parent.parent
    scripts = sorted(p.stem for p in (root / "benchmarks").glob("*.py") if p.stem != "__init__")
    assert {"load", "upload_health"} <= set(scripts)
    done = subprocess.run([sys.executable, "-c", "; ".join(f"import benchmarks.{s}" for s in scripts)], cwd=root,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": ""})
    assert done.returncode == 0, done.stderr[-2000:]
