"""Purify Lab's core: backdoored models, and finding and purifying their bad neurons.

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
from .data import Splits, load_splits
from .image_set import ImageSet
from .errors import ChecksumMismatchError, UserInputError
from .evaluate import Metrics, evaluate
from .models import build_model, pick_device
from .train import TrainProgress, train_model
from .defenses import DEFENSES, run_defense
from .marking import mark
from .neurons import NeuronMask, NeuronScores, neuron_layers
from .purify import PurifyConfig, PurifyResult, StepMetrics, fine_tune, purify, purify_preset
from .rankings import METRICS, rank_neurons
from .regularizers import REGULARIZERS, ar_penalty, build_regularizer
from .backdoored import BackdooredModel, BuildProgress, train_scenario
from .model_store import load_or_train
from .zoo import load_shipped, list_zoo

__all__ = [
    "DEFENSES",
    "METRICS",
    "NeuronMask",
    "NeuronScores",
    "PurifyConfig",
    "PurifyResult",
    "REGULARIZERS",
    "StepMetrics",
    "ar_penalty",
    "build_regularizer",
    "fine_tune",
    "mark",
    "neuron_layers",
    "purify",
    "purify_preset",
    "rank_neurons",
    "run_defense",
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
