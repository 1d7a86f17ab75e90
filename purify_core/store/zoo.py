"""The shipped zoo: the backdoored checkpoints that come with the lab, built, listed, loaded and verified.

A shipped scenario lives in `assets/zoo/<name>.safetensors` beside its card `<name>.json`.
`build` remakes a checkpoint from its scenario deterministically: same seed, same machine, same
bytes. Models trained on request, uploaded or imported live in the model store (`model_store`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from .backdoored import BackdooredModel, BuildProgress, acc_asr_percent, load_pair, train_and_save
from .cards import Card
from .checkpoints import check_writable, read_card
from ..config import Scenario, scenario_preset
from ..errors import UserInputError
from ..models.evaluate import evaluate

__all__ = [
    "ZOO_DIR",
    "SHIPPED_ATTACKS",
    "shipped_scenarios",
    "list_zoo",
    "load_shipped",
    "shipped_card_for",
    "build",
    "VerifyResult",
    "verify",
]

ZOO_DIR = Path(__file__).resolve().parents[2] / "assets" / "zoo"
SHIPPED_ATTACKS = ("badnets", "blended", "wanet", "sig")


def shipped_scenarios() -> list[Scenario]:
    """The scenarios the zoo ships: the demo preset under every attack, seed 0."""
    return [scenario_preset("demo", attack) for attack in SHIPPED_ATTACKS]


def list_zoo(zoo_dir: Path = ZOO_DIR) -> list[Card]:
    """The cards of every checkpoint in a zoo folder, by name."""
    return [read_card(p) for p in sorted(Path(zoo_dir).glob("*.json"))]


def load_shipped(name: str, zoo_dir: Path = ZOO_DIR, device: torch.device | str | None = None) -> BackdooredModel:
    """A shipped checkpoint by name, sha256-checked against its card."""
    card_path = Path(zoo_dir) / f"{name}.json"
    if not card_path.is_file():
        known = ", ".join(c.name for c in list_zoo(zoo_dir)) or "none"
        raise UserInputError(f"no shipped scenario named {name!r}; shipped: {known}")
    return load_pair(card_path.with_suffix(".safetensors"), card_path, device)


def shipped_card_for(scenario: Scenario, zoo_dir: Path = ZOO_DIR) -> Path | None:
    """The card of the shipped checkpoint trained with exactly this scenario, if the zoo has one."""
    card_path = Path(zoo_dir) / f"{scenario.name}.json"
    if card_path.is_file() and read_card(card_path).scenario == scenario.to_dict():
        return card_path
    return None


def _check_destination(scenario: Scenario, out_dir: Path) -> None:
    """Before training: the folder can be written, and holds no other model under this scenario's name."""
    check_writable(out_dir)
    card_path = out_dir / f"{scenario.name}.json"
    if not card_path.exists():
        return
    try:
        same = read_card(card_path).scenario == scenario.to_dict()
    except UserInputError:
        same = False
    if not same:
        raise UserInputError(
            f"{out_dir} already holds a model named {scenario.name} trained with other settings: choose another output "
            f"folder, or delete {card_path.name} and {card_path.with_suffix('.safetensors').name} to replace it"
        )


def build(
    scenario: Scenario,
    out_dir: Path = ZOO_DIR,
    with_clean_reference: bool = True,
    on_progress: Callable[[BuildProgress], None] | None = None,
) -> BackdooredModel:
    """Train a scenario and write `<out_dir>/<name>.safetensors` and its card.

    Refused before training if `out_dir` cannot be written or already holds another model under
    the same name (same name and settings: a rebuild, which replaces it).
    """
    out_dir = Path(out_dir)
    _check_destination(scenario, out_dir)
    return train_and_save(scenario, out_dir / f"{scenario.name}.safetensors", out_dir / f"{scenario.name}.json",
                          with_clean_reference, on_progress)


@dataclass(frozen=True)
class VerifyResult:
    """A shipped checkpoint re-evaluated here, next to what its card says."""

    name: str
    card_acc: float
    card_asr: float
    acc: float
    asr: float
    ok: bool
    message: str


def verify(zoo_dir: Path = ZOO_DIR, tolerance: float = 0.5) -> list[VerifyResult]:
    """Load every checkpoint (sha256 checked) and re-measure ACC and ASR; ok within `tolerance` points."""
    if not (isinstance(tolerance, (int, float)) and 0 <= tolerance <= 100):  # NaN fails this too
        raise UserInputError(f"the tolerance must be a number of points in [0, 100], got {tolerance}")
    results = []
    for card in list_zoo(zoo_dir):
        try:
            loaded = load_shipped(card.name, zoo_dir)
        except UserInputError as exc:
            results.append(VerifyResult(card.name, card.acc, card.asr, float("nan"), float("nan"), False, str(exc)))
            continue
        acc, asr = acc_asr_percent(evaluate(loaded.model, loaded.splits().test, loaded.attack))
        ok = abs(acc - card.acc) <= tolerance and abs(asr - card.asr) <= tolerance
        message = "matches its card" if ok else f"differs from its card by more than {tolerance} points"
        results.append(VerifyResult(card.name, card.acc, card.asr, acc, asr, ok, message))
    return results
