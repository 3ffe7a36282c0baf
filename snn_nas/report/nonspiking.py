"""The non-spiking rule: which rows do all their work as MACs (see ``snn_nas.report``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from snn_nas.report.columns import is_missing

NON_SPIKING_AXIS = "energy_uj"  # where a non-spiking row is compared when x is "sops"


def is_non_spiking(genotype: Any = None, *, time_steps: Any = None, sops: Any = None, macs: Any = None) -> bool:
    """Whether a row describes a non-spiking network (see ``snn_nas.report``).

    ``genotype``: its JSON text or dict; its ``family`` decides (``"spiking"`` or not). Without
    one: ``time_steps == 1``, ``sops == 0`` and ``macs > 0``.
    """
    data = genotype
    if isinstance(genotype, str):
        try:
            data = json.loads(genotype)
        except json.JSONDecodeError:
            data = None
    if isinstance(data, Mapping) and isinstance(data.get("family"), str):
        return data["family"] != "spiking"
    try:
        t, s, m = float(time_steps), float(sops), float(macs)
    except (TypeError, ValueError):
        return False
    return t == 1 and s == 0 and m > 0


def non_spiking_mask(trials: pd.DataFrame) -> np.ndarray:
    """``[rows]`` bool: ``is_non_spiking`` of every row (columns ``genotype``, ``time_steps``, ``sops``, ``macs``)."""
    columns = [trials[c] if c in trials.columns else pd.Series([None] * len(trials), index=trials.index)
               for c in ("genotype", "time_steps", "sops", "macs")]  # fmt: skip
    return np.array(
        [
            is_non_spiking(None if is_missing(g) else g, time_steps=t, sops=s, macs=m)
            for g, t, s, m in zip(*columns, strict=True)
        ],
        dtype=bool,
    )
