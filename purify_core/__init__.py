"""Purify Lab's core: backdoored models, and finding and purifying their bad neurons.

UI-free: nothing here imports streamlit. The public API below is imported on first use
(`from purify_core import purify` loads `purify_core.purify` then): importing the package, and so
`python -m purify_core --help` or a mistyped command, costs no torch import.
"""

from __future__ import annotations

import sys
import types
from importlib import import_module
from typing import Any

#: Each public name -> the module (under purify_core) that defines it.
_HOMES = {
    "ATTACKS": "attacks", "Attack": "attacks", "build_attack": "attacks",
    "Card": "cards",
    "load_checkpoint": "checkpoints", "read_card": "checkpoints", "save_checkpoint": "checkpoints",
    "AttackConfig": "config", "DataConfig": "config", "ModelConfig": "config", "Scenario": "config", "TrainConfig": "config",
    "scenario_preset": "config",
    "ImageSet": "image_set", "Splits": "data", "load_splits": "data",
    "ChecksumMismatchError": "errors", "UserInputError": "errors",
    "Metrics": "evaluate", "evaluate": "evaluate",
    "build_model": "models", "pick_device": "models",
    "TrainProgress": "train", "train_model": "train",
    "DEFENSES": "defenses", "run_defense": "defenses",
    "mark": "marking",
    "NeuronMask": "neurons", "NeuronScores": "neurons", "neuron_layers": "neurons",
    "PurifyConfig": "purify", "PurifyResult": "purify", "StepMetrics": "purify", "fine_tune": "purify", "purify": "purify",
    "purify_preset": "purify",
    "METRICS": "rankings", "rank_neurons": "rankings",
    "REGULARIZERS": "regularizers", "ar_penalty": "regularizers", "build_regularizer": "regularizers",
    "BackdooredModel": "backdoored", "BuildProgress": "backdoored", "train_scenario": "backdoored",
    "load_or_train": "model_store",
    "list_zoo": "zoo", "load_shipped": "zoo",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    """A public name, imported from its module when first asked for (then kept as a plain attribute)."""
    home = _HOMES.get(name)
    if home is None:  # not public: a submodule (`from purify_core import zoo`) is found by the import system
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """`purify_core.purify` and `purify_core.evaluate` are functions, as they were when this file imported
    everything: loading the submodule of the same name must not put the module in the function's place."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _HOMES and isinstance(value, types.ModuleType):
            return  # the module stays reachable as sys.modules["purify_core.<name>"] and by `from purify_core.<name> import`
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
