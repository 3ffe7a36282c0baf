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

Modules: ``pareto_info`` (``pareto_plot_info``, ``pareto_notes``, ``staircase``),
``pareto_draw`` (``draw_pareto_png``, ``draw_pareto_html``), ``training_curve`` (its info and
``draw_training_curve_png``), ``backend`` (matplotlib, imported on first draw).
"""

from __future__ import annotations

from snn_nas.plots.pareto_draw import NON_SPIKING_LEGEND, draw_pareto_html, draw_pareto_png
from snn_nas.plots.pareto_info import (
    AXIS_LABELS,
    EDGE_FACTOR,
    HOVER_SOURCES,
    ParetoPlotInfo,
    PlotPoint,
    pareto_notes,
    pareto_plot_info,
    staircase,
)
from snn_nas.plots.training_curve import TrainingCurveInfo, draw_training_curve_png, training_curve_info

__all__ = [
    "AXIS_LABELS",
    "EDGE_FACTOR",
    "HOVER_SOURCES",
    "NON_SPIKING_LEGEND",
    "ParetoPlotInfo",
    "PlotPoint",
    "TrainingCurveInfo",
    "draw_pareto_html",
    "draw_pareto_png",
    "draw_training_curve_png",
    "pareto_notes",
    "pareto_plot_info",
    "staircase",
    "training_curve_info",
]
