"""Several trials per GPU through Ray's fractional GPU resources, shown without CUDA.

A local Ray instance declares logical GPUs (``--num-gpus 4``): Ray assigns each trial of
``resources.gpus: 0.25`` a share of one of them and sets ``CUDA_VISIBLE_DEVICES`` in its worker;
with no CUDA the trial trains on the CPU and its row says so. A local instance without GPUs
runs a GPU request on the CPU after one warning; shares that give no whole number of trials per
GPU are warned about, and impossible ones refused, before Ray starts. The same search on real
GPUs is ``tests/test_gpu.py`` (skipped without CUDA).
"""

from __future__ import annotations

import logging
import re

import pytest
import yaml

from snn_nas.search.cluster import check_gpu_share
from snn_nas.search.layout import SearchError
from snn_nas.search.results import load_results

SPACE = """\
name: tiny
image_size: 8
family: spiking
time_steps: {choice: [1, 2]}
patch_size: 4
mlp_ratio: 2
num_stages: 1
base_dim: {choice: [6, 12]}
stage_defaults: {depth: 1, identity: x, skip_source: stage, skip_paths: both, token_h: {op: {choice: [mlp, none]}},
                 token_w: {op: mlp}}
stage1: {width_mult: 1}
"""


def experiment(tmp_path, name: str, gpus: float, trials: int) -> str:
    (tmp_path / "space.yaml").write_text(SPACE)
    data = {
        "name": name,
        "space": "space.yaml",
        "dataset": "synthetic:train=48,val=16,classes=4,channels=1",
        "fidelity": {"epochs": 1, "batch_size": 16, "image_size": 8, "max_batches_per_epoch": 2, "eval_batch_size": 16},
        "trials": trials,
        "max_concurrent": trials,
        "resources": {"cpus": 0.5, "gpus": gpus},
        "costs": {"calibration_images": 8},
        "seed": 2,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


@pytest.fixture
def ray_env(monkeypatch):
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    yield
    import ray

    if ray.is_initialized():
        ray.shutdown()


def test_quarter_gpus_put_four_trials_on_logical_gpus_with_a_cpu_fallback(tmp_path, ray_env, capsys):
    from snn_nas.cli.main import main

    path = experiment(tmp_path, "quarters", 0.25, 4)
    args = ["search", path, "--results-dir", str(tmp_path / "r"), "--num-gpus", "4", "--num-cpus", "2"]
    assert main([*args, "--no-baselines", "--no-progress"]) == 0
    table = load_results(tmp_path / "r" / "quarters")
    assert set(table["status"]) <= {"ok", "silent"} and len(table) == 4  # all trained (tiny nets may stay silent)
    gpu_of = {}
    for row in table.to_dict("records"):
        pattern = r"cpu \(asked for 0\.25 GPU, no CUDA\); Ray GPU (\d), CUDA_VISIBLE_DEVICES=(\d)"
        match = re.fullmatch(pattern, row["device"])
        assert match, row["device"]  # one GPU each, visible to the worker as its only device
        assert match.group(1) == match.group(2)
        gpu_of[row["trial_id"]] = match.group(1)
    # trials ran side by side (Ray places up to four quarter shares on one GPU)
    spans = [(row["started_at"], row["finished_at"]) for row in table.to_dict("records")]
    assert max(sum(1 for s, f in spans if s <= start < f) for start, _ in spans) >= 2
    assert set(gpu_of.values()) <= {"0", "1", "2", "3"}


def test_gpu_request_without_gpus_runs_on_the_cpu_after_warnings(tmp_path, ray_env, caplog):
    from snn_nas.search.experiment import load_experiment
    from snn_nas.search.tune import run_search

    path = experiment(tmp_path, "nogpu", 0.3, 1)
    with caplog.at_level(logging.WARNING, logger="snn_nas.search.tune"):
        run = run_search(load_experiment(path), results_dir=tmp_path / "r", baselines=False, progress=False, num_cpus=1,
                         num_gpus=0)  # fmt: skip
    assert run.complete
    said = [r.getMessage() for r in caplog.records if r.name == "snn_nas.search.tune"]
    assert sum("no whole number of trials per GPU" in m for m in said) == 1
    assert sum("the trials run on the CPU" in m for m in said) == 1
    row = load_results(tmp_path / "r" / "nogpu").iloc[0]
    assert row["status"] in ("ok", "silent") and row["device"] == "cpu"  # trained, on the CPU


@pytest.mark.parametrize(
    "gpus, expected",
    [
        (0.25, None),
        (0.5, None),
        (1 / 3, None),
        (1.0, None),
        (2.0, None),
        (0.3, "3 trials share a GPU and 10% of it stays unused"),
        (0.4, "2 trials share a GPU and 20% of it stays unused"),
        (0.7, "1 trials share a GPU and 30% of it stays unused"),
    ],
)
def test_gpu_share_warning(gpus, expected):
    note = check_gpu_share(gpus)
    if expected is None:
        assert note is None
    else:
        assert note.startswith(f"resources.gpus: {gpus:g} gives no whole number of trials per GPU") and expected in note


def test_a_share_above_one_that_is_not_whole_is_refused_before_ray(tmp_path, ray_env, capsys):
    import ray

    from snn_nas.cli.main import main

    with pytest.raises(SearchError, match=r"resources\.gpus: 1\.5 is not allowed"):
        check_gpu_share(1.5)
    path = experiment(tmp_path, "toomuch", 1.5, 1)
    assert main(["search", path, "--results-dir", str(tmp_path / "r"), "--no-baselines", "--no-progress"]) == 2
    assert "resources.gpus: 1.5 is not allowed" in capsys.readouterr().err
    assert not ray.is_initialized()
    assert main(["search", path, "--num-gpus", "2", "--address", "auto", "--no-progress"]) == 2
    assert "--num-gpus sizes a local Ray instance" in capsys.readouterr().err
