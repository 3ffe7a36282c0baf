"""Rank statistics of an audit (pure): Kendall's tau-b, Spearman's rho and their 95 % intervals.

Both audits compare rankings: the proxy audit (``snn_nas.audit``) the proxy's with high-fidelity
training, the one-shot audit (``snn_nas.audit_oneshot``) the supernet's with standalone training.
They share what is here, and ``AuditError``, the error of an audit that cannot run.

Tau-b of ``x`` and ``y`` over ``n`` pairs, with ``C`` concordant and ``D`` discordant pairs::

    tau_b = (C - D) / sqrt((P - T_x) (P - T_y)),    P = n (n - 1) / 2

where ``T_x`` / ``T_y`` count the pairs tied in ``x`` / ``y`` (scipy's ``kendalltau``
default). NaN when there are fewer than 2 rows or a variable is constant. Spearman's rho is
Pearson's r of the average ranks (ties share their mean rank).

Over table rows (dicts), ``column_tau(rows, a, b)`` is tau-b of columns ``a`` and ``b`` over the
rows where both are finite numbers (``finite_rows``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from snn_nas.errors import SnnNasError


class AuditError(SnnNasError, ValueError):
    """An audit that cannot run: nothing to audit, a bad sample size, a folder of another kind."""


def _ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks (1-based; ties share their mean rank)."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=float)
    sorted_values = values[order]
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and sorted_values[j + 1] == sorted_values[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b of paired samples (see the module docstring); NaN if undefined."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise AuditError(f"kendall_tau: expected two 1-D arrays of one length, got {a.shape} and {b.shape}")
    n = len(a)
    if n < 2:
        return math.nan
    i, j = np.triu_indices(n, k=1)
    dx, dy = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
    concordant_minus_discordant = float(np.sum(dx * dy))
    pairs = n * (n - 1) / 2
    tied_x, tied_y = float(np.sum(dx == 0)), float(np.sum(dy == 0))
    denominator = math.sqrt((pairs - tied_x) * (pairs - tied_y))
    return concordant_minus_discordant / denominator if denominator > 0 else math.nan


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho: Pearson's correlation of the average ranks; NaN if undefined."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(a) < 2 or a.shape != b.shape:
        return math.nan
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = math.sqrt(float(np.sum(ra * ra) * np.sum(rb * rb)))
    return float(np.sum(ra * rb)) / denominator if denominator > 0 else math.nan


def finite_rows(rows: Sequence[Mapping[str, Any]], *columns: str) -> list[Mapping[str, Any]]:
    """The rows whose ``columns`` all hold a finite number."""
    from snn_nas.jsonutil import finite_or_none

    return [r for r in rows if all(finite_or_none(r.get(c)) is not None for c in columns)]


def column_tau(rows: Sequence[Mapping[str, Any]], a: str, b: str) -> float:
    """Kendall's tau-b of columns ``a`` and ``b`` over the rows where both are finite."""
    rows = finite_rows(rows, a, b)
    return kendall_tau([float(r[a]) for r in rows], [float(r[b]) for r in rows])


Z95 = 1.959963984540054


def rank_interval(value: float, n: int, kind: str = "tau") -> tuple[float, float] | None:
    """Approximate 95 % confidence interval of a rank correlation over ``n`` pairs (Fisher's z):

    ``z = atanh(r)``, ``r`` in ``[z - 1.96 s, z + 1.96 s]`` mapped back by ``tanh``, with the
    standard errors of Fieller, Hartley and Pearson (1957): ``s = sqrt(0.437 / (n - 4))`` for
    Kendall's tau (n >= 5) and ``s = sqrt(1.06 / (n - 3))`` for Spearman's rho (n >= 4). None when
    ``n`` is below that or the value is undefined (too few pairs for an interval).
    """
    if value is None or not math.isfinite(value):
        return None
    if kind == "tau":
        if n < 5:
            return None
        se = math.sqrt(0.437 / (n - 4))
    else:
        if n < 4:
            return None
        se = math.sqrt(1.06 / (n - 3))
    z = math.atanh(max(-0.999999, min(0.999999, value)))
    return math.tanh(z - Z95 * se), math.tanh(z + Z95 * se)
