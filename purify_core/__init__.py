"""Purify Lab's core: backdoored models, and finding and purifying their bad neurons.

UI-free: nothing here imports streamlit. The public API below is imported on first use
(`from purify_core import purify` loads `purify_core.method.purify` then): importing the package, and so
`python -m purify_core --help` or a mistyped command, costs no torch import.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

#: Each public name -> the module (under purify_core) that defines it.
_HOMES = {
    "ATTACKS": "attacks", "Attack": "attacks", "build_attack": "attacks",
    "Card": "store.cards",
    "load_checkpoint": "store.checkpoints", "read_card": "store.checkpoints", "save_checkpoint": "store.checkpoints",
    "AttackConfig": "config", "DataConfig": "config", "ModelConfig": "config", "Scenario": "config", "TrainConfig": "config",
    "scenario_preset": "config",
    "ImageSet": "data.image_set", "Splits": "data.splits", "load_splits": "data.splits",
    "ChecksumMismatchError": "errors", "UserInputError": "errors",
    "Metrics": "models.evaluate", "evaluate": "models.evaluate",
    "build_model": "models.architectures", "pick_device": "models.architectures",
    "TrainProgress": "models.train", "train_model": "models.train",
    "DEFENSES": "defenses", "run_defense": "defenses",
    "mark": "method.marking",
    "NeuronMask": "method.neurons", "NeuronScores": "method.neurons", "neuron_layers": "method.neurons",
    "PurifyConfig": "method.purify", "PurifyResult": "method.purify", "StepMetrics": "method.purify", "fine_tune": "method.purify", "purify": "method.purify",
    "purify_preset": "method.purify",
    "METRICS": "method.rankings", "rank_neurons": "method.rankings",
    "REGULARIZERS": "method.regularizers", "ar_penalty": "method.regularizers", "build_regularizer": "method.regularizers",
    "BackdooredModel": "store.backdoored", "BuildProgress": "store.backdoored", "train_scenario": "store.backdoored",
    "load_or_train": "store.model_store",
    "list_zoo": "store.zoo", "load_shipped": "store.zoo",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    """A public name, imported from its module when first asked for (then kept as a plain attribute)."""
    home = _HOMES.get(name)
    if home is None:  # not public: a submodule (`from purify_core import store`) is found by the import system
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
