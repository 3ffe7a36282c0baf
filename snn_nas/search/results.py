"""The result table of a search: one row per trial, written by the driver as trials finish.

``<results-dir>/<name>/trials.parquet`` holds the table; ``trials.jsonl`` is an append-only
journal of the same rows (one JSON object per line, flushed and fsync'ed before the table is
rewritten). Every ``record`` appends to the journal, then rewrites the table into a temporary
file and moves it over the old one with ``os.replace``, so a crash at any moment leaves a
readable table and loses no finished trial: ``load_results`` merges the journal's rows that
the table may lack. A row recorded again for the same ``trial_id`` replaces the earlier one.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from snn_nas.errors import SnnNasError

TABLE_FILE = "trials.parquet"
JOURNAL_FILE = "trials.jsonl"

STATUSES = ("ok", "failed", "diverged", "invalid", "stopped")
"""``ok`` trained to the end; ``failed`` raised (reason in ``error``, e.g. ``out of memory``);
``diverged`` non-finite loss; ``invalid`` the sample does not decode or breaks a constraint that
is checked before training (not trained); ``stopped`` stopped early by the scheduler (ASHA)."""

STRING_COLUMNS = (
    "trial_id",
    "status",
    "key",
    "genotype",
    "summary",
    "fidelity",
    "error",
    "baseline",
    "version",
    "node",
)
INT_COLUMNS = ("seed", "params", "time_steps", "epochs")
FLOAT_COLUMNS = ("val_acc", "val_loss", "sops", "macs", "energy_uj", "macs_per_step", "firing_rate", "wall_s")
BOOL_COLUMNS = ("feasible",)

COLUMNS = (
    "trial_id",
    "status",
    "key",
    "genotype",
    "summary",
    "seed",
    "fidelity",
    "val_acc",
    "val_loss",
    "sops",
    "macs",
    "energy_uj",
    "params",
    "macs_per_step",
    "time_steps",
    "firing_rate",
    "epochs",
    "wall_s",
    "error",
    "baseline",
    "version",
    "feasible",
    "node",
)
"""Table columns in order: the contract's columns, then ``feasible`` (every constraint of the
experiment holds; null when unknown) and ``node`` (the Ray node that ran the trial).
Units: ``sops`` and ``macs`` per image, ``energy_uj`` microjoules per image, ``val_acc`` a
fraction, ``wall_s`` seconds of the trial's own work."""


class ResultsError(SnnNasError, LookupError):
    """No result table where one was expected, or an unreadable one."""


def normalise_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row with exactly ``COLUMNS``: missing ones null, numbers as int/float, NaN for unknown."""
    if not row.get("trial_id"):
        raise ValueError("a result row needs a non-empty 'trial_id'")
    out: dict[str, Any] = {}
    for name in COLUMNS:
        value = row.get(name)
        if name in STRING_COLUMNS:
            out[name] = None if value is None else str(value)
        elif name in INT_COLUMNS:
            out[name] = _as_int(value)
        elif name in FLOAT_COLUMNS:
            out[name] = _as_float(value)
        else:
            out[name] = None if value is None else bool(value)
    if out["baseline"] is None:
        out["baseline"] = ""
    if out["status"] not in STATUSES:
        raise ValueError(f"status {out['status']!r} is not one of {list(STATUSES)}")
    return out


def _as_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if math.isfinite(number) else None


def _as_float(value: Any) -> float:
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def rows_to_frame(rows: Iterable[Mapping[str, Any]]) -> Any:
    """A pandas DataFrame with ``COLUMNS`` and stable dtypes (nullable ints and booleans)."""
    import pandas as pd

    frame = pd.DataFrame([normalise_row(r) for r in rows], columns=list(COLUMNS))
    for name in INT_COLUMNS:
        frame[name] = frame[name].astype("Int64")
    for name in FLOAT_COLUMNS:
        frame[name] = frame[name].astype("float64")
    for name in BOOL_COLUMNS:
        frame[name] = frame[name].astype("boolean")
    for name in STRING_COLUMNS:
        frame[name] = frame[name].astype("string")
    return frame


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def _read_journal(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if not path.is_file():
        return rows
    with path.open() as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line torn by a crash while it was written
    return rows


def _read_table(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    import pandas as pd

    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise ResultsError(f"{path}: cannot read the result table ({exc})") from None
    return [{k: (None if _is_missing(v) else v) for k, v in r.items()} for r in frame.to_dict("records")]


def _is_missing(value: Any) -> bool:
    try:
        import pandas as pd

        return value is None or bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _merge(*sources: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for rows in sources:
        for row in rows:
            if row.get("trial_id"):
                merged[str(row["trial_id"])] = dict(row)
    return merged


class ResultStore:
    """The table of one search folder; only the driver process writes it.

    ``record(row)`` upserts by ``trial_id``: journal first (durable), then the parquet table
    (atomically replaced). Rows already on disk are loaded on construction, so a resumed search
    keeps them.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.table_path = self.directory / TABLE_FILE
        self.journal_path = self.directory / JOURNAL_FILE
        self._rows = _merge(_read_table(self.table_path), _read_journal(self.journal_path))

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, trial_id: object) -> bool:
        return trial_id in self._rows

    def get(self, trial_id: str) -> dict[str, Any] | None:
        row = self._rows.get(trial_id)
        return None if row is None else dict(row)

    def rows(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._rows.values()]

    def record(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Store one finished trial (replacing an earlier row of the same ``trial_id``)."""
        clean = normalise_row(row)
        line = json.dumps(clean, default=_json_default, allow_nan=True)
        with self.journal_path.open("a") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self._rows[clean["trial_id"]] = clean
        self.flush()
        return clean

    def flush(self) -> None:
        """Rewrite ``trials.parquet`` from the rows in memory (temp file, then ``os.replace``)."""
        frame = rows_to_frame(self._rows.values())
        tmp = self.table_path.with_name(f".{TABLE_FILE}.{os.getpid()}.tmp")
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, self.table_path)

    def frame(self) -> Any:
        return rows_to_frame(self._rows.values())


def load_results(directory: str | Path) -> Any:
    """The result table of a search as a pandas DataFrame (columns ``COLUMNS``).

    ``directory`` is a search folder (``results/<name>``) or its ``trials.parquet``. Rows the
    journal holds but the table lacks (a crash between the two writes) are included.
    """
    path = Path(directory).expanduser()
    folder = path.parent if path.name in (TABLE_FILE, JOURNAL_FILE) else path
    if not folder.is_dir():
        raise ResultsError(f"{folder}: no such results folder (run 'snn-nas search' first)")
    table, journal = folder / TABLE_FILE, folder / JOURNAL_FILE
    if not table.is_file() and not journal.is_file():
        raise ResultsError(f"{folder}: no {TABLE_FILE} here; expected a folder written by 'snn-nas search'")
    rows = _merge(_read_table(table), _read_journal(journal))
    return rows_to_frame(rows.values())
