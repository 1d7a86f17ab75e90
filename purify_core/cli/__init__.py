"""`python -m purify_core`: the command line over the same functions the app uses.

Every subcommand prints a readable table, or JSON with `--json`. Bad input exits non-zero with
one line on stderr (`error: ...`), never a traceback. Progress goes to stderr, results to stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, NoReturn, Sequence

from ..errors import UserInputError

__all__ = ["main", "build_parser"]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one clear line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see: {self.prog} --help)\n")


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return key.strip(), value.strip()


def _points(text: str) -> float:
    """A tolerance in points: a finite number in [0, 100] (NaN would make every comparison pass or fail)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of points, got {text!r}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be a number of points in [0, 100], got {text}")
    return value


def _json_safe(value: Any) -> Any:
    """NaN and infinities become null: JSON has no such numbers, and the output must parse anywhere."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _existing_zoo(args: argparse.Namespace) -> Path:
    """`--zoo-dir`, refused when it is not a folder (a typo would otherwise read as an empty zoo)."""
    folder = Path(args.zoo_dir)
    if not folder.is_dir():
        raise UserInputError(f"zoo folder {folder} does not exist; check --zoo-dir")
    return folder


def _parse_scalar(value: str) -> int | float | str | bool:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(value.lower(), value)


class _Progress:
    """One stderr line per epoch and stage, so a long build shows it is alive."""

    def __init__(self) -> None:
        self.last: tuple[str, int] | None = None

    def __call__(self, item: Any) -> None:
        step = item.step
        if step is None or step.batch != step.batches or (item.stage, step.epoch) == self.last:
            return
        self.last = (item.stage, step.epoch)
        print(f"  {item.stage}: epoch {step.epoch}/{step.epochs}, loss {step.loss:.3f}, {step.elapsed:.0f}s", file=sys.stderr)


def _print(args: argparse.Namespace, payload: Any, table: Callable[[], str]) -> None:
    print(json.dumps(_json_safe(payload), indent=2, allow_nan=False) if args.json else table())


def _shower(args: argparse.Namespace) -> Callable[[Any, list[dict[str, Any]], Sequence[str] | None], None]:
    """What the method commands print with: JSON payload, or a table of rows."""
    return lambda payload, rows, columns: _print(args, payload, lambda: _table(rows, columns or list(rows[0])))


def _card_row(card: Any) -> dict[str, Any]:
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


def _table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def _zoo_list(args: argparse.Namespace) -> int:
    from ..zoo import list_zoo

    rows = [_card_row(c) for c in list_zoo(_existing_zoo(args))]
    _print(args, rows, lambda: _table(rows, ["name", "acc", "asr", "clean_acc", "train_seconds"]) if rows else "the zoo is empty")
    return 0


def _zoo_build(args: argparse.Namespace) -> int:
    from ..zoo import build, list_zoo, shipped_scenarios

    old_cards = {c.name: c for c in list_zoo(args.zoo_dir)} if Path(args.zoo_dir).is_dir() else {}
    if not old_cards and not args.new:  # a typo in --zoo-dir must not retrain every shipped model into a new folder
        raise UserInputError(f"zoo folder {args.zoo_dir} holds no model cards; check --zoo-dir, or pass --new to build the shipped scenarios there")
    # Cards say how to rebuild; a new zoo folder (--new) gets the default shipped scenarios.
    scenarios = {n: c.scenario_config for n, c in old_cards.items()} or {s.name: s for s in shipped_scenarios()}
    if args.only:
        if args.only not in scenarios:
            raise UserInputError(f"no scenario named {args.only!r} in {args.zoo_dir}; known: {', '.join(scenarios)}")
        scenarios = {args.only: scenarios[args.only]}
    out_dir = Path(args.out or args.zoo_dir)
    rows = []
    for name, scenario in scenarios.items():
        print(f"building {name} ...", file=sys.stderr)
        new = build(scenario, out_dir, with_clean_reference=True, on_progress=_Progress()).card
        old = old_cards.get(name)
        rows.append({**_card_row(new), "same_sha256_as_before": None if old is None else old.sha256 == new.sha256})
    _print(args, rows, lambda: _table(rows, ["name", "acc", "asr", "clean_acc", "train_seconds", "same_sha256_as_before"]))
    return 0


def _zoo_verify(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from ..zoo import verify

    results = verify(_existing_zoo(args), tolerance=args.tolerance)
    rows = [asdict(r) for r in results]
    _print(args, rows, lambda: _table(rows, ["name", "card_acc", "acc", "card_asr", "asr", "ok", "message"]) if rows else "the zoo is empty")
    return 0 if results and all(r.ok for r in results) else 1


def _scenario_from(args: argparse.Namespace):
    from ..config import AttackConfig, DataConfig, ModelConfig, Scenario, TrainConfig

    params = {k: _parse_scalar(v) for k, v in args.attack_param}
    return Scenario(
        data=DataConfig(dataset=args.dataset, root=args.data_root, download=args.download),
        model=ModelConfig(args.model),
        attack=AttackConfig.of(args.attack, args.target, args.poison_rate, **params),
        train=TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr),
        seed=args.seed,
    )


def _train(args: argparse.Namespace) -> int:
    from ..checkpoints import check_writable
    from ..backdoored import check_scenario
    from ..zoo import build

    scenario = _scenario_from(args)
    check_writable(args.out, "the output folder")  # first: loading a large dataset can take minutes
    check_scenario(scenario)
    print(f"training {scenario.name} ...", file=sys.stderr)
    card = build(scenario, Path(args.out), with_clean_reference=not args.no_clean_reference, on_progress=_Progress()).card
    row = {**_card_row(card), "weights": str(Path(args.out) / f"{card.name}.safetensors"), "card": str(Path(args.out) / f"{card.name}.json")}
    _print(args, row, lambda: _table([row], ["name", "acc", "asr", "clean_acc", "train_seconds", "weights"]))
    return 0


def _import(args: argparse.Namespace) -> int:
    from ..uploads import check_size, import_weights
    from ..backdoored import check_scenario

    path = Path(args.weights)
    if not path.is_file():
        raise UserInputError(f"weights file {path} does not exist")
    check_size(path.stat().st_size, path.name)  # before reading it into memory
    scenario = _scenario_from(args)
    check_scenario(scenario)  # data, trigger and model size, before the weights are read or a model is built
    saved = import_weights(path.read_bytes(), path.name, scenario, prefix="import")
    row = _card_row(saved.card)
    print(f"kept in the model cache: the app lists it as {saved.card.name} (?scenario={saved.card.name})", file=sys.stderr)
    _print(args, row, lambda: _table([row], ["name", "acc", "asr"]))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from ..attacks import build_attack
    from ..checkpoints import load_checkpoint, read_card
    from ..data import load_splits
    from ..evaluate import evaluate
    from ..models import pick_device

    card = read_card(args.card)
    scenario = card.scenario_config
    model = load_checkpoint(args.checkpoint, card, map_location=pick_device())
    splits = load_splits(scenario.data)
    attack = build_attack(scenario.attack, splits.input_shape, splits.num_classes)
    start = time.perf_counter()
    metrics = evaluate(model, splits.test, attack)
    row = {"name": card.name, **metrics.as_percent(), "card_acc": card.acc, "card_asr": card.asr, "seconds": round(time.perf_counter() - start, 2)}
    _print(args, row, lambda: _table([row], list(row)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from ..zoo import ZOO_DIR

    parser = _Parser(prog="python -m purify_core", description="Purify Lab: backdoored models and their purification.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(name: str, func: Callable[[argparse.Namespace], int], parent: Any = commands, **kw: Any) -> argparse.ArgumentParser:
        sub = parent.add_parser(name, **kw)
        sub.add_argument("--json", action="store_true", help="print JSON instead of a table")
        sub.set_defaults(func=func)
        return sub

    zoo = commands.add_parser("zoo", help="shipped backdoored checkpoints")
    zoo_commands = zoo.add_subparsers(dest="zoo_command", required=True, parser_class=_Parser)
    for name, func, help_text in (
        ("list", _zoo_list, "list shipped checkpoints and their cards"),
        ("build", _zoo_build, "rebuild checkpoints from their cards (deterministic)"),
        ("verify", _zoo_verify, "re-evaluate every checkpoint and compare with its card"),
    ):
        sub = command(name, func, zoo_commands, help=help_text)
        sub.add_argument("--zoo-dir", type=Path, default=ZOO_DIR, help="folder of .safetensors + .json cards")
    zoo_commands.choices["build"].add_argument("--only", help="rebuild just this scenario")
    zoo_commands.choices["build"].add_argument("--out", help="write here instead of the zoo folder")
    zoo_commands.choices["build"].add_argument("--new", action="store_true", help="--zoo-dir holds no cards yet: build the shipped scenarios there")
    zoo_commands.choices["verify"].add_argument("--tolerance", type=_points, default=0.5, help="allowed difference, in points [0, 100]")

    train = command("train", _train, help="poison a dataset and train a backdoored model")
    imp = command("import", _import, help="check your own weights for a scenario, measure ACC and ASR, and keep them for the app")
    for sub in (train, imp):  # the scenario: the data, architecture and attack the weights belong to
        sub.add_argument("--dataset", default="mnist5k")
        sub.add_argument("--data-root", default=None, help="folder of cifar10 / gtsrb / imagefolder data")
        sub.add_argument("--download", action="store_true", help="download cifar10 / gtsrb if missing (needs internet)")
        sub.add_argument("--model", default="smallcnn", help="smallcnn, smallvgg, preactresnet18 or tv:<torchvision name>")
        sub.add_argument("--attack", default="badnets")
        sub.add_argument("--attack-param", type=_key_value, action="append", default=[], metavar="KEY=VALUE")
        sub.add_argument("--poison-rate", type=float, default=0.1)
        sub.add_argument("--target", type=int, default=0)
        sub.add_argument("--seed", type=int, default=0)
        sub.add_argument("--epochs", type=int, default=8)
        sub.add_argument("--batch-size", type=int, default=64)
        sub.add_argument("--lr", type=float, default=0.01)
    train.add_argument("--no-clean-reference", action="store_true", help="skip training the clean model for the card")
    train.add_argument("--out", required=True, help="folder for <name>.safetensors and <name>.json")
    imp.add_argument("--weights", required=True, help=".safetensors, or a .pt/.pth state dict (read with weights_only=True)")

    ev = command("evaluate", _evaluate, help="ACC and ASR of a checkpoint")
    ev.add_argument("--checkpoint", required=True, type=Path)
    ev.add_argument("--card", required=True, type=Path)

    from .method import add_method_commands

    add_method_commands(command, _shower)
    from .reactivate import add_reactivate_command

    add_reactivate_command(command, _shower)
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
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
