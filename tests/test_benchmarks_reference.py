"""The reference of the throughput benchmark (``experiments/benchmarks/reference_mixer.py``) is the
same architecture as our MLP-SPE presets: the same parameter tensors, and with our weights copied
in, the same logits. The benchmark itself refuses ``--device cuda`` without CUDA before any work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from snn_nas.builder import build_model
from snn_nas.presets import get_preset

BENCHMARKS = Path(__file__).resolve().parents[1] / "experiments" / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from reference_mixer import ReferenceMLPSPE, check_same_parameters, copy_weights  # noqa: E402


def test_same_parameters_as_mlp_spe_t():
    with torch.device("meta"):  # shapes only: 24.5 M parameters need no memory
        ours = build_model(get_preset("mlp_spe_t"), num_classes=10, image_size=32)
        reference = ReferenceMLPSPE(num_classes=10, image_size=32)
    assert check_same_parameters(reference, ours) == 24_517_190
    with pytest.raises(ValueError, match="not the same architecture"):
        check_same_parameters(ReferenceMLPSPE(dim=24, depths=(1, 1, 1), image_size=32, num_classes=10), ours)


def test_same_logits_with_our_weights():
    ours = build_model(get_preset("mlp_spe_micro"), num_classes=10, image_size=32, seed=0)
    reference = ReferenceMLPSPE(dim=24, depths=(1, 1, 1), num_classes=10, image_size=32)
    copy_weights(ours, reference)
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for mode in ("train", "eval"):
        ours.train(mode == "train")
        reference.train(mode == "train")
        with torch.no_grad():
            assert torch.equal(ours(x), reference(x)), mode


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_throughput_device_cuda_without_cuda_is_a_clear_error():
    script = BENCHMARKS / "throughput.py"
    out = subprocess.run([sys.executable, str(script), "--device", "cuda"], capture_output=True, text=True)
    assert out.returncode == 2 and "CUDA is not available" in out.stderr and "Traceback" not in out.stderr
