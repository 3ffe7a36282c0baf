"""Strict JSON, and the reading of the text files users hand us.

Writing: ``finite_or_null`` turns NaN/inf into null (strict JSON has no NaN).

Reading: ``read_text`` reads a user file as UTF-8 and ``loads_strict`` parses JSON that means
exactly one thing: a key written twice in one object and the non-standard constants ``NaN``,
``Infinity`` and ``-Infinity`` (which Python's ``json`` accepts by default) are errors naming
the file, the line and what is allowed. Every problem raises ``FileFormatError`` (or the
``error`` class a caller passes, e.g. its own ``SnnNasError`` subclass).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from snn_nas.errors import SnnNasError


class FileFormatError(SnnNasError, ValueError):
    """A user file that cannot be read as what it claims to be (not UTF-8, not strict JSON/YAML)."""


def finite_or_none(value: Any) -> float | None:
    """``value`` as a finite float, or None (not a number, NaN, infinite)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def finite_or_null(value: Any) -> Any:
    """``value`` with NaN/inf floats replaced by None, recursively (strict JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_null(v) for v in value]
    return value


def read_text(path: str | os.PathLike[str], *, what: str = "file", error: type[SnnNasError] = FileFormatError) -> str:
    """The text of ``path`` decoded as UTF-8 (a byte-order mark is dropped).

    A file that is not UTF-8 or cannot be read raises ``error`` naming the file and, for a
    decoding problem, the offending byte and its position. ``what`` names the file's role in the
    message (``"experiment file"``, ``"genotype file"``).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise error(f"{path}: is a folder; expected a {what}") from None
    except OSError as exc:
        raise error(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise error(
            f"{path}: the {what} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); save it as UTF-8"
        ) from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a finite number; JSON numbers must be finite")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is too large for a finite number; JSON numbers must be finite")
    return value


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {key!r} is written twice in one object; keep one")
        out[key] = value
    return out


def loads_strict(text: str, source: str = "JSON", *, error: type[SnnNasError] = FileFormatError) -> Any:
    """Parse JSON ``text``; a syntax error, a duplicate key or NaN/Infinity raises ``error``
    naming ``source`` (a file name or a description such as ``"genotype JSON"``)."""
    try:
        return json.loads(
            text, object_pairs_hook=_unique_pairs, parse_constant=_reject_constant, parse_float=_finite_float
        )
    except json.JSONDecodeError as exc:
        raise error(f"{source}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except ValueError as exc:  # raised by the hooks above; json does not say where, the message does
        raise error(f"{source}: {exc}") from None
    except RecursionError:
        raise error(f"{source}: the JSON is nested too deeply") from None


def read_json(
    path: str | os.PathLike[str], *, what: str = "JSON file", error: type[SnnNasError] = FileFormatError
) -> Any:
    """``loads_strict(read_text(path))``: a UTF-8 strict JSON file."""
    return loads_strict(read_text(path, what=what, error=error), str(path), error=error)
