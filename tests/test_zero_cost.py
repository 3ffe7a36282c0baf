"""SAHD and pre-screening selection: hand-computed kernels, state restoration, quick-space models."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

import snn_nas
from snn_nas.errors import SnnNasError
from snn_nas.neurons import LIF
from snn_nas.zero_cost import (
    CandidateScore,
    ZeroCostError,
    logdet_score,
    sahd,
    sahd_kernel,
    score_candidates,
    select_candidates,
)

pytestmark = pytest.mark.usefixtures("one_thread")

INF = math.inf


def reference_kernel(calls: list[np.ndarray]) -> np.ndarray:
    """The SNASNet formula written out pair by pair: calls is a list of binary [B, N] codes."""
    batch = calls[0].shape[0]
    kernel = np.zeros((batch, batch))
    for codes in calls:
        x = np.asarray(codes, dtype=np.float64)
        n_neurons = x.shape[1]
        rate = x.sum(1) / n_neurons
        for i in range(batch):
            for j in range(batch):
                d = np.sum(x[i] * (1 - x[j]) + (1 - x[i]) * x[j])
                n = rate[i] * (1 - rate[j]) + (1 - rate[i]) * rate[j]
                kernel[i, j] += n_neurons - 0.5 / (n + 1e-3) * d
    return kernel


class CodeNet(nn.Module):
    """[B, 1, 1, N] images of 0/1 -> LIF(tau=1, v_threshold=1) on 2 * image at every step.

    With tau = 1 the membrane is the input (``H[t] = X[t]``), so the spikes are the images
    themselves: a neuron fires exactly where the image is 1. ``second`` (optional, [B, M] codes) feeds
    a second LIF of another width. A BatchNorm sits in front and is scaled to 0 so that it passes the
    input through unchanged (``weight`` 0, ``bias`` 0, added as a residual) while still having
    running statistics to restore.
    """

    def __init__(self, time_steps: int = 1, second: torch.Tensor | None = None) -> None:
        super().__init__()
        self.time_steps = time_steps
        self.bn = nn.BatchNorm1d(1)
        nn.init.zeros_(self.bn.weight)
        self.lif = LIF(tau=1.0, v_threshold=1.0)
        self.second = second
        self.lif2 = LIF(tau=1.0, v_threshold=1.0) if second is not None else None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.flatten(1)  # [B, N]
        x = x + self.bn(x.unsqueeze(1)).squeeze(1)  # BN runs (updating its stats in train mode), adds 0
        currents = 2.0 * x.unsqueeze(0).expand(self.time_steps, *x.shape)
        out = self.lif(currents).mean(0)
        if self.lif2 is not None:
            self.lif2(2.0 * self.second.unsqueeze(0).expand(self.time_steps, *self.second.shape))
        return out


# three images, four neurons: firing rates 0.5, 0.25, 0.75
CODES = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0]])


def test_sahd_kernel_hand_computed():
    # d01 = 1, d02 = 1, d12 = 2; n01 = n02 = 0.5 (r0 = 0.5), n12 = 0.25 * 0.25 + 0.75 * 0.75 = 0.625
    k01 = 4 - 0.5 / 0.501 * 1
    k12 = 4 - 0.5 / 0.626 * 2
    expected = np.array([[4, k01, k01], [k01, 4, k12], [k01, k12, 4]])
    kernel = sahd_kernel(CODES.unsqueeze(0))
    assert kernel.dtype == torch.float64
    np.testing.assert_allclose(kernel.numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(kernel.numpy(), reference_kernel([CODES.numpy()]), rtol=1e-12)
    # bool codes and two calls: the sum over calls
    np.testing.assert_allclose(sahd_kernel(torch.stack([CODES, CODES]) > 0).numpy(), 2 * expected, rtol=1e-12)


def test_sahd_of_a_model_with_known_spikes():
    images = CODES.reshape(3, 1, 1, 4)
    expected = float(np.linalg.slogdet(reference_kernel([CODES.numpy()]))[1])
    assert sahd(CodeNet(time_steps=1), images) == pytest.approx(expected, rel=1e-12)
    # T = 2 steps of the same codes: K doubles, L = 2 -> the same score (the division by L)
    assert sahd(CodeNet(time_steps=2), images) == pytest.approx(expected, rel=1e-12)


def test_sahd_sums_calls_of_different_widths():
    gen = torch.Generator().manual_seed(3)
    first = (torch.rand(5, 8, generator=gen) < 0.4).float()
    second = (torch.rand(5, 6, generator=gen) < 0.6).float()
    model = CodeNet(time_steps=2, second=second)
    calls = [first.numpy()] * 2 + [second.numpy()] * 2  # 2 LIF modules x 2 steps: L = 4
    sign, logabs = np.linalg.slogdet(reference_kernel(calls) / 4)
    assert sign > 0
    assert sahd(model, first.reshape(5, 1, 1, 8)) == pytest.approx(float(logabs), rel=1e-12)


def test_silent_network_scores_minus_infinity():
    # no spikes at all: every row of K is N -> det K = 0
    assert sahd(CodeNet(), torch.zeros(4, 1, 1, 6)) == -INF
    assert logdet_score(torch.full((3, 3), 5.0, dtype=torch.float64), 1) == -INF
    assert logdet_score(torch.tensor([[1.0, 2.0], [2.0, 1.0]], dtype=torch.float64), 1) == -INF  # det < 0


def test_sahd_restores_batchnorm_flags_and_hooks():
    model = CodeNet().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sahd(model, CODES.reshape(3, 1, 1, 4))
    assert not model.training and not model.bn.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model.lif._forward_hooks

    class Broken(CodeNet):
        def forward(self, images: torch.Tensor) -> torch.Tensor:
            super().forward(images)
            raise RuntimeError("boom")

    broken = Broken().train()
    with pytest.raises(RuntimeError, match="boom"):
        sahd(broken, CODES.reshape(3, 1, 1, 4))
    assert broken.training and broken.bn.training and broken.lif.training
    assert int(broken.bn.num_batches_tracked) == 0
    assert not broken.lif._forward_hooks


@pytest.fixture(scope="module")
def quick():
    space = snn_nas.load_space("quick")
    return [space.decode(space.sample(seed)) for seed in (0, 1)]


@pytest.fixture(scope="module")
def images():
    return torch.randn(16, 1, 32, 32, generator=torch.Generator().manual_seed(0))


def test_sahd_is_deterministic_and_leaves_the_model_as_it_was(quick, images):
    model = snn_nas.build_model(quick[0], num_classes=10, image_size=32, in_chans=1, seed=0)
    model.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [m.training for m in model.modules()]
    first = sahd(model, images)
    assert math.isfinite(first)
    assert sahd(model, images) == first
    assert [m.training for m in model.modules()] == flags
    after = model.state_dict()
    assert state.keys() == after.keys()
    assert all(torch.equal(state[k], after[k]) for k in state)
    model.eval()
    assert sahd(model, images) == first  # train/eval flag of the caller does not matter
    assert not model.training


def test_sahd_tells_architectures_apart(quick, images):
    scores = [sahd(snn_nas.build_model(g, num_classes=10, image_size=32, in_chans=1, seed=0), images) for g in quick]
    assert all(math.isfinite(s) for s in scores)
    assert scores[0] != pytest.approx(scores[1], rel=1e-3)


def test_sahd_repeats_average_equal_parts(quick, images):
    model = snn_nas.build_model(quick[0], num_classes=10, image_size=32, in_chans=1, seed=0)
    halves = [sahd(model, part) for part in images.split(8)]
    assert sahd(model, images, repeats=2) == pytest.approx(sum(halves) / 2, rel=1e-12)
    with pytest.raises(ZeroCostError, match="repeats"):
        sahd(model, images, repeats=3)
    with pytest.raises(ZeroCostError, match="repeats"):
        sahd(model, images, repeats=0)


def test_sahd_refuses_non_spiking_models_and_single_images(quick):
    micro = snn_nas.build_model(snn_nas.get_preset("snn_mlp_micro"), num_classes=10, image_size=32, in_chans=1)
    with pytest.raises(ZeroCostError, match=r"no spiking neurons \(snn_nas.neurons.LIF\); SAHD scores spiking"):
        sahd(micro, torch.zeros(4, 1, 32, 32))
    model = snn_nas.build_model(quick[0], num_classes=10, image_size=32, in_chans=1, seed=0)
    with pytest.raises(ZeroCostError, match="B >= 2"):
        sahd(model, torch.zeros(1, 1, 32, 32))
    with pytest.raises(ZeroCostError, match="images"):
        sahd(model, torch.zeros(32, 32))
    assert issubclass(ZeroCostError, SnnNasError) and issubclass(ZeroCostError, ValueError)


# ---------------------------------------------------------------- select_candidates
def test_select_candidates_dominated_points_come_later():
    # 1 = (2, 5) dominates 0 = (1, 10), which dominates 2 = (0.5, 20): ranks 1, 0, 2
    assert select_candidates([1.0, 2.0, 0.5], [10, 5, 20], 3) == [1, 0, 2]
    assert select_candidates([1.0, 2.0, 0.5], [10, 5, 20], 1) == [1]
    assert select_candidates([1.0, 2.0, 0.5], [10, 5, 20], 0) == []


def test_select_candidates_orders_a_rank_by_score_then_index():
    # all four on the front (the duplicates 2, 3 share it): by score descending, ties by index
    assert select_candidates([3.0, 1.0, 2.0, 2.0], [30, 10, 20, 20], 4) == [0, 2, 3, 1]
    # front {0 = (5, 1), 3 = (6, 10)}; then 1 = (4, 2); then 2 = (3, 3)
    assert select_candidates([5.0, 4.0, 3.0, 6.0], [1, 2, 3, 10], 4) == [3, 0, 1, 2]
    assert select_candidates(np.array([5.0, 4.0, 3.0, 6.0]), np.array([1, 2, 3, 10]), 2) == [3, 0]


def test_select_candidates_puts_non_finite_last():
    # finite: 1 = (1, 5) dominates 3 = (0.5, 10); then the -inf scores by cost: 2 (0.5), 0 (1)
    scores, costs = [-INF, 1.0, -INF, 0.5], [1.0, 5.0, 0.5, 10.0]
    assert select_candidates(scores, costs, 10) == [1, 3, 2, 0]
    assert select_candidates(scores, costs, 3) == [1, 3, 2]
    # a failed build (-inf, inf) and a NaN score after every finite candidate
    assert select_candidates([-INF, 1.0, math.nan], [INF, 2.0, 1.0], 3) == [1, 2, 0]
    assert select_candidates([-INF, -INF], [INF, INF], 5) == [0, 1]
    assert select_candidates([], [], 2) == []


def test_select_candidates_validates():
    with pytest.raises(ZeroCostError, match="keep"):
        select_candidates([1.0], [1.0], -1)
    with pytest.raises(ZeroCostError, match="keep"):
        select_candidates([1.0], [1.0], True)
    with pytest.raises(ZeroCostError, match="one cost per score"):
        select_candidates([1.0, 2.0], [1.0], 1)


# ---------------------------------------------------------------- score_candidates
def test_score_candidates(quick, images):
    broken = dataclasses.replace(quick[0], patch_size=64)  # larger than the 32 px images: fails to build
    rows = score_candidates([*quick, broken], images[:8], num_classes=10, image_size=32, in_chans=1, seed=0)
    assert [r.key for r in rows] == [g.key() for g in (*quick, broken)]
    for row in rows[:2]:
        assert isinstance(row, CandidateScore)
        assert math.isfinite(row.sahd) and math.isfinite(row.sops) and row.sops >= 0
        assert row.params > 0 and row.seconds > 0 and row.error is None
    model = snn_nas.build_model(quick[0], num_classes=10, image_size=32, in_chans=1, seed=0)
    assert rows[0].sahd == sahd(model, images[:8])
    assert rows[2].sahd == -INF and rows[2].sops == INF and "patch_size" in rows[2].error
    assert rows[2].to_dict()["key"] == broken.key()
    assert select_candidates([r.sahd for r in rows], [r.sops for r in rows], 3)[-1] == 2
    with pytest.raises(ZeroCostError, match=r"genotypes\[0\]"):
        score_candidates(["not a genotype"], images, num_classes=10, image_size=32, in_chans=1)
