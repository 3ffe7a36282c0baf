"""The data of a Pareto plot (pure): points with hover text, the front staircase, the notes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from snn_nas.report import (
    EXCLUSIONS,
    NON_SPIKING_AXIS,
    TEST_ACC_SOURCES,
    FrontAnalysis,
    baseline_verdict,
    chance_text,
    format_count,
    is_missing,
    not_shown_text,
)

AXIS_LABELS = {
    "val_acc": "validation accuracy (%)",
    "sops": "SOPs per image",
    "energy_uj": "energy per image (uJ)",
    "params": "parameters",
    "time_steps": "time steps T",
}
EDGE_FACTOR = 3.0  # on a log axis the non-spiking marker sits at (smallest cost) / EDGE_FACTOR
HOVER_SOURCES = {"retrain": "retrained on train+val", "audit": "audit at a higher fidelity"}


@dataclass(frozen=True)
class PlotPoint:
    """One trial on the plot; ``y`` is in percent. ``label``: text drawn beside a baseline (its
    name and short verdict); ``x`` of a non-spiking point on the SOP axis is the plot's ``edge_x``."""

    x: float
    y: float
    key: str
    baseline: str  # preset name, or "" for a search trial
    on_front: bool  # on the search front (non-baseline rows only)
    hover: str  # multi-line text: key, metrics, architecture summary
    label: str = ""


@dataclass(frozen=True)
class ParetoPlotInfo:
    """Everything a Pareto plot shows.

    ``step_x``/``step_y``: the search front as a staircase, cheapest first: from each front point
    go right at its accuracy to the next point's cost, then up to that point's accuracy.
    ``log_x``: whether every placed cost is positive (log axis; ``x_label`` then says so);
    otherwise symlog / linear. ``stopped``: trials stopped early by the scheduler (metrics at a
    lower fidelity; drawn faint). ``off_axis``: non-spiking rows on the SOP axis, drawn at
    ``edge_x``. ``notes``: sentences shown under the plot. ``page_title``: the HTML ``<title>``.
    """

    x: str
    y: str
    x_label: str
    y_label: str
    title: str
    points: tuple[PlotPoint, ...]
    step_x: tuple[float, ...]
    step_y: tuple[float, ...]
    log_x: bool
    reference_point: tuple[float, float]  # (x, y in percent)
    hypervolume: float
    stopped: tuple[PlotPoint, ...] = ()
    off_axis: tuple[PlotPoint, ...] = ()
    edge_x: float = 0.0
    notes: tuple[str, ...] = ()
    page_title: str = ""
    excluded: tuple[PlotPoint, ...] = ()  # ok trials kept off the front (chance level, supernet estimate, ...)

    @property
    def trials(self) -> tuple[PlotPoint, ...]:
        return tuple(p for p in self.points if not p.baseline)

    @property
    def baselines(self) -> tuple[PlotPoint, ...]:
        return tuple(p for p in self.points if p.baseline)

    @property
    def front(self) -> tuple[PlotPoint, ...]:
        """The search front, cheapest first."""
        return tuple(sorted((p for p in self.points if p.on_front), key=lambda p: (p.x, -p.y)))


def staircase(xs: Sequence[float], ys: Sequence[float]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Step-line vertices through front points (cost ``xs`` min, accuracy ``ys`` max).

    Points are sorted by cost; the line runs right at each point's accuracy to the next point's
    cost, then up: ``(x0, y0), (x1, y0), (x1, y1), (x2, y1), (x2, y2)``. ``[n]`` in, ``[2n - 1]`` out.
    """
    order = sorted(range(len(xs)), key=lambda i: (xs[i], -ys[i]))
    sx: list[float] = []
    sy: list[float] = []
    for i in order:
        if sx:
            sx.append(float(xs[i]))
            sy.append(sy[-1])
        sx.append(float(xs[i]))
        sy.append(float(ys[i]))
    return tuple(sx), tuple(sy)


def _hover(row: dict[str, Any], x: str, *, off_axis: bool = False, verdict: str = "") -> str:
    """Hover text: key, accuracies, costs (the plotted one marked "x axis"), verdict, architecture."""
    lines = [f"key {row['key']}" + (f"  (baseline {row['baseline']})" if row["baseline"] else "")]
    lines.append(f"accuracy {100 * float(row['val_acc']):.2f}% (validation, search fidelity)")
    test_acc, source = row.get("test_acc"), row.get("test_acc_source") or ""
    if not is_missing(test_acc):
        lines.append(f"test accuracy {100 * float(test_acc):.2f}% ({HOVER_SOURCES.get(source, source)})")
    for name in ("sops", "energy_uj", "params", "time_steps"):
        if name in row and not is_missing(row[name]):
            value = row[name]
            text = f"{float(value):.4g}" if name == "energy_uj" else format_count(value)
            if name == x and off_axis:
                text += " (non-spiking: not comparable on SOPs, drawn at the left edge)"
            elif name == x:
                text += " (x axis)"
            lines.append(f"{name} {text}")
    if verdict:
        lines.append(verdict)
    summary = "" if is_missing(row.get("summary")) else str(row["summary"])
    if summary:
        lines.extend(part.strip() for part in summary.split(";"))
    return "\n".join(lines)


def pareto_notes(analysis: FrontAnalysis) -> tuple[str, ...]:
    """The sentences under a Pareto plot of ``analysis`` (pure; see ``snn_nas.plots``)."""
    notes = []
    if analysis.baselines:
        notes.append(
            "baseline labels: dominated or not by the search front, and (pts) the best search accuracy at equal "
            "or lower cost minus the baseline's accuracy, in percentage points"
        )
    for b in analysis.baselines:
        cost = f"energy {b.cost:.4g} uJ" if b.axis == "energy_uj" else f"{b.axis} {format_count(b.cost)}"
        notes.append(f"baseline {b.baseline} ({100 * b.val_acc:.2f}%, {cost}): {baseline_verdict(b)}")
    for b in analysis.baselines_unplaced:
        reason = f": {b['error']}" if b.get("error") else ""
        notes.append(f"baseline {b['baseline']} not shown: status {b['status']}{reason}")
    if analysis.baselines_note:
        notes.append(analysis.baselines_note)
    search_off = [r for r in analysis.not_comparable.to_dict("records") if not r["baseline"]]
    if search_off:
        notes.append(
            f"{len(search_off)} non-spiking search trial(s) drawn at the left edge: 0 SOPs, not comparable; "
            f"compare them with --x {NON_SPIKING_AXIS}"
        )
    if len(analysis.stopped):
        notes.append(
            f"{len(analysis.stopped)} trial(s) stopped early by the scheduler are drawn as open circles "
            "(accuracy at a lower fidelity, never ranked)"
        )
    for reason, n in analysis.excluded_counts.items():
        rule = f" ({chance_text(analysis.num_classes)})" if reason == "chance" else ""
        notes.append(f"{n} trial(s) kept off the front, drawn as grey crosses: {EXCLUSIONS[reason]}{rule}")
    for m in analysis.merged:
        notes.append(
            f"one architecture, one point: baseline {m['baseline'] or m['trial_id']} is the same network as trial "
            f"{m['placed_as']} ({m['key']}), drawn once"
        )
    hidden = not_shown_text(analysis.not_shown)
    if hidden:
        notes.append(hidden)
    tested = analysis.front[analysis.front["test_acc"].notna()] if "test_acc" in analysis.front else []
    if len(tested):
        sources = sorted(set(tested["test_acc_source"]))
        notes.append(
            f"test accuracy of {len(tested)} front member(s) in pareto.csv and 'snn-nas pareto' "
            "(and in each point's details on pareto.html): "
            + "; ".join(TEST_ACC_SOURCES.get(s, s) for s in sources)
            + "; shown only, never used for ranking"
        )
    return tuple(notes)


def pareto_plot_info(analysis: FrontAnalysis, *, title: str = "") -> ParetoPlotInfo:
    """The data of a Pareto plot of ``analysis`` (accuracy in percent against its cost ``x``)."""
    x, y = analysis.x, analysis.y
    verdicts = {b.key: b for b in analysis.baselines}

    def point(row: dict[str, Any], *, at: float | None = None, prefix: str = "", on_front: bool = False) -> PlotPoint:
        design = str(row.get("seed_design") or row["baseline"] or "")
        comparison = verdicts.get(str(row["key"])) if design else None
        label = ""
        if comparison is not None:
            short = baseline_verdict(comparison, short=True)
            label = f"{design}, 0 SOPs\n{short}" if at is not None else f"{design}: {short}"
        elif design:
            label = design
        return PlotPoint(
            x=float(row[x]) if at is None else at,
            y=100.0 * float(row[y]),
            key=str(row["key"]),
            baseline=design,
            on_front=on_front,
            hover=prefix
            + _hover(
                row, x, off_axis=at is not None, verdict="" if comparison is None else baseline_verdict(comparison)
            ),
            label=label,
        )

    points = tuple(point(row, on_front=bool(row["on_search_front"])) for row in analysis.points.to_dict("records"))
    stopped = tuple(
        point(row, prefix="stopped early (lower fidelity)\n") for row in analysis.stopped.to_dict("records")
    )
    front = [p for p in points if p.on_front]
    step_x, step_y = staircase([p.x for p in front], [p.y for p in front])
    costs = np.array([p.x for p in (*points, *stopped)], dtype=float)
    log_x = bool(costs.size and (costs > 0).all())
    edge_x = float(costs.min()) / EDGE_FACTOR if log_x else 0.0
    off_axis = tuple(point(row, at=edge_x) for row in analysis.not_comparable.to_dict("records"))
    excluded = tuple(
        point(row, prefix=f"kept off the front: {EXCLUSIONS.get(row['exclusion'], row['exclusion'])}\n")
        for row in analysis.excluded.to_dict("records")
    )
    ref = analysis.reference_point
    label = AXIS_LABELS.get(x, x)
    title = title or f"Pareto front: {y} vs {x}"
    return ParetoPlotInfo(
        x=x,
        y=y,
        x_label=label + (" (log scale)" if log_x else ""),
        y_label=AXIS_LABELS.get(y, y),
        title=title,
        points=points,
        step_x=step_x,
        step_y=step_y,
        log_x=log_x,
        reference_point=(float(ref[x]), 100.0 * float(ref[y])),
        hypervolume=analysis.hypervolume,
        stopped=stopped,
        off_axis=off_axis,
        edge_x=edge_x,
        notes=pareto_notes(analysis),
        excluded=excluded,
        page_title=f"{title} (snn-nas Pareto front)",
    )
