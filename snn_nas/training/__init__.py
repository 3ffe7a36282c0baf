"""Training and evaluation of one architecture: recipe, fidelity knobs, loops, checkpoints."""

from __future__ import annotations

from snn_nas.training.config import OPTIMIZERS, ConfigError, TrainConfig
from snn_nas.training.engine import SPLIT_SEED, TrainResult, build_optimizer, resolve_device, train_model

__all__ = [
    "OPTIMIZERS",
    "SPLIT_SEED",
    "ConfigError",
    "TrainConfig",
    "TrainResult",
    "build_optimizer",
    "resolve_device",
    "train_model",
]
