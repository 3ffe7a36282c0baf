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
    assert "accuracy 90.00%" in hover_a and "s1:1x8 stem" in hover_a
    assert "sops 100 (x axis)" in hover_a and "*" not in hover_a  # the plotted cost is named, not starred
    assert info.x_label == "SOPs per image (log scale)"
    assert info.page_title == "Pareto front: val_acc vs sops (snn-nas Pareto front)"
    assert info.baselines[0].label == "snn_mlp_micro: not dominated (-5.00 pts)"


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


def test_retrain_curve_draws_what_exists_and_marks_the_test_accuracy(tmp_path):
    """A retraining on train+val has no held-out part: no validation series, its training
    accuracy drawn, the axis label says so, the final test accuracy marked."""
    history = [
        {"epoch": 1, "val_acc": math.nan, "val_loss": math.nan, "train_acc": 0.66, "train_loss": 1.37},
        {"epoch": 2, "val_acc": math.nan, "val_loss": math.nan, "train_acc": 0.93, "train_loss": 0.71},
    ]
    info = training_curve_info(history, title="t", test_acc=0.965, trained_on="train+val")
    assert [(name, axis) for name, axis, _ in info.series] == [
        ("training accuracy (on train+val)", "accuracy"),
        ("training loss (on train+val)", "loss"),
    ]
    assert info.series[0][2] == (66.0, 93.0) and info.test_acc == pytest.approx(96.5)
    assert info.accuracy_label == "training / test accuracy (%)"
    assert "validation" not in info.accuracy_label
    out = draw_training_curve_png(info, tmp_path / "curve.png")
    assert out.stat().st_size > 0
    # a search-style history keeps its validation series
    searched = training_curve_info([{"epoch": 1, "val_acc": 0.5, "train_loss": 1.0, "val_loss": 1.1}])
    assert [name for name, _, _ in searched.series] == ["validation accuracy", "training loss", "validation loss"]


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
    assert "<title>demo (snn-nas Pareto front)</title>" in html
    assert ("(log scale)" in html) is not zero_cost
    assert "1 trial(s) stopped early by the scheduler" in html  # the notes under the plot


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


NON_SPIKING = '{"family": "snn_mlp", "time_steps": 1}'


def with_notes() -> pd.DataFrame:
    """table() with e a non-spiking baseline (95 %, 0 SOPs, 30 uJ), a failed and an invalid trial,
    and test accuracies for a."""
    frame = table(zero_cost=True)
    frame["genotype"] = ['{"family": "spiking"}'] * 3 + [NON_SPIKING]
    frame["macs"] = [0.0, 0.0, 0.0, 1e6]
    frame.loc[len(frame)] = ["f", "failed", None, None, None, 10, 4, "", "f", '{"family": "spiking"}', 0.0]
    frame.loc[len(frame)] = ["i", "invalid", None, None, None, 10, 4, "", "i", '{"family": "spiking"}', 0.0]
    return frame


def test_non_spiking_baseline_is_drawn_at_the_left_edge_with_its_energy_verdict():
    analysis = analyse_front(with_notes(), expected_baselines=("snn_mlp_micro", "mlp_spe_micro"),
                             test_acc={"a": (0.875, "retrain")})  # fmt: skip
    info = pareto_plot_info(analysis)
    # e has 0 SOPs: it no longer forces a linear axis, and sits left of every placed point
    assert info.log_x and info.baselines == ()
    assert [p.key for p in info.off_axis] == ["e"] and info.edge_x == pytest.approx(50.0 / 3)
    assert info.off_axis[0].x == info.edge_x and info.off_axis[0].y == pytest.approx(95.0)
    # on energy: b (80 %, 5 uJ), a (90 %, 9 uJ), c (70 %, 1 uJ) all cost <= 30 uJ; a is 5 points below e
    assert info.off_axis[0].label == "snn_mlp_micro, 0 SOPs\non energy: not dominated (-5.00 pts)"
    assert "not comparable on SOPs" in info.off_axis[0].hover and "compared on energy" in info.off_axis[0].hover
    hover_a = next(p.hover for p in info.points if p.key == "a")
    assert "test accuracy 87.50% (retrained on train+val" in hover_a
    notes = "\n".join(info.notes)
    assert "baseline snn_mlp_micro (95.00%, energy 30 uJ): compared on energy" in notes
    assert "baselines not run: mlp_spe_micro" in notes
    assert "2 trial(s) not shown: 1 invalid (not trained" in notes and "1 failed" in notes
    assert "test accuracy of 1 front member(s) in pareto.csv" in notes and "retrained on train+val" in notes
    assert "the hover" not in notes  # the notes are printed under pareto.png too, which has no hover


def test_draw_pareto_with_off_axis_points_and_notes(tmp_path):
    analysis = analyse_front(with_notes(), expected_baselines=("snn_mlp_micro", "mlp_spe_micro"))
    info = pareto_plot_info(analysis, title="notes")
    assert draw_pareto_png(info, tmp_path / "n.png").read_bytes()[:8] == PNG_MAGIC
    html = draw_pareto_html(info, tmp_path / "n.html").read_text()
    assert "<title>notes (snn-nas Pareto front)</title>" in html
    assert "non-spiking: 0 SOPs, not comparable; drawn at the left edge" in html
    assert "baselines not run: mlp_spe_micro" in html and "1 invalid (not trained" in html
