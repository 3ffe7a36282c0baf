"""Patch-axis group LIF of SNN-MLP (Li, Chen, Guo, Zhang, Wang, CVPR 2022).

A LIF neuron run *across patches*: one spatial axis plays the role of time. Along ``axis``
(``"h"``: the height axis, ``"w"``: the width axis) the positions are cut into non-overlapping
contiguous groups of ``group`` positions (``0``: one group spanning the whole axis); trailing
positions that do not fill a group pass through unchanged, as in the published kernel. That
includes an axis shorter than ``group``: no group fits and every position passes through (so
the published SNN-MLP-T, group 4, runs at 32 px, where its last stages are 2 and 1 positions
wide; a search space still rules such degenerate choices out). Inside a group, every
(batch, channel, other-axis position) is an independent neuron whose step ``j`` runs over the
group's positions from a membrane of 0::

    u_j     = tau * m_j + x_j          (m_0 = 0)
    f_j     = u_j > v_th               (strict)
    m_{j+1} = 0 if f_j else u_j        (hard reset; the reset is not differentiated)
    out_j   = u_j if f_j else v_th     (output "real" = max(u_j, v_th), as published)
    out_j   = f_j                      (output "spike", binary 0./1.)

Gradients (exact for the rules above, with ``f`` treated as a constant in the recursion):
``d out/d u = f`` and ``d out/d v_th = 1 - f`` for ``"real"``; for ``"spike"`` the heaviside's
surrogate ``alpha * sig(alpha (u - v_th)) * (1 - sig(...))`` with ``alpha = 4`` (and its
negative w.r.t. ``v_th``); ``d u_{j+1}/d u_j = tau * (1 - f_j)``; ``d u_j/d tau = m_j`` plus the
chain through earlier steps. Trailing pass-through positions have gradient 1 w.r.t. ``x`` and
none w.r.t. ``tau``, ``v_th``.

``scan``: ``"forward"`` runs ``j`` with increasing position, ``"backward"`` with decreasing
position (the positions inside each group are visited in reverse), ``"both"`` is the mean of the
two: ``(forward + backward) / 2`` (trailing positions: ``(x + x) / 2 = x``).

Implementation: a ``torch.autograd.Function`` that views the input as ``[P, G, s, B]`` (P leading
rows, G groups, s steps, B the trailing other-axis positions: W for axis ``h``, 1 for axis
``w``), so the only Python loop is over the ``s`` steps of a group; it saves only the membrane
potentials ``u`` for the backward recurrence.
"""

from __future__ import annotations

import torch
from torch import nn

from snn_nas.errors import SnnNasError

AXES = ("h", "w")
SCANS = ("forward", "backward", "both")
OUTPUTS = ("real", "spike")
SURROGATE_ALPHA = 4.0


class GroupLIFError(SnnNasError, ValueError):
    """Bad arguments to the group LIF; the message names the argument and what is allowed."""


def _check(axis: str, group: int, scan: str, output: str) -> None:
    if axis not in AXES:
        raise GroupLIFError(f"axis: {axis!r} is not allowed; choose 'h' (height) or 'w' (width)")
    if isinstance(group, bool) or not isinstance(group, int) or group < 0 or group == 1:
        raise GroupLIFError(f"group: {group!r} is not allowed; use 0 (whole axis) or an integer >= 2")
    if scan not in SCANS:
        raise GroupLIFError(f"scan: {scan!r} is not allowed; choose one of {list(SCANS)}")
    if output not in OUTPUTS:
        raise GroupLIFError(f"output: {output!r} is not allowed; choose one of {list(OUTPUTS)}")


def _grouped(t: torch.Tensor, dim: int, groups: int, steps: int) -> torch.Tensor:
    """View of the grouped part of contiguous ``t`` (``[..., H, W]``) as ``[P, G, s, B]``."""
    height, width = t.shape[-2], t.shape[-1]
    if dim == -1:
        rows = t.view(-1, width).narrow(1, 0, groups * steps)
        return rows.view(-1, groups, steps, 1)
    planes = t.view(-1, height, width).narrow(1, 0, groups * steps)
    return planes.view(-1, groups, steps, width)


def _surrogate(z: torch.Tensor) -> torch.Tensor:
    """Derivative of the sigmoid surrogate (alpha = 4) at ``z = u - v_th``."""
    sig = torch.sigmoid(SURROGATE_ALPHA * z)
    return SURROGATE_ALPHA * sig * (1.0 - sig)


class _GroupLIFScan(torch.autograd.Function):
    """One scan direction. Inputs: x ``[..., H, W]``, tau and v_th (same shape, 0-d or [1])."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        x: torch.Tensor,
        tau: torch.Tensor,
        v_th: torch.Tensor,
        dim: int,
        group: int,
        reverse: bool,
        spike: bool,
    ) -> torch.Tensor:
        x = x.contiguous()
        length = x.shape[dim]
        steps = group if group > 0 else length
        groups = length // steps
        ctx.dim, ctx.steps, ctx.groups, ctx.reverse, ctx.spike = dim, steps, groups, reverse, spike
        out = x.clone() if groups * steps < length else torch.empty_like(x)
        if groups == 0:
            ctx.save_for_backward(None, tau, v_th)
            return out
        xg = _grouped(x, dim, groups, steps)
        u = torch.empty_like(xg)
        m: torch.Tensor | None = None
        order = range(steps - 1, -1, -1) if reverse else range(steps)
        for j in order:
            u_j = u[:, :, j]
            if m is None:
                u_j.copy_(xg[:, :, j])
            else:
                torch.addcmul(xg[:, :, j], m, tau, out=u_j)
            m = u_j.masked_fill(u_j > v_th, 0.0)
        fired = u > v_th
        og = _grouped(out, dim, groups, steps)
        if spike:
            og.copy_(fired)
        else:
            og.copy_(torch.where(fired, u, v_th))
        ctx.save_for_backward(u, tau, v_th)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: torch.autograd.function.FunctionCtx, grad_out: torch.Tensor) -> tuple:  # type: ignore[override]
        u, tau, v_th = ctx.saved_tensors
        dim, steps, groups, reverse, spike = ctx.dim, ctx.steps, ctx.groups, ctx.reverse, ctx.spike
        grad_out = grad_out.contiguous()
        if u is None:
            zero = torch.zeros_like(tau)
            return grad_out.clone(), zero, zero.clone(), None, None, None, None
        g = _grouped(grad_out, dim, groups, steps)
        fired = u > v_th
        if spike:
            local = g * _surrogate(u - v_th)
            grad_v = -local.sum()
        else:
            local = g * fired
            grad_v = g.sum() - local.sum()
        decay = (~fired) * tau  # d u_{next}/d u_j = tau * (1 - f_j)
        grad_x = grad_out.clone()
        a = _grouped(grad_x, dim, groups, steps)
        order = range(steps) if reverse else range(steps - 1, -1, -1)
        prev: int | None = None
        for j in order:
            if prev is None:
                a[:, :, j].copy_(local[:, :, j])
            else:
                torch.addcmul(local[:, :, j], decay[:, :, j], a[:, :, prev], out=a[:, :, j])
            prev = j
        grad_tau = None
        if ctx.needs_input_grad[1]:
            # m_j: the membrane entering step j (0 at the first step of the scan).
            kept = u.masked_fill(fired, 0.0)
            later, earlier = (slice(None, -1), slice(1, None)) if reverse else (slice(1, None), slice(None, -1))
            grad_tau = (a[:, :, later] * kept[:, :, earlier]).sum().reshape(tau.shape)
        return grad_x, grad_tau, grad_v.reshape(v_th.shape), None, None, None, None


def group_lif(
    x: torch.Tensor,
    axis: str,
    group: int = 4,
    scan: str = "forward",
    output: str = "real",
    tau: torch.Tensor | float = 0.25,
    v_th: torch.Tensor | float = 0.1,
) -> torch.Tensor:
    """Patch-axis group LIF (see the module docstring for the maths).

    x: ``[N, C, H, W]`` (any leading dims ``[..., H, W]`` work: the axis is ``-2`` for ``"h"``,
    ``-1`` for ``"w"``). ``group``: ``s >= 2`` positions per group or ``0`` for the whole axis.
    ``tau``, ``v_th``: floats or tensors with one element (gradients flow to tensors).
    Returns a tensor of the shape and dtype of ``x`` (a float16 / bfloat16 ``x`` is integrated in
    float32 and the result cast back); for ``output="spike"`` the grouped
    positions hold 0./1. (trailing pass-through positions keep their input values). An axis
    shorter than ``group`` is passed through whole: the result equals ``x``.
    """
    _check(axis, group, scan, output)
    if x.dim() < 2:
        raise GroupLIFError(f"x: expected a tensor [..., H, W] with at least 2 dims, got shape {list(x.shape)}")
    dtype = x.dtype
    if dtype in (torch.float16, torch.bfloat16):  # mixed precision: the membrane stays in float32
        x = x.float()
    tau_t = torch.as_tensor(tau, device=x.device).to(x.dtype)
    v_th_t = torch.as_tensor(v_th, device=x.device).to(x.dtype)
    if tau_t.numel() != 1 or v_th_t.numel() != 1:
        raise GroupLIFError("tau and v_th must be scalars (one element each)")
    dim = -2 if axis == "h" else -1
    spike = output == "spike"
    if scan == "both":
        fwd = _GroupLIFScan.apply(x, tau_t, v_th_t, dim, group, False, spike)
        bwd = _GroupLIFScan.apply(x, tau_t, v_th_t, dim, group, True, spike)
        return ((fwd + bwd) * 0.5).to(dtype)
    return _GroupLIFScan.apply(x, tau_t, v_th_t, dim, group, scan == "backward", spike).to(dtype)


class GroupLIF(nn.Module):
    """Patch-axis group LIF with learnable scalar ``tau`` and ``v_th`` (shape ``[1]`` each,
    as in the published SNN-MLP code, so parameter counts match).

    ``forward(x)``: x ``[N, C, H, W]`` (or ``[..., H, W]``) -> same shape.
    """

    def __init__(
        self,
        axis: str,
        group: int = 4,
        scan: str = "forward",
        output: str = "real",
        tau_init: float = 0.25,
        v_th_init: float = 0.1,
    ) -> None:
        super().__init__()
        _check(axis, group, scan, output)
        self.axis = axis
        self.group = group
        self.scan = scan
        self.output = output
        self.tau = nn.Parameter(torch.tensor([float(tau_init)]))
        self.v_th = nn.Parameter(torch.tensor([float(v_th_init)]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: ``[N, C, H, W]``. Returns ``[N, C, H, W]``."""
        return group_lif(x, self.axis, self.group, self.scan, self.output, self.tau, self.v_th)

    def extra_repr(self) -> str:
        group = "whole axis" if self.group == 0 else self.group
        return f"axis={self.axis}, group={group}, scan={self.scan}, output={self.output}"
