"""`zoo list|build|verify`: the shipped backdoored checkpoints and their cards."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import UserInputError
from .arguments import points
from .output import EpochProgress, print_result
from .registry import command, group

__all__ = ["card_row"]

group("zoo", help="shipped backdoored checkpoints")


def card_row(card: Any) -> dict[str, Any]:
    """A model card's numbers as one table row (also `train` and `import`)."""
    return {
        "name": card.name,
        "acc": card.acc,
        "asr": card.asr,
        "clean_acc": card.clean_acc,
        "clean_asr": card.clean_asr,
        "train_seconds": card.train_seconds,
        "clean_train_seconds": card.clean_train_seconds,
        "sha256": card.sha256,
    }


def _zoo_dir(args: argparse.Namespace) -> Path:
    """`--zoo-dir`, or the shipped zoo (looked up here, not at parse time: it imports torch)."""
    if args.zoo_dir is not None:
        return Path(args.zoo_dir)
    from ..store.zoo import ZOO_DIR

    return ZOO_DIR


def _existing_zoo(args: argparse.Namespace) -> Path:
    """`--zoo-dir`, refused when it is not a folder (a typo would otherwise read as an empty zoo)."""
    folder = _zoo_dir(args)
    if not folder.is_dir():
        raise UserInputError(f"zoo folder {folder} does not exist; check --zoo-dir")
    return folder


def _zoo_option(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--zoo-dir", type=Path, default=None, help="folder of .safetensors + .json cards")


def _build_options(sub: argparse.ArgumentParser) -> None:
    _zoo_option(sub)
    sub.add_argument("--only", help="rebuild just this scenario")
    sub.add_argument("--out", help="write here instead of the zoo folder")
    sub.add_argument("--new", action="store_true", help="--zoo-dir holds no cards yet: build the shipped scenarios there")


def _verify_options(sub: argparse.ArgumentParser) -> None:
    _zoo_option(sub)
    sub.add_argument("--tolerance", type=points, default=0.5, help="allowed difference, in points [0, 100]")


@command("list", "list shipped checkpoints and their cards", _zoo_option, group="zoo")
def zoo_list(args: argparse.Namespace) -> int:
    folder = _existing_zoo(args)  # a wrong --zoo-dir is answered before the zoo's imports
    from ..store.zoo import list_zoo

    rows = [card_row(c) for c in list_zoo(folder)]
    print_result(args, rows, rows, ["name", "acc", "asr", "clean_acc", "train_seconds"], empty="the zoo is empty")
    return 0


@command("build", "rebuild checkpoints from their cards (deterministic)", _build_options, group="zoo")
def zoo_build(args: argparse.Namespace) -> int:
    from ..store.zoo import build, list_zoo, shipped_scenarios

    zoo_dir = _zoo_dir(args)
    old_cards = {c.name: c for c in list_zoo(zoo_dir)} if zoo_dir.is_dir() else {}
    if not old_cards and not args.new:  # a typo in --zoo-dir must not retrain every shipped model into a new folder
        raise UserInputError(f"zoo folder {zoo_dir} holds no model cards; check --zoo-dir, or pass --new to build the shipped scenarios there")
    # Cards say how to rebuild; a new zoo folder (--new) gets the default shipped scenarios.
    scenarios = {n: c.scenario_config for n, c in old_cards.items()} or {s.name: s for s in shipped_scenarios()}
    if args.only:
        if args.only not in scenarios:
            raise UserInputError(f"no scenario named {args.only!r} in {zoo_dir}; known: {', '.join(scenarios)}")
        scenarios = {args.only: scenarios[args.only]}
    out_dir = Path(args.out or zoo_dir)
    rows = []
    for name, scenario in scenarios.items():
        print(f"building {name} ...", file=sys.stderr)
        new = build(scenario, out_dir, with_clean_reference=True, on_progress=EpochProgress()).card
        old = old_cards.get(name)
        rows.append({**card_row(new), "same_sha256_as_before": None if old is None else old.sha256 == new.sha256})
    print_result(args, rows, rows, ["name", "acc", "asr", "clean_acc", "train_seconds", "same_sha256_as_before"])
    return 0


@command("verify", "re-evaluate every checkpoint and compare with its card", _verify_options, group="zoo")
def zoo_verify(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from ..store.zoo import verify

    results = verify(_existing_zoo(args), tolerance=args.tolerance)
    rows = [asdict(r) for r in results]
    print_result(args, rows, rows, ["name", "card_acc", "acc", "card_asr", "asr", "ok", "message"], empty="the zoo is empty")
    return 0 if results and all(r.ok for r in results) else 1
