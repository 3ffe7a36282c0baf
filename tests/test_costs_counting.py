"""Pure counting rules and the operator probe on hand-computed tiny cases."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from snn_nas.costs import (
    CostError,
    EnergyModel,
    OperatorProbe,
    conv_macs,
    conv_sops,
    energy_uj,
    format_count,
    is_binary,
    matmul_macs,
    matmul_sops,
)


def spike_map(shape: tuple[int, ...], *positions: tuple[int, ...]) -> torch.Tensor:
    x = torch.zeros(shape)
    for p in positions:
        x[p] = 1.0
    return x


def probe_counts(module: nn.Module, *inputs: torch.Tensor) -> OperatorProbe:
    with torch.no_grad(), OperatorProbe(module) as probe:
        module(*inputs)
    return probe


# ---------------------------------------------------------------------------- pure functions
def test_is_binary():
    assert is_binary(torch.tensor([0.0, 1.0, 1.0]))
    assert is_binary(torch.zeros(3, 4))
    assert is_binary(torch.tensor([True, False]))
    assert not is_binary(torch.tensor([0.0, 0.5]))
    assert not is_binary(torch.tensor([0.0, 2.0]))
    assert not is_binary(torch.tensor([-1.0, 1.0]))


def test_matmul_rules():
    assert matmul_macs(3, 5, 7) == 105
    assert matmul_macs(3, 5, 7, batch=2) == 210
    assert matmul_sops(4, 7) == 28


def test_conv_sops_border_versus_middle():
    # 3x3 kernel, stride 1, padding 1 on 5x5: a centre spike reaches 9 outputs, a corner one 4.
    weight_shape = (3, 1, 3, 3)
    centre = spike_map((1, 1, 5, 5), (0, 0, 2, 2))
    corner = spike_map((1, 1, 5, 5), (0, 0, 0, 0))
    assert conv_sops(centre, weight_shape, (1, 1), (1, 1), (1, 1), 1) == 9 * 3
    assert conv_sops(corner, weight_shape, (1, 1), (1, 1), (1, 1), 1) == 4 * 3
    assert conv_macs(weight_shape, (1, 1, 5, 5), (1, 3, 5, 5)) == 25 * 9 * 3


def test_conv_sops_stride_and_padding():
    # 3x3, stride 2, padding 1 on 4x4 -> 2x2 outputs whose fields cover rows/cols {-1,0,1} and {1,2,3}.
    # Spike (0,0) is in 1x1 fields, spike (1,1) in 2x2 fields: 5 (output, spike) pairs x 2 channels.
    x = spike_map((1, 1, 4, 4), (0, 0, 0, 0), (0, 0, 1, 1))
    assert conv_sops(x, (2, 1, 3, 3), (2, 2), (1, 1), (1, 1), 1) == 10
    assert conv_macs((2, 1, 3, 3), x.shape, (1, 2, 2, 2)) == 8 * 9


def test_conv_sops_groups():
    # 4 -> 6 channels in 2 groups: a spike of channel 0 meets group 0's 3 filters only.
    # Centre spike (channel 0) reaches 9 outputs, corner spike (channel 3) 4: (9 + 4) * 3.
    x = spike_map((1, 4, 3, 3), (0, 0, 1, 1), (0, 3, 0, 0))
    assert conv_sops(x, (6, 2, 3, 3), (1, 1), (1, 1), (1, 1), 2) == 39
    assert conv_macs((6, 2, 3, 3), x.shape, (1, 6, 3, 3)) == 9 * 6 * 2 * 9


def test_conv_sops_transposed():
    # ConvTranspose 3x3, stride 2, padding 1: 2x2 -> 3x3; input (0,0) lands on rows/cols {-1, 0, 1}.
    x = spike_map((1, 1, 2, 2), (0, 0, 0, 0))
    assert conv_sops(x, (1, 1, 3, 3), (2, 2), (1, 1), (1, 1), 1, transposed=True, output_padding=(0, 0)) == 4
    assert conv_macs((1, 1, 3, 3), (1, 1, 2, 2), (1, 1, 3, 3), transposed=True) == 4 * 9


def test_energy():
    assert energy_uj(1e6, 1e6, 0.9, 4.6) == pytest.approx(5.5)
    model = EnergyModel()
    assert (model.energy_per_sop_pj, model.energy_per_mac_pj) == (0.9, 4.6)
    assert model.energy_uj(100, 10) == pytest.approx((90 + 46) * 1e-6)
    assert EnergyModel(1, 2).energy_uj(1e6, 0) == pytest.approx(1.0)
    with pytest.raises(CostError, match="energy_per_sop_pj"):
        EnergyModel(-1.0)
    with pytest.raises(CostError, match="energy_per_mac_pj"):
        EnergyModel(0.9, float("nan"))


def test_format_count():
    assert format_count(4363295232) == "4.36 G"
    assert format_count(28335736) == "28.3 M"
    assert format_count(1536) == "1.54 k"
    assert format_count(12) == "12"
    assert format_count(0.5) == "0.5"
    assert format_count(None) == "-"


# ---------------------------------------------------------------------------- probe, hand-computed
def test_probe_conv_module_exact():
    conv = nn.Conv2d(1, 2, 3, stride=2, padding=1, bias=True)
    x = spike_map((1, 1, 4, 4), (0, 0, 0, 0), (0, 0, 1, 1))
    (tally,) = probe_counts(conv, x).layers.values()
    assert (tally.sops, tally.macs, tally.dense_macs) == (10, 0, 72)
    assert tally.input_rate == pytest.approx(2 / 16)
    assert tally.kind == "Conv2d"


def test_probe_grouped_conv_module_exact():
    conv = nn.Conv2d(4, 6, 3, padding=1, groups=2, bias=False)
    x = spike_map((1, 4, 3, 3), (0, 0, 1, 1), (0, 3, 0, 0))
    (tally,) = probe_counts(conv, x).layers.values()
    assert tally.sops == 39


def test_probe_padding_same_and_transposed_modules():
    conv = nn.Conv2d(1, 3, 3, padding="same", bias=False)
    assert probe_counts(conv, spike_map((1, 1, 5, 5), (0, 0, 0, 0))).sops == 12
    deconv = nn.ConvTranspose2d(1, 1, 3, stride=2, padding=1)
    assert probe_counts(deconv, spike_map((1, 1, 2, 2), (0, 0, 0, 0))).sops == 4


def test_probe_linear_sops_and_analog_macs():
    fc = nn.Linear(5, 4)
    spikes = spike_map((2, 1, 5), (0, 0, 1), (0, 0, 3), (1, 0, 4))  # [T=2, B=1, 5], 3 spikes
    probe = probe_counts(fc, spikes)
    assert (probe.sops, probe.macs, probe.dense_macs) == (3 * 4, 0, 2 * 5 * 4)
    analog = probe_counts(fc, torch.full((2, 1, 5), 0.5))
    assert (analog.sops, analog.macs) == (0, 40)


def test_probe_analog_stem():
    stem = nn.Conv2d(3, 8, 4, stride=4, bias=False)
    probe = probe_counts(stem, torch.rand(1, 3, 8, 8) + 0.1)
    assert (probe.sops, probe.macs) == (0, 2 * 2 * 8 * 3 * 16)
    assert next(iter(probe.layers.values())).input_rate is None


def test_probe_zero_spikes_cost_nothing():
    conv = nn.Conv2d(2, 4, 3, padding=1)
    probe = probe_counts(conv, torch.zeros(1, 2, 6, 6))
    assert (probe.sops, probe.macs) == (0, 0)
    assert probe.dense_macs == 36 * 4 * 2 * 9


class _Functional(nn.Module):
    """The same linear map written five ways."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(7, 5))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        w = self.weight
        return [
            F.linear(x, w),
            x @ w.t(),
            torch.einsum("bk,nk->bn", x, w),
            (w @ x.t()).t(),
            torch.matmul(x.unsqueeze(0).expand(2, -1, -1), w.t()),  # batched: counted twice
        ]


def test_probe_catches_functional_matmul_and_einsum():
    x = spike_map((3, 5), (0, 0), (1, 2), (1, 4), (2, 1))  # 4 spikes, fan-out 7
    probe = probe_counts(_Functional(), x)
    (tally,) = probe.layers.values()
    assert tally.calls == 5
    assert tally.sops == 4 * 7 * 6
    assert tally.dense_macs == 3 * 5 * 7 * 6


def test_probe_weight_preprocessing_is_not_synaptic():
    class Folded(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Parameter(torch.randn(5, 5))
            self.b = nn.Parameter(torch.randn(5, 4))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x @ (self.a @ self.b)  # a @ b: weights only; then [2, 5] @ [5, 4]

    probe = probe_counts(Folded(), torch.full((2, 5), 0.3))
    assert (probe.sops, probe.macs) == (0, 2 * 5 * 4)


def test_probe_attributes_to_innermost_module_and_removes_hooks():
    model = nn.Sequential(nn.Linear(4, 3), nn.Sequential(nn.Identity(), nn.Linear(3, 2)))
    x = torch.rand(1, 4) + 0.1
    probe = probe_counts(model, x)
    assert [(t.name, t.kind, t.macs) for t in probe.layers.values()] == [("0", "Linear", 12), ("1.1", "Linear", 6)]
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks
    assert (probe.sops, probe.macs) == (0, 18)


def test_probe_skip_and_dense_mode():
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    with torch.no_grad(), OperatorProbe(model, dense=True, skip=lambda m: m is model[0]) as probe:
        model(torch.zeros(2, 4))  # binary, but dense mode never looks at values
    assert list(probe.layers) == ["1"]
    assert (probe.sops, probe.macs) == (0, 2 * 3 * 2)
