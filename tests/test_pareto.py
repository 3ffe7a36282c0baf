"""Pareto maths (snn_nas.pareto) and the front of a results table (snn_nas.report), by hand."""

from __future__ import annotations

import argparse
import itertools
import json

import numpy as np
import pandas as pd
import pytest

from snn_nas.errors import SnnNasError
from snn_nas.pareto import (
    ParetoError,
    crowding_distance,
    dominates,
    hypervolume,
    hypervolume_2d,
    is_pareto_front,
    non_domination_ranks,
    to_minimization,
)
from snn_nas.report import (
    ResultsError,
    analyse_front,
    baseline_verdict,
    declared_baselines,
    declared_reference_point,
    front_for_dir,
    is_non_spiking,
    load_trials,
    non_spiking_mask,
    read_test_accuracies,
    write_front_files,
)

# five minimisation points: the first three are the front, (3, 4) is dominated by (2, 3) only,
# (5, 5) by all others
POINTS = [[1, 5], [2, 3], [4, 1], [3, 4], [5, 5]]


# ----------------------------------------------------------------------------- pure maths
def test_to_minimization_negates_maximised_columns_and_checks_directions():
    out = to_minimization([[0.9, 100.0], [0.5, 7.0]], ["maximize", "minimize"])
    np.testing.assert_array_equal(out, [[-0.9, 100.0], [-0.5, 7.0]])
    with pytest.raises(ParetoError, match="choose one of"):
        to_minimization([[1.0]], ["max"])
    with pytest.raises(ParetoError, match="one per objective"):
        to_minimization([[1.0, 2.0]], ["minimize"])


def test_dominates_needs_one_strict_improvement():
    assert dominates([1, 2], [1, 3])
    assert not dominates([1, 3], [1, 3])  # equal: no
    assert not dominates([0, 4], [1, 3])  # trade-off: no


def test_front_and_ranks_hand_computed():
    np.testing.assert_array_equal(is_pareto_front(POINTS), [True, True, True, False, False])
    np.testing.assert_array_equal(non_domination_ranks(POINTS), [0, 0, 0, 1, 2])


def test_duplicates_share_a_front_and_empty_input():
    np.testing.assert_array_equal(is_pareto_front([[1, 1], [1, 1], [2, 2]]), [True, True, False])
    np.testing.assert_array_equal(non_domination_ranks([[1, 1], [1, 1], [2, 2]]), [0, 0, 1])
    assert is_pareto_front(np.zeros((0, 2))).shape == (0,)
    assert hypervolume(np.zeros((0, 3)), [1, 1, 1]) == 0.0


def test_nan_points_are_rejected_with_a_clear_error():
    with pytest.raises(ParetoError, match="NaN"):
        is_pareto_front([[1.0, float("nan")]])


def test_hypervolume_2d_hand_computed():
    # strips along f1: [1,3) width 6-4=2, [3,5) width 6-2=4, [5,6) width 6-1=5 -> 4 + 8 + 5
    assert hypervolume_2d(POINTS, [6, 6]) == pytest.approx(17.0)
    assert hypervolume(POINTS, [6, 6]) == pytest.approx(17.0)
    # a point on or beyond the reference adds nothing
    assert hypervolume_2d([[6, 1], [7, 0]], [6, 6]) == 0.0
    assert hypervolume_2d([[6, 1], [5, 5]], [6, 6]) == pytest.approx(1.0)


def test_hypervolume_in_raw_accuracy_times_sops_units():
    # A (0.9, 100 SOPs), B (0.8, 50), C (0.7, 80) dominated by B; reference (0.5, 200):
    # A covers 0.4 x 100 = 40, B covers 0.3 x 150 = 45, overlap 0.3 x 100 = 30 -> 55
    loss = to_minimization([[0.9, 100], [0.8, 50], [0.7, 80]], ["maximize", "minimize"])
    ref = to_minimization([[0.5, 200]], ["maximize", "minimize"])[0]
    assert hypervolume_2d(loss, ref) == pytest.approx(55.0)


def test_hypervolume_1d_and_3d_hand_computed():
    assert hypervolume([[3], [1]], [5]) == pytest.approx(4.0)
    # boxes 2 x 1 x 1 and 1 x 2 x 2 overlapping in a unit cube: 2 + 4 - 1
    assert hypervolume([[1, 2, 3], [2, 1, 2]], [3, 3, 4]) == pytest.approx(5.0)


def _inclusion_exclusion(points: np.ndarray, ref: np.ndarray) -> float:
    total = 0.0
    for size in range(1, len(points) + 1):
        for subset in itertools.combinations(points, size):
            corner = np.max(subset, axis=0)
            total += (-1) ** (size + 1) * float(np.prod(np.clip(ref - corner, 0, None)))
    return total


@pytest.mark.parametrize("dims", [2, 3, 4])
def test_hypervolume_matches_inclusion_exclusion(dims):
    rng = np.random.default_rng(dims)
    for _ in range(5):
        points = rng.integers(0, 6, size=(6, dims)).astype(float)
        ref = np.full(dims, 6.0)
        assert hypervolume(points, ref) == pytest.approx(_inclusion_exclusion(points, ref))


def test_reference_point_of_wrong_length_is_rejected():
    with pytest.raises(ParetoError, match="one per objective"):
        hypervolume_2d(POINTS, [6, 6, 6])


# ----------------------------------------------------------------------------- results tables
def trial_table() -> pd.DataFrame:
    """a, b, c searched (c dominated by b); e, f baselines (f dominated by a and b); d failed;
    g ok without a cost; h stopped early. Built with the search's own dtypes (nullable ints,
    string columns, empty baseline for search trials)."""
    from snn_nas.search.results import rows_to_frame

    rows = [
        ("a", "ok", 0.90, 100.0, 9.0, 1000, 4, ""),
        ("b", "ok", 0.80, 50.0, 5.0, 500, 2, ""),
        ("c", "ok", 0.70, 80.0, 1.0, 2000, 4, ""),
        ("d", "failed", None, None, None, 100, 4, None),
        ("e", "ok", 0.95, 300.0, 30.0, 9000, 4, "mlp_spe_t"),
        ("f", "ok", 0.75, 120.0, 12.0, 800, 4, "mlp_s"),
        ("g", "ok", 0.99, None, None, None, 4, ""),
        ("h", "stopped", 0.5, 10.0, 1.0, 10, 4, ""),
    ]
    names = ["key", "status", "val_acc", "sops", "energy_uj", "params", "time_steps", "baseline"]
    return rows_to_frame(
        {**dict(zip(names, row, strict=True)), "trial_id": f"t{i}", "summary": f"arch {row[0]}"}
        for i, row in enumerate(rows)
    )


def test_front_ranks_and_default_reference_point():
    analysis = analyse_front(trial_table())
    assert analysis.front["key"].tolist() == ["e", "a", "b"]  # accuracy descending
    assert analysis.front["rank"].tolist() == [0, 1, 2]
    assert analysis.front["baseline"].tolist() == ["mlp_spe_t", "", ""]
    nd = dict(zip(analysis.points["key"], analysis.points["nd_rank"], strict=True))
    assert nd == {"a": 0, "b": 0, "e": 0, "c": 1, "f": 1}
    assert sorted(analysis.points.loc[analysis.points["on_search_front"], "key"]) == ["a", "b"]
    assert analysis.unplaced_ok == 1
    # h (stopped early at 50 %, 10 SOPs) would be on the front; it is only kept for plotting
    assert analysis.stopped["key"].tolist() == ["h"]
    assert analysis.status_counts == {"failed": 1, "ok": 6, "stopped": 1}
    # default: accuracy 0 and 1.1 x the largest placed cost (300, a baseline)
    assert analysis.reference_point == {"val_acc": 0.0, "sops": pytest.approx(330.0)}
    assert analysis.reference_source == "default"
    # search trials only: a gives 0.9 x (330 - 100) = 207, b gives 0.8 x (100 - 50) = 40
    assert analysis.hypervolume == pytest.approx(247.0)


def test_declared_and_partial_reference_points():
    full = analyse_front(trial_table(), reference_point={"val_acc": 0.5, "sops": 200.0}, reference_source="x.yaml")
    assert full.hypervolume == pytest.approx(55.0)  # 0.4 x 100 + 0.3 x 50
    assert full.reference_source == "x.yaml"
    partial = analyse_front(trial_table(), reference_point={"sops": 200.0})
    assert partial.reference_point == {"val_acc": 0.0, "sops": 200.0}
    assert partial.hypervolume == pytest.approx(130.0)  # 0.9 x 100 + 0.8 x 50


def test_baselines_compared_correctly():
    table = trial_table()
    # a third baseline identical to trial b: equal is not dominated
    extra = table.iloc[[1]].assign(key="same", baseline="twin", trial_id="t9")
    analysis = analyse_front(pd.concat([table, extra], ignore_index=True))
    by_name = {b.baseline: b for b in analysis.baselines}
    assert by_name["mlp_s"].dominated and by_name["mlp_s"].dominated_by == ("a", "b")
    assert not by_name["mlp_spe_t"].dominated
    assert (by_name["mlp_spe_t"].best_cheaper, by_name["mlp_spe_t"].best_cheaper_acc) == ("a", 0.9)
    assert not by_name["twin"].dominated and by_name["twin"].best_cheaper == "b"
    # baselines never enter the hypervolume: same value as without the twin
    assert analysis.hypervolume == pytest.approx(247.0)


def test_a_baseline_is_not_compared_with_its_own_architecture():
    """A warm-started search trains the seed design as a search trial: that copy neither dominates
    the baseline nor stands as 'the best trial at equal or lower cost'."""
    table = trial_table()
    base = table[table["baseline"] == "mlp_s"].iloc[0]
    copy = table.iloc[[0]].assign(key=base["key"], baseline="", trial_id="warm", val_acc=base["val_acc"] + 0.01,
                                  sops=base["sops"])  # fmt: skip
    by_name = {b.baseline: b for b in analyse_front(pd.concat([table, copy], ignore_index=True)).baselines}
    assert "warm" not in by_name["mlp_s"].dominated_by and base["key"] not in by_name["mlp_s"].dominated_by
    assert by_name["mlp_s"].best_cheaper != base["key"]


def test_a_seed_design_trained_with_two_seeds_gets_one_verdict_on_its_means(tmp_path, capsys, monkeypatch):
    """The second seed of mlp_spe_t (75 %) is dominated by trial a row by row; on seed means
    (85 % at 305 SOPs against a's 80 % over its own two seeds) nothing dominates it, which is what
    the search's summary says, so pareto says so too. One-seed baselines get no such line."""
    table = trial_table()
    e, a = table[table["key"] == "e"], table[table["key"] == "a"]
    extra = [e.assign(trial_id="e2", val_acc=0.75, sops=310.0), a.assign(trial_id="a2", val_acc=0.70)]
    analysis = analyse_front(pd.concat([table, *extra], ignore_index=True))
    assert [v["baseline"] for v in analysis.seed_verdicts] == ["mlp_spe_t"]
    verdict = analysis.seed_verdicts[0]
    assert verdict["seeds"] == 2 and verdict["val_acc"] == pytest.approx(0.85) and verdict["sops"] == 305.0
    assert not verdict["dominated"] and verdict["best_at_or_below_cost"] == "b"  # b: 80 % at 50, a: 80 % at 100
    assert any(b.baseline == "mlp_spe_t" and b.dominated for b in analysis.baselines)  # row by row: dominated
    monkeypatch.setenv("COLUMNS", "250")
    pd.concat([table, *extra], ignore_index=True).to_parquet(tmp_path / "trials.parquet")
    assert _run_cli([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert ("on seed means: mlp_spe_t: 85.00 % (spread 20.0 points) at 305 sops, 2 seed(s); not dominated on seed "
            "means; best at or below its cost b: 80.00 % at 50 sops, 1 seed(s)") in out  # fmt: skip
    assert out.count("on seed means:") == 1


def test_other_cost_axis_changes_the_front():
    # on energy c (0.70, 1 uJ) is the cheapest, so it joins the front; reference 1.1 x 30
    analysis = analyse_front(trial_table(), x="energy_uj")
    assert analysis.front["key"].tolist() == ["e", "a", "b", "c"]
    assert set(analysis.reference_point) == {"val_acc", "energy_uj"}
    # 0.9 x (33 - 9) + 0.8 x (9 - 5) + 0.7 x (5 - 1)
    assert analysis.hypervolume == pytest.approx(21.6 + 3.2 + 2.8)
    with pytest.raises(ResultsError, match="choose one of"):
        analyse_front(trial_table(), x="latency")


def test_no_ok_trials_gives_an_empty_front():
    table = trial_table()
    table["status"] = "stopped"
    analysis = analyse_front(table)
    assert analysis.front.empty and analysis.hypervolume == 0.0 and analysis.baselines == ()


def test_front_rows_json_ready_and_top():
    analysis = analyse_front(trial_table())
    rows = analysis.to_dict(top=2)["front"]
    assert [r["key"] for r in rows] == ["e", "a"]
    for column in ("key", "val_acc", "sops", "energy_uj", "params", "time_steps", "baseline", "rank"):
        assert column in rows[0]
    json.dumps(analysis.to_dict())  # only primitives


def test_declared_reference_point_files(tmp_path):
    assert declared_reference_point(tmp_path) == ({}, None)
    (tmp_path / "experiment.yaml").write_text("name: x\nsearch:\n  reference_point: {val_acc: 0.5, sops: 200}\n")
    assert declared_reference_point(tmp_path) == ({"val_acc": 0.5, "sops": 200.0}, "experiment.yaml")
    (tmp_path / "experiment.yaml").write_text("reference_point: {val_acc: high}\n")
    with pytest.raises(ResultsError, match="finite number"):
        declared_reference_point(tmp_path)
    (tmp_path / "experiment.yaml").unlink()
    (tmp_path / "search.json").write_text(json.dumps({"reference_point": {"sops": 10}}))
    assert declared_reference_point(tmp_path) == ({"sops": 10.0}, "search.json")


def test_load_trials_errors(tmp_path):
    with pytest.raises(SnnNasError, match="no such results folder"):
        load_trials(tmp_path / "nope")
    with pytest.raises(SnnNasError, match=r"trials\.parquet"):
        load_trials(tmp_path)
    (tmp_path / "trials.parquet").write_bytes(b"not parquet")
    with pytest.raises(SnnNasError, match="cannot read"):
        load_trials(tmp_path)


def test_front_for_dir_and_files(tmp_path):
    trial_table().to_parquet(tmp_path / "trials.parquet")
    (tmp_path / "search.json").write_text(json.dumps({"reference_point": {"val_acc": 0.5, "sops": 200}}))
    analysis = front_for_dir(tmp_path)
    assert analysis.hypervolume == pytest.approx(55.0) and analysis.reference_source == "search.json"
    paths = write_front_files(analysis, tmp_path)
    csv = pd.read_csv(paths["csv"])
    assert csv["key"].tolist() == ["e", "a", "b"] and csv.columns[0] == "rank"
    stored = json.loads(paths["json"].read_text())
    assert stored["reference_point"] == {"val_acc": 0.5, "sops": 200.0}
    assert stored["hypervolume"] == pytest.approx(55.0)


# ----------------------------------------------------------------------------- the command
def _run_cli(argv: list[str]) -> int:
    from snn_nas.cli import pareto

    parser = argparse.ArgumentParser()
    pareto.add_arguments(parser)
    return pareto.run(parser.parse_args(argv))


def test_cli_json_and_files(tmp_path, capsys):
    trial_table().to_parquet(tmp_path / "trials.parquet")
    assert _run_cli([str(tmp_path), "--json", "--top", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["key"] for r in out["front"]] == ["e", "a"]
    assert out["hypervolume"] == pytest.approx(247.0)
    assert out["reference_point"] == {"val_acc": 0.0, "sops": pytest.approx(330.0)}
    for name in ("pareto.csv", "pareto.json", "pareto.png", "pareto.html"):
        assert (tmp_path / name).stat().st_size > 0
    assert (tmp_path / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_table_names_dominated_baseline(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps at the terminal width
    trial_table().to_parquet(tmp_path / "trials.parquet")
    assert _run_cli([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "baseline mlp_s (75.00%, sops 120): dominated by front member(s) a, b" in out
    assert "the best search trial at equal or lower SOPs (a) is 15.00 points more accurate" in out
    assert "hypervolume of the search front: 247" in out
    with pytest.raises(SnnNasError, match="--top"):
        _run_cli([str(tmp_path), "--top", "0"])


# ----------------------------------------------------------------------------- non-spiking rows, baselines
SPIKING = json.dumps({"family": "spiking", "time_steps": 4})
NON_SPIKING = json.dumps({"family": "snn_mlp", "time_steps": 1})


def test_is_non_spiking_prefers_the_genotype_family():
    assert is_non_spiking(NON_SPIKING) and is_non_spiking({"family": "snn_mlp"})
    assert not is_non_spiking(SPIKING, time_steps=1, sops=0.0, macs=5.0)  # the family decides
    # without a genotype: T = 1, no SOPs and some MACs
    assert is_non_spiking(None, time_steps=1, sops=0.0, macs=5.0)
    assert not is_non_spiking(None, time_steps=4, sops=0.0, macs=5.0)
    assert not is_non_spiking(None, time_steps=1, sops=3.0, macs=5.0)
    assert not is_non_spiking("not json", time_steps=None, sops=None, macs=None)
    frame = pd.DataFrame({"genotype": [NON_SPIKING, None, SPIKING], "time_steps": [1, 1, 1], "sops": [9.0, 0.0, 0.0],
                          "macs": [1.0, 2.0, 2.0]})  # fmt: skip
    np.testing.assert_array_equal(non_spiking_mask(frame), [True, True, False])


def with_non_spiking(energy_uj: float) -> pd.DataFrame:
    """trial_table plus baseline n: snn_mlp, 85 %, 0 SOPs, 1M MACs, ``energy_uj``."""
    table = trial_table()
    table["genotype"] = SPIKING
    extra = table.iloc[[0]].assign(
        key="n", baseline="snn_mlp_micro", trial_id="t9", val_acc=0.85, sops=0.0, macs=1e6, energy_uj=energy_uj,
        time_steps=1, genotype=NON_SPIKING,
    )  # fmt: skip
    return pd.concat([table, extra], ignore_index=True)


def test_non_spiking_baseline_is_kept_out_of_the_sop_front_and_compared_on_energy():
    analysis = analyse_front(with_non_spiking(energy_uj=4.0))
    # without the rule, n (85 %, 0 SOPs) would sit on the SOP front and dominate b
    assert analysis.front["key"].tolist() == ["e", "a", "b"]
    assert "n" not in set(analysis.points["key"]) and analysis.not_comparable["key"].tolist() == ["n"]
    assert analysis.hypervolume == pytest.approx(247.0)  # as without n
    n = {b.baseline: b for b in analysis.baselines}["snn_mlp_micro"]
    # on energy: a (90 %, 9), b (80 %, 5), c (70 %, 1): only c costs <= 4 uJ -> 70 - 85 = -15 points
    assert (n.axis, n.cost, n.non_spiking, n.moved_to_energy, n.dominated) == ("energy_uj", 4.0, True, True, False)
    assert n.best_cheaper == "c" and n.margin_points == pytest.approx(-15.0)
    assert "compared on energy" in n.to_dict()["verdict"] and "15.00 points less accurate" in n.to_dict()["verdict"]
    # at 10 uJ, a (90 %, 9 uJ) dominates it, and a is on the energy front of the search trials
    n = {b.baseline: b for b in analyse_front(with_non_spiking(energy_uj=10.0)).baselines}["snn_mlp_micro"]
    assert n.dominated_by == ("a",) and n.dominated_by_front == ("a",) and n.margin_points == pytest.approx(5.0)
    # on the energy axis it is an ordinary point: 85 % at 4 uJ is on the front
    on_energy = analyse_front(with_non_spiking(energy_uj=4.0), x="energy_uj")
    assert "n" in on_energy.front["key"].tolist() and on_energy.not_comparable.empty
    n = {b.baseline: b for b in on_energy.baselines}["snn_mlp_micro"]
    assert n.axis == "energy_uj" and not n.moved_to_energy and "compared on energy" not in baseline_verdict(n)


def test_spiking_baseline_margin_and_front_members():
    by_name = {b.baseline: b for b in analyse_front(trial_table()).baselines}
    mlp_s = by_name["mlp_s"]  # 75 % at 120 SOPs: a (90 %, 100) is the best trial costing no more
    assert mlp_s.axis == "sops" and mlp_s.dominated_by_front == ("a", "b")
    assert mlp_s.margin_points == pytest.approx(15.0)
    spe = by_name["mlp_spe_t"]  # 95 % at 300 SOPs: a is 5 points below
    assert not spe.dominated and spe.margin_points == pytest.approx(-5.0)
    as_json = spe.to_dict()
    assert as_json["dominated"] is False and as_json["dominated_by_front"] == []
    assert as_json["margin_points"] == pytest.approx(-5.0) and "not dominated" in as_json["verdict"]


def test_baselines_not_run_and_failed_are_reported():
    table = trial_table()
    search_only = table[table["baseline"].fillna("") == ""]
    analysis = analyse_front(search_only, expected_baselines=("mlp_spe_micro", "snn_mlp_micro"))
    assert analysis.baselines == () and analysis.baselines_not_run == ("mlp_spe_micro", "snn_mlp_micro")
    assert analysis.baselines_note == "baselines not run (search ran with --no-baselines): mlp_spe_micro, snn_mlp_micro"
    out = analysis.to_dict()
    assert out["baselines_not_run"] == ["mlp_spe_micro", "snn_mlp_micro"] and "--no-baselines" in out["baselines_note"]
    # one listed baseline ran (and failed), the other did not run
    failed = table.iloc[[3]].assign(key="m", baseline="mlp_spe_micro", trial_id="t9", error="out of memory")
    analysis = analyse_front(pd.concat([search_only, failed]), expected_baselines=("mlp_spe_micro", "snn_mlp_micro"))
    assert analysis.baselines_not_run == ("snn_mlp_micro",) and "--no-baselines" not in analysis.baselines_note
    assert analysis.baselines_unplaced == (
        {"baseline": "mlp_spe_micro", "key": "m", "status": "failed", "error": "out of memory"},
    )
    # nothing listed, nothing missing
    assert analyse_front(table).baselines_note is None and analyse_front(table).to_dict()["baselines_note"] is None


def test_not_shown_counts_trials_in_no_plot():
    table = trial_table()
    invalid = table.iloc[[3]].assign(key="i", status="invalid", trial_id="t9")
    analysis = analyse_front(pd.concat([table, invalid], ignore_index=True))
    # d failed, i invalid, g ok without a cost; h (stopped, with metrics) is plotted
    assert analysis.not_shown == {"invalid": 1, "failed": 1, "ok without metrics": 1}
    assert analysis.to_dict()["not_shown"] == analysis.not_shown


# ----------------------------------------------------------------------------- test accuracy
def test_test_accuracy_is_shown_but_never_ranks():
    # b's test accuracy beats everything: the front and its ranks do not move
    analysis = analyse_front(trial_table(), test_acc={"a": (0.88, "retrain"), "b": (0.99, "audit")})
    assert analysis.front["key"].tolist() == ["e", "a", "b"] and analysis.front["rank"].tolist() == [0, 1, 2]
    rows = {r["key"]: r for r in analysis.to_dict()["front"]}
    assert (rows["a"]["test_acc"], rows["a"]["test_acc_source"]) == (0.88, "retrain")
    assert (rows["b"]["test_acc"], rows["b"]["test_acc_source"]) == (0.99, "audit")
    assert rows["e"]["test_acc"] is None and rows["e"]["test_acc_source"] is None
    assert set(analysis.to_dict()["test_acc_sources"]) == {"retrain", "audit"}
    assert analysis.hypervolume == pytest.approx(247.0)


def write_test_accuracies(root) -> None:
    """retrain: a with test_acc, b an older report without it, c failed; audit: a, b, e."""
    for key, report in (
        ("a", {"key": "a", "status": "ok", "val_acc": 0.91, "test_acc": 0.875}),
        ("b", {"key": "b", "status": "ok", "val_acc": 0.81}),
        ("c", {"key": "c", "status": "failed", "test_acc": None}),
    ):
        (root / "retrain" / key).mkdir(parents=True)
        (root / "retrain" / key / "report.json").write_text(json.dumps(report))
    (root / "audit").mkdir()
    pd.DataFrame({"key": ["a", "b", "e"], "val_acc": [0.9, 0.8, 0.9], "test_acc": [0.5, 0.79, None]}).to_parquet(
        root / "audit" / "audit.parquet"
    )


def test_read_test_accuracies_prefers_retrain_then_audit(tmp_path):
    assert read_test_accuracies(tmp_path) == {}
    write_test_accuracies(tmp_path)
    assert read_test_accuracies(tmp_path) == {"a": (0.875, "retrain"), "b": (0.79, "audit")}
    (tmp_path / "retrain" / "a" / "report.json").write_text("{not json")
    with pytest.raises(ResultsError, match=r"report\.json"):
        read_test_accuracies(tmp_path)


def test_front_for_dir_reads_baselines_and_test_accuracy(tmp_path):
    table = trial_table()
    table[table["baseline"].fillna("") == ""].to_parquet(tmp_path / "trials.parquet")
    (tmp_path / "experiment.yaml").write_text("name: x\nbaselines: [mlp_spe_micro, snn_mlp_micro]\n")
    assert declared_baselines(tmp_path) == ("mlp_spe_micro", "snn_mlp_micro")
    write_test_accuracies(tmp_path)
    analysis = front_for_dir(tmp_path)
    assert analysis.baselines_not_run == ("mlp_spe_micro", "snn_mlp_micro")
    paths = write_front_files(analysis, tmp_path)
    csv = pd.read_csv(paths["csv"]).set_index("key")
    assert csv.loc["a", "test_acc"] == pytest.approx(0.875) and csv.loc["a", "test_acc_source"] == "retrain"
    assert csv.loc["b", "test_acc_source"] == "audit"
    stored = json.loads(paths["json"].read_text())
    assert {r["key"]: r["test_acc"] for r in stored["front"]} == {"a": 0.875, "b": 0.79}
    assert "--no-baselines" in stored["baselines_note"]
    (tmp_path / "experiment.yaml").write_text("baselines: mlp_s\n")
    with pytest.raises(ResultsError, match="list of preset names"):
        declared_baselines(tmp_path)


def test_cli_json_has_a_verdict_for_every_baseline(tmp_path, capsys):
    with_non_spiking(energy_uj=10.0).to_parquet(tmp_path / "trials.parquet")
    assert _run_cli([str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    verdicts = {b["baseline"]: b for b in out["baselines"]}
    assert set(verdicts) == {"mlp_s", "mlp_spe_t", "snn_mlp_micro"}
    assert verdicts["mlp_s"]["dominated"] is True and verdicts["mlp_s"]["dominated_by_front"] == ["a", "b"]
    assert verdicts["snn_mlp_micro"]["dominated"] is True and verdicts["snn_mlp_micro"]["axis"] == "energy_uj"
    assert verdicts["mlp_spe_t"]["dominated"] is False
    assert [r["key"] for r in out["not_comparable"]] == ["n"] and "n" not in [r["key"] for r in out["front"]]


def test_cli_table_shows_test_accuracy_notes_and_non_spiking_rows(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    table = with_non_spiking(energy_uj=4.0)
    table.to_parquet(tmp_path / "trials.parquet")
    (tmp_path / "experiment.yaml").write_text("baselines: [mlp_s, mlp_spe_t, snn_mlp_micro, mlp_spe_micro]\n")
    write_test_accuracies(tmp_path)
    assert _run_cli([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "test acc" in out and "87.50% (r)" in out and "79.00% (a)" in out
    assert "(r) retrained on train+val" in out and "(a) audited at a higher fidelity" in out
    assert "baseline snn_mlp_micro (85.00%, energy 4 uJ): compared on energy (non-spiking: 0 SOPs, all MACs): " in out
    assert "not dominated; the best search trial at equal or lower energy (c) is 15.00 points less accurate" in out
    assert "baselines not run: mlp_spe_micro" in out
    assert "2 trial(s) not shown: 1 failed" in out


def test_an_80_column_terminal_keeps_keys_and_headers_whole(tmp_path, capsys, monkeypatch):
    """Real 12-character keys, as a search writes them: the key column is never cut; less
    important columns go first, and the output says which."""
    monkeypatch.setenv("COLUMNS", "80")
    table = trial_table()
    long_keys = {k: f"{k * 6}{'0123456789ab'}"[:12] for k in table["key"]}
    table["key"] = table["key"].map(long_keys)
    table.to_parquet(tmp_path / "trials.parquet")
    write_test_accuracies(tmp_path)
    assert _run_cli([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines if not line.startswith("wrote "))
    for key in ("eeeeee012345", "aaaaaa012345", "bbbbbb012345"):
        assert any(key in line for line in lines), key
    assert "accuracy" in out and "…" not in out
    assert "left out; all in pareto.csv" in out
    monkeypatch.setenv("COLUMNS", "200")  # a wide terminal keeps every column
    assert _run_cli([str(tmp_path)]) == 0
    wide = capsys.readouterr().out
    assert "energy uJ" in wide and "left out" not in wide


# ---------------------------------------------------------------------- two objectives, at scale
def _brute_ranks(points: np.ndarray) -> np.ndarray:
    """Non-dominated sorting by peeling with the dominance matrix (the definition)."""
    from snn_nas.pareto import dominance_matrix

    n = len(points)
    ranks, remaining, rank = np.full(n, -1), np.ones(n, dtype=bool), 0
    dom = dominance_matrix(points)
    while remaining.any():
        idx = np.flatnonzero(remaining)[~dom[remaining][:, remaining].any(axis=0)]
        ranks[idx], remaining[idx] = rank, False
        rank += 1
    return ranks


def test_the_2d_sweep_gives_the_ranks_and_positions_of_the_definition():
    from snn_nas.pareto import non_domination_ranks_2d, points_ahead_of_last_2d

    rng = np.random.default_rng(7)
    for trial in range(400):
        n = int(rng.integers(1, 25))  # small integer grids: many ties and duplicates
        points = rng.integers(0, 4, size=(n, 2)).astype(float) if trial % 2 else rng.random((n, 2))
        ranks = _brute_ranks(points)
        assert (non_domination_ranks_2d(points) == ranks).all()
        assert (is_pareto_front(points) == (ranks == 0)).all()
        crowding = np.zeros(n)
        for rank in np.unique(ranks):
            members = np.flatnonzero(ranks == rank)
            crowding[members] = crowding_distance(points[members])
        ahead = int(((ranks < ranks[-1]) | ((ranks == ranks[-1]) & (crowding > crowding[-1]))).sum())
        for quota in range(1, n + 2):
            got = points_ahead_of_last_2d(points, quota)
            assert (got < quota) == (ahead < quota)  # the scheduler's decision
            if ahead < quota:
                assert got == ahead


def test_a_rung_of_ten_thousand_points_needs_no_square_matrix():
    from snn_nas.pareto import points_ahead_of_last_2d

    points = np.random.default_rng(0).random((10_000, 2))
    assert points_ahead_of_last_2d(points, 5_000) >= 0  # [n, n] booleans would be 100 MB per matrix
    best = points.copy()
    best[-1] = [-1.0, -1.0]
    assert points_ahead_of_last_2d(best, 5_000) == 0
