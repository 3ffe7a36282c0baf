"""Pure counting rules for synaptic operations: SOPs on spikes, dense MACs, energy.

A synaptic operation multiplies weights with activations: a convolution, a linear map, a
matrix product. Counting conventions (per call, over the whole batch the call sees):

* **dense MACs**: every (input, weight) multiply-accumulate the operation performs, i.e. for a
  convolution ``output elements x (C_in / groups) x kernel elements`` and for a product
  ``[M, K] @ [K, N]``: ``M x K x N``. Bias additions are not counted.
* **SOPs** (synaptic accumulates) when the activation is binary spikes: the number of
  (spike, weight) pairs the operation touches. For a product this is
  ``nnz(activation) x fan-out`` (each spike meets a full row or column of weights); for a
  convolution it is counted exactly with a convolution of the spike indicator by a kernel of
  ones (same stride, padding, dilation and groups), so a spike at a border, whose receptive
  fields are cut by the padding, triggers fewer accumulates than one in the middle.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def is_binary(x: torch.Tensor) -> bool:
    """Whether every value of ``x`` (any shape) is 0 or 1: a spike tensor. An empty tensor is binary."""
    if x.dtype == torch.bool:
        return True
    if x.is_complex() or x.is_meta:
        return False
    return bool(((x == 0) | (x == 1)).all())


def count_nonzero(x: torch.Tensor) -> int:
    """Number of non-zero elements of ``x`` (any shape)."""
    return int(torch.count_nonzero(x))


def matmul_macs(m: int, k: int, n: int, batch: int = 1) -> int:
    """Dense MACs of ``batch`` products ``[M, K] @ [K, N]``: ``batch x M x K x N``."""
    return int(batch) * int(m) * int(k) * int(n)


def matmul_sops(spikes: int, fan_out: int) -> int:
    """SOPs of a product whose activation has ``spikes`` non-zeros, each meeting ``fan_out`` weights."""
    return int(spikes) * int(fan_out)


def conv_macs(
    weight_shape: Sequence[int],
    input_shape: Sequence[int],
    output_shape: Sequence[int],
    transposed: bool = False,
) -> int:
    """Dense MACs of one (transposed) convolution call.

    ``weight_shape``: ``[C_out, C_in / groups, *kernel]`` (transposed: ``[C_in, C_out / groups,
    *kernel]``); ``input_shape`` ``[N, C_in, *spatial]``, ``output_shape`` ``[N, C_out, *spatial']``.
    A convolution does ``C_in / groups x kernel`` MACs per output element; a transposed one
    ``C_out / groups x kernel`` per input element.
    """
    per_element = int(weight_shape[1]) * math.prod(int(k) for k in weight_shape[2:])
    elements = math.prod(int(s) for s in (input_shape if transposed else output_shape))
    return per_element * elements


def conv_sops(
    x: torch.Tensor,
    weight_shape: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    groups: int,
    transposed: bool = False,
    output_padding: Sequence[int] = (),
) -> int:
    """Exact number of (spike, weight) pairs a convolution of spikes ``x`` touches.

    ``x``: ``[N, C_in, *spatial]`` (binary; any non-zero counts as a spike). Computed as the sum
    of a convolution of ``x != 0`` by a kernel of ones with the same geometry: for every output
    element the number of spikes in its receptive field, times the output channels per group.
    """
    spikes = (x != 0).to(torch.float32)
    kernel = tuple(int(k) for k in weight_shape[2:])
    dims = len(kernel)
    stride, padding, dilation = (_expand(v, dims) for v in (stride, padding, dilation))
    if not transposed:
        c_in_per_group = int(weight_shape[1])
        ones = torch.ones((groups, c_in_per_group, *kernel), dtype=torch.float32, device=x.device)
        occupancy = torch.ops.aten.convolution.default(
            spikes, ones, None, stride, padding, dilation, False, [0] * dims, groups
        )
        c_out_per_group = int(weight_shape[0]) // groups
        return int(occupancy.sum(dtype=torch.float64).item()) * c_out_per_group
    ones = torch.ones(tuple(int(s) for s in weight_shape), dtype=torch.float32, device=x.device)
    out_pad = _expand(output_padding or 0, dims)
    touched = torch.ops.aten.convolution.default(spikes, ones, None, stride, padding, dilation, True, out_pad, groups)
    return int(touched.sum(dtype=torch.float64).item())


def energy_uj(sops: float, macs: float, energy_per_sop_pj: float, energy_per_mac_pj: float) -> float:
    """Energy in microjoules of ``sops`` accumulates and ``macs`` multiply-accumulates."""
    return (sops * energy_per_sop_pj + macs * energy_per_mac_pj) * 1e-6


def _expand(value: int | Sequence[int], dims: int) -> list[int]:
    if isinstance(value, int):
        return [value] * dims
    value = [int(v) for v in value]
    return value * dims if len(value) == 1 else value


__all__ = [
    "conv_macs",
    "conv_sops",
    "count_nonzero",
    "energy_uj",
    "is_binary",
    "matmul_macs",
    "matmul_sops",
]
