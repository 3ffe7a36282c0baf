"""snn-nas: neural architecture search over spiking MLPs.

The public surface is small and re-exported lazily from the modules that own it, so that
``import snn_nas`` stays cheap (torch, Ray and Optuna load only when used).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from snn_nas.version import __version__

_EXPORTS = {
    "Genotype": "snn_nas.genotype",
    "GenotypeError": "snn_nas.genotype",
    "SnnNasError": "snn_nas.errors",
    "build_model": "snn_nas.builder",
    "get_preset": "snn_nas.presets",
    "list_presets": "snn_nas.presets",
    "SearchSpace": "snn_nas.space",
    "load_space": "snn_nas.space",
    "measure_costs": "snn_nas.costs",
    "CostReport": "snn_nas.costs",
    "TrainConfig": "snn_nas.training",
    "train_model": "snn_nas.training",
    "load_results": "snn_nas.search.results",
    "load_model": "snn_nas.checkpoint",
}

__all__ = [
    "CostReport",
    "Genotype",
    "GenotypeError",
    "SearchSpace",
    "SnnNasError",
    "TrainConfig",
    "__version__",
    "build_model",
    "get_preset",
    "list_presets",
    "load_model",
    "load_results",
    "load_space",
    "measure_costs",
    "train_model",
]


if TYPE_CHECKING:  # pragma: no cover
    from snn_nas.builder import build_model
    from snn_nas.checkpoint import load_model
    from snn_nas.costs import CostReport, measure_costs
    from snn_nas.errors import SnnNasError
    from snn_nas.genotype import Genotype, GenotypeError
    from snn_nas.presets import get_preset, list_presets
    from snn_nas.search.results import load_results
    from snn_nas.space import SearchSpace, load_space
    from snn_nas.training import TrainConfig, train_model


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'snn_nas' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
