"""The front of a trial table: placed rows, non-domination ranks, hypervolume (pure).

Definitions (placed rows, front, rank, hypervolume, reference point): see ``snn_nas.report``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from snn_nas.pareto import hypervolume_2d, is_pareto_front, non_domination_ranks, to_minimization
from snn_nas.report.baselines import BaselineComparison, _baseline_column, compare_baselines
from snn_nas.report.columns import (
    ACCURACY_COLUMNS,
    COST_COLUMNS,
    FRONT_COLUMNS,
    TEST_ACC_SOURCES,
    UNITS,
    ResultsError,
    is_missing,
    plain_value,
)
from snn_nas.report.nonspiking import NON_SPIKING_AXIS, non_spiking_mask

DEFAULT_REFERENCE_FACTOR = 1.1


@dataclass(frozen=True)
class FrontAnalysis:
    """The front of one results table on (``y`` max, ``x`` min).

    ``points``: every placed row (status ok, finite x and y, comparable on x) with the added
    columns ``is_baseline``, ``non_spiking``, ``test_acc``, ``test_acc_source``, ``nd_rank``
    (non-domination rank among all placed rows), ``on_front`` and ``on_search_front``
    (non-dominated among the non-baseline rows). ``front``: the front rows sorted by accuracy
    descending, with ``rank`` 0, 1, ... as the first column. ``stopped``: rows stopped early by
    the scheduler that reported finite x and y (at a lower fidelity; they are plotted, never
    ranked). ``not_comparable``: ok rows with a finite accuracy that cannot be placed on x
    (non-spiking rows on the SOP axis). ``baselines_not_run``: baselines the experiment lists
    that have no row. ``not_shown``: reason -> number of trials that are in no plot (see
    ``NOT_SHOWN_REASONS``).
    """

    x: str
    y: str
    points: pd.DataFrame
    front: pd.DataFrame
    hypervolume: float
    reference_point: dict[str, float]
    reference_source: str
    baselines: tuple[BaselineComparison, ...]
    status_counts: dict[str, int] = field(default_factory=dict)
    unplaced_ok: int = 0  # ok rows without a finite accuracy or cost
    stopped: pd.DataFrame = field(default_factory=pd.DataFrame)
    not_comparable: pd.DataFrame = field(default_factory=pd.DataFrame)
    expected_baselines: tuple[str, ...] = ()
    baselines_not_run: tuple[str, ...] = ()
    baselines_unplaced: tuple[dict[str, Any], ...] = ()  # baseline rows without a comparison: status, error
    not_shown: dict[str, int] = field(default_factory=dict)

    def front_rows(self, top: int | None = None) -> list[dict[str, Any]]:
        """The front as JSON-ready dicts (``FRONT_COLUMNS``, ``macs``, ``trial_id``, ``summary``, test accuracy)."""
        frame = self.front if top is None else self.front.head(top)
        wanted = [*FRONT_COLUMNS, "macs", "trial_id", "summary", "test_acc", "test_acc_source"]
        rows = []
        for record in frame.to_dict("records"):
            row = {name: plain_value(record.get(name)) for name in wanted if name in record}
            if "test_acc_source" in row:
                row["test_acc_source"] = row["test_acc_source"] or None
            rows.append(row)
        return rows

    @property
    def baselines_note(self) -> str | None:
        """A sentence when listed baselines are absent from the table, else None."""
        if not self.baselines_not_run:
            return None
        names = ", ".join(self.baselines_not_run)
        if len(self.baselines_not_run) == len(self.expected_baselines):
            return f"baselines not run (search ran with --no-baselines): {names}"
        return f"baselines not run: {names} (listed in the experiment, absent from the table)"

    def to_dict(self, top: int | None = None) -> dict[str, Any]:
        """The ``--json`` output and the content of ``pareto.json``."""
        sources = sorted({s for s in self.front.get("test_acc_source", pd.Series(dtype=object)) if s})
        return {
            "x": self.x,
            "y": self.y,
            "front": self.front_rows(top),
            "front_size": len(self.front),
            "hypervolume": self.hypervolume,
            "hypervolume_units": f"{UNITS.get(self.y, self.y)} x {UNITS.get(self.x, self.x)}",
            "reference_point": dict(self.reference_point),
            "reference_point_source": self.reference_source,
            "baselines": [b.to_dict() for b in self.baselines],
            "baselines_expected": list(self.expected_baselines),
            "baselines_not_run": list(self.baselines_not_run),
            "baselines_unplaced": [dict(b) for b in self.baselines_unplaced],
            "baselines_note": self.baselines_note,
            "not_comparable": [
                {
                    **{k: plain_value(r.get(k)) for k in ("key", "baseline", "val_acc", "sops", "macs", "energy_uj")},
                    "reason": f"non-spiking: 0 SOPs, all MACs; compared on {NON_SPIKING_AXIS}",
                }
                for r in self.not_comparable.to_dict("records")
            ],
            "test_acc_sources": {s: TEST_ACC_SOURCES.get(s, s) for s in sources},
            "status_counts": dict(self.status_counts),
            "placed": len(self.points),
            "not_shown": dict(self.not_shown),
        }


def default_reference_point(points: pd.DataFrame, x: str, y: str) -> dict[str, float]:
    """``{y: 0, x: 1.1 x max cost}`` over ``points`` (1.0 if every cost is 0 or there is none)."""
    largest = float(points[x].max()) if len(points) else 0.0
    return {y: 0.0, x: DEFAULT_REFERENCE_FACTOR * largest if largest > 0 else 1.0}


def analyse_front(
    trials: pd.DataFrame,
    *,
    x: str = "sops",
    y: str = "val_acc",
    reference_point: dict[str, float] | None = None,
    reference_source: str = "declared",
    expected_baselines: Sequence[str] = (),
    test_acc: Mapping[str, tuple[float, str]] | None = None,
) -> FrontAnalysis:
    """Front, ranks, hypervolume and baseline comparison of a trial table (pure; definitions in ``snn_nas.report``).

    ``reference_point`` may give ``y`` and/or ``x``; a missing coordinate takes its default.
    ``expected_baselines``: the presets the experiment lists (those without a row are reported).
    ``test_acc``: ``key -> (test accuracy, source)`` (``read_test_accuracies``), shown only.
    """
    if x not in COST_COLUMNS:
        raise ResultsError(f"x: {x!r} is not a cost column; choose one of {list(COST_COLUMNS)}")
    if y not in ACCURACY_COLUMNS:
        raise ResultsError(f"y: {y!r} is not an accuracy column; choose one of {list(ACCURACY_COLUMNS)}")
    missing = [c for c in ("key", "status", x, y) if c not in trials.columns]
    if missing:
        raise ResultsError(f"the trial table lacks column(s) {missing}; it has {sorted(trials.columns)}")
    table = _annotated(trials, x, y, test_acc or {})
    counts = {str(k): int(v) for k, v in table["status"].value_counts().sort_index().items()}
    status = table["status"].astype(str).to_numpy()
    finite_x, finite_y = np.isfinite(table[x].to_numpy(dtype=float)), np.isfinite(table[y].to_numpy(dtype=float))
    off_axis = table["non_spiking"].to_numpy(dtype=bool) & (x == "sops")
    ok, stopped_rows = status == "ok", status == "stopped"
    points = table[ok & finite_x & finite_y & ~off_axis].reset_index(drop=True)
    stopped = table[stopped_rows & finite_x & finite_y & ~off_axis].reset_index(drop=True)
    not_comparable = table[ok & finite_y & off_axis].reset_index(drop=True)
    unplaced_ok = int((ok & ~off_axis & ~(finite_x & finite_y)).sum() + (ok & off_axis & ~finite_y).sum())
    not_shown = {s: counts[s] for s in ("invalid", "failed", "diverged") if counts.get(s)}
    for reason, n in (
        ("ok without metrics", unplaced_ok),
        ("stopped without metrics", int((stopped_rows & ~off_axis & ~(finite_x & finite_y)).sum())),
        ("stopped non-spiking", int((stopped_rows & off_axis).sum())),
    ):
        if n:
            not_shown[reason] = n

    loss = to_minimization(points[[y, x]].to_numpy(dtype=float).reshape(-1, 2), ["maximize", "minimize"])
    points["nd_rank"] = non_domination_ranks(loss) if len(points) else np.zeros(0, dtype=int)
    points["on_front"] = points["nd_rank"] == 0
    search = ~points["is_baseline"].to_numpy(dtype=bool)
    on_search = np.zeros(len(points), dtype=bool)
    on_search[search] = is_pareto_front(loss[search]) if search.any() else []
    points["on_search_front"] = on_search

    ref = default_reference_point(points, x, y)
    given = {k: float(v) for k, v in (reference_point or {}).items() if k in (x, y)}
    ref.update(given)
    if not given:
        source = "default"
    elif len(given) == 2:
        source = reference_source
    else:
        source = f"{reference_source} (+default {x if x not in given else y})"
    ref = {y: ref[y], x: ref[x]}
    ref_loss = to_minimization(np.array([[ref[y], ref[x]]]), ["maximize", "minimize"])[0]
    volume = hypervolume_2d(loss[search], ref_loss) if search.any() else 0.0

    front = points[points["on_front"]].sort_values([y, x, "key"], ascending=[False, True, True], kind="stable")
    front = front.reset_index(drop=True)
    front.insert(0, "rank", np.arange(len(front), dtype=int))

    comparisons = compare_baselines(table[ok & finite_y], x=x, y=y)
    present = set(table.loc[table["is_baseline"], "baseline"])
    compared = {b.baseline for b in comparisons}
    unplaced = tuple(
        {
            "baseline": str(r["baseline"]),
            "key": plain_value(r["key"]),
            "status": str(r["status"]),
            "error": plain_value(r.get("error")),
        }
        for r in table[table["is_baseline"]].to_dict("records")
        if r["baseline"] not in compared
    )
    return FrontAnalysis(
        x=x,
        y=y,
        points=points,
        front=front,
        hypervolume=float(volume),
        reference_point=ref,
        reference_source=source,
        baselines=comparisons,
        status_counts=counts,
        unplaced_ok=unplaced_ok,
        stopped=stopped,
        not_comparable=not_comparable,
        expected_baselines=tuple(expected_baselines),
        baselines_not_run=tuple(b for b in expected_baselines if b not in present),
        baselines_unplaced=unplaced,
        not_shown=not_shown,
    )


def _annotated(trials: pd.DataFrame, x: str, y: str, test_acc: Mapping[str, tuple[float, str]]) -> pd.DataFrame:
    """A copy of ``trials`` with numeric x / y and the columns ``baseline``, ``is_baseline``,
    ``non_spiking``, ``summary``, ``test_acc`` and ``test_acc_source``."""
    table = trials.copy()
    for column in (x, y):
        table[column] = pd.to_numeric(table[column], errors="coerce")
    table["baseline"] = _baseline_column(table)
    table["is_baseline"] = table["baseline"] != ""
    table["non_spiking"] = non_spiking_mask(table)
    if "summary" not in table.columns:
        table["summary"] = ""
    keys = table["key"].map(lambda k: "" if is_missing(k) else str(k))
    table["test_acc"] = keys.map(lambda k: test_acc[k][0] if k in test_acc else math.nan).astype(float)
    table["test_acc_source"] = keys.map(lambda k: test_acc[k][1] if k in test_acc else "").astype(object)
    return table
