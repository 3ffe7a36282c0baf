"""How far can a search's proxy be trusted? The maths and files of ``snn-nas audit``.

An audit retrains a sample of a search's ``ok`` trials at a higher fidelity (on ``train``, so
that ``val`` stays held out and the two accuracies are comparable; the test part is measured
once on each final model) and compares the proxy's figures with the high-fidelity ones. The
runner (Ray) is ``snn_nas.search.audit``; this module is pure: the sample, the statistics, the
table, the JSON and the plot.

**Sample** (``audit_sample``): every member of the search front (``val_acc`` max, cost min,
baselines left out), then an even spread over the proxy's accuracy ranking of the other ``ok``
trials, up to ``n`` in all.

**Statistics** (``audit_statistics``), over the sample rows that trained (``status`` ok):

* ``kendall_tau``: Kendall's tau-b between proxy and high-fidelity ``val_acc``;
  ``spearman_rho``: Spearman's rho (Pearson's r of the average ranks) of the same;
* ``kendall_tau_top``: tau-b among the best third by proxy accuracy (at least 3 rows): close
  competitors, where choosing is hard (a wide accuracy spread makes the overall tau easy);
* ``kendall_tau_test``: proxy ``val_acc`` versus high-fidelity ``test_acc``;
* ``kendall_tau_sops``: proxy versus high-fidelity SOPs (firing rates move with training);
  ``sops_drift_median`` / ``sops_drift_max``: the median relative change
  ``(sops_hf - sops_proxy) / sops_proxy`` and the one largest in magnitude (signed);
* ``kendall_tau_params``: parameter count versus high-fidelity accuracy, a naive proxy and the
  bar to beat (about 0.55 on NAS-Bench-201); ``kendall_tau_sahd`` / ``kendall_tau_sahd_proxy``:
  the training-free SAHD score (``snn_nas.zero_cost``) versus high-fidelity and proxy accuracy;
* ``front_recall``: of the high-fidelity front of the sample (``val_acc`` max, SOPs min), the
  share that is also on the proxy front of the sample;
* ``top1_regret``: the best high-fidelity accuracy in the sample minus that of the proxy's best;
* ``n``: rows compared.

Tau-b, rho and their intervals (the formulas): ``snn_nas.audit_stats``, re-exported here.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from snn_nas.audit_stats import (
    AuditError,
    column_tau,
    finite_rows,
    kendall_tau,
    rank_interval,
    spearman_rho,
)
from snn_nas.pareto import is_pareto_front, to_minimization

AUDIT_DIR = "audit"
TABLE_FILE = "audit.parquet"
JOURNAL_FILE = "audit.jsonl"
JSON_FILE = "audit.json"
PNG_FILE = "audit.png"
DEFAULT_SAMPLE = 12
COLUMNS = (
    "key",
    "trial_id",
    "on_front",
    "status",
    "error",
    "proxy_val_acc",
    "proxy_sops",
    "val_acc",
    "test_acc",
    "sops",
    "params",
    "time_steps",
    "sahd",
    "epochs",
    "wall_s",
    "fidelity",
    "summary",
    "supernet_val_acc",
    "supernet_sops",
    "proxy_source",
)
"""``audit.parquet``: one row per audited architecture. ``proxy_*`` are the search's figures;
``val_acc`` / ``test_acc`` / ``sops`` those of the high-fidelity model (``val_acc`` on the
held-out part, ``test_acc`` on the test part, ``sops`` per image on the search's calibration
batch); ``sahd`` the SAHD score of the untrained model; ``fidelity`` the TrainConfig JSON. A
two-stage search's audit adds ``supernet_val_acc`` / ``supernet_sops`` (the stage-1 estimate) and
``proxy_source`` (``stage2``: the proxy figures are stage 2's seed means; ``audit``: the audit
trained the architecture at the proxy too); see ``snn_nas.audit_oneshot``."""


# ----------------------------------------------------------------------------- the sample
def audit_sample(trials: Any, n: int, *, x: str = "sops", num_classes: int | None = None) -> list[dict[str, Any]]:
    """The rows to audit (dicts, ``on_front`` set): the search front first (most accurate first),
    then an even spread over the other ``ok`` search trials ranked by proxy accuracy. The front
    is the one every view shows: only rows the front rule admits stand on it
    (``snn_nas.report.eligibility.front_exclusion``: not at chance level for ``num_classes``, not
    infeasible, spiking on the SOP axis); the others may still be sampled in the spread."""
    import pandas as pd

    from snn_nas.report.eligibility import front_exclusion

    if isinstance(n, bool) or not isinstance(n, int) or n < 3:
        raise AuditError(f"--sample: {n!r}; an audit needs at least 3 architectures to rank")
    frame = trials.copy()
    baseline = frame["baseline"].fillna("").astype(str) if "baseline" in frame else pd.Series("", index=frame.index)
    frame = frame[(frame["status"].astype(str) == "ok") & (baseline == "")]
    for column in ("val_acc", x):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame = frame[np.isfinite(frame["val_acc"].to_numpy(float)) & np.isfinite(frame[x].to_numpy(float))]
    frame = frame.drop_duplicates("key")
    if len(frame) < 3:
        raise AuditError(
            f"the search has {len(frame)} finished ('ok') trial(s) with an accuracy and a cost; an audit needs "
            "at least 3 (run more trials, or wait for the search to finish)"
        )
    eligible = np.array([front_exclusion(r, x=x, num_classes=num_classes) is None for r in frame.to_dict("records")])
    loss = to_minimization(frame[["val_acc", x]].to_numpy(float), ["maximize", "minimize"])
    front_mask = np.zeros(len(frame), dtype=bool)
    if eligible.any():
        front_mask[eligible] = is_pareto_front(loss[eligible])
    front = frame[front_mask].sort_values(["val_acc", x], ascending=[False, True])
    rest = frame[~front_mask].sort_values(["val_acc", x], ascending=[False, True])
    spread = max(0, n - len(front))
    if spread and len(rest):
        positions = np.unique(np.round(np.linspace(0, len(rest) - 1, min(spread, len(rest)))).astype(int))
        rest = rest.iloc[positions]
    else:
        rest = rest.iloc[:0]
    rows = []
    for on_front, part in ((True, front), (False, rest)):
        for record in part.to_dict("records"):
            rows.append({**record, "on_front": on_front})
    return rows


# ----------------------------------------------------------------------------- the statistics
SMALL_N = 10
"""Below this many architectures a rank statistic is reported with a warning: with n = 4 a single
swapped pair moves Kendall's tau by 0.33, and its 95 % interval spans most of [-1, 1]."""


def _n(rows: Sequence[Mapping[str, Any]], a: str, b: str) -> int:
    return len(finite_rows(rows, a, b))


def audit_statistics(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The audit's figures over its table rows (see the module docstring for each key), each
    rank correlation with ``n_<name>`` (pairs compared) and ``ci95_<name>`` (``rank_interval``),
    and ``small_n`` when fewer than ``SMALL_N`` architectures were compared."""
    rows = list(rows)
    stats = _point_statistics(rows)
    done = [r for r in rows if r.get("status") == "ok"]
    pairs = {
        "kendall_tau": ("proxy_val_acc", "val_acc"),
        "spearman_rho": ("proxy_val_acc", "val_acc"),
        "kendall_tau_test": ("proxy_val_acc", "test_acc"),
        "kendall_tau_sops": ("proxy_sops", "sops"),
        "kendall_tau_params": ("params", "val_acc"),
        "kendall_tau_sahd": ("sahd", "val_acc"),
        "kendall_tau_sahd_proxy": ("sahd", "proxy_val_acc"),
    }
    for name, (a, b) in pairs.items():
        n = _n(done, a, b)
        stats[f"n_{name}"] = n
        interval = rank_interval(stats[name], n, "rho" if name == "spearman_rho" else "tau")
        stats[f"ci95_{name}"] = None if interval is None else list(interval)
    interval = rank_interval(stats["kendall_tau_top"], stats["n_top"])
    stats["ci95_kendall_tau_top"] = None if interval is None else list(interval)
    stats["n_sops_drift"] = len([r for r in finite_rows(done, "sops", "proxy_sops") if float(r["proxy_sops"]) > 0])
    stats["small_n"] = stats["n"] < SMALL_N
    return stats


def _point_statistics(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The point values of ``audit_statistics``."""
    done = [r for r in rows if r.get("status") == "ok"]
    paired = finite_rows(done, "proxy_val_acc", "val_acc")
    proxy = [float(r["proxy_val_acc"]) for r in paired]
    high = [float(r["val_acc"]) for r in paired]
    ranked = sorted(paired, key=lambda r: -float(r["proxy_val_acc"]))
    top = ranked[: max(3, math.ceil(len(ranked) / 3))] if len(ranked) >= 3 else []
    drift = [
        (float(r["sops"]) - float(r["proxy_sops"])) / float(r["proxy_sops"])
        for r in finite_rows(done, "sops", "proxy_sops")
        if float(r["proxy_sops"]) > 0
    ]
    stats: dict[str, Any] = {
        "n": len(paired),
        "kendall_tau": kendall_tau(proxy, high),
        "spearman_rho": spearman_rho(proxy, high),
        "kendall_tau_top": column_tau(top, "proxy_val_acc", "val_acc") if top else math.nan,
        "n_top": len(top),
        "kendall_tau_test": column_tau(done, "proxy_val_acc", "test_acc"),
        "kendall_tau_sops": column_tau(done, "proxy_sops", "sops"),
        "kendall_tau_params": column_tau(done, "params", "val_acc"),
        "kendall_tau_sahd": column_tau(done, "sahd", "val_acc"),
        "kendall_tau_sahd_proxy": column_tau(done, "sahd", "proxy_val_acc"),
        "sops_drift_median": float(np.median(drift)) if drift else math.nan,
        "sops_drift_max": float(max(drift, key=abs)) if drift else math.nan,
        "front_recall": front_recall(done),
        "top1_regret": top1_regret(paired),
    }
    return stats


def front_recall(rows: Sequence[Mapping[str, Any]]) -> float:
    """Share of the sample's high-fidelity front (``val_acc``, ``sops``) on its proxy front."""
    rows = finite_rows(rows, "proxy_val_acc", "proxy_sops", "val_acc", "sops")
    if not rows:
        return math.nan
    directions = ["maximize", "minimize"]
    high = is_pareto_front(to_minimization([[float(r["val_acc"]), float(r["sops"])] for r in rows], directions))
    proxy = is_pareto_front(
        to_minimization([[float(r["proxy_val_acc"]), float(r["proxy_sops"])] for r in rows], directions)
    )
    return float(np.sum(high & proxy) / np.sum(high))


def top1_regret(rows: Sequence[Mapping[str, Any]]) -> float:
    """Best high-fidelity accuracy minus that of the architecture the proxy ranks first."""
    rows = finite_rows(rows, "proxy_val_acc", "val_acc")
    if not rows:
        return math.nan
    chosen = max(rows, key=lambda r: (float(r["proxy_val_acc"]), -float(r.get("proxy_sops") or 0.0)))
    return max(float(r["val_acc"]) for r in rows) - float(chosen["val_acc"])


# ----------------------------------------------------------------------------- the table
def _clean(row: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for name in COLUMNS:
        value = row.get(name)
        if hasattr(value, "item"):
            value = value.item()
        out[name] = value
    return out


def row_id(row: Mapping[str, Any]) -> tuple[str, str]:
    """What identifies an audit row: the architecture key and the settings (fidelity JSON,
    keys sorted) it was trained at."""
    fidelity = row.get("fidelity")
    if isinstance(fidelity, str):
        with contextlib.suppress(ValueError):
            fidelity = json.dumps(json.loads(fidelity), sort_keys=True)
    elif isinstance(fidelity, Mapping):
        fidelity = json.dumps(dict(fidelity), sort_keys=True)
    return str(row.get("key")), str(fidelity or "")


class AuditStore:
    """``RESULTS_DIR/audit/``: the journal (``audit.jsonl``, one line per finished architecture
    and setting, fsync'ed) and the table rewritten from it (``audit.parquet``, atomically
    replaced). Rows are keyed by the architecture ``key`` *and* the ``fidelity`` it was audited
    at, so an audit run again with other settings (epochs, subset, ...) trains anew instead of
    reporting the old rows under the new settings. Only a torn last journal line (a crash while
    writing) is skipped."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.journal = self.directory / JOURNAL_FILE
        self.table = self.directory / TABLE_FILE
        self._rows: dict[tuple[str, str], dict[str, Any]] = {}
        if self.journal.is_file():
            lines = self.journal.read_text(encoding="utf-8").splitlines()
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    if number == len(lines):
                        continue  # torn by a crash
                    raise AuditError(
                        f"{self.journal}: line {number} is not valid JSON; the audit cannot resume"
                    ) from None
                if not isinstance(row, dict) or not row.get("key"):
                    raise AuditError(f"{self.journal}: line {number} is not an audit row")
                self._rows[row_id(row)] = row

    def rows(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._rows.values()]

    def done(self) -> set[tuple[str, str]]:
        """``(key, fidelity JSON)`` of every audited row."""
        return set(self._rows)

    def record(self, row: Mapping[str, Any]) -> None:
        from snn_nas.jsonutil import finite_or_null

        clean = _clean(row)
        with self.journal.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(finite_or_null(clean), sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self._rows[row_id(clean)] = clean
        self.flush()

    def flush(self) -> None:
        self.frame().to_parquet(tmp := self.table.with_name(f".{TABLE_FILE}.{os.getpid()}.tmp"), index=False)
        os.replace(tmp, self.table)

    def frame(self) -> Any:
        import pandas as pd

        frame = pd.DataFrame([_clean(r) for r in self._rows.values()], columns=list(COLUMNS))
        for name in ("proxy_val_acc", "proxy_sops", "val_acc", "test_acc", "sops", "sahd", "wall_s",
                     "supernet_val_acc", "supernet_sops"):  # fmt: skip
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
        for name in ("params", "time_steps", "epochs"):
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("Int64")
        frame["on_front"] = frame["on_front"].astype("boolean")
        return frame


def load_audit(results_dir: str | Path) -> Any | None:
    """The audit table of a results folder, or None when it has no audit."""
    path = Path(results_dir) / AUDIT_DIR / TABLE_FILE
    if not path.is_file():
        return None
    import pandas as pd

    return pd.read_parquet(path)


# ----------------------------------------------------------------------------- report
def audit_report(rows: Sequence[Mapping[str, Any]], *, fidelity: Mapping[str, Any], proxy: Mapping[str, Any],
                 sample: int, wall_s: float) -> dict[str, Any]:  # fmt: skip
    """``audit.json``: the statistics plus what was compared."""
    from snn_nas.audit_oneshot import supernet_statistics
    from snn_nas.jsonutil import finite_or_null

    stats = {**audit_statistics(rows), **supernet_statistics(rows)}
    counts: dict[str, int] = {}
    for row in rows:
        counts[str(row.get("status"))] = counts.get(str(row.get("status")), 0) + 1
    return finite_or_null(
        {
            **stats,
            "sample": sample,
            "status_counts": counts,
            "front_members": sum(1 for r in rows if r.get("on_front")),
            "high_fidelity": dict(fidelity),
            "proxy_fidelity": dict(proxy),
            "wall_s": wall_s,
            "train_wall_s": float(sum(float(r.get("wall_s") or 0.0) for r in rows)),
        }
    )


def plot_info(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What ``audit.png`` draws: proxy versus high-fidelity accuracy, front members marked."""
    paired = finite_rows([r for r in rows if r.get("status") == "ok"], "proxy_val_acc", "val_acc")
    return {
        "x": [float(r["proxy_val_acc"]) for r in paired],
        "y": [float(r["val_acc"]) for r in paired],
        "front": [bool(r.get("on_front")) for r in paired],
        "keys": [str(r["key"]) for r in paired],
        "tau": kendall_tau([float(r["proxy_val_acc"]) for r in paired], [float(r["val_acc"]) for r in paired]),
    }


def draw_audit_png(info: Mapping[str, Any], path: str | Path, title: str = "") -> list[str]:
    """Proxy versus high-fidelity accuracy, each point labelled with its key; returns the labels
    and the title drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 5.0), dpi=120)
    xs, ys, front = np.array(info["x"]), np.array(info["y"]), np.array(info["front"], dtype=bool)
    if len(xs):
        ax.scatter(100 * xs[~front], 100 * ys[~front], c="tab:blue", label="sampled trial")
        ax.scatter(100 * xs[front], 100 * ys[front], c="tab:red", marker="D", label="search front member")
        low = 100 * min(xs.min(), ys.min())
        high = 100 * max(xs.max(), ys.max())
        ax.plot([low, high], [low, high], color="grey", lw=0.8, ls="--", label="y = x")
        from snn_nas.plots.labels import label_offsets

        ax.autoscale_view()
        fig.tight_layout()  # the final limits and place of the axes, before labels are placed in them
        scale = 72.0 / fig.dpi  # display pixels -> points (annotate's offsets)
        anchors = ax.transData.transform(np.column_stack([100 * xs, 100 * ys])) * scale
        top = ax.get_window_extent().y1 * scale
        offsets = label_offsets([tuple(p) for p in anchors], ceiling=top)  # a cluster's keys stacked, in the axes
        for x, y, key, offset in zip(xs, ys, info["keys"], offsets, strict=True):  # every point named by its key
            ax.annotate(key, (100 * x, 100 * y), textcoords="offset points", xytext=offset, fontsize=6)
    ax.set_xlabel("proxy validation accuracy (%)")
    ax.set_ylabel("high-fidelity validation accuracy (%)")
    tau, n = info.get("tau"), len(xs)
    interval = rank_interval(tau, n) if tau == tau else None
    ci = f", 95% CI [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else ", too few for an interval"
    caveat = f"\nn = {n} < {SMALL_N}: read as an indication" if n < SMALL_N else ""
    default = f"proxy vs high fidelity (Kendall tau {tau:.2f}{ci}, n = {n}){caveat}" if tau == tau else "audit"
    ax.set_title(title or default, fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    drawn = [t.get_text() for t in ax.texts] + [ax.get_title()]
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return drawn
