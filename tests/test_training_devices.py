"""Where a trial trains (``snn_nas.training.devices``) and the device settings of the engine:
``--device cuda`` without CUDA, a checkpoint written on CUDA read on the CPU, autocast dtypes."""

from __future__ import annotations

import logging

import pytest
import torch

from snn_nas.training.devices import describe_device, share_gpu, trial_device
from snn_nas.training.loops import CPU_AMP_ENV, amp_dtype

CPU = torch.device("cpu")
needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without CUDA")


def test_cpu_trials_and_a_gpu_request_without_cuda_warn_once(caplog):
    assert trial_device(0.0) == CPU and describe_device(CPU) == "cpu"
    if torch.cuda.is_available():
        assert trial_device(0.5) == torch.device("cuda", 0)
        return
    with caplog.at_level(logging.WARNING, logger="snn_nas.training.devices"):
        assert trial_device(0.125) == CPU and trial_device(0.125) == CPU
    said = [r.getMessage() for r in caplog.records if "0.125 GPU" in r.getMessage()]
    assert len(said) == 1 and "trains on the CPU" in said[0] and "CUDA_VISIBLE_DEVICES" in said[0]
    assert describe_device(CPU, 0.125) == "cpu (asked for 0.125 GPU, no CUDA)"
    assert share_gpu(CPU, 0.25) == 1.0  # no CUDA memory to cap; resident data sized by the CPU's budget


@needs_no_cuda
@pytest.mark.parametrize("command", ["train", "retrain"])
def test_device_cuda_without_cuda_is_a_clear_error_before_any_training(command, tmp_path, capsys):
    from snn_nas.cli.main import main

    args = ["train", "mlp_spe_micro", "--epochs", "1", "--out", str(tmp_path / "t"), "--device", "cuda"]
    if command == "retrain":
        args = ["retrain", str(tmp_path / "no-search"), "--device", "cuda"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--device" in err or "device:" in err
    assert "CUDA is not available" in err
    assert not (tmp_path / "t").exists()


def test_autocast_dtypes():
    assert amp_dtype(CPU, False) is None and amp_dtype(CPU, None) is None
    assert amp_dtype(CPU, torch.bfloat16) is torch.bfloat16
    if torch.cuda.is_available():
        expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        assert amp_dtype(torch.device("cuda"), True) is expected


def test_cpu_autocast_is_opt_in(monkeypatch):
    monkeypatch.delenv(CPU_AMP_ENV, raising=False)
    assert amp_dtype(CPU, True) is None
    monkeypatch.setenv(CPU_AMP_ENV, "bf16")
    assert amp_dtype(CPU, True) is torch.bfloat16 and amp_dtype(CPU, False) is None


def test_a_checkpoint_written_on_cuda_loads_on_the_cpu(tmp_path, monkeypatch):
    """A checkpoint whose tensors are tagged ``cuda:0`` (what ``torch.save`` writes for CUDA
    tensors; here the tag is written by ``torch.serialization.location_tag``, since this machine
    may have no GPU) loads with ``load_model`` on the CPU: its ``map_location`` moves them."""
    import torch.serialization as serialization

    from snn_nas import load_model
    from snn_nas.checkpoint import save_checkpoint
    from snn_nas.genotype import Genotype, Stage

    genotype = Genotype(stages=(Stage(depth=1, dim=4),), time_steps=2, patch_size=4)
    from snn_nas.builder import build_model

    model = build_model(genotype, num_classes=3, image_size=8, in_chans=1, seed=0)
    state = {
        "epoch": 1,
        "model": model.state_dict(),
        "config": {},
        "genotype": genotype.to_dict(),
        "model_args": {"num_classes": 3, "image_size": 8, "in_chans": 1, "time_steps": 2},
    }
    with monkeypatch.context() as patch:
        patch.setattr(serialization, "location_tag", lambda storage: "cuda:0")
        save_checkpoint(tmp_path / "cuda.pt", state)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(tmp_path / "cuda.pt", weights_only=True)  # the file really is tagged for CUDA
    loaded = load_model(tmp_path / "cuda.pt")
    assert all(p.device == CPU for p in loaded.parameters()) and not loaded.training
    x = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(loaded(x), model.eval()(x))
