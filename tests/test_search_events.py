"""A search on event data end to end: nmnist5k with the real Ray Tune and Optuna, then the front
and a retrain of its best point, T being the number of time bins throughout."""

from __future__ import annotations

import json

import pytest
import yaml

from snn_nas.search.results import load_results

SPACE = """\
name: tiny_events
image_size: 8
family: spiking
time_steps: {choice: [1, 2, 4]}
patch_size: 2
mlp_ratio: 2
num_stages: 1
base_dim: {choice: [6, 12]}
stage_defaults:
  depth: 1
  identity: x
  skip_source: stage
  skip_paths: both
  token_h: {op: mlp}
  token_w: {op: mlp}
  cell: {nodes: 1, in: conv2x2, from: none}
stage1: {width_mult: 1}
"""


@pytest.fixture
def ray_env(monkeypatch, tmp_path):
    """Ray offline and small, the event cache in the test's folder (the Ray workers inherit it)."""
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("SNN_NAS_CACHE", str(tmp_path / "cache"))
    yield
    import ray

    if ray.is_initialized():
        ray.shutdown()


def test_search_on_nmnist5k_then_pareto_and_retrain_keep_t(tmp_path, ray_env, capsys):
    from snn_nas.cli.main import main
    from snn_nas.genotype import Genotype

    (tmp_path / "space.yaml").write_text(SPACE)
    experiment = {
        "name": "ev",
        "space": "space.yaml",
        "dataset": "nmnist5k:per_class=100",
        # 2 x 37 steps: enough to fire and beat chance (a row at chance never stands on a front)
        "fidelity": {"epochs": 2, "batch_size": 16, "lr": 0.01, "image_size": 8, "eval_batch_size": 200},
        "trials": 4,
        "max_concurrent": 2,
        "costs": {"calibration_images": 16},
        "seed": 2,
    }
    path = tmp_path / "ev.yaml"
    path.write_text(yaml.safe_dump(experiment, sort_keys=False))
    results = tmp_path / "results"
    args = ["search", str(path), "--results-dir", str(results), "--num-cpus", "2", "--no-progress", "--no-baselines"]
    assert main(args) == 0
    capsys.readouterr()

    folder = results / "ev"
    table = load_results(folder)
    statuses = set(table["status"])  # 'silent': a network that never fired at this tiny fidelity
    assert len(table) == 4 and statuses <= {"ok", "silent"} and "ok" in statuses
    for row in table.to_dict("records"):  # each trial binned its streams into its own T
        assert row["time_steps"] == Genotype.from_json(row["genotype"]).time_steps
        assert row["sops"] > 0 and row["macs"] > 0  # the stem accumulates on input spikes; the head multiplies
    assert (tmp_path / "cache" / "events").is_dir()

    assert main(["pareto", str(folder), "--json"]) == 0
    front = json.loads(capsys.readouterr().out)["front"]
    assert front and all("time_steps" in row for row in front)

    assert main(["retrain", str(folder), "--rank", "0", "--epochs", "1", "--no-progress", "--json", "--no-export"]) == 0
    report = json.loads(capsys.readouterr().out)
    chosen = table.set_index("key").loc[report["key"]]
    assert report["time_steps"] == chosen["time_steps"] == report["costs"]["time_steps"]  # retrain keeps T
    assert 0.0 <= report["test_acc"] <= 1.0
    assert report["costs"]["neurons"][0]["name"] == "(input)"
