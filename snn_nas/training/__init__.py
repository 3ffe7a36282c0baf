"""Training and evaluation of one architecture: recipe, fidelity knobs, loops, checkpoints.

``TrainConfig`` is importable without torch (the command line builds its parser from it); the
engine, which needs torch, loads on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from snn_nas.training.config import OPTIMIZERS, ConfigError, TrainConfig

if TYPE_CHECKING:  # pragma: no cover
    from snn_nas.training.engine import (
        SPLIT_SEED,
        TrainResult,
        build_optimizer,
        load_config_data,
        resolve_device,
        train_model,
    )

_ENGINE = ("SPLIT_SEED", "TrainResult", "build_optimizer", "load_config_data", "resolve_device", "train_model")

__all__ = [
    "OPTIMIZERS",
    "SPLIT_SEED",
    "ConfigError",
    "TrainConfig",
    "TrainResult",
    "build_optimizer",
    "load_config_data",
    "resolve_device",
    "train_model",
]


def __getattr__(name: str) -> Any:
    if name not in _ENGINE:
        raise AttributeError(f"module 'snn_nas.training' has no attribute {name!r}")
    value = getattr(importlib.import_module("snn_nas.training.engine"), name)
    globals()[name] = value
    return value
