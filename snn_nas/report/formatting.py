"""Text for reports: counts in engineering notation, the sentence about trials not shown."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from snn_nas.report.columns import is_missing

NOT_SHOWN_REASONS = {
    "invalid": "not trained: the sample does not decode or breaks a constraint",
    "failed": "training raised an error",
    "diverged": "non-finite training loss",
    "ok without metrics": "finished without a finite accuracy or cost",
    "stopped without metrics": "stopped early before reporting a finite accuracy and cost",
    "stopped non-spiking": "stopped early, non-spiking: no place on the SOP axis",
}


def not_shown_text(not_shown: Mapping[str, int]) -> str | None:
    """``'not shown: 4 invalid (not trained: ...), 1 failed (...)'``, or None when every trial is shown."""
    if not not_shown:
        return None
    parts = [f"{n} {reason} ({NOT_SHOWN_REASONS.get(reason, reason)})" for reason, n in not_shown.items()]
    return f"{sum(not_shown.values())} trial(s) not shown: " + ", ".join(parts)


def format_count(value: float | None) -> str:
    """A count in engineering notation: 1234567 -> '1.23M'; None/NaN/NA -> '-'."""
    if is_missing(value) or not math.isfinite(float(value)):
        return "-"
    value = float(value)
    for factor, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g}{suffix}"
    return f"{value:.3g}"


STATUS_ORDER = ("ok", "stopped", "silent", "invalid", "failed", "diverged")


def trial_counts(rows: Iterable[Mapping[str, Any]]) -> tuple[dict[str, int], dict[str, int]]:
    """Status counts of the search trials and of the baseline rows (``baseline`` set) of ``rows``."""
    search: dict[str, int] = {}
    base: dict[str, int] = {}
    for row in rows:
        baseline = row.get("baseline")
        target = base if isinstance(baseline, str) and baseline else search
        status = str(row.get("status"))
        target[status] = target.get(status, 0) + 1
    return search, base


def _statuses(counts: Mapping[str, int]) -> str:
    order = [s for s in STATUS_ORDER if counts.get(s)] + sorted(s for s in counts if s not in STATUS_ORDER)
    return ", ".join(f"{counts[s]} {s}" for s in order)


def counts_text(search: Mapping[str, int], baselines: Mapping[str, int]) -> str:
    """How many trials, counted one way in every view: ``'32 search trials (14 ok, 14 stopped,
    4 invalid) + 2 baselines (2 ok)'``; baselines are the seed designs trained before the search,
    outside its trial budget."""
    n = sum(search.values())
    text = f"{n} search trial{'s' if n != 1 else ''}" + (f" ({_statuses(search)})" if n else "")
    b = sum(baselines.values())
    if b:
        text += f" + {b} baseline{'s' if b != 1 else ''} ({_statuses(baselines)})"
    return text
