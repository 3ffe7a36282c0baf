"""Drawing a ``ParetoPlotInfo``: a PNG (matplotlib) and a self-contained HTML page (plotly).

Both libraries are imported inside the draw functions only.
"""

from __future__ import annotations

import html
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from snn_nas.plots.backend import _matplotlib
from snn_nas.plots.pareto_info import ParetoPlotInfo, PlotPoint
from snn_nas.report import UNITS

NON_SPIKING_LEGEND = "non-spiking: 0 SOPs, not comparable;\ndrawn at the left edge, compared on energy"


def _subtitle(info: ParetoPlotInfo) -> str:
    return f"hypervolume {info.hypervolume:.4g} ({UNITS.get(info.y)} x {UNITS.get(info.x)}) of the search trials"


def _right_side(info: ParetoPlotInfo):
    """``point -> bool``: whether a point lies in the right third of the cost range (label it on its left)."""
    xs = [p.x for p in (*info.points, *info.stopped, *info.off_axis, *info.excluded)]
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
        if info.excluded:
            ax.scatter(
                [p.x for p in info.excluded],
                [p.y for p in info.excluded],
                s=22,
                marker="x",
                c="0.55",
                label="kept off the front (chance level, supernet estimate, ...)",
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
        placed = (*info.points, *info.stopped, *info.excluded)
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
    markers(
        info.excluded,
        "kept off the front (chance level, supernet estimate, ...)",
        {"color": "#8c8c8c", "size": 8, "symbol": "x"},
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
