"""The CUDA paths end to end, on a real GPU (skipped without CUDA).

A 2-trial search with half a GPU per trial (two trials share the GPU, each sees it as cuda:0,
data resident on it, autocast on), then ``snn-nas train`` on CUDA whose checkpoint is loaded on
the CPU with ``load_model``. Without CUDA, ``tests/test_search_gpus.py`` shows the fractional
assignment on logical GPUs and ``tests/test_training_devices.py`` the CPU side of the checkpoint.
"""

from __future__ import annotations

import pytest
import torch
import yaml

from snn_nas.search.results import load_results

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

SPACE = """\
name: tiny
image_size: 8
family: spiking
time_steps: 2
patch_size: 4
mlp_ratio: 2
num_stages: 1
base_dim: {choice: [6, 12]}
stage_defaults: {depth: 1, identity: x, skip_source: stage, skip_paths: both, token_h: {op: mlp}, token_w: {op: mlp}}
stage1: {width_mult: 1}
"""


def test_two_trial_search_on_half_gpus_and_a_cuda_checkpoint_on_the_cpu(tmp_path, monkeypatch, capsys):
    from snn_nas import load_model
    from snn_nas.cli.main import main

    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    (tmp_path / "space.yaml").write_text(SPACE)
    experiment = {
        "name": "gpu",
        "space": "space.yaml",
        "dataset": "synthetic:train=64,val=32,classes=4,channels=1",
        "fidelity": {"epochs": 2, "batch_size": 16, "image_size": 8, "eval_batch_size": 32},
        "trials": 2,
        "max_concurrent": 2,
        "resources": {"cpus": 1, "gpus": 0.5},
        "costs": {"calibration_images": 8},
    }
    (tmp_path / "gpu.yaml").write_text(yaml.safe_dump(experiment))
    assert main(["search", str(tmp_path / "gpu.yaml"), "--results-dir", str(tmp_path / "r"), "--no-baselines",
                 "--no-progress", "--num-cpus", "2"]) == 0  # fmt: skip
    table = load_results(tmp_path / "r" / "gpu")
    assert len(table) == 2 and set(table["status"]) <= {"ok", "silent"}
    assert all(str(d).startswith("cuda:0 ") and "Ray GPU" in str(d) for d in table["device"])

    out = tmp_path / "train"
    assert main(["train", "mlp_spe_micro", "--epochs", "1", "--device", "cuda", "--out", str(out), "--no-progress",
                 "--max-batches", "3", "--image-size", "32"]) == 0  # fmt: skip
    capsys.readouterr()
    model = load_model(out / "last.pt")  # map_location defaults to the CPU
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)
