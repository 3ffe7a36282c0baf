"""The result table of a search: one row per trial, written by the driver as trials finish.

``<results-dir>/<name>/trials.parquet`` holds the table; ``trials.jsonl`` is an append-only
journal of the same rows (one JSON object per line). Every ``record`` appends one line to the
journal and flushes it to the operating system (so a killed driver loses nothing), with an
``fsync`` at most every ``SYNC_EVERY_S`` seconds (what a power cut may cost). The table is
*compacted* from the rows in memory (written to a temporary file, then moved over the old one
with ``os.replace``) at most every ``COMPACT_EVERY_S`` seconds and when the search ends
(``close``), not after every trial: rewriting the whole table per trial made a search's
bookkeeping grow with the square of its trials (at 10,000 trials, seconds per trial). A crash at
any moment leaves a readable table and loses no finished trial: ``load_results`` merges the
journal's rows that the table lacks. A trial is recorded once: a second row of the same
``trial_id`` (in the journal, the table, or a second ``record``) never replaces the first, the
one written first; it is left out with a warning (an appended row must not replace a real result).

Reading is strict, because a silently dropped row is a lost trial: a table without the
contract's columns (``REQUIRED_COLUMNS``) is not a result table, and a row that does not
validate (unknown status, an accuracy that is not a fraction) is an error naming the file and
the row. In the journal, only a torn *last* line (one not ended by a newline: what a crash while
writing it leaves) is skipped silently; any other line that cannot be read is skipped with a
warning naming the file, the line and why (logger ``snn_nas.search.results``), and the rows of
every intact line are kept.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from snn_nas.errors import SnnNasError

logger = logging.getLogger(__name__)

TABLE_FILE = "trials.parquet"
JOURNAL_FILE = "trials.jsonl"
COMPACT_EVERY_S = 10.0
"""Seconds between two rewrites of ``trials.parquet`` while a search runs (and at ``close``)."""
SYNC_EVERY_S = 1.0
"""Seconds between two ``fsync`` of the journal (every line is flushed to the OS at once)."""

STATUSES = ("ok", "failed", "diverged", "invalid", "stopped", "silent")
"""``ok`` trained to the end; ``failed`` raised (reason in ``error``, e.g. ``out of memory``);
``diverged`` non-finite loss; ``invalid`` the sample does not decode or breaks a constraint that
is checked before training (not trained); ``stopped`` stopped early by the scheduler (ASHA);
``silent`` trained to the end, but a spiking network that never fires on the calibration batch
(firing rate or SOPs 0) at chance accuracy (``snn_nas.search.trial.silence``): its metrics are
kept, and like every status but ``ok`` it is never placed on a front."""

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
    "curve",
    "reused_from",
    "device",
    "proxy",
)
INT_COLUMNS = ("seed", "params", "time_steps", "epochs", "num_classes")
FLOAT_COLUMNS = (
    "val_acc",
    "val_loss",
    "sops",
    "macs",
    "energy_uj",
    "macs_per_step",
    "firing_rate",
    "wall_s",
    "finished_at",
    "started_at",
)
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
    "curve",
    "finished_at",
    "started_at",
    "num_classes",
    "reused_from",
    "device",
    "proxy",
)
"""Table columns in order: the contract's columns, then ``feasible`` (every constraint of the
experiment holds; null when unknown), ``node`` (the Ray node that ran the trial) and ``curve``
(JSON list of the per-epoch values the scheduler saw: ``{"epoch", "val_acc", "val_loss",
"sops", "macs", "energy_uj", "firing_rate", "wall_s"}``; ``[]`` for a trial never trained) and
``finished_at`` (Unix time at which the driver recorded the row: with the search's start, the
wall-clock progress of a search, e.g. for ``experiments/benchmarks/search_quality.py``),
``started_at`` (Unix time at which Ray started the trial, as the driver saw it), ``num_classes``
(classes of the dataset the trial trained on: chance accuracy is ``1 / num_classes``) and
``reused_from`` (the ``trial_id`` of the baseline row whose result a warm-start trial of the same
architecture reused instead of training it again; null otherwise), ``device`` (where the trial
trained: ``cpu``, ``cuda:0 <GPU name> (CUDA_VISIBLE_DEVICES=<Ray's GPU>)``, or ``cpu (asked for
0.25 GPU, no CUDA)``; with GPUs asked for, the search adds Ray's GPU ids), ``proxy`` (how
``val_acc`` was measured: ``standalone``, trained at the search's fidelity, or ``supernet``,
inherited from a one-shot search's supernet with batch norm recalibrated, never on a reported
front; null in older tables reads as ``standalone``).
Units: ``sops`` and ``macs`` per image, ``energy_uj`` microjoules per image, ``val_acc`` a
fraction, ``wall_s`` seconds of the trial's own work."""


REQUIRED_COLUMNS = (
    *("trial_id", "status", "key", "genotype", "summary", "seed", "fidelity", "val_acc", "val_loss", "sops", "macs"),
    *("energy_uj", "params", "macs_per_step", "time_steps", "firing_rate", "epochs", "wall_s", "error", "baseline"),
    "version",
)
"""The result-table contract: every table ``snn-nas search`` ever wrote has these columns. A
table lacking one is not a result table; columns added since (``feasible``, ``node``, ...) are
read as null when missing."""


class ResultsError(SnnNasError, LookupError):
    """No result table where one was expected, or an unreadable one."""


class RowError(ResultsError, ValueError):
    """A result row that does not validate (no ``trial_id``, unknown status, bad accuracy)."""


def normalise_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row with exactly ``COLUMNS``: missing ones null, numbers as int/float, NaN for unknown."""
    if not isinstance(row, Mapping):
        raise RowError(f"a result row is a mapping of column -> value, got {type(row).__name__}")
    if not row.get("trial_id"):
        raise RowError("a result row needs a non-empty 'trial_id'")
    out: dict[str, Any] = {}
    for name in COLUMNS:
        value = row.get(name)
        if name == "curve":
            out[name] = curve_json(value)
        elif name in STRING_COLUMNS:
            out[name] = None if value is None else str(value)
        elif name in INT_COLUMNS:
            out[name] = _as_int(value, name)
        elif name in FLOAT_COLUMNS:
            out[name] = _as_float(value, name)
        else:
            out[name] = None if value is None else bool(value)
    if out["baseline"] is None:
        out["baseline"] = ""
    if out["status"] not in STATUSES:
        raise RowError(f"status {out['status']!r} is not one of {list(STATUSES)}")
    accuracy = out["val_acc"]
    if not math.isnan(accuracy) and not 0.0 <= accuracy <= 1.0:
        raise RowError(
            f"val_acc: {accuracy:g} is not a fraction in [0, 1]; result tables hold accuracies as fractions "
            "(0.95 for 95 %), not percentages"
        )
    for name in COST_COLUMNS:
        number = math.nan if out[name] is None else float(out[name])
        if math.isinf(number) or number < 0:
            raise RowError(f"{name}: {number:g} is not a cost; costs are finite numbers >= 0 (or missing)")
    rate = out["firing_rate"]
    if not math.isnan(rate) and not 0.0 <= rate <= 1.0:
        raise RowError(f"firing_rate: {rate:g} is not a rate in [0, 1]")
    if out["time_steps"] is not None and out["time_steps"] < 1:
        raise RowError(f"time_steps: {out['time_steps']} is not a number of time steps (>= 1)")
    return out


COST_COLUMNS = ("sops", "macs", "energy_uj", "params", "macs_per_step")
"""Validated like accuracies: a finite number >= 0, or missing (a negative SOP count would place a
row at the cheap end of every front and push the hypervolume past its maximum)."""


def curve_json(value: Any) -> str:
    """A ``curve`` cell as JSON text: a list of per-epoch dicts (or its JSON text) in, ``"[]"``
    for nothing; non-finite numbers become null (strict JSON)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "[]"
    if isinstance(value, str):
        return value
    from snn_nas.jsonutil import finite_or_null

    return json.dumps(finite_or_null(list(value)), sort_keys=True)


def parse_curve(value: Any) -> list[dict[str, Any]]:
    """The per-epoch list of a ``curve`` cell (``[]`` when empty or missing)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return []
    data = json.loads(value) if isinstance(value, str) else value
    return [dict(point) for point in data] if isinstance(data, list) else []


def _as_int(value: Any, name: str = "value") -> int | None:
    number = _as_float(value, name)
    return int(number) if math.isfinite(number) else None


def _as_float(value: Any, name: str = "value") -> float:
    """A number cell: None/NaN -> NaN; a number, or text of one; anything else is a ``RowError``
    naming the column (a journal line with ``"sops": "abc"`` must not replace a good row)."""
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        raise RowError(f"{name}: {str(value)[:40]!r} is not a number") from None


def rows_to_frame(rows: Iterable[Mapping[str, Any]], *, normalised: bool = False) -> Any:
    """A pandas DataFrame with ``COLUMNS`` and stable dtypes (nullable ints and booleans);
    ``normalised``: the rows already went through ``normalise_row`` (skip it)."""
    import pandas as pd

    frame = pd.DataFrame(list(rows) if normalised else [normalise_row(r) for r in rows], columns=list(COLUMNS))
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


def _read_journal(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows of the journal's intact lines, and one note per line skipped (logged as a warning).

    A last line without its newline was torn by a crash while it was written: skipped silently
    when it does not parse. Any other unreadable line (not UTF-8, not JSON, not a trial record,
    a record that does not validate) is skipped with a warning naming the file and the line.
    """
    if not path.is_file():
        _not_a_file(path)
        return [], []
    data = path.read_bytes()
    lines = data.split(b"\n")
    torn = lines.pop()  # b"" when the file ends with a newline
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            rows.append(_journal_row(raw))
        except RowError as exc:
            skipped.append(f"line {number}: {exc}")
    if torn.strip():
        with contextlib.suppress(RowError):  # else a line torn by a crash while it was written
            rows.append(_journal_row(torn))
    for note in skipped:
        logger.warning("warning: %s: %s; skipped", path, note)
    return _first_of_each(rows, path, "lines"), skipped


def _not_a_file(path: Path) -> None:
    """A table or journal path that exists but is not a file (a folder, a socket) would read as
    "no trial yet", and a search would then write nothing there: refuse it, naming it."""
    if path.exists() and not path.is_file():
        kind = "a folder" if path.is_dir() else "not a regular file"
        raise ResultsError(f"{path}: is {kind}, not the search's {path.name}; move it away")


def _journal_row(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise RowError("not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise RowError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(value, dict):
        raise RowError(f"a JSON {type(value).__name__}, not a trial record")
    return _validated(value)


def _validated(row: dict[str, Any]) -> dict[str, Any]:
    """``normalise_row``, with any failure on a value of the wrong type as a ``RowError``."""
    try:
        return normalise_row(row)
    except RowError:
        raise
    except (TypeError, ValueError) as exc:
        raise RowError(f"a value of the wrong type ({type(exc).__name__}: {exc})") from None


def _read_table(path: Path) -> list[dict[str, Any]]:
    """The validated rows of ``trials.parquet``; ``ResultsError`` naming the file (and the row)
    for an unreadable file, a table without the contract's columns or a row that does not
    validate."""
    if not path.is_file():
        _not_a_file(path)
        return []
    import pandas as pd

    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise ResultsError(f"{path}: cannot read the result table ({exc})") from None
    missing = [name for name in REQUIRED_COLUMNS if name not in frame.columns]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ResultsError(
            f"{path}: not a result table of 'snn-nas search' (no column {shown}); "
            "point at a folder that 'snn-nas search' wrote"
        )
    rows = []
    for number, record in enumerate(frame.to_dict("records"), start=1):
        row = {k: (None if _is_missing(v) else v) for k, v in record.items()}
        try:
            rows.append(_validated(row))
        except RowError as exc:
            name = f" (trial_id {row['trial_id']})" if row.get("trial_id") else ""
            raise ResultsError(f"{path}: row {number}{name}: {exc}") from None
    return _first_of_each(rows, path, "rows")


def _first_of_each(rows: list[dict[str, Any]], path: Path, what: str) -> list[dict[str, Any]]:
    """The first row of each ``trial_id`` (the one written first), with a warning naming each
    trial_id that has more."""
    first: dict[str, dict[str, Any]] = {}
    counts: dict[str, int] = {}
    for row in rows:
        trial_id = str(row.get("trial_id"))
        counts[trial_id] = counts.get(trial_id, 0) + 1
        first.setdefault(trial_id, row)
    for trial_id, count in counts.items():
        if count > 1:
            logger.warning(
                "warning: %s: trial_id %s is in %d %s; only the first one, written first, is used",
                path, trial_id, count, what,
            )  # fmt: skip
    return list(first.values())


def _cut_torn_tail(path: Path) -> None:
    """Before appending to the journal: end a torn last line (a crash mid-write) so that the next
    record starts on a line of its own. A tail that is a whole record only lacks its newline
    and keeps its content; a torn one is cut off."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return
    cut = data.rfind(b"\n") + 1
    try:
        _journal_row(data[cut:])
    except RowError:
        with path.open("rb+") as handle:
            handle.truncate(cut)
            os.fsync(handle.fileno())
        return
    with path.open("ab") as handle:
        handle.write(b"\n")
        os.fsync(handle.fileno())


def _is_missing(value: Any) -> bool:
    try:
        import pandas as pd

        return value is None or bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _merge(*sources: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``trial_id -> row``: the table's rows, then the journal's rows the table lacks (a row of a
    trial_id already there is the same trial recorded again: the first stays)."""
    merged: dict[str, dict[str, Any]] = {}
    for rows in sources:
        for row in rows:
            if row.get("trial_id"):
                merged.setdefault(str(row["trial_id"]), dict(row))
    return merged


class ResultStore:
    """The table of one search folder; only the driver process writes it.

    ``record(row)`` stores a trial once (by ``trial_id``): one journal line (the durable record), and the
    parquet table compacted from memory at most every ``compact_every_s`` seconds; ``close()``
    compacts what is left (the driver calls it when a run ends). Rows already on disk are loaded
    on construction, so a resumed search keeps them. ``compact_every_s=0`` (the default, for the
    audit and scripts that record a few rows) rewrites the table at every record; the search
    driver passes ``COMPACT_EVERY_S``.
    """

    def __init__(self, directory: str | Path, *, compact_every_s: float = 0.0) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.table_path = self.directory / TABLE_FILE
        self.journal_path = self.directory / JOURNAL_FILE
        journal, self.skipped = _read_journal(self.journal_path)
        self._rows = _merge(_read_table(self.table_path), journal)
        self._tail_checked = False
        self.compact_every_s = float(compact_every_s)
        self._compacted_at = time.monotonic()
        self._synced_at = time.monotonic()
        self._unsynced = False
        self._dirty = 0  # rows recorded since the table was last written

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
        """Store one finished trial; returns its row. A trial already stored keeps its first row:
        the new one is not written, with a warning (the module docstring)."""
        clean = normalise_row(row)
        if clean["trial_id"] in self._rows:
            logger.warning(
                "warning: %s: trial_id %s is recorded already; its first row is kept", self.journal_path,
                clean["trial_id"],
            )  # fmt: skip
            return self._rows[clean["trial_id"]]
        line = json.dumps(clean, default=_json_default, allow_nan=True)
        if not self._tail_checked:
            _cut_torn_tail(self.journal_path)
            self._tail_checked = True
        now = time.monotonic()
        with self.journal_path.open("a") as handle:
            handle.write(line + "\n")
            handle.flush()
            if now - self._synced_at >= SYNC_EVERY_S:
                os.fsync(handle.fileno())
                self._synced_at, self._unsynced = now, False
            else:
                self._unsynced = True
        self._rows[clean["trial_id"]] = clean
        self._dirty += 1
        if now - self._compacted_at >= self.compact_every_s:
            self.flush()
        return clean

    def flush(self) -> None:
        """Rewrite ``trials.parquet`` from the rows in memory (temp file, then ``os.replace``)."""
        frame = rows_to_frame(self._rows.values(), normalised=True)
        tmp = self.table_path.with_name(f".{TABLE_FILE}.{os.getpid()}.tmp")
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, self.table_path)
        self._compacted_at, self._dirty = time.monotonic(), 0

    def close(self) -> None:
        """The journal synced and the table compacted (when rows were recorded since)."""
        if self._unsynced and self.journal_path.is_file():
            with self.journal_path.open("ab") as handle:
                os.fsync(handle.fileno())
            self._unsynced = False
        if self._dirty or (self._rows and not self.table_path.is_file()):
            self.flush()

    def frame(self) -> Any:
        return rows_to_frame(self._rows.values(), normalised=True)

    def rewrite_journal(self) -> Path | None:
        """After lines of the journal were skipped as unreadable (``skipped``): keep the journal as
        ``trials.jsonl.damaged`` (numbered if that exists) and write a clean one of the rows read,
        so that a resumed search appends to an intact file. Returns the kept copy (None when
        nothing was skipped)."""
        if not self.skipped:
            return None
        self.flush()
        backup = self.journal_path.with_name(f"{JOURNAL_FILE}.damaged")
        number = 1
        while backup.exists():
            number += 1
            backup = self.journal_path.with_name(f"{JOURNAL_FILE}.damaged.{number}")
        shutil.copy2(self.journal_path, backup)
        tmp = self.journal_path.with_name(f".{JOURNAL_FILE}.{os.getpid()}.tmp")
        with tmp.open("w") as handle:
            for clean in self._rows.values():
                handle.write(json.dumps(clean, default=_json_default, allow_nan=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.journal_path)
        self.skipped = []
        self._tail_checked = True
        return backup


def load_results(directory: str | Path) -> Any:
    """The result table of a search as a pandas DataFrame (columns ``COLUMNS``).

    ``directory`` is a search folder (``results/<name>``) or its ``trials.parquet``. Rows the
    journal holds but the table lacks (a crash between the two writes) are included. Raises
    ``ResultsError`` for a table that is not a search's or holds a row that does not validate;
    unreadable journal lines are skipped with a warning (see the module docstring).
    """
    if not isinstance(directory, (str, os.PathLike)):
        raise ResultsError(f"results folder: expected a path, got {type(directory).__name__}")
    path = Path(directory).expanduser()
    folder = path.parent if path.name in (TABLE_FILE, JOURNAL_FILE) else path
    if not folder.is_dir():
        raise ResultsError(f"{folder}: no such results folder (run 'snn-nas search' first)")
    table, journal = folder / TABLE_FILE, folder / JOURNAL_FILE
    _not_a_file(table)
    _not_a_file(journal)
    if not table.is_file() and not journal.is_file():
        raise ResultsError(f"{folder}: no {TABLE_FILE} here; expected a folder written by 'snn-nas search'")
    rows = _merge(_read_table(table), _read_journal(journal)[0])
    return rows_to_frame(rows.values())
