"""Options several subcommands share, and reading them: a scenario to train or import for, and
the model a method command works on (a shipped scenario or your own checkpoint and card)."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import UserInputError

__all__ = ["key_value", "points", "parse_scalar", "scenario_options", "scenario_from", "model_options", "case_from"]


def key_value(text: str) -> tuple[str, str]:
    """`KEY=VALUE` (an attack parameter)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return key.strip(), value.strip()


def points(text: str) -> float:
    """A tolerance in points: a finite number in [0, 100] (NaN would make every comparison pass or fail)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of points, got {text!r}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be a number of points in [0, 100], got {text}")
    return value


def parse_scalar(value: str) -> int | float | str | bool:
    """An attack parameter's value: a whole number, a number, true/false, or text."""
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(value.lower(), value)


def scenario_options(sub: argparse.ArgumentParser) -> None:
    """The scenario: the data, architecture and attack the weights belong to (`train`, `import`)."""
    sub.add_argument("--dataset", default="mnist5k")
    sub.add_argument("--data-root", default=None, help="folder of cifar10 / gtsrb / imagefolder data")
    sub.add_argument("--download", action="store_true", help="download cifar10 / gtsrb if missing (needs internet)")
    sub.add_argument("--model", default="smallcnn", help="smallcnn, smallvgg, preactresnet18 or tv:<torchvision name>")
    sub.add_argument("--attack", default="badnets")
    sub.add_argument("--attack-param", type=key_value, action="append", default=[], metavar="KEY=VALUE")
    sub.add_argument("--poison-rate", type=float, default=0.1)
    sub.add_argument("--target", type=int, default=0)
    sub.add_argument("--seed", type=int, default=0)
    sub.add_argument("--epochs", type=int, default=8)
    sub.add_argument("--batch-size", type=int, default=64)
    sub.add_argument("--lr", type=float, default=0.01)


def scenario_from(args: argparse.Namespace) -> Any:
    """The `Scenario` that `scenario_options` describe."""
    from ..config import AttackConfig, DataConfig, ModelConfig, Scenario, TrainConfig

    params = {k: parse_scalar(v) for k, v in args.attack_param}
    return Scenario(
        data=DataConfig(dataset=args.dataset, root=args.data_root, download=args.download),
        model=ModelConfig(args.model),
        attack=AttackConfig.of(args.attack, args.target, args.poison_rate, **params),
        train=TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr),
        seed=args.seed,
    )


def model_options(sub: argparse.ArgumentParser, seed_help: str) -> None:
    """Which model to work on, and which draw of its clean defense set."""
    sub.add_argument("--scenario", help="a shipped scenario, e.g. mnist5k-smallcnn-badnets or just badnets")
    sub.add_argument("--checkpoint", help="your own model's weights (.safetensors, e.g. from train --out); needs --card")
    sub.add_argument("--card", help="the JSON card that describes --checkpoint (its scenario, attack and sha256)")
    sub.add_argument("--seed", type=int, default=0, help=seed_help)


def case_from(args: argparse.Namespace) -> Any:
    """The model to work on: a shipped scenario (`--scenario`, full name or a unique part such as
    `badnets`), or your own (`--checkpoint FILE --card FILE`); exactly one of the two."""
    from ..store.backdoored import load_pair
    from ..config import check_seed
    from ..study import case_of
    from ..store.zoo import list_zoo, load_shipped

    own = (args.checkpoint is not None, args.card is not None)
    if args.scenario is not None and any(own):
        raise UserInputError("give either --scenario NAME or --checkpoint FILE --card FILE, not both")
    if args.scenario is None and not any(own):
        raise UserInputError("which model? give --scenario NAME (a shipped one) or --checkpoint FILE --card FILE (your own)")
    if any(own) and not all(own):
        raise UserInputError("--checkpoint and --card go together: the weights file and the card that describes it")
    check_seed(args.seed, "--seed")  # the one rule for every seed
    if all(own):
        return case_of(load_pair(args.checkpoint, args.card, None), args.seed)
    names = [card.name for card in list_zoo()]
    matches = [n for n in names if n == args.scenario] or [n for n in names if args.scenario in n]
    if len(matches) != 1:
        raise UserInputError(
            f"{'no' if not matches else 'more than one'} shipped scenario matches {args.scenario!r}; shipped: {', '.join(names)}"
        )
    return case_of(load_shipped(matches[0]), args.seed)
