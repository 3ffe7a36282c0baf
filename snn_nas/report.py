"""Reports over a results directory: the trial table, its Pareto front, the baselines, the files.

``analyse_front(trials, x=..., reference_point=..., expected_baselines=..., test_acc=...)`` is
pure (a table in, a ``FrontAnalysis`` out); ``front_for_dir`` adds the I/O around it (read
``trials.parquet``, the declared reference point and baselines, the test accuracies of
retrained and audited trials) and ``write_front_files`` writes ``pareto.csv`` and ``pareto.json``.

Definitions (shared with ``snn-nas pareto`` and ``snn-nas retrain``):

* Only rows with status ``ok`` and finite accuracy and cost are placed.
* A **non-spiking** row (genotype family other than ``spiking``, e.g. an ``snn_mlp`` baseline;
  without a genotype: ``time_steps == 1``, ``sops == 0`` and ``macs > 0``) does all its work as
  MACs: its 0 SOPs are not comparable with a spiking network's. On the SOP axis (``x ==
  "sops"``) such rows are *not comparable*: listed in ``not_comparable``, never placed, ranked
  or counted in the hypervolume; on every other axis they are placed like any row.
* The **front** is the non-dominated set of all placed rows (search trials and baselines) in
  (accuracy max, cost min); its ``rank`` is the row's position when sorted by accuracy
  descending (rank 0 = most accurate), ties broken by lower cost then key.
* The **hypervolume** is that of the non-baseline rows only, in raw units (accuracy fraction x
  cost unit) against the reference point ``{y: a, x: s}``: the declared one (key
  ``reference_point`` in ``experiment.yaml`` or ``search.json`` of the results directory), else
  ``a = 0`` and ``s = 1.1 x`` the largest cost among placed rows.
* A baseline is compared on ``x``, or on ``energy_uj`` when it is non-spiking and ``x`` is
  ``sops`` (energy is where its MACs count). It is **dominated** by every search trial at least
  as accurate and at most as costly on that axis, strictly better in one of the two; some
  member of the search front on that axis then dominates it too (``dominated_by_front``). Its
  **margin** is ``100 x (a* - a_b)`` points, where ``a*`` is the best search accuracy at a cost
  ``<=`` the baseline's and ``a_b`` the baseline's accuracy (None when every trial costs more).
* **Test accuracy** (``test_acc``, ``test_acc_source``) of a front row comes from
  ``retrain/<key>/report.json`` (retrained on train + val; source ``retrain``) or else from
  ``audit/audit.parquet`` (trained again at a higher fidelity; source ``audit``). It is shown
  beside the search accuracy and never used for ranking or for the front.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from snn_nas.errors import SnnNasError
from snn_nas.pareto import hypervolume_2d, is_pareto_front, non_domination_ranks, to_minimization

TRIALS_FILE = "trials.parquet"
EXPERIMENT_FILES = ("experiment.yaml", "experiment.yml", "search.json")
RETRAIN_DIR = "retrain"
AUDIT_TABLE = Path("audit") / "audit.parquet"
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
NON_SPIKING_AXIS = "energy_uj"  # where a non-spiking row is compared when x is "sops"
TEST_ACC_SOURCES = {
    "retrain": "retrained on train+val (retrain/<key>/report.json)",
    "audit": "audited at a higher fidelity (audit/audit.parquet)",
}
NOT_SHOWN_REASONS = {
    "invalid": "not trained: the sample does not decode or breaks a constraint",
    "failed": "training raised an error",
    "diverged": "non-finite training loss",
    "ok without metrics": "finished without a finite accuracy or cost",
    "stopped without metrics": "stopped early before reporting a finite accuracy and cost",
    "stopped non-spiking": "stopped early, non-spiking: no place on the SOP axis",
}


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


def _experiment_files(results_dir: str | Path) -> list[tuple[str, Any]]:
    """``(file name, parsed content)`` of each experiment file present in ``results_dir``."""
    root = Path(results_dir)
    found = []
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
        found.append((name, data))
    return found


def declared_reference_point(results_dir: str | Path) -> tuple[dict[str, float], str | None]:
    """The reference point declared by the experiment, and the file that declared it.

    Looks for a ``reference_point`` mapping at the top level of ``experiment.yaml`` /
    ``search.json`` (or one level down, e.g. under ``search:``). Returns ``({}, None)`` if none.
    """
    for name, data in _experiment_files(results_dir):
        ref = _find_reference(data)
        if ref is None:
            continue
        path = Path(results_dir) / name
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


def declared_baselines(results_dir: str | Path) -> tuple[str, ...]:
    """The seed baselines (preset names) listed under ``baselines`` in the experiment file; () if none."""
    for name, data in _experiment_files(results_dir):
        if isinstance(data, dict) and "baselines" in data:
            listed = data["baselines"] or []
            if not isinstance(listed, list) or not all(isinstance(b, str) for b in listed):
                raise ResultsError(f"{Path(results_dir) / name}: baselines must be a list of preset names")
            return tuple(listed)
    return ()


def read_test_accuracies(results_dir: str | Path) -> dict[str, tuple[float, str]]:
    """``key -> (test_acc, source)`` of the trials retrained or audited in ``results_dir``.

    Sources (see ``TEST_ACC_SOURCES``): ``retrain`` from ``retrain/<key>/report.json`` (top-level
    ``key`` and ``test_acc``, a fraction), preferred; else ``audit`` from ``audit/audit.parquet``
    (columns ``key``, ``test_acc``; the last row of a key wins). Reports without a finite
    ``test_acc`` (older ones, failed runs) are skipped; missing files give ``{}``.
    """
    root = Path(results_dir)
    found: dict[str, tuple[float, str]] = {}
    audit = root / AUDIT_TABLE
    if audit.is_file():
        try:
            table = pd.read_parquet(audit)
        except Exception as exc:
            raise ResultsError(f"{audit}: cannot be read ({exc}); move it away or run 'snn-nas audit' again") from None
        if {"key", "test_acc"} <= set(table.columns):
            for key, value in zip(table["key"], pd.to_numeric(table["test_acc"], errors="coerce"), strict=True):
                if not is_missing(key) and _finite(value):
                    found[str(key)] = (float(value), "audit")
    for path in sorted((root / RETRAIN_DIR).glob("*/report.json")):
        try:
            report = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ResultsError(f"{path}: cannot be read ({exc})") from None
        if not isinstance(report, dict) or report.get("status", "ok") != "ok":
            continue
        key, value = report.get("key") or path.parent.name, report.get("test_acc")
        if _finite(value):
            found[str(key)] = (float(value), "retrain")
    return found


def _finite(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float, np.number)) and math.isfinite(value)


# ----------------------------------------------------------------------------- analysis
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
            row = {name: _plain(record.get(name)) for name in wanted if name in record}
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
                    **{k: _plain(r.get(k)) for k in ("key", "baseline", "val_acc", "sops", "macs", "energy_uj")},
                    "reason": f"non-spiking: 0 SOPs, all MACs; compared on {NON_SPIKING_AXIS}",
                }
                for r in self.not_comparable.to_dict("records")
            ],
            "test_acc_sources": {s: TEST_ACC_SOURCES.get(s, s) for s in sources},
            "status_counts": dict(self.status_counts),
            "placed": len(self.points),
            "not_shown": dict(self.not_shown),
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


def is_non_spiking(genotype: Any = None, *, time_steps: Any = None, sops: Any = None, macs: Any = None) -> bool:
    """Whether a row describes a non-spiking network (see the module doc).

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
    """Front, ranks, hypervolume and baseline comparison of a trial table (pure; see module doc).

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
            "key": _plain(r["key"]),
            "status": str(r["status"]),
            "error": _plain(r.get("error")),
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


def compare_baselines(rows: pd.DataFrame, *, x: str, y: str) -> tuple[BaselineComparison, ...]:
    """One ``BaselineComparison`` per baseline row of ``rows`` (ok rows with a finite ``y``; columns
    ``key``, ``baseline``, ``y``, ``x`` and, for non-spiking rows on ``sops``, ``energy_uj``).

    A baseline is compared on ``x``, or on ``energy_uj`` when it is non-spiking and ``x`` is
    ``sops``; against the search rows with a finite cost on that axis (on ``sops``: the spiking
    ones). A baseline without a finite cost on its axis is left out.
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
        pool = ~is_base & np.isfinite(cost_all) & (spiking if axis == "sops" else True)
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


def not_shown_text(not_shown: Mapping[str, int]) -> str | None:
    """``'not shown: 4 invalid (not trained: ...), 1 failed (...)'``, or None when every trial is shown."""
    if not not_shown:
        return None
    parts = [f"{n} {reason} ({NOT_SHOWN_REASONS.get(reason, reason)})" for reason, n in not_shown.items()]
    return f"{sum(not_shown.values())} trial(s) not shown: " + ", ".join(parts)


def front_for_dir(results_dir: str | Path, *, x: str = "sops", y: str = "val_acc") -> FrontAnalysis:
    """``analyse_front`` of ``results_dir``'s trial table with its declared reference point and
    baselines, and the test accuracies of its retrained and audited trials."""
    trials = load_trials(results_dir)
    ref, source = declared_reference_point(results_dir)
    return analyse_front(
        trials,
        x=x,
        y=y,
        reference_point=ref,
        reference_source=source or "declared",
        expected_baselines=declared_baselines(results_dir),
        test_acc=read_test_accuracies(results_dir),
    )


def write_front_files(analysis: FrontAnalysis, results_dir: str | Path) -> dict[str, Path]:
    """Write ``pareto.csv`` (every front row, all columns, ``test_acc`` and ``test_acc_source``
    included) and ``pareto.json`` (``to_dict()``)."""
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
