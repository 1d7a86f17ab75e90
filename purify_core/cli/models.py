"""`train`, `import` and `evaluate`: make a backdoored model, bring your own, measure one."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..errors import UserInputError
from .arguments import scenario_from, scenario_options
from .output import EpochProgress, print_result
from .registry import command
from .zoo import card_row

__all__: list[str] = []


def _train_options(sub: argparse.ArgumentParser) -> None:
    scenario_options(sub)
    sub.add_argument("--no-clean-reference", action="store_true", help="skip training the clean model for the card")
    sub.add_argument("--out", required=True, help="folder for <name>.safetensors and <name>.json")


def _import_options(sub: argparse.ArgumentParser) -> None:
    scenario_options(sub)
    sub.add_argument("--weights", required=True, help=".safetensors, or a .pt/.pth state dict (read with weights_only=True)")


def _evaluate_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--checkpoint", required=True, type=Path)
    sub.add_argument("--card", required=True, type=Path)


@command("train", "poison a dataset and train a backdoored model", _train_options)
def train(args: argparse.Namespace) -> int:
    from ..store.backdoored import check_scenario
    from ..store.checkpoints import check_writable
    from ..store.zoo import build

    scenario = scenario_from(args)
    check_writable(args.out, "the output folder")  # first: loading a large dataset can take minutes
    check_scenario(scenario)
    print(f"training {scenario.name} ...", file=sys.stderr)
    card = build(scenario, Path(args.out), with_clean_reference=not args.no_clean_reference, on_progress=EpochProgress()).card
    row = {**card_row(card), "weights": str(Path(args.out) / f"{card.name}.safetensors"), "card": str(Path(args.out) / f"{card.name}.json")}
    print_result(args, row, [row], ["name", "acc", "asr", "clean_acc", "train_seconds", "weights"])
    return 0


@command("import", "check your own weights for a scenario, measure ACC and ASR, and keep them for the app", _import_options)
def import_(args: argparse.Namespace) -> int:
    from ..store.backdoored import check_scenario
    from ..store.uploads import check_size, import_weights

    path = Path(args.weights)
    if not path.is_file():
        raise UserInputError(f"weights file {path} does not exist")
    check_size(path.stat().st_size, path.name)  # before reading it into memory
    scenario = scenario_from(args)
    check_scenario(scenario)  # data, trigger and model size, before the weights are read or a model is built
    saved = import_weights(path.read_bytes(), path.name, scenario, prefix="import")
    row = card_row(saved.card)
    print(f"kept in the model cache: the app lists it as {saved.card.name} (?scenario={saved.card.name})", file=sys.stderr)
    print_result(args, row, [row], ["name", "acc", "asr"])
    return 0


@command("evaluate", "ACC and ASR of a checkpoint", _evaluate_options)
def evaluate(args: argparse.Namespace) -> int:
    from ..store.backdoored import load_pair
    from ..data.splits import load_splits
    from ..models.evaluate import evaluate as measure

    backdoored = load_pair(args.checkpoint, args.card, None)
    card = backdoored.card
    splits = load_splits(backdoored.scenario.data)
    start = time.perf_counter()
    metrics = measure(backdoored.model, splits.test, backdoored.attack)
    row = {"name": card.name, **metrics.as_percent(), "card_acc": card.acc, "card_asr": card.asr, "seconds": round(time.perf_counter() - start, 2)}
    print_result(args, row, [row], list(row))
    return 0
