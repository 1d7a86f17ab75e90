"""Purify Lab's core: backdoored models, and (later) finding and purifying their bad neurons.

UI-free: nothing here imports streamlit. The public API is re-exported below.
"""

from .attacks import ATTACKS, Attack, build_attack
from .checkpoints import Card, load_checkpoint, read_card, save_checkpoint
from .config import (
    AttackConfig,
    DataConfig,
    ModelConfig,
    Scenario,
    TrainConfig,
    scenario_preset,
)
from .data import ImageSet, Splits, load_splits
from .errors import ChecksumMismatchError, UserInputError
from .evaluate import Metrics, evaluate
from .models import build_model, pick_device
from .train import TrainProgress, train_model
from .zoo import BackdooredModel, BuildProgress, load_or_train, load_shipped, list_zoo, train_scenario

__all__ = [
    "ATTACKS",
    "Attack",
    "AttackConfig",
    "BackdooredModel",
    "BuildProgress",
    "Card",
    "ChecksumMismatchError",
    "DataConfig",
    "ImageSet",
    "Metrics",
    "ModelConfig",
    "Scenario",
    "Splits",
    "TrainConfig",
    "TrainProgress",
    "UserInputError",
    "build_attack",
    "build_model",
    "evaluate",
    "list_zoo",
    "load_checkpoint",
    "load_or_train",
    "load_shipped",
    "load_splits",
    "pick_device",
    "read_card",
    "save_checkpoint",
    "scenario_preset",
    "train_model",
    "train_scenario",
]
