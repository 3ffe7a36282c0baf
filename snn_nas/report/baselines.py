"""How the search trials compare with each baseline (a preset row), and the verdict in words.

Definitions (axis, domination, margin): see ``snn_nas.report``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from snn_nas.pareto import is_pareto_front, to_minimization
from snn_nas.report.columns import is_missing
from snn_nas.report.nonspiking import NON_SPIKING_AXIS, non_spiking_mask


@dataclass(frozen=True)
class BaselineComparison:
    """How the search trials compare with one baseline (a preset) on (accuracy, cost ``axis``)."""

    baseline: str
    key: str
    val_acc: float
    cost: float  # on ``axis``
    dominated_by: tuple[str, ...]  # keys of search trials dominating it, most accurate first
    best_cheaper: str | None  # most accurate search trial costing at most as much
    best_cheaper_acc: float | None
    axis: str = "sops"  # the cost it is compared on: x, or energy_uj for a non-spiking baseline on sops
    dominated_by_front: tuple[str, ...] = ()  # the members of the search front (on ``axis``) among them
    non_spiking: bool = False
    moved_to_energy: bool = False  # non-spiking on the SOP axis: compared on energy instead

    @property
    def dominated(self) -> bool:
        return bool(self.dominated_by)

    @property
    def margin_points(self) -> float | None:
        """Best search accuracy at equal or lower cost minus the baseline's, in points (None: none cheaper)."""
        return None if self.best_cheaper_acc is None else 100.0 * (self.best_cheaper_acc - self.val_acc)

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "key": self.key,
            "val_acc": self.val_acc,
            "axis": self.axis,
            "cost": self.cost,
            "non_spiking": self.non_spiking,
            "moved_to_energy": self.moved_to_energy,
            "dominated": self.dominated,
            "dominated_by": list(self.dominated_by),
            "dominated_by_front": list(self.dominated_by_front),
            "best_cheaper": self.best_cheaper,
            "best_cheaper_acc": self.best_cheaper_acc,
            "margin_points": None if self.margin_points is None else round(self.margin_points, 6),
            "verdict": baseline_verdict(self),
        }


def _baseline_column(trials: pd.DataFrame) -> pd.Series:
    if "baseline" not in trials.columns:
        return pd.Series([""] * len(trials), index=trials.index, dtype=object)
    return trials["baseline"].map(lambda v: "" if is_missing(v) else str(v)).astype(object)


def compare_baselines(rows: pd.DataFrame, *, x: str, y: str) -> tuple[BaselineComparison, ...]:
    """One ``BaselineComparison`` per baseline row of ``rows`` (ok rows with a finite ``y``; columns
    ``key``, ``baseline``, ``y``, ``x`` and, for non-spiking rows on ``sops``, ``energy_uj``).

    A baseline is compared on ``x``, or on ``energy_uj`` when it is non-spiking and ``x`` is
    ``sops``; against the search rows with a finite cost on that axis (on ``sops``: the spiking
    ones), except rows of the baseline's own architecture (a warm-started search trains the seed
    design as a trial). A baseline without a finite cost on its axis is left out.
    """
    baseline = _baseline_column(rows)
    is_base = (baseline != "").to_numpy()
    spiking = ~(rows["non_spiking"].to_numpy(dtype=bool) if "non_spiking" in rows.columns else non_spiking_mask(rows))
    out = []
    for i in np.flatnonzero(is_base):
        row = rows.iloc[i]
        axis = NON_SPIKING_AXIS if x == "sops" and not spiking[i] else x
        if axis not in rows.columns:
            continue
        cost_all = pd.to_numeric(rows[axis], errors="coerce").to_numpy(dtype=float)
        acc, cost = float(row[y]), float(cost_all[i])
        if not math.isfinite(cost):
            continue
        # the search trials, but not the baseline's own architecture (a warm start trains the seed
        # design as a search trial: it cannot beat itself)
        other = (rows["key"].astype(str) != str(row["key"])).to_numpy()
        pool = ~is_base & other & np.isfinite(cost_all) & (spiking if axis == "sops" else True)
        search = (
            rows[pool].assign(_cost=cost_all[pool]).sort_values([y, "_cost"], ascending=[False, True], kind="stable")
        )
        acc_s, cost_s = search[y].to_numpy(dtype=float), search["_cost"].to_numpy(dtype=float)
        keys_s = search["key"].astype(str).tolist()
        loss = to_minimization(np.column_stack([acc_s, cost_s]).reshape(-1, 2), ["maximize", "minimize"])
        on_front = is_pareto_front(loss) if len(loss) else np.zeros(0, dtype=bool)
        dominating = (acc_s >= acc) & (cost_s <= cost) & ((acc_s > acc) | (cost_s < cost))
        cheaper = np.flatnonzero(cost_s <= cost)
        best = int(cheaper[0]) if cheaper.size else None  # search is sorted by accuracy descending
        out.append(
            BaselineComparison(
                baseline=str(baseline.iloc[i]),
                key=str(row["key"]),
                val_acc=acc,
                cost=cost,
                dominated_by=tuple(k for k, d in zip(keys_s, dominating, strict=True) if d),
                best_cheaper=None if best is None else keys_s[best],
                best_cheaper_acc=None if best is None else float(acc_s[best]),
                axis=axis,
                dominated_by_front=tuple(k for k, d, f in zip(keys_s, dominating, on_front, strict=True) if d and f),
                non_spiking=not spiking[i],
                moved_to_energy=axis != x,
            )
        )
    return tuple(sorted(out, key=lambda b: (b.baseline, b.key)))


AXIS_WORDS = {"sops": "SOPs", "energy_uj": "energy", "params": "parameters", "time_steps": "T"}


def baseline_verdict(b: BaselineComparison, *, short: bool = False) -> str:
    """How the search front compares with baseline ``b``, in words.

    ``short``: a label for plots, e.g. ``dominated (+3.10 pts)``: the margin in points.
    """
    margin, axis = b.margin_points, AXIS_WORDS.get(b.axis, b.axis)
    on_energy = b.moved_to_energy
    head = "dominated" if b.dominated else "not dominated"
    if short:
        tail = "no search trial as cheap" if margin is None else f"{margin:+.2f} pts"
        return ("on energy: " if on_energy else "") + f"{head} ({tail})"
    text = "compared on energy (non-spiking: 0 SOPs, all MACs): " if on_energy else ""
    if b.dominated:
        members = b.dominated_by_front or b.dominated_by
        text += "dominated by front member(s) " + ", ".join(members[:3]) + (" ..." if len(members) > 3 else "")
    else:
        text += head
    if margin is None:
        return text + f"; every search trial costs more {axis}"
    size = "as accurate" if margin == 0 else f"{abs(margin):.2f} points {'more' if margin > 0 else 'less'} accurate"
    return text + f"; the best search trial at equal or lower {axis} ({b.best_cheaper}) is {size}"
