"""How a trial's figures are measured and judged, whatever its fidelity (pure but for the batch).

Both kinds of trial use these: the standalone one (``snn_nas.search.trial``, trained) and the
supernet one (``snn_nas.search.supernet_trial``, weights inherited). Ray-free and torch-free at
import.

* **Calibration batch** (``calibration_batch``): costs are measured on the first
  ``calibration_images`` validation images, the same batch for every trial of a search.
* **Feasibility** (``violations``, ``is_feasible``): for each constraint ``(metric, limit)`` the
  relative violation ``v = value / limit - 1`` (``v <= 0``: satisfied; a missing or NaN metric
  counts as ``v = 1``); feasible when every ``v <= 0``.
* **Silence** (``silence``): a spiking model whose calibration batch fires nowhere
  (``firing_rate == 0`` or ``sops == 0``) at chance accuracy,
  ``val_acc <= 1 / num_classes + CHANCE_MARGIN``.
* **Curve** (``CURVE_KEYS``): the record fields kept per epoch in a row's ``curve``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from snn_nas.jsonutil import finite_or_none

CURVE_KEYS = ("val_acc", "val_loss", "sops", "macs", "energy_uj", "firing_rate", "wall_s")  # per epoch, in ``curve``


def calibration_batch(data: Any, count: int) -> Any:
    """The first ``count`` validation images as one tensor ``[N, C, H, W]`` (event data binned
    into T frames: ``[T, N, C, H, W]``, as the model takes it)."""
    import torch

    from snn_nas.data.base import time_major

    count = max(1, min(count, len(data.val)))
    return time_major(torch.stack([data.val[i][0] for i in range(count)]))


def violations(metrics: Mapping[str, Any], constraints: tuple[tuple[str, float], ...]) -> list[float]:
    """Relative constraint violations ``value / limit - 1`` (<= 0: satisfied; NaN metric -> 1)."""
    out = []
    for metric, limit in constraints:
        value = metrics.get(metric)
        try:
            value = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            value = math.nan
        out.append(value / limit - 1.0 if math.isfinite(value) else 1.0)
    return out


def is_feasible(metrics: Mapping[str, Any], constraints: tuple[tuple[str, float], ...]) -> bool:
    return all(v <= 0.0 for v in violations(metrics, constraints))


CHANCE_MARGIN = 0.05
"""How far above chance (``1 / num_classes``) the accuracy of a ``silent`` trial may be: a network
that never fires predicts the same class for every image, and that class's share of the
validation split may sit a little above ``1 / num_classes``."""


def silence(record: Mapping[str, Any], num_classes: int, spiking: bool) -> str | None:
    """Why a finished trial is ``silent`` (never fires, chance accuracy), or None when it is not.

    Silent: a spiking model whose calibration batch fires no spike anywhere (``firing_rate`` 0)
    or triggers no synaptic operation (``sops`` 0), and whose accuracy is at chance level,
    ``val_acc <= 1 / num_classes + CHANCE_MARGIN``. Such a trial is recorded as ``silent``, never
    ``ok``, so that its 0 SOPs never place it on a Pareto front.
    """
    if not spiking:
        return None
    rate, sops, acc = (finite_or_none(record.get(k)) for k in ("firing_rate", "sops", "val_acc"))
    if acc is None or acc > 1.0 / num_classes + CHANCE_MARGIN or (rate != 0.0 and sops != 0.0):
        return None
    return (
        f"the network never fires on the calibration batch (firing rate {rate or 0:g}, {sops or 0:g} SOPs) and its "
        f"accuracy {acc:.2%} is at chance level (1/{num_classes} + {CHANCE_MARGIN:g}); not a front candidate"
    )
