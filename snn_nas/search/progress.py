"""Live progress of a search in the terminal: trials done / running / failed and the current front.

``SearchProgress`` keeps the counts and the finished rows; the driver feeds it events. It prints
one line per finished trial (id, status, objectives, the reason of a trial that did not train),
on a terminal above a rich ``Live`` panel of the running trials and the current front, elsewhere
(logs, CI, tests) as plain lines. The current front is the one ``snn-nas pareto`` reports
(``current_front``: the rule of ``snn_nas.report.eligibility``, one point per architecture, seed
designs named). ``current_front``, ``status_counts`` and ``status_summary`` are pure functions
over result rows (tested on their own).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

FRONT_ROWS_SHOWN = 8
RUNNING_ROWS_SHOWN = 12
REDRAW_EVERY_S = 0.5


def _value(row: Mapping[str, Any], metric: str) -> float:
    try:
        value = float(row.get(metric))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return value


def current_front(
    rows: Sequence[Mapping[str, Any]],
    metrics: Sequence[str],
    modes: Sequence[str],
    *,
    num_classes: int | None = None,
    seed_designs: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The front as ``snn-nas pareto`` reports it, over finished rows (search trials and baselines).

    The rows eligible by ``snn_nas.report.eligibility.front_exclusion`` (status ok, not a supernet
    estimate, finite objectives, spiking when SOPs are an objective, feasible, above chance level;
    ``num_classes`` for rows that do not record theirs), one per architecture (a search row of a
    ``key`` before its baseline row), then the non-dominated ones on all ``metrics``. Each returned
    row carries ``seed_design``: the preset its architecture is (a baseline's name, or
    ``seed_designs[key]``), else "". Returned in order of the first objective, best first.
    """
    from snn_nas.pareto import is_pareto_front, to_minimization
    from snn_nas.report.eligibility import front_exclusion

    accuracy = next((m for m, mode in zip(metrics, modes, strict=True) if mode == "max"), "val_acc")
    costs = [m for m in metrics if m != accuracy]
    x = "sops" if "sops" in costs else (costs[0] if costs else "sops")
    designs = dict(seed_designs or {})
    designs.update({str(r.get("key")): str(r["baseline"]) for r in rows if r.get("baseline") and r.get("key")})
    eligible = [
        dict(r)
        for r in rows
        if front_exclusion(r, x=x, y=accuracy, num_classes=num_classes) is None
        and all(math.isfinite(_value(r, m)) for m in metrics)
    ]
    eligible.sort(key=lambda r: (bool(r.get("baseline")), -_value(r, accuracy), str(r.get("trial_id"))))
    candidates, seen = [], set()
    for row in eligible:
        key = str(row.get("key"))
        if key in seen:
            continue
        seen.add(key)
        row["seed_design"] = str(row.get("baseline") or "") or designs.get(key, "")
        candidates.append(row)
    if not candidates:
        return []
    directions = ["maximize" if mode == "max" else "minimize" for mode in modes]
    values = to_minimization([[_value(r, m) for m in metrics] for r in candidates], directions)
    mask = is_pareto_front(values)
    front = [(v[0], r) for v, r, keep in zip(values.tolist(), candidates, mask.tolist(), strict=True) if keep]
    front.sort(key=lambda pair: pair[0])
    return [r for _, r in front]


class FrontTracker:
    """``current_front`` of a growing set of rows, kept up to date row by row.

    Adding a row changes the front only through the candidates ``current_front`` picks (one per
    architecture): a row that is not eligible, or loses to its architecture's current candidate,
    changes nothing; a row of a new architecture gives ``current_front(front + [row])``, because
    a point dominated in a set stays dominated when points are added (dominance is transitive);
    only a row that *replaces* its architecture's candidate (a search row after the baseline row
    of the same key) can bring back points the old candidate dominated, and then the front is
    recomputed from all candidates. So the cost per row is that of the front, not of the history.
    """

    def __init__(self, metrics: Sequence[str], modes: Sequence[str]) -> None:
        from snn_nas.report.eligibility import front_exclusion

        self.metrics, self.modes = list(metrics), list(modes)
        self._accuracy = next((m for m, mode in zip(metrics, modes, strict=True) if mode == "max"), "val_acc")
        costs = [m for m in self.metrics if m != self._accuracy]
        self._x = "sops" if "sops" in costs else (costs[0] if costs else "sops")
        self._exclusion = front_exclusion
        self._candidates: dict[str, dict[str, Any]] = {}  # key -> the row current_front would pick
        self._designs: dict[str, str] = {}  # key -> seed design (from baseline rows)
        self.front: list[dict[str, Any]] = []

    def _rank(self, row: Mapping[str, Any]) -> tuple[bool, float, str]:
        return (bool(row.get("baseline")), -_value(row, self._accuracy), str(row.get("trial_id")))

    def add(self, row: Mapping[str, Any]) -> None:
        key = str(row.get("key"))
        if row.get("baseline") and row.get("key") and key not in self._designs:
            self._designs[key] = str(row["baseline"])
            for member in self.front:  # the seed design's name reaches a front row of its key
                if str(member.get("key")) == key and not member.get("seed_design"):
                    member["seed_design"] = self._designs[key]
        if self._exclusion(row, x=self._x, y=self._accuracy) is not None:
            return
        if not all(math.isfinite(_value(row, m)) for m in self.metrics):
            return
        held = self._candidates.get(key)
        if held is not None and self._rank(held) <= self._rank(row):
            return
        self._candidates[key] = dict(row)
        pool = list(self._candidates.values()) if held is not None else [*self.front, dict(row)]
        self.front = current_front(pool, self.metrics, self.modes, seed_designs=self._designs)


def format_metric(metric: str, value: Any) -> str:
    """A metric as every view prints it: accuracy in percent, energy in uJ, counts (SOPs, MACs,
    parameters) in engineering notation (``snn_nas.report.format_count``: 691k, 9.63k, 967)."""
    number = _value({"v": value}, "v")
    if not math.isfinite(number):
        return "-"
    if metric in ("val_acc", "firing_rate"):
        return f"{100 * number:.2f}%" if metric == "val_acc" else f"{number:.3f}"
    if metric == "energy_uj":
        return f"{number:.4g} uJ"
    from snn_nas.report.formatting import format_count

    return format_count(number)


FAILED_STATUSES = ("failed", "diverged", "invalid")
"""Summed into ``failed_total`` and shown as one ``failed`` count."""
SHOWN_STATUSES = ("ok", "stopped", "silent")
"""Shown by name in the headline, in this order, before ``failed``; ``stopped`` covers every
scheduler (``none`` never stops a trial; ``asha`` and ``moasha`` do, and ``snn_nas.search.trial.make_row``
marks the row ``stopped`` the same way for both)."""
SHOWN_IF_ANY = ("silent",)
"""Of ``SHOWN_STATUSES``, those shown only when some row has them (so a search without them reads
as before)."""


def status_counts(rows: Sequence[Mapping[str, Any]], *, running: int = 0) -> dict[str, int]:
    """``done`` (finished rows, any status), ``running``, one count per status found in ``rows``
    and ``failed_total`` (the sum over ``FAILED_STATUSES``)."""
    counts = {"done": len(rows), "running": running}
    for row in rows:
        status = str(row.get("status"))
        counts[status] = counts.get(status, 0) + 1
    counts["failed_total"] = sum(counts.get(s, 0) for s in FAILED_STATUSES)
    return counts


def status_summary(counts: Mapping[str, int]) -> str:
    """The status part of the headline, e.g. ``ok 21, stopped 8, silent 2, failed or invalid 3``."""
    parts = [f"{s} {counts.get(s, 0)}" for s in SHOWN_STATUSES if counts.get(s, 0) or s not in SHOWN_IF_ANY]
    return ", ".join([*parts, f"failed or invalid {counts.get('failed_total', 0)}"])


class SearchProgress:
    """Counts and front of a running search; ``live`` redraws a panel (default: on a TTY)."""

    def __init__(
        self,
        name: str,
        total: int,
        metrics: Sequence[str],
        modes: Sequence[str],
        *,
        live: bool | None = None,
        enabled: bool = True,
        stream: Any = None,
        baselines: bool = False,
    ) -> None:
        self.name = name
        self.total = total
        self.metrics = list(metrics)
        self.modes = list(modes)
        self.enabled = enabled
        self.baselines = baselines
        self.stream = stream if stream is not None else sys.stdout
        self.live = enabled and (self.stream.isatty() if live is None else live)
        self.rows: dict[str, dict[str, Any]] = {}
        self.context: dict[str, dict[str, Any]] = {}  # rows of the other phase: on the front, not counted
        self.running: dict[str, dict[str, Any]] = {}
        self.started = time.monotonic()
        self._live: Any = None
        self._statuses: dict[str, int] = {}  # status -> finished rows (kept as rows arrive)
        self._tracker = FrontTracker(self.metrics, self.modes)
        self._drawn_at = -math.inf

    # ---------------------------------------------------------------- counts
    def counts(self) -> dict[str, int]:
        """``status_counts`` of the finished rows and the running trials (kept up to date as rows
        arrive, not recounted)."""
        counts = {"done": len(self.rows), "running": len(self.running), **self._statuses}
        counts["failed_total"] = sum(self._statuses.get(s, 0) for s in FAILED_STATUSES)
        return counts

    def front(self) -> list[dict[str, Any]]:
        """The front over every finished row, this phase's and the context's (``current_front``,
        kept up to date row by row by a ``FrontTracker``)."""
        return self._tracker.front

    def _add_row(self, row: Mapping[str, Any], *, context: bool = False) -> None:
        trial_id = str(row["trial_id"])
        table = self.context if context else self.rows
        previous = table.get(trial_id)
        if previous is not None:  # a row recorded again: the later one counts
            if not context:
                status = str(previous.get("status"))
                self._statuses[status] -= 1
            self._tracker = FrontTracker(self.metrics, self.modes)
            table[trial_id] = dict(row)
            for other in [*self.context.values(), *self.rows.values()]:
                self._tracker.add(other)
        else:
            table[trial_id] = dict(row)
            self._tracker.add(row)
        if not context:
            status = str(row.get("status"))
            self._statuses[status] = self._statuses.get(status, 0) + 1

    def headline(self) -> str:
        c = self.counts()
        elapsed = time.monotonic() - self.started
        return (
            f"{self.name}: {c['done']}/{self.total} done ({status_summary(c)}), {c['running']} running, "
            f"front {len(self.front())}, {elapsed:.0f}s"
        )

    # ---------------------------------------------------------------- events
    def add_existing(self, rows: Sequence[Mapping[str, Any]], *, context: bool = False) -> None:
        """Rows finished before this session (a resumed search); ``context``: rows of the other
        phase (the baselines during the search), placed on the front but not counted."""
        for row in rows:
            self._add_row(row, context=context)
        self._refresh()

    def trial_started(self, trial_id: str) -> None:
        self.running.setdefault(trial_id, {"epoch": 0})
        self._refresh()

    def trial_result(self, trial_id: str, record: Mapping[str, Any]) -> None:
        self.running[trial_id] = {"epoch": record.get("epoch", 0), **{m: record.get(m) for m in self.metrics}}
        self._refresh()

    def trial_finished(self, row: Mapping[str, Any]) -> None:
        trial_id = str(row["trial_id"])
        self.running.pop(trial_id, None)
        self._add_row(row)
        if self.enabled:
            self._print_line(row)
        self._refresh()

    def line(self, row: Mapping[str, Any]) -> str:
        """The line of one finished trial: id, status, objectives, reason, running counts."""
        figures = " ".join(f"{m}={format_metric(m, row.get(m))}" for m in self.metrics)
        tag = f" baseline={row['baseline']}" if row.get("baseline") else ""
        error = f" ({row['error']})" if row.get("error") else ""
        reused = f" (result of baseline trial {row['reused_from']} reused, not trained again)" if row.get(
            "reused_from"
        ) else ""  # fmt: skip
        c = self.counts()
        return (
            f"[{c['done']}/{self.total}] {row['trial_id']} {row.get('status')}{tag} {figures}{error}{reused} "
            f"| running {c['running']}, failed or invalid {c['failed_total']}, front {len(self.front())}"
        )

    def _print_line(self, row: Mapping[str, Any]) -> None:
        """Piped: a plain line. On a terminal: the same line printed above the live panel, so
        that every finished trial and every reason stays on screen; wrapped by rich at the
        terminal's width (a line the terminal wrapped itself would take more rows than the
        panel's redraw moves back over, and lose its end to the redraw on a narrow terminal)."""
        text = self.line(row)
        if self._live is not None:
            from rich.text import Text

            self._live.console.print(Text(text, overflow="fold"), soft_wrap=False)
        else:
            print(text, file=self.stream, flush=True)

    # ---------------------------------------------------------------- drawing
    def render(self) -> Any:
        """A rich renderable: the headline, the running trials and the current front."""
        from rich.console import Group
        from rich.table import Table

        running = Table(title="running", title_justify="left", expand=False)
        running.add_column("trial")
        running.add_column("epoch", justify="right")
        for metric in self.metrics:
            running.add_column(metric, justify="right")
        shown = sorted(self.running.items())
        for trial_id, info in shown[:RUNNING_ROWS_SHOWN]:
            running.add_row(trial_id, str(info.get("epoch", 0)), *(format_metric(m, info.get(m)) for m in self.metrics))
        if len(shown) > RUNNING_ROWS_SHOWN:
            running.caption = f"... {len(shown) - RUNNING_ROWS_SHOWN} more running"

        front = Table(title="current front (as snn-nas pareto ranks it)", title_justify="left", expand=False)
        front.add_column("trial")
        front.add_column("key", no_wrap=True)
        for metric in self.metrics:
            front.add_column(metric, justify="right")
        front.add_column("seed design")
        rows = self.front()
        for row in rows[:FRONT_ROWS_SHOWN]:
            front.add_row(
                str(row["trial_id"]),
                str(row.get("key")),
                *(format_metric(m, row.get(m)) for m in self.metrics),
                row.get("seed_design") or "-",
            )
        if len(rows) > FRONT_ROWS_SHOWN:
            front.caption = f"... {len(rows) - FRONT_ROWS_SHOWN} more"
        return Group(self.headline(), running, front)

    def _refresh(self) -> None:
        """Redraw the live panel, at most every ``REDRAW_EVERY_S`` seconds (a search of hundreds of
        slots sends tens of events a second; the finished-trial lines are printed at once)."""
        if self._live is None:
            return
        now = time.monotonic()
        if now - self._drawn_at >= REDRAW_EVERY_S:
            self._drawn_at = now
            self._live.update(self.render())

    def __enter__(self) -> SearchProgress:
        if self.live:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(self.render(), console=Console(file=self.stream), refresh_per_second=2, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self.render())
            self._live.__exit__(None, None, None)
            self._live = None
        elif self.enabled:
            print(self.headline(), file=self.stream, flush=True)
