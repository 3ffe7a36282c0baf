"""Plot info (exact) and drawing (smoke) of snn_nas.plots."""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest

from snn_nas.plots import (
    draw_pareto_html,
    draw_pareto_png,
    draw_training_curve_png,
    pareto_plot_info,
    staircase,
    training_curve_info,
)
from snn_nas.report import analyse_front

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def table(zero_cost: bool = False) -> pd.DataFrame:
    """a (90 %, 100), b (80 %, 50) on the search front; c (70 %, 80) off it; baseline e (95 %, 300)."""
    frame = pd.DataFrame(
        {
            "key": ["a", "b", "c", "e"],
            "status": ["ok"] * 4,
            "val_acc": [0.9, 0.8, 0.7, 0.95],
            "sops": [100.0, 50.0, 80.0, 0.0 if zero_cost else 300.0],
            "energy_uj": [9.0, 5.0, 1.0, 30.0],
            "params": [1000, 500, 2000, 9000],
            "time_steps": [4, 2, 4, 1],
            "baseline": ["", "", "", "snn_mlp_micro"],
            "summary": ["spiking T=4; s1:1x8 stem", "spiking T=2; s1:1x8 stem", "c", "snn_mlp T=1"],
        }
    )
    return frame


def test_staircase_hand_computed():
    sx, sy = staircase([100.0, 50.0, 300.0], [90.0, 80.0, 95.0])
    assert sx == (50.0, 100.0, 100.0, 300.0, 300.0)
    assert sy == (80.0, 80.0, 90.0, 90.0, 95.0)
    assert staircase([], []) == ((), ())
    assert staircase([7.0], [1.0]) == ((7.0,), (1.0,))


def test_pareto_plot_info_front_baselines_and_reference():
    info = pareto_plot_info(analyse_front(table()))
    assert [p.key for p in info.front] == ["b", "a"]  # search front only, cheapest first
    assert [p.key for p in info.baselines] == ["e"]
    assert info.baselines[0].baseline == "snn_mlp_micro" and info.baselines[0].y == pytest.approx(95.0)
    assert sorted(p.key for p in info.trials) == ["a", "b", "c"]
    assert info.step_x == (50.0, 100.0, 100.0)
    assert info.step_y == pytest.approx((80.0, 80.0, 90.0))
    assert info.log_x
    assert info.reference_point == pytest.approx((330.0, 0.0))
    # 0.9 x (330 - 100) + 0.8 x (100 - 50)
    assert info.hypervolume == pytest.approx(247.0)
    assert info.stopped == ()
    hover_a = next(p.hover for p in info.points if p.key == "a")
    assert "accuracy 90.00%" in hover_a and "s1:1x8 stem" in hover_a and "sops 100 *" in hover_a


def test_stopped_trials_are_drawn_but_not_ranked():
    frame = table()
    frame.loc[len(frame)] = ["s", "stopped", 0.6, 10.0, 1.0, 100, 1, "", "stopped arch"]
    info = pareto_plot_info(analyse_front(frame))
    assert [(p.key, p.x, p.y) for p in info.stopped] == [("s", 10.0, pytest.approx(60.0))]
    assert "stopped early" in info.stopped[0].hover
    assert info.step_x == (50.0, 100.0, 100.0)  # the front is unchanged


def test_zero_cost_disables_log_axis():
    info = pareto_plot_info(analyse_front(table(zero_cost=True)))
    assert not info.log_x


def test_training_curve_info_in_percent():
    history = [
        {"epoch": 1, "val_acc": 0.5, "train_loss": 2.0, "val_loss": 1.5},
        {"epoch": 2, "val_acc": 0.75, "train_loss": 1.0, "val_loss": None},
    ]
    info = training_curve_info(history, title="t")
    assert info.epochs == (1, 2)
    assert info.val_acc == (50.0, 75.0)
    assert info.train_loss == (2.0, 1.0)
    assert info.val_loss[0] == 1.5 and math.isnan(info.val_loss[1])


@pytest.mark.parametrize("zero_cost", [False, True])
def test_draw_pareto_png_and_html(tmp_path, zero_cost):
    frame = table(zero_cost)
    frame.loc[len(frame)] = ["s", "stopped", 0.6, 10.0, 1.0, 100, 1, "", "stopped arch"]
    info = pareto_plot_info(analyse_front(frame), title="demo")
    png = draw_pareto_png(info, tmp_path / "p.png")
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 10_000
    html = draw_pareto_html(info, tmp_path / "p.html").read_text()
    assert not re.search(r"<script[^>]+src=", html)  # plotly.js inlined: works offline
    assert "snn_mlp_micro" in html and "s1:1x8 stem" in html and "search front" in html
    assert "stopped early" in html


def test_draw_empty_front(tmp_path):
    frame = table()
    frame["status"] = "failed"
    info = pareto_plot_info(analyse_front(frame))
    assert info.points == () and info.step_x == ()
    assert draw_pareto_png(info, tmp_path / "e.png").read_bytes()[:8] == PNG_MAGIC
    assert draw_pareto_html(info, tmp_path / "e.html").stat().st_size > 0


def test_draw_training_curve(tmp_path):
    info = training_curve_info(
        [{"epoch": i, "val_acc": 0.1 * i, "train_loss": 1 / i, "val_loss": 1 / i} for i in (1, 2, 3)]
    )
    assert draw_training_curve_png(info, tmp_path / "c.png").read_bytes()[:8] == PNG_MAGIC
