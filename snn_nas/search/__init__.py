"""Multi-objective architecture search with Ray Tune and Optuna.

``load_experiment(path)`` reads an experiment file, ``run_search(experiment, ...)`` runs it and
``load_results(dir)`` returns its result table. Only ``snn_nas.search.tune`` imports Ray or
Optuna; it is loaded when ``run_search`` is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Experiment": "snn_nas.search.experiment",
    "ExperimentError": "snn_nas.search.experiment",
    "load_experiment": "snn_nas.search.experiment",
    "ResultStore": "snn_nas.search.results",
    "ResultsError": "snn_nas.search.results",
    "load_results": "snn_nas.search.results",
    "COLUMNS": "snn_nas.search.results",
    "run_search": "snn_nas.search.tune",
}

__all__ = [
    "COLUMNS",
    "Experiment",
    "ExperimentError",
    "ResultStore",
    "ResultsError",
    "load_experiment",
    "load_results",
    "run_search",
]

if TYPE_CHECKING:  # pragma: no cover
    from snn_nas.search.experiment import Experiment, ExperimentError, load_experiment
    from snn_nas.search.results import COLUMNS, ResultsError, ResultStore, load_results
    from snn_nas.search.tune import run_search


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'snn_nas.search' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
