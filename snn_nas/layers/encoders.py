"""Patch encoders: the spiking stem, the patch-encoding DAG cell, and SNN-MLP's stem and
space-to-depth downsampling.

Spiking encoders map ``[T, B, C_in, H, W]`` to a real-valued current ``[T, B, C, H', W']``
(conv + BN per step on the folded ``[T * B, ...]`` view). SNN-MLP encoders are plain NCHW.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from snn_nas.genotype import Cell, Neuron
from snn_nas.neurons import lif_from_gene


def conv_bn(in_chans: int, out_chans: int, kernel: int, stride: int, padding: int) -> nn.Sequential:
    """Conv2d (no bias) followed by BatchNorm2d: the synaptic edge of the spiking family."""
    return nn.Sequential(
        nn.Conv2d(in_chans, out_chans, kernel, stride, padding, bias=False),
        nn.BatchNorm2d(out_chans),
    )


def pad_to_even(x: torch.Tensor) -> torch.Tensor:
    """Zero-pad an NCHW tensor on the right/bottom so that H and W are even (no copy if they are)."""
    pad_h, pad_w = x.shape[-2] % 2, x.shape[-1] % 2
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h))
    return x


class SpikingStem(nn.Module):
    """Stage-1 encoder on the analog image: Conv2d(in, dim, patch, stride=patch, no bias) + BN.

    ``[T, B, in_chans, H, W] -> [T, B, dim, H // patch, W // patch]`` (a current).
    """

    def __init__(self, in_chans: int, dim: int, patch_size: int) -> None:
        super().__init__()
        self.proj = conv_bn(in_chans, dim, patch_size, patch_size, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x.flatten(0, 1)).unflatten(0, x.shape[:2])


class PatchMerge2x2(nn.Module):
    """Conv2d(C_in, C, 2, stride 2, no bias) + BN, zero-padding odd sides on the right/bottom.

    NCHW ``[N, C_in, H, W] -> [N, C, ceil(H/2), ceil(W/2)]``.
    """

    def __init__(self, in_chans: int, out_chans: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chans, out_chans, 2, 2, bias=False)
        self.bn = nn.BatchNorm2d(out_chans)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(pad_to_even(x)))


def input_edge(op: str, in_chans: int, out_chans: int) -> nn.Module:
    """A stride-2 edge from a cell's input to a node (NCHW, output ``ceil(H/2) x ceil(W/2)``)."""
    if op == "conv3x3":
        return conv_bn(in_chans, out_chans, 3, 2, 1)
    if op == "conv1x1":
        return conv_bn(in_chans, out_chans, 1, 2, 0)
    if op == "avgpool_conv1x1":
        return nn.Sequential(nn.AvgPool2d(3, 2, 1, count_include_pad=False), conv_bn(in_chans, out_chans, 1, 1, 0))
    if op == "conv2x2":
        return PatchMerge2x2(in_chans, out_chans)
    raise ValueError(f"input edge {op!r} has no module")


def node_edge(op: str, chans: int) -> nn.Module | None:
    """A stride-1 edge between nodes: ``None`` for ``identity`` (adds the current itself)."""
    if op == "identity":
        return None
    if op == "conv3x3":
        return conv_bn(chans, chans, 3, 1, 1)
    if op == "conv1x1":
        return conv_bn(chans, chans, 1, 1, 0)
    raise ValueError(f"node edge {op!r} has no module")


class DagCell(nn.Module):
    """Patch-encoding DAG of one downsampling step (see ``snn_nas.genotype.Cell``).

    Node ``i`` has ``C / k`` channels and is the sum of ``input_ops[i]`` on the cell input
    (stride 2, conv + BN) and of ``node_ops[i][j]`` for ``j < i``: ``identity`` adds node j's
    BN current, ``conv3x3``/``conv1x1`` (stride 1, + BN) act on ``LIF(node j)``. Each node that
    feeds a later conv edge owns one LIF. The output is the concatenation of the node currents.

    ``[T, B, C_in, H, W]`` spikes -> ``[T, B, C, ceil(H/2), ceil(W/2)]`` current.
    Module names: ``inputs[str(i)]``, ``edges[f"{j}_{i}"]``, ``lifs[str(j)]``.
    """

    def __init__(self, cell: Cell, in_chans: int, out_chans: int, neuron: Neuron) -> None:
        super().__init__()
        self.cell = cell
        self.node_chans = out_chans // cell.nodes
        self.inputs = nn.ModuleDict(
            {str(i): input_edge(op, in_chans, self.node_chans) for i, op in enumerate(cell.input_ops) if op != "none"}
        )
        self.edges = nn.ModuleDict()
        for i, row in enumerate(cell.node_ops):
            for j, op in enumerate(row):
                if op not in ("none", "identity"):
                    self.edges[f"{j}_{i}"] = node_edge(op, self.node_chans)
        self.lifs = nn.ModuleDict({str(j): lif_from_gene(neuron) for j in cell.spiking_nodes()})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = x.shape[:2]
        flat = x.flatten(0, 1)
        currents: list[torch.Tensor] = []
        spikes: dict[int, torch.Tensor] = {}
        for i, row in enumerate(self.cell.node_ops):
            terms = [self.inputs[str(i)](flat)] if str(i) in self.inputs else []
            for j, op in enumerate(row):
                if op == "identity":
                    terms.append(currents[j])
                elif op != "none":
                    terms.append(self.edges[f"{j}_{i}"](spikes[j]))
            node = terms[0]
            for term in terms[1:]:
                node = node + term
            currents.append(node)
            if str(i) in self.lifs:
                spikes[i] = self.lifs[str(i)](node.unflatten(0, steps)).flatten(0, 1)
        return torch.cat(currents, dim=1).unflatten(0, steps)


class ConvStem(nn.Module):
    """SNN-MLP stem: Conv2d(in, C, patch, stride=patch) with bias + GroupNorm(1, C). NCHW."""

    def __init__(self, in_chans: int, dim: int, patch_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, patch_size, patch_size)
        self.norm = nn.GroupNorm(1, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, in, H, W] -> [N, C, H // p, W // p]``."""
        return self.norm(self.proj(x))


class SpaceToDepth(nn.Module):
    """SNN-MLP downsampling: 2x2 space-to-depth, GroupNorm(1, 4C), Conv1x1(4C -> C_next, no bias).

    The four sub-grids are concatenated in the order (0,0), (1,0), (0,1), (1,1) as (row, column)
    offsets. Odd sides are zero-padded on the right/bottom first.
    ``[N, C, H, W] -> [N, C_next, ceil(H/2), ceil(W/2)]``.
    """

    def __init__(self, in_chans: int, out_chans: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(1, 4 * in_chans)
        self.reduction = nn.Conv2d(4 * in_chans, out_chans, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_to_even(x)
        x = torch.cat([x[:, :, 0::2, 0::2], x[:, :, 1::2, 0::2], x[:, :, 0::2, 1::2], x[:, :, 1::2, 1::2]], dim=1)
        return self.reduction(self.norm(x))
