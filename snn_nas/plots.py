"""Figures, split into "compute the info" (plain data, tested) and "draw it" (smoke-tested).

``pareto_plot_info`` and ``training_curve_info`` return frozen dataclasses of tuples and
primitives; ``draw_pareto_png`` (matplotlib), ``draw_pareto_html`` (plotly, self-contained) and
``draw_training_curve_png`` turn them into files. matplotlib and plotly are imported inside the
draw functions only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from snn_nas.report import UNITS, FrontAnalysis, format_count, is_missing

AXIS_LABELS = {
    "val_acc": "validation accuracy (%)",
    "sops": "SOPs per image",
    "energy_uj": "energy per image (uJ)",
    "params": "parameters",
    "time_steps": "time steps T",
}


@dataclass(frozen=True)
class PlotPoint:
    """One trial on the plot; ``y`` is in percent."""

    x: float
    y: float
    key: str
    baseline: str  # preset name, or "" for a search trial
    on_front: bool  # on the search front (non-baseline rows only)
    hover: str  # multi-line text: key, metrics, architecture summary


@dataclass(frozen=True)
class ParetoPlotInfo:
    """Everything a Pareto plot shows.

    ``step_x``/``step_y``: the search front as a staircase, cheapest first: from each front point
    go right at its accuracy to the next point's cost, then up to that point's accuracy.
    ``log_x``: whether every cost is positive (log axis); otherwise symlog / linear.
    ``stopped``: trials stopped early by the scheduler (metrics at a lower fidelity; drawn faint).
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


def _hover(row: dict[str, Any], x: str) -> str:
    lines = [f"key {row['key']}" + (f"  (baseline {row['baseline']})" if row["baseline"] else "")]
    lines.append(f"accuracy {100 * float(row['val_acc']):.2f}%")
    for name in ("sops", "energy_uj", "params", "time_steps"):
        if name in row and not is_missing(row[name]):
            value = row[name]
            text = f"{float(value):.4g}" if name == "energy_uj" else format_count(value)
            marker = " *" if name == x else ""
            lines.append(f"{name} {text}{marker}")
    summary = "" if is_missing(row.get("summary")) else str(row["summary"])
    if summary:
        lines.extend(part.strip() for part in summary.split(";"))
    return "\n".join(lines)


def pareto_plot_info(analysis: FrontAnalysis, *, title: str = "") -> ParetoPlotInfo:
    """The data of a Pareto plot of ``analysis`` (accuracy in percent against its cost ``x``)."""
    x, y = analysis.x, analysis.y
    points = []
    for row in analysis.points.to_dict("records"):
        points.append(
            PlotPoint(
                x=float(row[x]),
                y=100.0 * float(row[y]),
                key=str(row["key"]),
                baseline=str(row["baseline"]),
                on_front=bool(row["on_search_front"]),
                hover=_hover(row, x),
            )
        )
    stopped = tuple(
        PlotPoint(
            x=float(row[x]),
            y=100.0 * float(row[y]),
            key=str(row["key"]),
            baseline=str(row["baseline"]),
            on_front=False,
            hover="stopped early (lower fidelity)\n" + _hover(row, x),
        )
        for row in analysis.stopped.to_dict("records")
    )
    front = [p for p in points if p.on_front]
    step_x, step_y = staircase([p.x for p in front], [p.y for p in front])
    costs = np.array([p.x for p in (*points, *stopped)], dtype=float)
    ref = analysis.reference_point
    return ParetoPlotInfo(
        x=x,
        y=y,
        x_label=AXIS_LABELS.get(x, x),
        y_label=AXIS_LABELS.get(y, y),
        title=title or f"Pareto front: {y} vs {x}",
        points=tuple(points),
        step_x=step_x,
        step_y=step_y,
        log_x=bool(costs.size and (costs > 0).all()),
        reference_point=(float(ref[x]), 100.0 * float(ref[y])),
        hypervolume=analysis.hypervolume,
        stopped=stopped,
    )


@dataclass(frozen=True)
class TrainingCurveInfo:
    """Per-epoch series of a training run (accuracy in percent; NaN where not reported)."""

    epochs: tuple[int, ...]
    val_acc: tuple[float, ...]
    train_loss: tuple[float, ...]
    val_loss: tuple[float, ...]
    title: str


def training_curve_info(history: Sequence[dict[str, Any]], *, title: str = "training curve") -> TrainingCurveInfo:
    """Series of ``history`` (the ``TrainResult.history`` metric dicts, one per epoch)."""

    def series(name: str, scale: float = 1.0) -> tuple[float, ...]:
        out = []
        for h in history:
            value = h.get(name)
            out.append(float("nan") if value is None else scale * float(value))
        return tuple(out)

    epochs = tuple(int(h.get("epoch", i + 1)) for i, h in enumerate(history))
    return TrainingCurveInfo(
        epochs=epochs,
        val_acc=series("val_acc", 100.0),
        train_loss=series("train_loss"),
        val_loss=series("val_loss"),
        title=title,
    )


# ----------------------------------------------------------------------------- drawing
def _matplotlib():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def draw_pareto_png(info: ParetoPlotInfo, path: str | Path, *, dpi: int = 150) -> Path:
    """Scatter of every trial, the search front as a step line, baselines marked; log-scaled cost."""
    plt = _matplotlib()
    fig, ax = plt.subplots(figsize=(7.5, 5.0))
    try:
        trials, baselines = info.trials, info.baselines
        if info.stopped:
            ax.scatter(
                [p.x for p in info.stopped],
                [p.y for p in info.stopped],
                s=14,
                facecolors="none",
                edgecolors="0.75",
                label="stopped early",
            )
        others = [p for p in trials if not p.on_front]
        if others:
            ax.scatter([p.x for p in others], [p.y for p in others], s=18, c="0.6", alpha=0.7, label="trials")
        front = info.front
        if front:
            ax.plot(info.step_x, info.step_y, color="C0", lw=1.6, zorder=2)
            ax.scatter([p.x for p in front], [p.y for p in front], s=36, c="C0", zorder=3, label="search front")
        for i, p in enumerate(baselines):
            ax.scatter([p.x], [p.y], s=90, marker="*", c="C3", zorder=4, label="baselines" if i == 0 else None)
            ax.annotate(p.baseline, (p.x, p.y), textcoords="offset points", xytext=(6, 4), fontsize=8, color="C3")
        if info.log_x:
            ax.set_xscale("log")
        elif any(p.x > 0 for p in (*info.points, *info.stopped)):
            ax.set_xscale("symlog", linthresh=min(p.x for p in (*info.points, *info.stopped) if p.x > 0))
        ax.set_xlabel(info.x_label + (" (log scale)" if info.log_x else ""))
        ax.set_ylabel(info.y_label)
        ax.set_title(f"{info.title}\nhypervolume {info.hypervolume:.4g} ({UNITS.get(info.y)} x {UNITS.get(info.x)})")
        ax.grid(True, which="major", alpha=0.3)
        ax.margins(x=0.1, y=0.08)
        if info.points or info.stopped:
            ax.legend(loc="best", fontsize=8)
        fig.tight_layout()
        out = Path(path)
        fig.savefig(out, dpi=dpi)
    finally:
        plt.close(fig)
    return out


def draw_pareto_html(info: ParetoPlotInfo, path: str | Path) -> Path:
    """Interactive plotly version of ``draw_pareto_png``; self-contained (plotly.js inlined)."""
    import plotly.graph_objects as go

    fig = go.Figure()

    def markers(points: Sequence[PlotPoint], name: str, marker: dict, mode: str = "markers", **extra: Any) -> None:
        if points:
            fig.add_trace(
                go.Scatter(
                    x=[p.x for p in points],
                    y=[p.y for p in points],
                    mode=mode,
                    name=name,
                    marker=marker,
                    hovertext=[p.hover.replace("\n", "<br>") for p in points],
                    hoverinfo="text",
                    **extra,
                )
            )

    markers(info.stopped, "stopped early", {"color": "#cccccc", "size": 6, "symbol": "circle-open"})
    markers([p for p in info.trials if not p.on_front], "trials", {"color": "#999999", "size": 7})
    if info.front:
        fig.add_trace(
            go.Scatter(
                x=list(info.step_x),
                y=list(info.step_y),
                mode="lines",
                name="search front (step)",
                line={"color": "#1f77b4", "width": 2},
                hoverinfo="skip",
            )
        )
    markers(info.front, "search front", {"color": "#1f77b4", "size": 9})
    markers(
        info.baselines,
        "baselines",
        {"color": "#d62728", "size": 14, "symbol": "star"},
        mode="markers+text",
        text=[p.baseline for p in info.baselines],
        textposition="top right",
    )
    fig.update_layout(
        title=f"{info.title}<br><sub>hypervolume {info.hypervolume:.4g} "
        f"({UNITS.get(info.y)} x {UNITS.get(info.x)})</sub>",
        xaxis={"title": info.x_label, "type": "log" if info.log_x else "linear"},
        yaxis={"title": info.y_label},
        template="plotly_white",
        hoverlabel={"align": "left"},
    )
    out = Path(path)
    fig.write_html(out, include_plotlyjs=True, full_html=True)
    return out


def draw_training_curve_png(info: TrainingCurveInfo, path: str | Path, *, dpi: int = 150) -> Path:
    """Validation accuracy (left axis) and losses (right axis) per epoch."""
    plt = _matplotlib()
    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    try:
        ax.plot(info.epochs, info.val_acc, "o-", color="C0", label="val accuracy (%)")
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation accuracy (%)", color="C0")
        ax.grid(True, alpha=0.3)
        loss_ax = ax.twinx()
        loss_ax.plot(info.epochs, info.train_loss, "s--", color="C1", ms=4, label="train loss")
        loss_ax.plot(info.epochs, info.val_loss, "^:", color="C2", ms=4, label="val loss")
        loss_ax.set_ylabel("loss")
        handles = ax.get_legend_handles_labels()[0] + loss_ax.get_legend_handles_labels()[0]
        ax.legend(handles, [h.get_label() for h in handles], loc="center right", fontsize=8)
        ax.set_title(info.title)
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        fig.tight_layout()
        out = Path(path)
        fig.savefig(out, dpi=dpi)
    finally:
        plt.close(fig)
    return out
