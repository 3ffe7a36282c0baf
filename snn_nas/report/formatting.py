"""Text for reports: counts in engineering notation, the sentence about trials not shown."""

from __future__ import annotations

import math
from collections.abc import Mapping

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
