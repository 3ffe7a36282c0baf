"""Own multi-step LIF kernel (the ``"torch"`` backend of ``snn_nas.neurons.LIF``).

Same maths as spikingjelly's ``LIFNode(decay_input=True, v_reset=0 | None)``::

    H[t] = V[t-1] + (X[t] - V[t-1]) / tau           (V[-1] = 0)
    S[t] = H[t] >= v_threshold
    V[t] = H[t] * (1 - S[t])                        hard reset
    V[t] = H[t] - S[t] * v_threshold                soft reset

Backward, with ``sg[t] = surrogate'(H[t] - v_threshold)`` and ``k = 1 - 1/tau``::

    dV[t]/dH[t] = 1 - S[t] (+ (0 - H[t]) sg[t] unless detach_reset)     hard
    dV[t]/dH[t] = 1 (- v_threshold sg[t] unless detach_reset)           soft
    gX[T-1] = gS[T-1] sg[T-1] / tau
    gX[t]   = gS[t] sg[t] / tau + k dV[t]/dH[t] gX[t+1]

``lif_multistep`` wraps both in one ``torch.autograd.Function``: the forward runs without an
autograd graph and saves only ``H`` (``[T, ...]``); the backward computes the surrogate for all
steps at once and runs the ``T``-step recurrence above. The kernels are plain functions of
tensors and floats, written with ``out=`` and in-place ops so that they make few passes over
memory and few allocations when run eagerly (the default). ``use_compile(True)`` (or
``SNN_NAS_LIF_COMPILE=1``) runs functional twins of them (``*_fusable``) under
``torch.compile`` instead (the elementwise work of all steps fuses into a few loops), falling
back to eager where compiling fails.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable

import torch

from snn_nas.registry import Registry

SURROGATE_GRADIENTS: Registry[Callable[[torch.Tensor, float], torch.Tensor]] = Registry("surrogate gradient")


# Surrogate derivatives ``sg(z, alpha)`` at ``z = H - v_threshold``. They may overwrite ``z``
# (callers pass a temporary), which saves allocations and memory passes.


@SURROGATE_GRADIENTS.register("sigmoid")
def sigmoid_grad(z: torch.Tensor, alpha: float) -> torch.Tensor:
    """``d/dz sigmoid(alpha z) = alpha s (1 - s)`` (spikingjelly ``surrogate.Sigmoid``)."""
    s = z.mul_(alpha).sigmoid_()
    return s.addcmul_(s, s, value=-1.0).mul_(alpha)


@SURROGATE_GRADIENTS.register("atan")
def atan_grad(z: torch.Tensor, alpha: float) -> torch.Tensor:
    """``alpha / 2 / (1 + (pi/2 alpha z)^2)`` (spikingjelly ``surrogate.ATan``)."""
    w = z.mul_(math.pi / 2.0 * alpha)
    return w.mul_(w).add_(1.0).reciprocal_().mul_(alpha / 2.0)


@SURROGATE_GRADIENTS.register("piecewise_quadratic")
def piecewise_quadratic_grad(z: torch.Tensor, alpha: float) -> torch.Tensor:
    """``max(0, alpha - alpha^2 |z|)`` (spikingjelly ``surrogate.PiecewiseQuadratic``)."""
    return z.abs_().mul_(-alpha * alpha).add_(alpha).clamp_min_(0.0)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def lif_forward_kernel(
    x: torch.Tensor, tau: float, v_threshold: float, hard: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """x ``[T, ...]`` currents -> (spikes ``[T, ...]`` in x's dtype, H ``[T, ...]``).

    ``H`` is computed as ``V + (X - V) / tau`` in spikingjelly's operation order and the resets
    are exact (``H - H*S``, ``H - v_threshold*S`` with ``S`` in {0, 1}), so the spikes are
    bit-identical to its ``LIFNode``."""
    compute = _compute_dtype(x.dtype)
    steps = x.shape[0]
    h_seq = torch.empty(x.shape, dtype=compute, device=x.device)
    spikes = torch.empty(x.shape, dtype=compute, device=x.device)
    v = None
    for t in range(steps):
        h = h_seq[t]
        if v is None:
            torch.div(x[t], tau, out=h)
        else:
            torch.sub(x[t], v, out=h)
            h.div_(tau).add_(v)
        torch.ge(h, v_threshold, out=spikes[t])
        if t < steps - 1:
            v = torch.addcmul(h, h, spikes[t], value=-1.0) if hard else torch.sub(h, spikes[t], alpha=v_threshold)
    return spikes.to(x.dtype), h_seq


def lif_backward_kernel(
    grad_spikes: torch.Tensor,
    h_seq: torch.Tensor,
    tau: float,
    v_threshold: float,
    hard: bool,
    detach_reset: bool,
    surrogate: str,
    alpha: float,
) -> torch.Tensor:
    """grad of the spikes ``[T, ...]`` and the saved H ``[T, ...]`` -> grad of x ``[T, ...]``."""
    sg = SURROGATE_GRADIENTS.get(surrogate)(h_seq - v_threshold, alpha)
    keep = 1.0 - 1.0 / tau
    steps = h_seq.shape[0]
    carry = None  # k dV[t]/dH[t] for t < T-1; None: the constant k
    if steps > 1:
        h_prev = h_seq[:-1]
        if hard:
            carry = torch.lt(h_prev, v_threshold, out=torch.empty_like(h_prev))
            if not detach_reset:
                carry.addcmul_(h_prev, sg[:-1], value=-1.0)
            carry.mul_(keep)
        elif not detach_reset:
            carry = sg[:-1].mul(-v_threshold * keep).add_(keep)
    grad_x = sg.mul_(grad_spikes).div_(tau)  # the local terms, in sg's memory
    for t in range(steps - 2, -1, -1):
        if carry is None:
            grad_x[t].add_(grad_x[t + 1], alpha=keep)
        else:
            grad_x[t].addcmul_(carry[t], grad_x[t + 1])
    return grad_x.to(grad_spikes.dtype)


def lif_forward_fusable(
    x: torch.Tensor, tau: float, v_threshold: float, hard: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """``lif_forward_kernel`` written functionally (no ``out=``, no in-place), the form
    ``torch.compile`` fuses best. Same results."""
    compute = _compute_dtype(x.dtype)
    hs = []
    v = None
    for t in range(x.shape[0]):
        xt = x[t].to(compute)
        h = xt / tau if v is None else v + (xt - v) / tau
        fired = h >= v_threshold
        v = torch.where(fired, 0.0, h) if hard else h - fired.to(compute) * v_threshold
        hs.append(h)
    h_seq = torch.stack(hs)
    return (h_seq >= v_threshold).to(x.dtype), h_seq


def lif_backward_fusable(
    grad_spikes: torch.Tensor,
    h_seq: torch.Tensor,
    tau: float,
    v_threshold: float,
    hard: bool,
    detach_reset: bool,
    surrogate: str,
    alpha: float,
) -> torch.Tensor:
    """``lif_backward_kernel`` written functionally, for ``torch.compile``. Same results."""
    sg = SURROGATE_GRADIENTS.get(surrogate)(h_seq - v_threshold, alpha)
    local = grad_spikes.to(h_seq.dtype) * sg / tau
    keep = 1.0 - 1.0 / tau
    if hard:
        carry = (h_seq < v_threshold).to(h_seq.dtype)
        if not detach_reset:
            carry = carry - h_seq * sg
        carry = keep * carry
    else:
        carry = None if detach_reset else keep * (1.0 - v_threshold * sg)
    g = local[-1]
    grads = [g]
    for t in range(h_seq.shape[0] - 2, -1, -1):
        g = local[t] + (keep * g if carry is None else carry[t] * g)
        grads.append(g)
    grads.reverse()
    return torch.stack(grads).to(grad_spikes.dtype)


_KERNELS = {
    "forward": (lif_forward_kernel, lif_forward_fusable),
    "backward": (lif_backward_kernel, lif_backward_fusable),
}


COMPILE_ENV = "SNN_NAS_LIF_COMPILE"
_STATE: dict[str, object] = {}


def use_compile(enabled: bool | None) -> None:
    """Compile the kernels with ``torch.compile`` in this process (``True``), run them eagerly
    (``False``), or follow the environment variable ``SNN_NAS_LIF_COMPILE=1`` (``None``, the
    default: eager unless it is set). Compiling costs ~10 s or more per new (T, settings) the
    first time; measured in a whole ``mlp_spe_t`` train step on a 2-core CPU it did not pay
    (1738 against 1627 ms CPU time eager, ``docs/gpus.md``), so eager stays the default."""
    _STATE["enabled"] = enabled


def compile_enabled() -> bool:
    """Whether the kernels are compiled in this process (see ``use_compile``)."""
    enabled = _STATE.get("enabled")
    if enabled is None:
        return os.environ.get(COMPILE_ENV, "0").strip().lower() in ("1", "true", "yes", "on")
    return bool(enabled)


def _kernel(name: str, device: torch.device) -> tuple[Callable, bool]:
    """The kernel to run: (the compiled fusable form, True) or (the eager form, False)."""
    eager, fusable = _KERNELS[name]
    if device.type not in ("cpu", "cuda") or not compile_enabled():
        return eager, False
    current_mode = getattr(torch.utils._python_dispatch, "_get_current_dispatch_mode", lambda: None)
    if current_mode() is not None:
        return eager, False  # an active dispatch mode (cost probes) sees eager ops
    key = f"{name}:{device.type}"
    compiled = _STATE.get(key)
    if compiled is None:
        compiled = torch.compile(fusable, dynamic=True)
        _STATE[key] = compiled
    return compiled, True  # type: ignore[return-value]


def _run(name: str, device: torch.device, *args: object) -> object:
    kernel, compiled = _kernel(name, device)
    if not compiled:
        return kernel(*args)
    try:
        return kernel(*args)
    except Exception as err:  # compilation unavailable (no compiler, unsupported platform)
        warnings.warn(f"LIF kernel {name!r}: torch.compile failed ({err!r}); running eagerly", stacklevel=3)
        _STATE["enabled"] = False
        return _KERNELS[name][0](*args)


class _LIFMultiStep(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        x: torch.Tensor,
        tau: float,
        v_threshold: float,
        hard: bool,
        detach_reset: bool,
        surrogate: str,
        alpha: float,
    ) -> torch.Tensor:
        spikes, h_seq = _run("forward", x.device, x, tau, v_threshold, hard)
        ctx.save_for_backward(h_seq)
        ctx.params = (tau, v_threshold, hard, detach_reset, surrogate, alpha)
        return spikes

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: torch.autograd.function.FunctionCtx, grad_spikes: torch.Tensor) -> tuple:  # type: ignore[override]
        (h_seq,) = ctx.saved_tensors
        grad_x = _run("backward", h_seq.device, grad_spikes, h_seq, *ctx.params)
        return grad_x, None, None, None, None, None, None


def lif_multistep(
    x: torch.Tensor,
    tau: float = 2.0,
    v_threshold: float = 1.0,
    hard: bool = True,
    detach_reset: bool = True,
    surrogate: str = "sigmoid",
    alpha: float = 4.0,
) -> torch.Tensor:
    """Multi-step LIF from a membrane of 0: x ``[T, ...]`` currents -> ``[T, ...]`` spikes
    (x's dtype; half-precision inputs are integrated in float32)."""
    SURROGATE_GRADIENTS.get(surrogate)
    if x.dim() < 1 or x.shape[0] == 0:
        raise ValueError(f"x: expected [T, ...] with T >= 1, got shape {list(x.shape)}")
    return _LIFMultiStep.apply(x, float(tau), float(v_threshold), hard, detach_reset, surrogate, float(alpha))
