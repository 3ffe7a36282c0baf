"""A results directory: its trial table, declared reference point and baselines, the test
accuracies of retrained and audited trials, and the front files written into it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from snn_nas.report.columns import ResultsError, is_missing
from snn_nas.report.eligibility import dataset_classes
from snn_nas.report.front import FrontAnalysis, analyse_front

TRIALS_FILE = "trials.parquet"
EXPERIMENT_FILES = ("experiment.yaml", "experiment.yml", "search.json")
RETRAIN_DIR = "retrain"
AUDIT_TABLE = Path("audit") / "audit.parquet"


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
        from snn_nas.jsonutil import read_json
        from snn_nas.yamlutil import read_yaml

        what = "the search's experiment file"
        if path.suffix == ".json":
            data = read_json(path, what=what, error=ResultsError)
        else:
            data = read_yaml(path, what=what, error=ResultsError)
        if not isinstance(data, dict):
            raise ResultsError(f"{path}: not an experiment (a mapping of settings), but a {type(data).__name__}")
        found.append((name, data))
    return found


def declared_dataset(results_dir: str | Path) -> str | None:
    """The ``dataset`` the experiment file names (None when there is none)."""
    for _, data in _experiment_files(results_dir):
        if isinstance(data.get("dataset"), str):
            return data["dataset"]
    return None


def seed_design_keys(results_dir: str | Path) -> dict[str, str]:
    """``key -> preset name`` of the hand designs the experiment names (``baselines``, and the
    presets of a ``warm_start`` list); unknown names are left out (the search refused them)."""
    names: list[str] = list(declared_baselines(results_dir))
    for _, data in _experiment_files(results_dir):
        warm = data.get("warm_start")
        if isinstance(warm, list):
            names.extend(n for n in warm if isinstance(n, str))
    from snn_nas.errors import SnnNasError
    from snn_nas.presets import get_preset

    keys: dict[str, str] = {}
    for name in names:
        try:
            keys.setdefault(get_preset(name).key(), name)
        except SnnNasError:
            continue
    return keys


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


def declared_constraints(results_dir: str | Path) -> dict[str, float]:
    """``metric -> upper bound`` of the experiment file's ``constraints`` (``max_params: 3e5``
    gives ``{"params": 3e5}``); entries that are not ``max_<metric>: number`` are left out (the
    search refused them)."""
    for _, data in _experiment_files(results_dir):
        listed = data.get("constraints")
        if isinstance(listed, dict):
            return {
                str(name)[4:]: float(limit)
                for name, limit in listed.items()
                if str(name).startswith("max_") and _finite(limit)
            }
    return {}


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
        from snn_nas.jsonutil import read_json

        report = read_json(path, what="a retraining report", error=ResultsError)
        if not isinstance(report, dict) or report.get("status", "ok") != "ok":
            continue
        key, value = report.get("key") or path.parent.name, report.get("test_acc")
        if _finite(value):
            found[str(key)] = (float(value), "retrain")
    return found


def _finite(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float, np.number)) and math.isfinite(value)


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
        num_classes=dataset_classes(declared_dataset(results_dir)),
        seed_designs=seed_design_keys(results_dir),
    )


def write_front_files(analysis: FrontAnalysis, results_dir: str | Path) -> dict[str, Path]:
    """Write ``pareto.csv`` (every front row, all columns, ``test_acc`` and ``test_acc_source``
    included) and ``pareto.json`` (``to_dict()``)."""
    root = Path(results_dir)
    paths = {"csv": root / "pareto.csv", "json": root / "pareto.json"}
    front = analysis.front.drop(columns=["on_front", "is_baseline", "exclusion"], errors="ignore")
    front.to_csv(paths["csv"], index=False)
    paths["json"].write_text(json.dumps(analysis.to_dict(), indent=2) + "\n")
    return paths
