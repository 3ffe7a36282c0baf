"""The two-stage one-shot search: stage-2 choice and seed means (pure), settings, and the whole
search end to end with the real Ray Tune, Optuna and Ray Train (tiny space, scikit-learn digits)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from file_tools import folder_digest

from snn_nas.search.experiment import Experiment, ExperimentError
from snn_nas.search.selection import SeedMean, mean_verdict, seed_means, stage2_candidates

REPO = Path(__file__).resolve().parents[1]


def row(key: str, acc: float, sops: float, **extra) -> dict:
    return {"trial_id": f"t{key}", "key": key, "status": "ok", "val_acc": acc, "sops": sops, "proxy": "supernet",
            "num_classes": 10, "feasible": True, "baseline": "", "time_steps": 2, "macs": 1.0, **extra}  # fmt: skip


# ---------------------------------------------------------------------------- pure parts
def test_stage2_candidates_take_the_top_a_spread_and_the_neighbours_of_each_seed_design():
    rows = [
        row("a", 0.95, 1000.0),
        row("b", 0.93, 500.0),
        row("c", 0.90, 200.0),
        row("d", 0.85, 100.0),
        row("e", 0.80, 50.0),
        row("f", 0.70, 10.0),
        row("x", 0.60, 900.0),  # dominated by b
        row("g", 0.11, 1.0),  # chance level (10 classes): never a candidate
        row("h", 0.99, 5.0, status="failed"),
        row("c", 0.50, 200.0),  # a second evaluation of c: its best counts
    ]
    picked = stage2_candidates(rows, top=1, spread=2, near_baselines=1, seeds=2, base_seed=3,
                               baseline_costs={"seed_design": 300.0})  # fmt: skip
    by_key = {c.key: c for c in picked}
    assert by_key["a"].reasons == ("top",)
    # spread: targets at 1/4 and 3/4 of log cost between 10 and 1000 -> ~31.6 and ~316
    spread = {k for k, c in by_key.items() if "spread" in c.reasons}
    assert spread == {"e", "c"} or spread == {"e", "b"}
    assert "near seed_design" in by_key["c"].reasons and "near seed_design" in by_key["b"].reasons
    assert by_key["c"].seeds == (3, 4) and by_key["b"].seeds == (3, 4) and by_key["a"].seeds == (3,)
    assert not {"x", "g", "h"} & set(by_key)
    assert stage2_candidates([], top=3, spread=3) == []


def test_the_neighbours_of_a_seed_design_are_the_best_estimates_in_its_cost_band_and_warm_starts_join():
    rows = [
        row("cheap", 0.60, 10.0),  # the whole front: it dominates every other row
        row("far", 0.58, 100.0),  # below the band [150, 300]
        row("mid", 0.40, 250.0),  # the best estimate in the band, although off the front
        row("midlow", 0.35, 200.0),
        row("seed", 0.45, 300.0),  # the warm-start design: not its own neighbour
        row("big", 0.50, 1000.0),  # above the band (300, 600]
    ]
    picked = stage2_candidates(rows, top=1, spread=0, near_baselines=1, seeds=2, base_seed=5,
                               baseline_costs={"seed_design": 300.0}, warm_keys=["seed"])  # fmt: skip
    by_key = {c.key: c for c in picked}
    assert set(by_key) == {"cheap", "mid", "seed"}
    assert by_key["mid"].reasons == ("near seed_design",) and by_key["mid"].seeds == (5, 6)
    assert by_key["seed"].reasons == ("warm start",) and by_key["seed"].seeds == (5,)
    # a wider band reaches "far", which is estimated better than "mid"
    wide = stage2_candidates(rows, top=0, spread=0, near_baselines=1, seeds=2, baseline_costs={"seed_design": 300.0},
                             near_band=4.0)  # fmt: skip
    assert [c.key for c in wide] == ["far", "big"]
    # an empty side of the band falls back to the nearest front member on that side
    sparse = stage2_candidates([row("cheap", 0.60, 10.0), row("big", 0.70, 2000.0)], top=0, spread=0,
                               near_baselines=1, baseline_costs={"seed_design": 300.0})  # fmt: skip
    assert [c.key for c in sparse] == ["cheap", "big"]


def test_seed_means_and_the_verdict_on_a_seed_design():
    rows = [
        {"key": "base", "val_acc": 0.90, "sops": 100.0},
        {"key": "base", "val_acc": 0.92, "sops": 100.0},
        {"key": "a", "val_acc": 0.93, "sops": 90.0},
        {"key": "a", "val_acc": 0.90, "sops": 90.0},  # mean 0.915 > 0.91: dominates on means
        {"key": "b", "val_acc": 0.99, "sops": 200.0},  # more costly: never dominates
        {"key": "c", "val_acc": 0.905, "sops": 50.0},  # cheaper but less accurate on means
    ]
    means = seed_means(rows)
    assert means["base"] == SeedMean("base", 2, pytest.approx(0.91), pytest.approx(0.02), 100.0)
    best, dominating = mean_verdict(means["base"], means.values())
    assert best.key == "a" and [d.key for d in dominating] == ["a"]
    alone, none = mean_verdict(means["base"], [means["b"]])
    assert alone is None and none == []


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"stage2": {"seeds": 0}}, "oneshot.stage2.seeds"),
        ({"stage2": {"init": "warm"}}, "oneshot.stage2.init"),
        ({"stage2": {"near_band": 1.0}}, "oneshot.stage2.near_band"),
        ({"stage2": {"near_band": float("nan")}}, "oneshot.stage2.near_band"),
        ({"stage2": {"top": 0, "spread": 0, "near_baselines": 0}}, "stage 2 would train nothing"),
        ({"supernet": {"bn_batches": -1}}, "oneshot.supernet: bn_batches"),
        ({"supernet": {"sandwich": False}}, "distill"),
        ({"supernet": {"nope": 1}}, "unknown setting"),
        ({"stage3": {}}, "unknown key"),
    ],
)
def test_bad_oneshot_settings_name_the_key(block, message):
    with pytest.raises(ExperimentError, match=message):
        Experiment.from_dict({"space": "quick", "oneshot": block}, source="x.yaml")


def test_the_shipped_oneshot_experiment_reads_and_round_trips():
    from snn_nas.search.experiment import load_experiment

    experiment = load_experiment("oneshot")
    assert (experiment.oneshot is not None and experiment.space.endswith("quick.yaml")) or experiment.space == "quick"
    again = Experiment.from_dict(experiment.to_dict(), source="round trip")
    assert again.oneshot == experiment.oneshot


# ---------------------------------------------------------------------------- end to end
SPACE = """\
name: tiny
image_size: 8
family: spiking
time_steps: {choice: [1, 2]}
patch_size: {choice: [2, 4]}
mlp_ratio: 2
num_stages: {choice: [1, 2]}
base_dim: {choice: [12, 24]}
stage_defaults:
  depth: {choice: [1, 2]}
  identity: x
  skip_source: {choice: [stage, block]}
  skip_paths: both
  token_h: {op: {choice: [mlp, none]}}
  token_w: {op: mlp}
  cell: {nodes: 1, in: {choice: [conv2x2, conv3x3]}, from: none}
stage1: {width_mult: 1}
stage2: {width_mult: 2}
"""


def write_experiment(tmp_path: Path, **oneshot) -> Path:
    (tmp_path / "tiny_space.yaml").write_text(SPACE)
    data = {
        "name": "os",
        "space": "tiny_space.yaml",
        "dataset": "digits",
        "fidelity": {"epochs": 1, "batch_size": 32, "image_size": 8, "eval_batch_size": 256},
        "trials": 6,
        "max_concurrent": 2,
        "seed": 1,
        "costs": {"calibration_images": 32},
        "baselines": ["mlp_spe_micro"],
        "warm_start": "none",
        "oneshot": {
            "supernet": {"epochs": 2, "batch_size": 32, "random_subnets": 1, "bn_batches": 2, "bn_batch_size": 64},
            "stage2": {"top": 2, "spread": 1, "near_baselines": 1, "seeds": 2},
            **oneshot,
        },
    }
    path = tmp_path / "os.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def snn_nas(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.run([sys.executable, "-m", "snn_nas.cli.main", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


def test_a_two_stage_search_end_to_end(tmp_path):
    from snn_nas.report import front_for_dir
    from snn_nas.search.results import load_results

    path, results = write_experiment(tmp_path), tmp_path / "results"
    done = snn_nas("search", str(path), "--results-dir", str(results), "--num-cpus", "2", "--no-progress")
    assert done.returncode == 0, done.stderr
    folder = results / "os"
    table = load_results(folder)
    stage1 = table[table["proxy"] == "supernet"]
    stage2 = table[(table["proxy"] == "standalone") & (table["baseline"] == "")]
    base = table[table["baseline"] == "mlp_spe_micro"]
    assert len(stage1) == 6 and set(stage1["status"]) <= {"ok", "invalid", "silent"}
    fidelity = json.loads(stage1.iloc[0]["fidelity"])
    assert fidelity["oneshot"]["proxy"] == "supernet" and fidelity["oneshot"]["supernet_epochs"] == 2
    assert fidelity["oneshot"]["checkpoint"] == "supernet/supernet.pt"  # relative: the folder may move
    assert len(stage2) >= 2 and (stage2["epochs"] == 1).all()
    summary = json.loads((folder / "oneshot.json").read_text())
    chosen = {c["key"]: c for c in summary["stage2"]["candidates"]}
    assert set(stage2["key"]) == set(chosen)
    for key, candidate in chosen.items():  # every candidate trained with its seeds, nothing else
        assert sorted(stage2[stage2["key"] == key]["seed"]) == candidate["seeds"]
        assert candidate["key"] in set(stage1["key"])
    if summary["verdicts"]:  # the seed design is above chance: it and its neighbours have 2 seeds each
        assert sorted(base["seed"]) == [1, 2]
        assert summary["verdicts"][0]["baseline_mean"]["n"] == 2
        assert any(len(c["seeds"]) == 2 for c in chosen.values())
        assert done.stdout.count("mlp_spe_micro: ") == 1, done.stdout  # the verdict, once, in the summary
    # only standalone rows may stand on the front; the stage-1 rows stay in the table, marked
    analysis = front_for_dir(folder)
    assert set(analysis.front["proxy"].fillna("standalone")) <= {"standalone"}
    studies = {s.study_name for s in optuna.get_all_study_summaries(f"sqlite:///{folder / 'optuna.db'}")}
    assert {"os", "os.stage1"} <= studies
    # a resumed finished search trains nothing again, the supernet included
    stamp = (folder / "supernet" / "supernet.pt").stat().st_mtime_ns
    again = snn_nas("search", str(path), "--results-dir", str(results), "--num-cpus", "2", "--no-progress",
                    "--resume")  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert len(load_results(folder)) == len(table)
    assert (folder / "supernet" / "supernet.pt").stat().st_mtime_ns == stamp
    # the audit measures the supernet's ranking against standalone training, at both fidelities
    audit = snn_nas("audit", str(folder), "--sample", "4", "--epochs", "2", "--num-cpus", "2", "--json")
    assert audit.returncode == 0, audit.stderr
    report = json.loads((folder / "audit" / "audit.json").read_text())
    for name in ("kendall_tau_supernet", "kendall_tau_supernet_proxy", "front_recall_supernet", "kendall_tau_params"):
        assert name in report
    assert report["n_kendall_tau_supernet"] >= 3
    # a copy of the folder, with work left (its supernet deleted), resumed: it writes only itself
    copy = results / "os-copy"
    shutil.copytree(folder, copy)
    (copy / "supernet" / "supernet.pt").unlink()
    original = folder_digest(folder)
    resumed = snn_nas("search", "--resume", "--name", "os-copy", "--results-dir", str(results), "--num-cpus", "2",
                      "--no-progress")  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert folder_digest(folder) == original
    assert (copy / "supernet" / "supernet.pt").is_file() and len(load_results(copy)) == len(table)
    assert json.loads((copy / "oneshot.json").read_text())["supernet"]["path"] == "supernet/supernet.pt"
    for name in ("trials.parquet", "trials.jsonl", "oneshot.json", "optuna.db"):  # no file names the original
        assert str(folder).encode() not in (copy / name).read_bytes(), name


def test_data_parallel_supernet_training_through_ray_train(tmp_path):
    """Two CPU workers (gloo DDP) train one supernet; rank 0 writes the checkpoint every epoch."""
    from snn_nas.supernet.checkpoint import load_supernet

    path = write_experiment(tmp_path, supernet={"epochs": 1, "batch_size": 16, "random_subnets": 1,
                                                "bn_batches": 1, "bn_batch_size": 32})  # fmt: skip
    done = snn_nas("supernet", "train", str(path), "--results-dir", str(tmp_path / "r"), "--workers", "2",
                   "--num-cpus", "2", "--no-progress")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    _, state = load_supernet(tmp_path / "r" / "os" / "supernet" / "supernet.pt")
    assert state["epoch"] == 1 and len(state["history"]) == 1
    assert "supernet trained: 1 epochs" in done.stdout


# ---------------------------------------------------------------------------- the audit of a two-stage search
def test_the_two_stage_audit_sample_and_statistics_on_a_hand_made_table():
    import pandas as pd

    from snn_nas.audit_oneshot import is_two_stage, supernet_statistics, two_stage_sample

    stage1 = [row(k, acc, sops, genotype="{}", fidelity="{}") for k, acc, sops in
              [("a", 0.9, 100.0), ("b", 0.8, 50.0), ("c", 0.7, 20.0), ("d", 0.6, 10.0), ("e", 0.5, 5.0)]]  # fmt: skip
    stage2 = [row("a", 0.92, 110.0, proxy="standalone", seed=0), row("a", 0.90, 110.0, proxy="standalone", seed=1),
              row("b", 0.85, 55.0, proxy="standalone", seed=0)]  # fmt: skip
    table = pd.DataFrame([*stage1, *stage2, row("base", 0.95, 1.0, proxy="standalone", baseline="seed")])
    assert is_two_stage(table) and not is_two_stage(table[table["proxy"] != "supernet"])
    sample = two_stage_sample(table, 4)
    by_key = {r["key"]: r for r in sample}
    assert list(by_key) == ["a", "b", "c", "e"]  # stage 2 first, then a spread over the supernet's ranking
    assert by_key["a"]["val_acc"] == pytest.approx(0.91) and by_key["a"]["proxy_seeds"] == 2
    assert by_key["a"]["supernet_val_acc"] == 0.9 and not by_key["a"]["needs_proxy"]
    assert by_key["e"]["needs_proxy"] and by_key["e"]["proxy_source"] == "audit" and by_key["e"]["val_acc"] is None
    # audited rows: the supernet ranks a > b > c > e; standalone high fidelity says a > c > b > e
    audited = [
        {"status": "ok", "supernet_val_acc": s, "supernet_sops": c, "proxy_val_acc": p, "proxy_sops": c,
         "val_acc": v, "sops": c, "params": prm}
        for s, p, v, c, prm in [(0.9, 0.91, 0.95, 100.0, 4), (0.8, 0.85, 0.80, 50.0, 3), (0.7, 0.80, 0.90, 20.0, 2),
                                (0.5, 0.60, 0.50, 5.0, 1)]
    ]  # fmt: skip
    stats = supernet_statistics(audited)
    assert stats["kendall_tau_supernet_proxy"] == pytest.approx(1.0)
    assert stats["kendall_tau_supernet"] == pytest.approx(4 / 6)  # one discordant pair of six
    assert stats["front_recall_supernet"] == pytest.approx(1.0) and stats["n_kendall_tau_supernet"] == 4
    assert stats["kendall_tau_params_proxy"] == pytest.approx(1.0)
    assert supernet_statistics([{k: v for k, v in r.items() if not k.startswith("supernet")} for r in audited]) == {}


def test_the_audit_says_how_the_supernet_ranked():
    from snn_nas.cli.audit import summary_lines

    report = {"n": 12, "front_members": 4, "high_fidelity": {"epochs": 10}, "kendall_tau": 0.8,
              "kendall_tau_supernet_proxy": 0.36, "n_kendall_tau_supernet_proxy": 12,
              "ci95_kendall_tau_supernet_proxy": [-0.08, 0.69], "kendall_tau_supernet": 0.18,
              "n_kendall_tau_supernet": 12, "front_recall_supernet": 0.5,
              "front_recall_supernet_proxy": None}  # fmt: skip
    text = "\n".join(summary_lines(report))
    assert "supernet ranking" in text and "vs the proxy: tau 0.36 [-0.08, 0.69] (n=12)" in text
    assert "vs 10 epochs: tau 0.18 (no interval: too few) (n=12)" in text and "front recall 0.50" in text
    assert "supernet ranking" not in "\n".join(summary_lines({**report, "kendall_tau_supernet": None,
                                                              "kendall_tau_supernet_proxy": None}))  # fmt: skip
