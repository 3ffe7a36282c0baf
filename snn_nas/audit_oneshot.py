"""The audit of a two-stage (one-shot) search: how well the supernet ranked (pure functions).

A one-shot search ranks its stage-1 architectures by ``supernet_val_acc`` (weights inherited from
the supernet, batch norm recalibrated) and trains the chosen ones standalone at the proxy (stage
2). Its audit therefore compares the supernet's ranking with standalone training twice: with the
proxy (``proxy_val_acc``: the standalone 2-epoch accuracy, the mean over seeds where stage 2
trained several) and with the audit's higher fidelity (``val_acc``), next to the parameter count.

**Sample** (``two_stage_sample``): every stage-2 architecture (one row per key, its seed means),
then an even spread over the supernet's ranking of the other stage-1 architectures, up to ``n``
in all. The spread has no standalone proxy result, so the audit trains those at the proxy
fidelity too (``needs_proxy``); ``proxy_source`` says which (``stage2`` or ``audit``).

**Statistics** (``supernet_statistics``), each with ``n_<name>`` and a 95 % interval
(``snn_nas.audit_stats.rank_interval``):

* ``kendall_tau_supernet_proxy`` / ``kendall_tau_supernet``: supernet accuracy versus proxy /
  high-fidelity accuracy; ``_top`` variants among the best third by supernet accuracy;
* ``front_recall_supernet_proxy`` / ``front_recall_supernet``: the share of the proxy /
  high-fidelity front (accuracy max, SOPs min) of the sample that is also on the supernet's front;
* ``kendall_tau_params_proxy``: parameter count versus proxy accuracy (``kendall_tau_params``,
  versus high-fidelity accuracy, is among the audit's own statistics).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from snn_nas.audit_stats import AuditError, column_tau, finite_rows, rank_interval
from snn_nas.pareto import is_pareto_front, to_minimization


def is_two_stage(trials: Any) -> bool:
    """Whether a result table holds stage-1 (supernet) rows."""
    return "proxy" in trials and bool((trials["proxy"].astype(str) == "supernet").any())


def two_stage_sample(trials: Any, n: int, *, x: str = "sops") -> list[dict[str, Any]]:
    """The rows to audit of a two-stage search (module docstring), dicts with ``on_front`` (on
    the front of the stage-2 seed means), ``supernet_val_acc``, ``supernet_sops``,
    ``needs_proxy`` and ``proxy_source`` set; ``val_acc`` / ``sops`` hold the proxy's figures."""
    import pandas as pd

    if isinstance(n, bool) or not isinstance(n, int) or n < 3:
        raise AuditError(f"--sample: {n!r}; an audit needs at least 3 architectures to rank")
    frame = trials[(trials["status"].astype(str) == "ok") & (trials["baseline"].fillna("").astype(str) == "")].copy()
    for column in ("val_acc", x):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame = frame[np.isfinite(frame["val_acc"].to_numpy(float)) & np.isfinite(frame[x].to_numpy(float))]
    supernet = frame["proxy"].astype(str) == "supernet"
    stage1 = frame[supernet].sort_values("val_acc", ascending=False).drop_duplicates("key")
    stage2 = frame[~supernet]
    estimates = {str(r["key"]): r for r in stage1.to_dict("records")}
    rows = []
    for key, group in stage2.groupby("key", sort=False):
        first = group.iloc[0].to_dict()
        estimate = estimates.get(str(key), {})
        rows.append({**first, "val_acc": float(group["val_acc"].mean()), x: float(group[x].mean()),
                     "proxy_seeds": len(group), "supernet_val_acc": estimate.get("val_acc"),
                     "supernet_sops": estimate.get(x), "needs_proxy": False, "proxy_source": "stage2"})  # fmt: skip
    if len(rows) >= 1:
        loss = to_minimization([[float(r["val_acc"]), float(r[x])] for r in rows], ["maximize", "minimize"])
        for row, on in zip(rows, is_pareto_front(loss), strict=True):
            row["on_front"] = bool(on)
    chosen = {str(r["key"]) for r in rows}
    rest = stage1[~stage1["key"].astype(str).isin(chosen)]
    room = max(0, n - len(rows))
    if room and len(rest):
        positions = np.unique(np.round(np.linspace(0, len(rest) - 1, min(room, len(rest)))).astype(int))
        for record in rest.iloc[positions].to_dict("records"):
            rows.append({**record, "val_acc": None, x: None, "supernet_val_acc": record["val_acc"],
                         "supernet_sops": record[x], "needs_proxy": True, "proxy_source": "audit",
                         "on_front": False})  # fmt: skip
    if len(rows) < 3:
        raise AuditError(
            f"the two-stage search has {len(rows)} architecture(s) to audit (stage 2 and stage 1 together); "
            "an audit needs at least 3"
        )
    return rows


def _front(rows: Sequence[Mapping[str, Any]], acc: str, cost: str) -> np.ndarray:
    return is_pareto_front(to_minimization([[float(r[acc]), float(r[cost])] for r in rows], ["maximize", "minimize"]))


def _recall(rows: Sequence[Mapping[str, Any]], acc: str, cost: str) -> float:
    """Share of the (``acc``, ``cost``) front of ``rows`` that the supernet's front holds."""
    rows = finite_rows(rows, "supernet_val_acc", "supernet_sops", acc, cost)
    if not rows:
        return math.nan
    truth, estimate = _front(rows, acc, cost), _front(rows, "supernet_val_acc", "supernet_sops")
    return float(np.sum(truth & estimate) / np.sum(truth))


def supernet_statistics(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The supernet's ranking against standalone training (module docstring); ``{}`` when no
    row has a supernet estimate (an ordinary search)."""
    done = [r for r in rows if r.get("status") == "ok"]
    if not finite_rows(done, "supernet_val_acc"):
        return {}
    ranked = sorted(finite_rows(done, "supernet_val_acc"), key=lambda r: -float(r["supernet_val_acc"]))
    top = ranked[: max(3, math.ceil(len(ranked) / 3))] if len(ranked) >= 3 else []
    stats: dict[str, Any] = {
        "kendall_tau_supernet_proxy": column_tau(done, "supernet_val_acc", "proxy_val_acc"),
        "kendall_tau_supernet": column_tau(done, "supernet_val_acc", "val_acc"),
        "kendall_tau_supernet_proxy_top": column_tau(top, "supernet_val_acc", "proxy_val_acc") if top else math.nan,
        "kendall_tau_supernet_top": column_tau(top, "supernet_val_acc", "val_acc") if top else math.nan,
        "kendall_tau_params_proxy": column_tau(done, "params", "proxy_val_acc"),
        "front_recall_supernet_proxy": _recall(done, "proxy_val_acc", "proxy_sops"),
        "front_recall_supernet": _recall(done, "val_acc", "sops"),
    }
    pairs = {
        "kendall_tau_supernet_proxy": (done, "supernet_val_acc", "proxy_val_acc"),
        "kendall_tau_supernet": (done, "supernet_val_acc", "val_acc"),
        "kendall_tau_supernet_proxy_top": (top, "supernet_val_acc", "proxy_val_acc"),
        "kendall_tau_supernet_top": (top, "supernet_val_acc", "val_acc"),
        "kendall_tau_params_proxy": (done, "params", "proxy_val_acc"),
    }
    for name, (part, a, b) in pairs.items():
        count = len(finite_rows(part, a, b))
        stats[f"n_{name}"] = count
        interval = rank_interval(stats[name], count)
        stats[f"ci95_{name}"] = None if interval is None else list(interval)
    return stats
