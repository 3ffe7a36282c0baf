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
from snn_nas.report.eligibility import CHANCE_MARGIN, EXCLUSIONS, chance_accuracy, front_exclusion
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
    excluded: pd.DataFrame = field(default_factory=pd.DataFrame)  # ok rows kept off the front: chance, supernet, ...
    merged: tuple[dict[str, Any], ...] = ()  # rows of an architecture already placed (one point per key)
    num_classes: int | None = None
    chance_margin: float = CHANCE_MARGIN
    search_counts: dict[str, int] = field(default_factory=dict)  # status counts of the search trials
    baseline_counts: dict[str, int] = field(default_factory=dict)  # status counts of the baseline rows
    seed_verdicts: tuple[dict[str, Any], ...] = ()  # baselines trained with several seeds: verdict on means

    def front_rows(self, top: int | None = None) -> list[dict[str, Any]]:
        """The front as JSON-ready dicts (``FRONT_COLUMNS``, ``macs``, ``trial_id``, ``summary``, test accuracy)."""
        frame = self.front if top is None else self.front.head(top)
        wanted = [*FRONT_COLUMNS, "seed_design", "macs", "trial_id", "summary", "test_acc", "test_acc_source"]
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
            "baselines_on_seed_means": [dict(v) for v in self.seed_verdicts],
            "not_comparable": [
                {
                    **{k: plain_value(r.get(k)) for k in ("key", "baseline", "val_acc", "sops", "macs", "energy_uj")},
                    "reason": f"non-spiking: 0 SOPs, all MACs; compared on {NON_SPIKING_AXIS}",
                }
                for r in self.not_comparable.to_dict("records")
            ],
            "test_acc_sources": {s: TEST_ACC_SOURCES.get(s, s) for s in sources},
            "status_counts": dict(self.status_counts),
            "search_status_counts": dict(self.search_counts),
            "baseline_status_counts": dict(self.baseline_counts),
            "placed": len(self.points),
            "not_shown": dict(self.not_shown),
            "num_classes": self.num_classes,
            "chance_accuracy": chance_accuracy(self.num_classes),
            "excluded_from_front": {
                reason: {"count": n, "why": EXCLUSIONS[reason]} for reason, n in self.excluded_counts.items()
            },
            "excluded_rows": [
                {
                    **{k: plain_value(r.get(k)) for k in ("trial_id", "key", "baseline", "val_acc", self.x)},
                    "reason": r["exclusion"],
                }
                for r in self.excluded.to_dict("records")
            ],
            "merged": [dict(m) for m in self.merged],
        }

    @property
    def excluded_counts(self) -> dict[str, int]:
        """Reason -> number of finished rows kept off the front for it (``EXCLUSIONS``)."""
        if self.excluded.empty:
            return {}
        return {str(k): int(v) for k, v in self.excluded["exclusion"].value_counts().items()}


def default_reference_point(points: pd.DataFrame, x: str, y: str, num_classes: int | None = None) -> dict[str, float]:
    """``{y: chance, x: 1.1 x max cost}`` over ``points``: chance ``1 / num_classes`` (0 when
    unknown), and 1.0 if every cost is 0 or there is none."""
    largest = float(points[x].max()) if len(points) else 0.0
    chance = chance_accuracy(num_classes) or 0.0
    return {y: chance, x: DEFAULT_REFERENCE_FACTOR * largest if largest > 0 else 1.0}


def table_classes(trials: pd.DataFrame) -> int | None:
    """The number of classes the rows of ``trials`` record (the most common; None if none does)."""
    if "num_classes" not in trials.columns:
        return None
    values = pd.to_numeric(trials["num_classes"], errors="coerce").dropna()
    values = values[values >= 2]
    return int(values.mode().iloc[0]) if len(values) else None


def analyse_front(
    trials: pd.DataFrame,
    *,
    x: str = "sops",
    y: str = "val_acc",
    reference_point: dict[str, float] | None = None,
    reference_source: str = "declared",
    expected_baselines: Sequence[str] = (),
    test_acc: Mapping[str, tuple[float, str]] | None = None,
    num_classes: int | None = None,
    seed_designs: Mapping[str, str] | None = None,
) -> FrontAnalysis:
    """Front, ranks, hypervolume and baseline comparison of a trial table (pure; definitions in ``snn_nas.report``).

    ``reference_point`` may give ``y`` and/or ``x``; a missing coordinate takes its default, and
    a ``y`` below chance accuracy is raised to it. ``expected_baselines``: the presets the
    experiment lists (those without a row are reported). ``test_acc``: ``key -> (test accuracy,
    source)`` (``read_test_accuracies``), shown only. ``num_classes``: of the dataset, for rows
    that do not record theirs (chance level, ``snn_nas.report.eligibility``). ``seed_designs``:
    ``key -> preset name`` of hand designs (warm-start presets); baseline rows name theirs.
    """
    if x not in COST_COLUMNS:
        raise ResultsError(f"x: {x!r} is not a cost column; choose one of {list(COST_COLUMNS)}")
    if y not in ACCURACY_COLUMNS:
        raise ResultsError(f"y: {y!r} is not an accuracy column; choose one of {list(ACCURACY_COLUMNS)}")
    missing = [c for c in ("key", "status", x, y) if c not in trials.columns]
    if missing:
        raise ResultsError(f"the trial table lacks column(s) {missing}; it has {sorted(trials.columns)}")
    classes = num_classes if chance_accuracy(num_classes) is not None else table_classes(trials)
    table = _annotated(trials, x, y, test_acc or {}, classes, seed_designs or {})
    counts = _counts(table)
    status = table["status"].astype(str).to_numpy()
    finite_x, finite_y = np.isfinite(table[x].to_numpy(dtype=float)), np.isfinite(table[y].to_numpy(dtype=float))
    off_axis = table["non_spiking"].to_numpy(dtype=bool) & (x == "sops")
    supernet = table["proxy"].astype(str).to_numpy() == "supernet"
    ok, stopped_rows = status == "ok", status == "stopped"
    eligible = (table["exclusion"] == "").to_numpy(dtype=bool)
    placed = table[eligible]
    stopped = table[stopped_rows & finite_x & finite_y & ~off_axis & ~supernet].reset_index(drop=True)
    not_comparable = table[ok & finite_y & off_axis].reset_index(drop=True)
    excluded = table[ok & finite_x & finite_y & ~off_axis & ~eligible].reset_index(drop=True)
    unplaced_ok = int((ok & ~off_axis & ~(finite_x & finite_y)).sum() + (ok & off_axis & ~finite_y).sum())
    not_shown = {s: counts[s] for s in ("invalid", "failed", "diverged") if counts.get(s)}
    for why, n in (
        ("ok without metrics", unplaced_ok),
        ("stopped without metrics", int((stopped_rows & ~off_axis & ~(finite_x & finite_y)).sum())),
        ("stopped non-spiking", int((stopped_rows & off_axis).sum())),
    ):
        if n:
            not_shown[why] = n

    # one architecture, one point: a search row of a key stands for it (the warm-start trial of a
    # seed design), else its baseline row; the most accurate first
    ordered = placed.sort_values(["is_baseline", y, x, "trial_id"], ascending=[True, False, True, True], kind="stable")
    points = ordered.drop_duplicates("key", keep="first")
    dropped = ordered[~ordered.index.isin(points.index)]
    merged = tuple(
        {"trial_id": plain_value(r.get("trial_id")), "key": str(r["key"]), "baseline": r["baseline"],
         "placed_as": plain_value(points.loc[points["key"] == r["key"], "trial_id"].iloc[0])}
        for r in dropped.to_dict("records")
    )  # fmt: skip
    points = points.sort_index().reset_index(drop=True)

    loss = to_minimization(points[[y, x]].to_numpy(dtype=float).reshape(-1, 2), ["maximize", "minimize"])
    points["nd_rank"] = non_domination_ranks(loss) if len(points) else np.zeros(0, dtype=int)
    points["on_front"] = points["nd_rank"] == 0
    search = ~points["is_baseline"].to_numpy(dtype=bool)
    on_search = np.zeros(len(points), dtype=bool)
    on_search[search] = is_pareto_front(loss[search]) if search.any() else []
    points["on_search_front"] = on_search

    ref = default_reference_point(points, x, y, classes)
    given = {k: float(v) for k, v in (reference_point or {}).items() if k in (x, y)}
    raised = y in given and given[y] < ref[y]
    if raised:
        given[y] = ref[y]
    ref.update(given)
    if not given:
        source = "default"
    elif len(given) == 2:
        source = reference_source
    else:
        source = f"{reference_source} (+default {x if x not in given else y})"
    if raised or (y not in given and classes is not None):
        source += f"; {y} at chance level 1/{classes}"
    ref = {y: ref[y], x: ref[x]}
    ref_loss = to_minimization(np.array([[ref[y], ref[x]]]), ["maximize", "minimize"])[0]
    volume = hypervolume_2d(loss[search], ref_loss) if search.any() else 0.0

    front = points[points["on_front"]].sort_values([y, x, "key"], ascending=[False, True, True], kind="stable")
    front = front.reset_index(drop=True)
    front.insert(0, "rank", np.arange(len(front), dtype=int))

    comparisons = compare_baselines(table[ok & finite_y & ~supernet], x=x, y=y)
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
    is_base = table["is_baseline"].to_numpy(dtype=bool)
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
        excluded=excluded,
        merged=merged,
        num_classes=classes,
        search_counts=_counts(table[~is_base]),
        baseline_counts=_counts(table[is_base]),
        seed_verdicts=seed_verdicts(placed, x, y),
    )


def seed_verdicts(placed: pd.DataFrame, x: str, y: str) -> tuple[dict[str, Any], ...]:
    """The verdict on seed means of each seed design trained with several seeds (a one-shot
    search's stage 2 trains it twice), against the seed means of the searched architectures:
    the same sentence as the search's summary (``selection.mean_verdict_line``). ``placed``:
    the rows eligible for the front, with ``baseline`` and ``is_baseline``."""
    from snn_nas.search.selection import design_verdicts

    rows = placed.to_dict("records")
    names = sorted({str(r["baseline"]) for r in rows if r["is_baseline"]})
    designs = {name: [r for r in rows if r["baseline"] == name] for name in names}
    searched = [r for r in rows if not r["is_baseline"]]
    return tuple(
        {"baseline": name, "key": mean.key, "seeds": mean.n, y: mean.mean_y, "spread": mean.spread_y, x: mean.mean_x,
         "dominated": bool(dominating), "best_at_or_below_cost": best.key if best else None, "line": line}
        for name, mean, line, best, dominating in design_verdicts(designs, searched, x, y, min_seeds=2)
    )  # fmt: skip


def _counts(table: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in table["status"].value_counts().sort_index().items()}


def _annotated(
    trials: pd.DataFrame,
    x: str,
    y: str,
    test_acc: Mapping[str, tuple[float, str]],
    num_classes: int | None,
    seed_designs: Mapping[str, str],
) -> pd.DataFrame:
    """A copy of ``trials`` with numeric x / y and the columns ``baseline``, ``is_baseline``,
    ``seed_design`` (the preset a row's architecture is, or ""), ``proxy``, ``non_spiking``,
    ``exclusion`` (``front_exclusion``; "" when eligible), ``summary``, ``test_acc`` and ``test_acc_source``."""
    table = trials.copy()
    for column in (x, y):
        table[column] = pd.to_numeric(table[column], errors="coerce")
    if "trial_id" not in table.columns:
        table["trial_id"] = [f"row{i}" for i in range(len(table))]
    table["baseline"] = _baseline_column(table)
    table["is_baseline"] = table["baseline"] != ""
    keys = table["key"].map(lambda k: "" if is_missing(k) else str(k))
    designs = dict(seed_designs)
    designs.update({k: b for k, b in zip(keys, table["baseline"], strict=True) if b and k})
    table["seed_design"] = [b or designs.get(k, "") for k, b in zip(keys, table["baseline"], strict=True)]
    proxy = table["proxy"] if "proxy" in table.columns else pd.Series([None] * len(table), index=table.index)
    table["proxy"] = proxy.map(lambda v: "standalone" if is_missing(v) or not str(v) else str(v)).astype(object)
    table["non_spiking"] = non_spiking_mask(table)
    table["exclusion"] = [
        front_exclusion(row, x=x, y=y, num_classes=num_classes, non_spiking=bool(ns)) or ""
        for row, ns in zip(table.to_dict("records"), table["non_spiking"], strict=True)
    ]
    if "summary" not in table.columns:
        table["summary"] = ""
    table["test_acc"] = keys.map(lambda k: test_acc[k][0] if k in test_acc else math.nan).astype(float)
    table["test_acc_source"] = keys.map(lambda k: test_acc[k][1] if k in test_acc else "").astype(object)
    return table
