"""Tests of the patch-axis group LIF (SNN-MLP): hand-computed cases, an independent reference
implementation on plain autograd, gradcheck, and the module's parameters."""

from __future__ import annotations

import math

import pytest
import torch

from snn_nas.errors import SnnNasError
from snn_nas.group_lif import GroupLIF, GroupLIFError, group_lif

ROW = [0.6, 0.8, 0.3, 2.0, 5.0, -1.0]  # one row of 6 positions
WEIGHTS = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]  # loss = sum(WEIGHTS * out): grad_out = WEIGHTS


def _run_row(group: int, scan: str, output: str = "real", tau: float = 0.5, v_th: float = 1.0):
    x = torch.tensor(ROW, dtype=torch.float64).view(1, 1, 1, 6).requires_grad_()
    tau_t = torch.tensor([tau], dtype=torch.float64, requires_grad=True)
    v_t = torch.tensor([v_th], dtype=torch.float64, requires_grad=True)
    out = group_lif(x, "w", group, scan, output, tau_t, v_t)
    (out * torch.tensor(WEIGHTS, dtype=torch.float64).view(1, 1, 1, 6)).sum().backward()
    return out.flatten().tolist(), x.grad.flatten().tolist(), tau_t.grad.item(), v_t.grad.item()


def test_hand_forward_scan_with_trailing_positions():
    # s=4, tau=0.5, v_th=1: u = [0.6, 0.5*0.6+0.8=1.1 (fires), 0+0.3, 0.5*0.3+2.0=2.15 (fires)];
    # positions 4, 5 do not fill a group and pass through.
    out, gx, gtau, gv = _run_row(4, "forward")
    assert out == pytest.approx([1.0, 1.1, 1.0, 2.15, 5.0, -1.0])
    # a_j = g_j f_j + tau (1 - f_j) a_{j+1}: a3 = 4, a2 = 0.5*4, a1 = 2, a0 = 0.5*2
    assert gx == pytest.approx([1.0, 2.0, 2.0, 4.0, 5.0, 6.0])
    # d/dtau: out1 = tau*0.6 + 0.8 -> 2*0.6; out3 = tau*0.3 + 2 -> 4*0.3
    assert gtau == pytest.approx(2.4)
    # v_th: positions 0 and 2 do not fire (weights 1 + 3); trailing positions give nothing
    assert gv == pytest.approx(4.0)


def test_hand_backward_scan():
    # visits positions 3, 2, 1, 0: u3 = 2 (fires), u2 = 0.3, u1 = 0.15+0.8 = 0.95, u0 = 0.475+0.6
    out, gx, gtau, gv = _run_row(4, "backward")
    assert out == pytest.approx([1.075, 1.0, 1.0, 2.0, 5.0, -1.0])
    assert gx == pytest.approx([1.0, 0.5, 0.25, 4.0, 5.0, 6.0])
    # out0 = 0.3 tau^2 + 0.8 tau + 0.6 -> d/dtau = 0.6*0.5 + 0.8
    assert gtau == pytest.approx(1.1)
    assert gv == pytest.approx(2.0 + 3.0)


def test_hand_whole_axis():
    # group 0: one neuron over all 6 positions; u4 = 5 fires, u5 = 0 + (-1) stays below
    out, gx, gtau, gv = _run_row(0, "forward")
    assert out == pytest.approx([1.0, 1.1, 1.0, 2.15, 5.0, 1.0])
    assert gx == pytest.approx([1.0, 2.0, 2.0, 4.0, 5.0, 0.0])
    assert gtau == pytest.approx(2.4)
    assert gv == pytest.approx(1.0 + 3.0 + 6.0)


def test_both_scans_is_mean_of_forward_and_backward():
    out, gx, gtau, gv = _run_row(4, "both")
    assert out == pytest.approx([(1.0 + 1.075) / 2, (1.1 + 1.0) / 2, 1.0, (2.15 + 2.0) / 2, 5.0, -1.0])
    assert gx == pytest.approx([1.0, 1.25, 1.125, 4.0, 5.0, 6.0])
    assert gtau == pytest.approx((2.4 + 1.1) / 2)
    assert gv == pytest.approx((4.0 + 5.0) / 2)


def _sg(z: float) -> float:
    sig = 1.0 / (1.0 + math.exp(-4.0 * z))
    return 4.0 * sig * (1.0 - sig)


def test_hand_spike_output_and_surrogate_gradients():
    x = torch.tensor([0.6, 0.8], dtype=torch.float64).view(1, 1, 1, 2).requires_grad_()
    tau = torch.tensor([0.5], dtype=torch.float64, requires_grad=True)
    v_th = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    out = group_lif(x, "w", 2, "forward", "spike", tau, v_th)
    out.sum().backward()
    # u0 = 0.6 (silent), u1 = 0.3 + 0.8 = 1.1 (fires)
    assert out.flatten().tolist() == [0.0, 1.0]
    a1 = _sg(0.1)
    a0 = _sg(-0.4) + 0.5 * a1
    assert x.grad.flatten().tolist() == pytest.approx([a0, a1])
    assert tau.grad.item() == pytest.approx(a1 * 0.6)
    assert v_th.grad.item() == pytest.approx(-(_sg(-0.4) + _sg(0.1)))


# ---------------------------------------------------------------------------------------------
# An independent reference on plain autograd: one Python step per position, f detached.


def _spike(z: torch.Tensor) -> torch.Tensor:
    sig = torch.sigmoid(4.0 * z)
    return (z > 0).to(z.dtype) + sig - sig.detach()


def _reference(x, axis, group, scan, output, tau, v_th):
    if axis == "h":
        return _reference(x.transpose(-1, -2), "w", group, scan, output, tau, v_th).transpose(-1, -2)
    if scan == "both":
        fwd = _reference(x, axis, group, "forward", output, tau, v_th)
        return (fwd + _reference(x, axis, group, "backward", output, tau, v_th)) / 2
    length = x.shape[-1]
    steps = group or length
    cols = list(x.unbind(-1))
    out = list(cols)
    for start in range(0, length - steps + 1, steps):
        positions = list(range(start, start + steps))
        if scan == "backward":
            positions.reverse()
        m = torch.zeros_like(cols[0])
        for p in positions:
            u = tau * m + cols[p]
            f = (u > v_th).detach().to(u.dtype)
            out[p] = f * u + (1 - f) * v_th if output == "real" else _spike(u - v_th)
            m = (1 - f) * u
    return torch.stack(out, -1)


CASES = [
    ("w", 4, "forward", "real", (2, 3, 5, 7)),
    ("h", 4, "forward", "real", (2, 3, 7, 5)),
    ("w", 2, "backward", "real", (1, 2, 3, 5)),
    ("h", 3, "both", "real", (2, 2, 8, 3)),
    ("w", 0, "both", "real", (1, 3, 2, 6)),
    ("h", 0, "backward", "spike", (2, 2, 5, 3)),
    ("w", 4, "both", "spike", (2, 2, 3, 9)),
    ("h", 2, "forward", "spike", (1, 2, 6, 4)),
]


@pytest.mark.parametrize(("axis", "group", "scan", "output", "shape"), CASES)
def test_matches_reference_values_and_gradients(axis, group, scan, output, shape):
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(shape, generator=gen, dtype=torch.float64)
    grad_out = torch.randn(shape, generator=gen, dtype=torch.float64)
    results = []
    for fn in (group_lif, _reference):
        xx = x.clone().requires_grad_()
        tau = torch.tensor([0.3], dtype=torch.float64, requires_grad=True)
        v_th = torch.tensor([0.2], dtype=torch.float64, requires_grad=True)
        out = fn(xx, axis, group, scan, output, tau, v_th)
        (out * grad_out).sum().backward()
        results.append((out.detach(), xx.grad, tau.grad, v_th.grad))
    for got, want in zip(*results, strict=True):
        torch.testing.assert_close(got, want)


def test_h_axis_is_w_axis_on_the_transpose():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 4, 6, 5, generator=gen)
    grads = []
    outs = []
    for axis, inp in (("h", x), ("w", x.transpose(-1, -2).contiguous())):
        xx = inp.clone().requires_grad_()
        tau = torch.tensor([0.25], requires_grad=True)
        out = group_lif(xx, axis, 4, "forward", "real", tau, 0.1)
        out.square().sum().backward()
        outs.append(out if axis == "h" else out.transpose(-1, -2))
        grads.append((xx.grad if axis == "h" else xx.grad.transpose(-1, -2), tau.grad))
    torch.testing.assert_close(outs[0], outs[1])
    torch.testing.assert_close(grads[0][0], grads[1][0])
    torch.testing.assert_close(grads[0][1], grads[1][1])


@pytest.mark.parametrize(("axis", "group", "scan"), [("w", 4, "forward"), ("h", 0, "both"), ("h", 3, "backward")])
def test_gradcheck_real_output(axis, group, scan):
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(1, 2, 5, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    tau = torch.tensor([0.4], dtype=torch.float64, requires_grad=True)
    v_th = torch.tensor([0.15], dtype=torch.float64, requires_grad=True)
    # the function is piecewise smooth; with this seed no membrane lies within eps of v_th
    assert torch.autograd.gradcheck(lambda a, b, c: group_lif(a, axis, group, scan, "real", b, c), (x, tau, v_th))


def test_spike_output_is_binary_and_shapes_are_kept():
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(3, 2, 4, 8, 8, generator=gen)  # [T, B, C, H, W] works too
    for axis in ("h", "w"):
        out = group_lif(x, axis, 4, "forward", "spike", 0.25, 0.1)
        assert out.shape == x.shape and out.dtype == x.dtype
        assert set(out.unique().tolist()) == {0.0, 1.0}


def test_group_longer_than_axis_passes_everything_through():
    x = torch.randn(1, 2, 3, 3, requires_grad=True)
    out = group_lif(x, "w", 4, "forward", "real", 0.25, 0.1)
    out.sum().backward()
    assert torch.equal(out, x)
    assert torch.equal(x.grad, torch.ones_like(x))


def test_module_parameters_match_published_shape_and_learn():
    mod = GroupLIF("h", group=4, scan="both", output="real")
    assert [(n, tuple(p.shape)) for n, p in mod.named_parameters()] == [("tau", (1,)), ("v_th", (1,))]
    assert mod.tau.item() == pytest.approx(0.25) and mod.v_th.item() == pytest.approx(0.1)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    out = mod(x)
    assert out.shape == x.shape
    out.sum().backward()
    assert mod.tau.grad is not None and mod.tau.grad.shape == (1,)
    assert mod.v_th.grad is not None and mod.v_th.grad.item() != 0.0
    assert "axis=h" in repr(mod)


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"axis": "x"}, "axis"),
        ({"axis": "h", "group": 1}, "group"),
        ({"axis": "h", "group": -2}, "group"),
        ({"axis": "h", "scan": "sideways"}, "scan"),
        ({"axis": "h", "output": "binary"}, "output"),
    ],
)
def test_bad_arguments_raise_user_errors(kwargs, word):
    with pytest.raises(GroupLIFError, match=word) as info:
        GroupLIF(**kwargs)
    assert isinstance(info.value, SnnNasError) and isinstance(info.value, ValueError)
