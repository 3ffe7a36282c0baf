"""Tests of the multi-step LIF: hand-computed maths, agreement of our kernel with spikingjelly's
``LIFNode`` (spikes and input gradients) for every reset, detach_reset and surrogate, and the
module's settings."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from snn_nas.errors import SnnNasError
from snn_nas.genotype import Neuron
from snn_nas.lif_kernels import (
    SURROGATE_GRADIENTS,
    lif_backward_fusable,
    lif_backward_kernel,
    lif_forward_fusable,
    lif_forward_kernel,
    lif_multistep,
)
from snn_nas.neurons import LIF, SURROGATES, NeuronError, lif_from_gene, spiking_neurons

# Three neurons over T = 3 steps (tau = 2, v_threshold = 1):
#   a: H = 0.75, 0.575, 1.1875           -> spikes 0, 0, 1
#   b: H = 1.2, (2 - 0)/2 = 1.0 (>= 1), 0 -> spikes 1, 1, 0   (hard reset)
#   c: hard: H = 1.2, 0.925, 0.4625      -> 1, 0, 0
#      soft: V = 0.2 after the spike, H = 0.2 + (1.85 - 0.2)/2 = 1.025 -> 1, 1, 0
X_HAND = torch.tensor([[1.5, 2.4, 2.4], [0.4, 2.0, 1.85], [1.8, 0.0, 0.0]])


@pytest.mark.parametrize("backend", ["torch", "spikingjelly"])
def test_hand_computed_spikes(backend):
    hard = LIF(backend=backend)(X_HAND)
    assert hard.tolist() == [[0.0, 1.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    soft = LIF(reset="soft", backend=backend)(X_HAND)
    assert soft[:, 2].tolist() == [1.0, 1.0, 0.0]


def _sg(z: float, alpha: float = 4.0) -> float:
    s = 1.0 / (1.0 + math.exp(-alpha * z))
    return alpha * s * (1.0 - s)


@pytest.mark.parametrize("backend", ["torch", "spikingjelly"])
def test_hand_computed_gradient(backend):
    x = X_HAND[:, :1].clone().double().requires_grad_()
    LIF(backend=backend)(x.float() if backend == "spikingjelly" else x).sum().backward()
    h = [0.75, 0.575, 1.1875]  # neuron a never fires before t = 2, so V[t] = H[t] (1 - S[t]) = H[t]
    g2 = _sg(h[2] - 1) / 2
    g1 = _sg(h[1] - 1) / 2 + 0.5 * g2  # k = 1 - 1/tau = 0.5, dV/dH = 1 - S = 1
    g0 = _sg(h[0] - 1) / 2 + 0.5 * g1
    assert x.grad.flatten().tolist() == pytest.approx([g0, g1, g2], rel=1e-6)


def test_reset_stops_gradient_through_membrane_when_detached():
    # neuron b fires at t = 0: with a detached hard reset nothing flows from t = 1 back to t = 0
    x = X_HAND[:, 1:2].clone().requires_grad_()
    spikes = LIF(backend="torch")(x)
    spikes[1].sum().backward()
    assert x.grad[0].item() == 0.0
    assert x.grad[1].item() == pytest.approx(_sg(0.0) / 2)


COMBOS = list(itertools.product(["hard", "soft"], [True, False], SURROGATES.names()))


@pytest.mark.parametrize(("reset", "detach", "surrogate"), COMBOS)
def test_own_kernel_matches_spikingjelly(reset, detach, surrogate):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(4, 3, 5, 6, generator=gen) * 1.5 + 0.5
    grad_out = torch.randn(x.shape, generator=gen)
    kwargs = dict(tau=2.0, v_threshold=1.0, reset=reset, detach_reset=detach, surrogate=surrogate, alpha=2.5)
    results = []
    for backend in ("torch", "spikingjelly"):
        xx = x.clone().requires_grad_()
        out = LIF(backend=backend, **kwargs)(xx)
        (out * grad_out).sum().backward()
        results.append((out, xx.grad))
    (own, own_grad), (sj, sj_grad) = results
    assert torch.equal(own, sj)
    assert 0.05 < own.mean().item() < 0.95  # the case exercises firing and silence
    torch.testing.assert_close(own_grad, sj_grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("tau", [1.5, 3.0])
def test_own_kernel_matches_spikingjelly_other_tau_and_threshold(tau):
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(6, 2, 40, generator=gen)
    outs = []
    for backend in ("torch", "spikingjelly"):
        xx = x.clone().requires_grad_()
        out = LIF(tau=tau, v_threshold=0.4, backend=backend)(xx)
        out.sum().backward()
        outs.append((out, xx.grad))
    assert torch.equal(outs[0][0], outs[1][0])
    torch.testing.assert_close(outs[0][1], outs[1][1])


@pytest.mark.parametrize(("reset", "detach", "surrogate"), COMBOS)
def test_fusable_kernels_equal_eager_kernels(reset, detach, surrogate):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(3, 4, 7, generator=gen, dtype=torch.float64)
    g = torch.randn(x.shape, generator=gen, dtype=torch.float64)
    hard = reset == "hard"
    s1, h1 = lif_forward_kernel(x, 2.0, 0.5, hard)
    s2, h2 = lif_forward_fusable(x, 2.0, 0.5, hard)
    assert torch.equal(s1, s2) and torch.equal(h1, h2)
    args = (2.0, 0.5, hard, detach, surrogate, 3.0)
    torch.testing.assert_close(lif_backward_kernel(g, h1, *args), lif_backward_fusable(g, h1, *args))


def test_gradcheck_of_the_surrogate_recurrence():
    # the backward is the exact derivative of the relaxed network where every heaviside is
    # replaced by its surrogate's antiderivative (sigmoid) and the reset uses the detached spike
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(4, 6, generator=gen, dtype=torch.float64, requires_grad=True)

    def relaxed(inp: torch.Tensor) -> torch.Tensor:
        v = torch.zeros_like(inp[0])
        outs = []
        for t in range(inp.shape[0]):
            h = v + (inp[t] - v) / 2.0
            spike = torch.sigmoid(4.0 * (h - 1.0))
            hard = (h >= 1.0).to(h.dtype)
            outs.append(spike - spike.detach() + hard)
            v = h * (1 - hard)
        return torch.stack(outs)

    g = torch.randn(x.shape, generator=gen, dtype=torch.float64)
    (lif_multistep(x) * g).sum().backward()
    own = x.grad.clone()
    x.grad = None
    (relaxed(x) * g).sum().backward()
    torch.testing.assert_close(own, x.grad)


def test_tau_one_runs_on_own_kernel_and_is_integrate_and_fire():
    x = torch.tensor([[0.6], [0.6], [0.6]])
    assert LIF(tau=1.0, backend="auto")(x).flatten().tolist() == [0.0, 0.0, 0.0]  # H = X: no leak memory
    with pytest.raises(NeuronError, match="tau"):
        LIF(tau=1.0, backend="spikingjelly")


def test_half_precision_input_keeps_dtype_and_matches_float32():
    gen = torch.Generator().manual_seed(5)
    x = (torch.randn(4, 2, 16, generator=gen) * 2).to(torch.bfloat16)
    xx = x.clone().requires_grad_()
    out = LIF(backend="torch")(xx)
    out.sum().backward()
    assert out.dtype == torch.bfloat16 and xx.grad.dtype == torch.bfloat16
    assert torch.equal(out.float(), LIF(backend="torch")(x.float()))


def test_stateless_between_calls_and_single_step():
    lif = LIF()
    x = torch.rand(5, 3, 4) * 2
    assert torch.equal(lif(x), lif(x))
    one = torch.tensor([[0.5, 2.0, 3.0]])
    assert lif(one).tolist() == [[0.0, 1.0, 1.0]]  # H = X / 2 from V = 0


def test_non_contiguous_input():
    x = (torch.randn(3, 6, 4) * 2).transpose(1, 2).requires_grad_()
    y = x.detach().contiguous().requires_grad_()
    a, b = LIF(backend="torch")(x), LIF(backend="torch")(y)
    (a * torch.arange(72.0).view(3, 4, 6)).sum().backward()
    (b * torch.arange(72.0).view(3, 4, 6)).sum().backward()
    assert torch.equal(a, b)
    torch.testing.assert_close(x.grad, y.grad)


def test_auto_backend_uses_own_kernel_on_cpu_and_lif_from_gene():
    lif = lif_from_gene(Neuron(tau=3.0, reset="soft", surrogate="atan", alpha=2.0))
    assert lif.backend == "auto" and lif.uses_own_kernel(torch.device("cpu"))
    assert not lif.uses_own_kernel(torch.device("cuda"))
    assert LIF(backend="torch").node is None
    assert (lif.tau, lif.reset, lif.surrogate, lif.alpha) == (3.0, "soft", "atan", 2.0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), lif)
    assert [name for name, _ in spiking_neurons(model)] == ["1"]


def test_surrogate_registries_name_the_same_functions():
    assert SURROGATES.names() == SURROGATE_GRADIENTS.names()


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [({"backend": "cuda"}, "backend"), ({"reset": "zero"}, "reset"), ({"tau": 0.5}, "tau"), ({"surrogate": "x"}, "x")],
)
def test_bad_settings_raise_user_errors(kwargs, word):
    with pytest.raises(SnnNasError, match=word):
        LIF(**kwargs)


@pytest.mark.slow
def test_compiled_kernels_match_eager():
    from snn_nas import lif_kernels

    gen = torch.Generator().manual_seed(6)
    x = torch.randn(4, 8, 33, generator=gen) * 2
    eager = x.clone().requires_grad_()
    ref = lif_multistep(eager)
    ref.sum().backward()
    lif_kernels.use_compile(True)
    try:
        comp = x.clone().requires_grad_()
        out = lif_multistep(comp)
        out.sum().backward()
    finally:
        lif_kernels.use_compile(None)
    assert torch.equal(out, ref)
    torch.testing.assert_close(comp.grad, eager.grad)
