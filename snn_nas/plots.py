"""Figures, split into "compute the info" (plain data, tested) and "draw it" (smoke-tested).

``pareto_plot_info`` and ``training_curve_info`` return frozen dataclasses of tuples and
primitives; ``draw_pareto_png`` (matplotlib), ``draw_pareto_html`` (plotly, a self-contained
page) and ``draw_training_curve_png`` turn them into files. matplotlib and plotly are imported
inside the draw functions only.

A Pareto plot explains itself: its notes (``ParetoPlotInfo.notes``, printed under the PNG's
axes and below the HTML plot) give each baseline's verdict, the baselines that were not run,
how many trials are not shown and why, and where test accuracies come from. Non-spiking rows
on the SOP axis (0 SOPs, all MACs; see ``snn_nas.report``) have no place on a log SOP axis: they
are drawn at ``edge_x``, left of every other point, as open diamonds beside a dotted line.
"""

from __future__ import annotations

import html
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from snn_nas.report import (
    NON_SPIKING_AXIS,
    TEST_ACC_SOURCES,
    UNITS,
    FrontAnalysis,
    baseline_verdict,
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
NON_SPIKING_LEGEND = "non-spiking: 0 SOPs, not comparable;\ndrawn at the left edge, compared on energy"


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
    """The sentences under a Pareto plot of ``analysis`` (pure; see the module doc)."""
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
    hidden = not_shown_text(analysis.not_shown)
    if hidden:
        notes.append(hidden)
    tested = analysis.front[analysis.front["test_acc"].notna()] if "test_acc" in analysis.front else []
    if len(tested):
        sources = sorted(set(tested["test_acc_source"]))
        notes.append(
            f"test accuracy (in the hover) of {len(tested)} front member(s): "
            + "; ".join(TEST_ACC_SOURCES.get(s, s) for s in sources)
            + "; shown only, never used for ranking"
        )
    return tuple(notes)


def pareto_plot_info(analysis: FrontAnalysis, *, title: str = "") -> ParetoPlotInfo:
    """The data of a Pareto plot of ``analysis`` (accuracy in percent against its cost ``x``)."""
    x, y = analysis.x, analysis.y
    verdicts = {b.key: b for b in analysis.baselines}

    def point(row: dict[str, Any], *, at: float | None = None, prefix: str = "", on_front: bool = False) -> PlotPoint:
        comparison = verdicts.get(str(row["key"])) if row["baseline"] else None
        label = ""
        if comparison is not None:
            short = baseline_verdict(comparison, short=True)
            label = f"{row['baseline']}, 0 SOPs\n{short}" if at is not None else f"{row['baseline']}: {short}"
        elif row["baseline"]:
            label = str(row["baseline"])
        return PlotPoint(
            x=float(row[x]) if at is None else at,
            y=100.0 * float(row[y]),
            key=str(row["key"]),
            baseline=str(row["baseline"]),
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
        page_title=f"{title} (snn-nas Pareto front)",
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


def _subtitle(info: ParetoPlotInfo) -> str:
    return f"hypervolume {info.hypervolume:.4g} ({UNITS.get(info.y)} x {UNITS.get(info.x)}) of the search trials"


def _right_side(info: ParetoPlotInfo):
    """``point -> bool``: whether a point lies in the right third of the cost range (label it on its left)."""
    xs = [p.x for p in (*info.points, *info.stopped, *info.off_axis)]
    scale = np.log10 if info.log_x else (lambda v: v)
    low, high = (float(scale(min(xs))), float(scale(max(xs)))) if xs else (0.0, 0.0)
    return lambda p: high > low and (float(scale(p.x)) - low) / (high - low) > 2 / 3


def draw_pareto_png(info: ParetoPlotInfo, path: str | Path, *, dpi: int = 150) -> Path:
    """Scatter of every trial, the search front as a step line, baselines marked with their
    verdicts, non-spiking rows at the left edge, log-scaled cost; the notes under the axes."""
    plt = _matplotlib()
    fig, ax = plt.subplots(figsize=(8.5, 5.2))
    try:
        trials, baselines = info.trials, info.baselines
        if info.stopped:
            ax.scatter(
                [p.x for p in info.stopped],
                [p.y for p in info.stopped],
                s=14,
                facecolors="none",
                edgecolors="0.75",
                label="stopped early (lower fidelity, not ranked)",
            )
        others = [p for p in trials if not p.on_front]
        if others:
            ax.scatter([p.x for p in others], [p.y for p in others], s=18, c="0.6", alpha=0.7, label="trials")
        front = info.front
        if front:
            ax.plot(info.step_x, info.step_y, color="C0", lw=1.6, zorder=2)
            ax.scatter([p.x for p in front], [p.y for p in front], s=36, c="C0", zorder=3, label="search front")
        right = _right_side(info)
        for i, p in enumerate(baselines):
            ax.scatter([p.x], [p.y], s=90, marker="*", c="C3", zorder=4, label="baselines" if i == 0 else None)
            ax.annotate(
                p.label, (p.x, p.y), textcoords="offset points", xytext=(-7, 4) if right(p) else (9, 0),
                ha="right" if right(p) else "left", va="bottom" if right(p) else "center", fontsize=7.5, color="C3",
            )  # fmt: skip
        if info.off_axis:
            ax.axvline(info.edge_x, color="C1", ls=":", lw=1.0, zorder=1)
            ax.scatter(
                [p.x for p in info.off_axis],
                [p.y for p in info.off_axis],
                s=60,
                marker="D",
                facecolors="none",
                edgecolors="C1",
                linewidths=1.5,
                zorder=4,
                label=NON_SPIKING_LEGEND,
            )
            for p in (p for p in info.off_axis if p.label):
                ax.annotate(
                    p.label, (p.x, p.y), textcoords="offset points", xytext=(9, -2), va="top", fontsize=7.5, color="C1"
                )
        placed = (*info.points, *info.stopped)
        if info.log_x:
            ax.set_xscale("log")
        elif any(p.x > 0 for p in placed):
            ax.set_xscale("symlog", linthresh=min(p.x for p in placed if p.x > 0))
        ax.set_xlabel(info.x_label)
        ax.set_ylabel(info.y_label)
        ax.set_title(f"{info.title}\n{_subtitle(info)}", fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        ax.margins(x=0.1, y=0.08)
        if placed or info.off_axis:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7.5, frameon=False)
        if info.notes:
            text = "\n".join(textwrap.fill(n, 130, subsequent_indent="    ") for n in info.notes)
            ax.annotate(
                text,
                (0, 0),
                xycoords="axes fraction",
                xytext=(0, -36),
                textcoords="offset points",
                va="top",
                fontsize=7,
            )
        fig.tight_layout()
        out = Path(path)
        fig.savefig(out, dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return out


def draw_pareto_html(info: ParetoPlotInfo, path: str | Path) -> Path:
    """Interactive plotly version of ``draw_pareto_png``: a self-contained page (plotly.js
    inlined) with a ``<title>``, the plot, and the notes as a list below it."""
    import plotly.graph_objects as go

    fig = go.Figure()
    right = _right_side(info)

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

    markers(
        info.stopped,
        "stopped early (lower fidelity, not ranked)",
        {"color": "#cccccc", "size": 6, "symbol": "circle-open"},
    )
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
        text=[p.label.replace("\n", "<br>") for p in info.baselines],
        textposition=["middle left" if right(p) else "middle right" for p in info.baselines],
        textfont={"color": "#d62728", "size": 12},
    )
    if info.off_axis:
        ys = [p.y for p in (*info.points, *info.stopped, *info.off_axis)]
        fig.add_trace(
            go.Scatter(
                x=[info.edge_x, info.edge_x],
                y=[min(ys), max(ys)],
                mode="lines",
                line={"color": "#ff7f0e", "width": 1, "dash": "dot"},
                hoverinfo="skip",
                showlegend=False,
            )
        )
        markers(
            info.off_axis,
            NON_SPIKING_LEGEND.replace("\n", " "),
            {"color": "#ff7f0e", "size": 11, "symbol": "diamond-open", "line": {"width": 2}},
            mode="markers+text",
            text=[p.label.replace("\n", "<br>") for p in info.off_axis],
            textposition="bottom right",
            textfont={"color": "#ff7f0e", "size": 12},
        )
    fig.update_layout(
        title=f"{html.escape(info.title)}<br><sub>{_subtitle(info)}</sub>",
        xaxis={"title": info.x_label, "type": "log", "dtick": "D2"} if info.log_x else {"title": info.x_label},
        yaxis={"title": info.y_label},
        template="plotly_white",
        hoverlabel={"align": "left", "bgcolor": "white", "font": {"color": "#222222"}},
        legend={"orientation": "h", "yanchor": "top", "y": -0.15, "xanchor": "left", "x": 0},
        margin={"t": 80, "b": 40},
    )
    plot = fig.to_html(full_html=False, include_plotlyjs=True, default_width="100%", default_height="620px")
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in info.notes)
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(info.page_title or info.title)}</title>\n"
        "<style>body{font-family:sans-serif;margin:0 1.5em;color:#222} "
        ".notes{font-size:14px;max-width:1100px} .notes li{margin:0.25em 0}</style>\n</head>\n<body>\n"
        f"{plot}\n"
        + (f'<div class="notes"><h3>Notes</h3><ul>{notes}</ul></div>\n' if notes else "")
        + '<p class="notes">Hover a point for its architecture; the plotted cost is marked '
        '"(x axis)". Accuracy is validation accuracy at the search\'s fidelity.</p>\n</body>\n</html>\n'
    )
    out = Path(path)
    out.write_text(page, encoding="utf-8")
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
