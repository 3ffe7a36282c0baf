"""The performance paths of ``snn_nas.layers.mixing`` compute the same maths as the modules whose
parameters they use: the axial map as a batched matmul equals ``Conv2d(size, size, 1)`` on the
transposed input, and the token block's small-grid fusing matmul equals its 1x1 conv."""

from __future__ import annotations

import pytest
import torch

from snn_nas.genotype import AxisMixer, Neuron
from snn_nas.layers.mixing import SMALL_GRID, AxialMLP, TokenBlock


@pytest.mark.parametrize("axis", ["h", "w"])
@pytest.mark.parametrize("side", [1, 3, 4])
def test_axial_matmul_equals_conv_on_the_transposed_input(axis, side):
    torch.manual_seed(0)
    mod = AxialMLP(axis, side, Neuron()).train()
    x = (torch.rand(2, 3, 5, side, side) > 0.6).float().requires_grad_()
    y = x.detach().clone().requires_grad_()
    out = mod(x)
    ref_in = y.transpose(2, mod.dim)
    ref = mod.bn(mod.proj(ref_in.flatten(0, 1))).unflatten(0, y.shape[:2])
    ref = mod.lif(ref).transpose(2, mod.dim)
    assert torch.equal(out, ref)
    g = torch.randn(out.shape)
    grads = torch.autograd.grad((out * g).sum(), (x, mod.proj.weight, mod.proj.bias))
    grads_ref = torch.autograd.grad((ref * g).sum(), (y, mod.proj.weight, mod.proj.bias))
    for a, b in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("side", [1, 2, 4, 5])
def test_token_block_small_grid_matmul_equals_conv(side):
    torch.manual_seed(1)
    block = TokenBlock(6, side, "x", AxisMixer(), AxisMixer(), Neuron()).train()
    y = torch.randn(4, 18, side, side, requires_grad=True)
    calls = []
    hook = block.fuse.register_forward_hook(lambda *_: calls.append(1))
    fast = block._fuse(y)
    assert len(calls) == (side * side > SMALL_GRID)  # the conv module runs only on large grids
    hook.remove()
    conv = block.fuse(y)
    torch.testing.assert_close(fast, conv, rtol=1e-5, atol=1e-6)
    g = torch.randn(conv.shape)
    ga = torch.autograd.grad((fast * g).sum(), (y, block.fuse.weight))
    gb = torch.autograd.grad((conv * g).sum(), (y, block.fuse.weight))
    for a, b in zip(ga, gb, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
