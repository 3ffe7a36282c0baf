"""The one front rule every view applies (``snn_nas.report.eligibility``), hand-computed cases,
and its effect on ``analyse_front``: chance level, supernet rows, one point per architecture."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from snn_nas.report import analyse_front, chance_accuracy, dataset_classes, front_exclusion
from snn_nas.report.eligibility import CHANCE_MARGIN, chance_threshold
from snn_nas.search.results import rows_to_frame


def ok(**values):
    return {"status": "ok", "val_acc": 0.5, "sops": 100.0, "baseline": "", **values}


def test_chance_level_by_hand():
    assert chance_accuracy(10) == 0.1 and chance_accuracy(4) == 0.25
    assert chance_accuracy(1) is None and chance_accuracy(None) is None and chance_accuracy(True) is None
    assert chance_threshold(10) == pytest.approx(0.1 + CHANCE_MARGIN)
    assert dataset_classes("cifar100") == 100 and dataset_classes("synthetic:train=64,classes=4") == 4
    assert dataset_classes("imagefolder") is None


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (ok(), None),
        (ok(status="stopped"), "status"),
        (ok(proxy="supernet"), "supernet"),
        (ok(proxy=None), None),  # a missing proxy reads as standalone
        (ok(proxy="standalone"), None),
        (ok(val_acc=math.nan), "metrics"),
        (ok(sops=0.0, macs=1e6, time_steps=1), "non-spiking"),
        (ok(feasible=False), "infeasible"),
        (ok(feasible=False, baseline="mlp_spe_micro"), None),  # a reference point, evaluated anyway
        (ok(val_acc=0.10, num_classes=10), "chance"),  # the trial 804691a136f2
        (ok(val_acc=0.12, num_classes=10), "chance"),  # within the stated margin
        (ok(val_acc=0.1201, num_classes=10), None),
        (ok(val_acc=0.216, num_classes=10), None),
        (ok(val_acc=0.30, num_classes=4), None),
        (ok(val_acc=0.26, num_classes=4), "chance"),
    ],
)
def test_front_exclusion_by_hand(row, reason):
    assert front_exclusion(row) == reason


def test_non_spiking_rows_count_on_other_axes_and_num_classes_falls_back():
    row = ok(sops=0.0, macs=1e6, time_steps=1, energy_uj=4.6)
    assert front_exclusion(row, x="energy_uj") is None
    assert front_exclusion(ok(val_acc=0.11), num_classes=10) == "chance"  # the table's classes when the row has none
    assert front_exclusion(ok(val_acc=0.11)) is None  # unknown classes: no chance rule


def table(rows):
    return rows_to_frame({"trial_id": f"t{i}", "key": f"k{i}", **r} for i, r in enumerate(rows))


def test_chance_level_rows_are_off_the_front_and_the_reference_starts_at_chance():
    rows = [
        ok(val_acc=0.9, sops=100.0, num_classes=10),
        ok(val_acc=0.5, sops=50.0, num_classes=10),
        ok(val_acc=0.1, sops=1.0, num_classes=10),  # chance: would be the cheapest front member
        ok(val_acc=0.95, sops=10.0, num_classes=10, proxy="supernet"),  # an estimate: never on the front
    ]
    frame = table(rows)
    frame["proxy"] = [None, None, None, "supernet"]
    analysis = analyse_front(frame, reference_point={"val_acc": 0.0, "sops": 200.0})
    assert analysis.front["key"].tolist() == ["k0", "k1"]
    assert analysis.excluded_counts == {"chance": 1, "supernet": 1}
    assert analysis.reference_point == {"val_acc": 0.1, "sops": 200.0}  # a declared 0 is raised to chance
    assert "chance level 1/10" in analysis.reference_source
    # from chance: 0.8 x (200 - 100) + 0.4 x (100 - 50) = 100 (from 0 it would be 115)
    assert analysis.hypervolume == pytest.approx(100.0)
    data = analysis.to_dict()
    assert data["excluded_from_front"]["chance"]["count"] == 1 and data["chance_accuracy"] == 0.1


def test_one_architecture_is_one_front_point_labelled_as_the_seed_design():
    rows = [
        ok(val_acc=0.939, sops=691e3, baseline="mlp_spe_micro", num_classes=10),  # the baseline row
        ok(val_acc=0.939, sops=691e3, num_classes=10),  # its warm-start trial (reused result)
        ok(val_acc=0.933, sops=434e3, num_classes=10),
    ]
    frame = table(rows)
    frame.loc[1, "key"] = "k0"
    analysis = analyse_front(frame)
    assert analysis.front["key"].tolist() == ["k0", "k2"] and analysis.front["rank"].tolist() == [0, 1]
    assert analysis.front["trial_id"].tolist() == ["t1", "t2"]  # the search row stands for the architecture
    assert analysis.front["seed_design"].tolist() == ["mlp_spe_micro", ""]
    assert analysis.merged == ({"trial_id": "t0", "key": "k0", "baseline": "mlp_spe_micro", "placed_as": "t1"},)
    # a warm-start preset without a baseline row is named through seed_designs
    alone = analyse_front(table(rows[1:]), seed_designs={"k0": "mlp_spe_micro"})
    assert alone.front["seed_design"].tolist() == ["mlp_spe_micro", ""]


def test_counts_say_what_is_a_baseline():
    from snn_nas.report import counts_text, trial_counts

    rows = [ok(), ok(status="stopped"), ok(status="invalid"), ok(baseline="mlp_spe_micro")]
    assert counts_text(*trial_counts(rows)) == "3 search trials (1 ok, 1 stopped, 1 invalid) + 1 baseline (1 ok)"
    assert counts_text(*trial_counts(pd.DataFrame(rows[:1]).to_dict("records"))) == "1 search trial (1 ok)"


def test_the_page_and_png_mark_rows_kept_off_the_front(tmp_path):
    from snn_nas.plots import draw_pareto_html, draw_pareto_png, pareto_plot_info

    rows = [
        ok(val_acc=0.9, sops=100.0, num_classes=10),
        ok(val_acc=0.5, sops=50.0, num_classes=10),
        ok(val_acc=0.1, sops=3.0, num_classes=10),
    ]
    info = pareto_plot_info(analyse_front(table(rows)))
    assert [p.key for p in info.front] == ["k1", "k0"] and [p.key for p in info.excluded] == ["k2"]
    assert "kept off the front: at chance level" in info.excluded[0].hover
    notes = "\n".join(info.notes)
    assert "1 trial(s) kept off the front, drawn as grey crosses: at chance level" in notes
    assert "1/10 + 2 points = 12.00 %" in notes
    page = draw_pareto_html(info, tmp_path / "p.html").read_text()
    assert "kept off the front (chance level" in page and "k2" in page
    assert draw_pareto_png(info, tmp_path / "p.png").stat().st_size > 0


def test_the_search_summary_counts_like_pareto_and_warns_when_most_trials_are_at_chance():
    from types import SimpleNamespace

    from snn_nas.cli.search import summary_lines

    experiment = SimpleNamespace(name="quick", metrics=["val_acc", "sops"], modes=["max", "min"])
    rows = [
        ok(val_acc=0.939, sops=691e3, num_classes=10, baseline="mlp_spe_micro", trial_id="b0", key="seed"),
        ok(val_acc=0.939, sops=691e3, num_classes=10, trial_id="w0", key="seed", reused_from="b0"),
        ok(val_acc=0.10, sops=967.0, num_classes=10, trial_id="c1", key="c1"),
        ok(val_acc=0.10, sops=1200.0, num_classes=10, trial_id="c2", key="c2"),
        ok(val_acc=0.11, sops=5.0, num_classes=10, trial_id="c3", key="c3", status="stopped"),
    ]
    text = "\n".join(summary_lines(experiment, rows, 12.0))
    assert text.startswith("quick: 4 search trials (3 ok, 1 stopped) + 1 baseline (1 ok), 12 s")
    assert "front of 1:" in text and "  seed  val_acc 93.90%, sops 691k  (seed design mlp_spe_micro)" in text
    assert "kept off the front: 2 ok trial(s), at chance level" in text
    assert "warning: 3 of 4 trained trials are at chance level at this fidelity" in text
