"""The columns of a trial table that reports read, their units, and what counts as missing."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from snn_nas.errors import SnnNasError

COST_COLUMNS = ("sops", "energy_uj", "params", "time_steps")
ACCURACY_COLUMNS = ("val_acc",)
FRONT_COLUMNS = ("rank", "key", "val_acc", "sops", "energy_uj", "params", "time_steps", "baseline")
UNITS = {
    "val_acc": "fraction",
    "sops": "SOPs per image",
    "energy_uj": "uJ per image",
    "params": "parameters",
    "time_steps": "time steps",
}
TEST_ACC_SOURCES = {
    "retrain": "retrained on train+val (retrain/<key>/report.json)",
    "audit": "audited at a higher fidelity (audit/audit.parquet)",
}


class ResultsError(SnnNasError, ValueError):
    """A results directory or table that cannot be analysed; the message says why."""


def plain_value(value: Any) -> Any:
    """A table cell as a JSON primitive: numpy / pandas scalars -> Python ones, missing or
    non-finite -> None."""
    if is_missing(value):
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def is_missing(value: Any) -> bool:
    """Whether a scalar is None, NaN or pandas' NA."""
    if value is None or value is pd.NA:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
