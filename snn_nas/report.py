"""Reports over a results directory: the trial table, its Pareto front, the baselines, the files.

``analyse_front(trials, x=..., reference_point=...)`` is pure (a table in, a ``FrontAnalysis``
out); ``front_for_dir`` adds the I/O around it (read ``trials.parquet``, find the declared
reference point) and ``write_front_files`` writes ``pareto.csv`` and ``pareto.json``.

Definitions (shared with ``snn-nas pareto`` and ``snn-nas retrain``):

* Only rows with status ``ok`` and finite accuracy and cost are placed.
* The **front** is the non-dominated set of all placed rows (search trials and baselines) in
  (accuracy max, cost min); its ``rank`` is the row's position when sorted by accuracy
  descending (rank 0 = most accurate), ties broken by lower cost then key.
* The **hypervolume** is that of the non-baseline rows only, in raw units (accuracy fraction x
  cost unit) against the reference point ``{y: a, x: s}``: the declared one (key
  ``reference_point`` in ``experiment.yaml`` or ``search.json`` of the results directory), else
  ``a = 0`` and ``s = 1.1 x`` the largest cost among placed rows.
* A baseline is **dominated** by every search trial at least as accurate and at most as costly,
  strictly better in one of the two.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from snn_nas.errors import SnnNasError
from snn_nas.pareto import hypervolume_2d, is_pareto_front, non_domination_ranks, to_minimization

TRIALS_FILE = "trials.parquet"
EXPERIMENT_FILES = ("experiment.yaml", "experiment.yml", "search.json")
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
DEFAULT_REFERENCE_FACTOR = 1.1


class ResultsError(SnnNasError, ValueError):
    """A results directory or table that cannot be analysed; the message says why."""


# ----------------------------------------------------------------------------- reading
def load_trials(results_dir: str | Path) -> pd.DataFrame:
    """The trial table of ``results_dir``, one row per trial (``snn_nas.search.load_results``).

    Works on a search that is still running: the search replaces ``trials.parquet`` atomically
    and the rows of its journal that the table lacks are merged in.
    """
    from snn_nas.search.results import load_results

    return load_results(results_dir)


def declared_reference_point(results_dir: str | Path) -> tuple[dict[str, float], str | None]:
    """The reference point declared by the experiment, and the file that declared it.

    Looks for a ``reference_point`` mapping at the top level of ``experiment.yaml`` /
    ``search.json`` (or one level down, e.g. under ``search:``). Returns ``({}, None)`` if none.
    """
    root = Path(results_dir)
    for name in EXPERIMENT_FILES:
        path = root / name
        if not path.is_file():
            continue
        text = path.read_text()
        try:
            if path.suffix == ".json":
                data = json.loads(text)
            else:
                import yaml

                data = yaml.safe_load(text)
        except Exception as exc:
            raise ResultsError(f"{path}: cannot be parsed: {exc}") from None
        ref = _find_reference(data)
        if ref is None:
            continue
        if not isinstance(ref, dict):
            raise ResultsError(f"{path}: reference_point must be a mapping like {{val_acc: 0.1, sops: 1.0e6}}")
        out: dict[str, float] = {}
        for name_, value in ref.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ResultsError(f"{path}: reference_point.{name_} must be a finite number, got {value!r}")
            out[str(name_)] = float(value)
        return out, name
    return {}, None


def _find_reference(data: Any) -> Any:
    if not isinstance(data, dict):
        return None
    if "reference_point" in data:
        return data["reference_point"]
    for value in data.values():
        if isinstance(value, dict) and "reference_point" in value:
            return value["reference_point"]
    return None


# ----------------------------------------------------------------------------- analysis
@dataclass(frozen=True)
class BaselineComparison:
    """How the search trials compare with one baseline (a preset) on (accuracy, cost)."""

    baseline: str
    key: str
    val_acc: float
    cost: float
    dominated_by: tuple[str, ...]  # keys of search trials dominating it, most accurate first
    best_cheaper: str | None  # most accurate search trial costing at most as much
    best_cheaper_acc: float | None

    @property
    def dominated(self) -> bool:
        return bool(self.dominated_by)

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "key": self.key,
            "val_acc": self.val_acc,
            "cost": self.cost,
            "dominated": self.dominated,
            "dominated_by": list(self.dominated_by),
            "best_cheaper": self.best_cheaper,
            "best_cheaper_acc": self.best_cheaper_acc,
        }


@dataclass(frozen=True)
class FrontAnalysis:
    """The front of one results table on (``y`` max, ``x`` min).

    ``points``: every placed row (status ok, finite x and y) with the added columns
    ``is_baseline``, ``nd_rank`` (non-domination rank among all placed rows), ``on_front`` and
    ``on_search_front`` (non-dominated among the non-baseline rows). ``front``: the front rows
    sorted by accuracy descending, with ``rank`` 0, 1, ... as the first column. ``stopped``:
    rows stopped early by the scheduler that reported finite x and y (at a lower fidelity; they
    are plotted, never ranked).
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

    def front_rows(self, top: int | None = None) -> list[dict[str, Any]]:
        """The front as JSON-ready dicts (at least ``FRONT_COLUMNS`` plus ``summary``, ``trial_id``)."""
        frame = self.front if top is None else self.front.head(top)
        wanted = [*FRONT_COLUMNS, "macs", "trial_id", "summary"]
        rows = []
        for record in frame.to_dict("records"):
            rows.append({name: _plain(record.get(name)) for name in wanted if name in record})
        return rows

    def to_dict(self, top: int | None = None) -> dict[str, Any]:
        """The ``--json`` output and the content of ``pareto.json``."""
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
            "status_counts": dict(self.status_counts),
            "placed": len(self.points),
        }


def is_missing(value: Any) -> bool:
    """Whether a scalar is None, NaN or pandas' NA."""
    if value is None or value is pd.NA:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _plain(value: Any) -> Any:
    """numpy / pandas scalars -> JSON primitives (NaN, NA -> None)."""
    if is_missing(value):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _baseline_column(trials: pd.DataFrame) -> pd.Series:
    if "baseline" not in trials.columns:
        return pd.Series([""] * len(trials), index=trials.index, dtype=object)
    return trials["baseline"].map(lambda v: "" if is_missing(v) else str(v)).astype(object)


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
) -> FrontAnalysis:
    """Front, ranks, hypervolume and baseline comparison of a trial table (pure; see module doc).

    ``reference_point`` may give ``y`` and/or ``x``; a missing coordinate takes its default.
    """
    if x not in COST_COLUMNS:
        raise ResultsError(f"x: {x!r} is not a cost column; choose one of {list(COST_COLUMNS)}")
    if y not in ACCURACY_COLUMNS:
        raise ResultsError(f"y: {y!r} is not an accuracy column; choose one of {list(ACCURACY_COLUMNS)}")
    missing = [c for c in ("key", "status", x, y) if c not in trials.columns]
    if missing:
        raise ResultsError(f"the trial table lacks column(s) {missing}; it has {sorted(trials.columns)}")
    counts = {str(k): int(v) for k, v in trials["status"].value_counts().sort_index().items()}
    ok, finite = _with_metrics(trials, "ok", x, y)
    points = ok[finite].reset_index(drop=True)
    stopped, stopped_finite = _with_metrics(trials, "stopped", x, y)
    stopped = stopped[stopped_finite].reset_index(drop=True)
    stopped["baseline"] = _baseline_column(stopped)
    points["baseline"] = _baseline_column(points)
    points["is_baseline"] = points["baseline"] != ""
    if "summary" not in points.columns:
        points["summary"] = ""

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

    return FrontAnalysis(
        x=x,
        y=y,
        points=points,
        front=front,
        hypervolume=float(volume),
        reference_point=ref,
        reference_source=source,
        baselines=compare_baselines(points, x=x, y=y),
        status_counts=counts,
        unplaced_ok=int((~finite).sum()),
        stopped=stopped,
    )


def _with_metrics(trials: pd.DataFrame, status: str, x: str, y: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows of ``status`` with numeric ``x`` / ``y``, and the mask of those where both are finite."""
    rows = trials[trials["status"].astype(str).to_numpy() == status].copy()
    for column in (x, y):
        rows[column] = pd.to_numeric(rows[column], errors="coerce")
    finite = np.isfinite(rows[x].to_numpy(dtype=float)) & np.isfinite(rows[y].to_numpy(dtype=float))
    return rows, finite


def compare_baselines(points: pd.DataFrame, *, x: str, y: str) -> tuple[BaselineComparison, ...]:
    """One ``BaselineComparison`` per baseline row of ``points`` (columns ``key``, ``baseline``, x, y)."""
    baseline = _baseline_column(points)
    is_base = (baseline != "").to_numpy()
    search = points[~is_base].sort_values([y, x], ascending=[False, True], kind="stable")
    acc_s, cost_s = search[y].to_numpy(dtype=float), search[x].to_numpy(dtype=float)
    keys_s = search["key"].astype(str).tolist()
    out = []
    for (_, row), name in zip(points[is_base].iterrows(), baseline[is_base], strict=True):
        acc, cost = float(row[y]), float(row[x])
        dominating = (acc_s >= acc) & (cost_s <= cost) & ((acc_s > acc) | (cost_s < cost))
        cheaper = np.flatnonzero(cost_s <= cost)
        best = int(cheaper[0]) if cheaper.size else None  # search is sorted by accuracy descending
        out.append(
            BaselineComparison(
                baseline=str(name),
                key=str(row["key"]),
                val_acc=acc,
                cost=cost,
                dominated_by=tuple(k for k, d in zip(keys_s, dominating, strict=True) if d),
                best_cheaper=None if best is None else keys_s[best],
                best_cheaper_acc=None if best is None else float(acc_s[best]),
            )
        )
    return tuple(sorted(out, key=lambda b: (b.baseline, b.key)))


def front_for_dir(results_dir: str | Path, *, x: str = "sops", y: str = "val_acc") -> FrontAnalysis:
    """``analyse_front`` of ``results_dir``'s trial table with its declared reference point."""
    trials = load_trials(results_dir)
    ref, source = declared_reference_point(results_dir)
    return analyse_front(trials, x=x, y=y, reference_point=ref, reference_source=source or "declared")


def write_front_files(analysis: FrontAnalysis, results_dir: str | Path) -> dict[str, Path]:
    """Write ``pareto.csv`` (every front row, all columns) and ``pareto.json`` (``to_dict()``)."""
    root = Path(results_dir)
    paths = {"csv": root / "pareto.csv", "json": root / "pareto.json"}
    front = analysis.front.drop(columns=["on_front", "is_baseline"], errors="ignore")
    front.to_csv(paths["csv"], index=False)
    paths["json"].write_text(json.dumps(analysis.to_dict(), indent=2) + "\n")
    return paths


# ----------------------------------------------------------------------------- formatting
def format_count(value: float | None) -> str:
    """A count in engineering notation: 1234567 -> '1.23M'; None/NaN/NA -> '-'."""
    if is_missing(value) or not math.isfinite(float(value)):
        return "-"
    value = float(value)
    for factor, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g}{suffix}"
    return f"{value:.3g}"
