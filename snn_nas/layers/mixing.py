"""Token and channel mixing of the spiking family (Mixer-SNN), on ``[T, B, C, H, W]`` spikes.

Token block: branches (identity, height mixing, width mixing) concatenated on channels, then
Conv1x1 (n_branches * C -> C, no bias) + BN(C). Its output is a current (no LIF inside).
Channel block: Linear(C, rC) + BN over the token index + LIF + Linear(rC, C) + BN over the
token index, on tokens laid out ``[T * B, H * W, C]``; its output is a current.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from snn_nas.genotype import AxisMixer, Neuron
from snn_nas.neurons import lif_from_gene

AXES = ("h", "w")
#: token grids up to this many tokens run the token block's 1x1 fusing conv as a matmul
SMALL_GRID = 16


class AxialMLP(nn.Module):
    """Dense spiking map along one spatial axis, shared over the other axes and the channels.

    The axis (size ``size``) is moved to the channel position, then Conv2d(size, size, 1) with
    bias, BatchNorm2d(size) (features: the axis index), LIF. ``[T, B, C, H, W]`` spikes ->
    ``[T, B, C, H, W]`` spikes.
    """

    def __init__(self, axis: str, size: int, neuron: Neuron) -> None:
        super().__init__()
        if axis not in AXES:
            raise ValueError(f"axis: {axis!r} is not allowed; choose 'h' or 'w'")
        self.axis = axis
        self.dim = 3 if axis == "h" else 4  # position of the axis in [T, B, C, H, W]
        self.proj = nn.Conv2d(size, size, 1)
        self.bn = nn.BatchNorm2d(size)
        self.lif = lif_from_gene(neuron)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The 1x1 conv over the axis is computed as one batched matmul with the conv's own
        # weight and bias (same sums; oneDNN's conv is slow for these tiny channel counts).
        y = x.transpose(2, self.dim)  # [T, B, axis, P, Q]
        steps, size, rest = y.shape[:2], y.shape[2], y.shape[3:]
        y = y.reshape(-1, size, rest.numel())  # [T*B, axis, P*Q]
        batch = y.shape[0]
        weight = self.proj.weight.view(1, size, size).expand(batch, size, size)
        y = torch.baddbmm(self.proj.bias.view(1, size, 1).expand(batch, size, 1), weight, y)
        y = self.bn(y.view(batch, size, *rest)).unflatten(0, steps)
        return self.lif(y).transpose(2, self.dim)


class GroupLIFMixer(nn.Module):
    """Patch-axis group LIF (``snn_nas.group_lif.GroupLIF``) applied to the spikes of every step.

    ``[T, B, C, H, W] -> [T, B, C, H, W]``: spikes when ``output == 'spike'``; with ``'real'``
    the real-valued ``max(u, v_th)`` goes straight into the token block's fusing conv (no extra
    norm: the fusing conv + BN follows).
    """

    def __init__(self, axis: str, mixer: AxisMixer) -> None:
        super().__init__()
        from snn_nas.group_lif import GroupLIF

        self.lif = GroupLIF(axis, mixer.group, mixer.scan, mixer.output)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lif(x.flatten(0, 1)).unflatten(0, x.shape[:2])


class LIFBN(nn.Module):
    """Identity branch ``LIF(BN(x))`` of MLP-S: ``[T, B, C, H, W]`` -> spikes of the same shape."""

    def __init__(self, dim: int, neuron: Neuron) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(dim)
        self.lif = lif_from_gene(neuron)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lif(self.bn(x.flatten(0, 1)).unflatten(0, x.shape[:2]))


def axis_mixer(mixer: AxisMixer, axis: str, side: int, neuron: Neuron) -> nn.Module | None:
    """The branch module of one ``AxisMixer`` gene (``None`` for op ``none``)."""
    if mixer.op == "mlp":
        return AxialMLP(axis, side, neuron)
    if mixer.op == "group_lif":
        return GroupLIFMixer(axis, mixer)
    return None


class TokenBlock(nn.Module):
    """Spiking token mixing: ``cat(identity, h, w)`` (present branches) -> Conv1x1 + BN.

    ``identity`` is ``x`` (the spikes), ``lif_bn`` (``LIF(BN(x))``) or ``none``. ``token_h`` /
    ``token_w`` act along H / W of a ``side x side`` grid. ``[T, B, C, H, W]`` spikes ->
    ``[T, B, C, H, W]`` current.
    """

    def __init__(
        self, dim: int, side: int, identity: str, token_h: AxisMixer, token_w: AxisMixer, neuron: Neuron
    ) -> None:
        super().__init__()
        self.identity = identity
        self.id_branch = LIFBN(dim, neuron) if identity == "lif_bn" else None
        self.mix_h = axis_mixer(token_h, "h", side, neuron)
        self.mix_w = axis_mixer(token_w, "w", side, neuron)
        branches = (identity != "none") + (self.mix_h is not None) + (self.mix_w is not None)
        self.fuse = nn.Conv2d(branches * dim, dim, 1, bias=False)
        self.bn = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = []
        if self.identity == "x":
            parts.append(x)
        elif self.id_branch is not None:
            parts.append(self.id_branch(x))
        if self.mix_h is not None:
            parts.append(self.mix_h(x))
        if self.mix_w is not None:
            parts.append(self.mix_w(x))
        y = torch.cat(parts, dim=2) if len(parts) > 1 else parts[0]
        return self.bn(self._fuse(y.flatten(0, 1))).unflatten(0, x.shape[:2])

    def _fuse(self, y: torch.Tensor) -> torch.Tensor:
        """The 1x1 fusing conv on ``[N, n_branches * C, H, W]``. On grids of at most
        ``SMALL_GRID`` tokens it runs as one matmul over all tokens with the conv's weight (same
        sums; oneDNN's per-image 1x1 conv is slow there); the result is channels-last strided."""
        if y.shape[-2] * y.shape[-1] > SMALL_GRID:
            return self.fuse(y)
        return F.linear(y.permute(0, 2, 3, 1), self.fuse.weight.flatten(1)).permute(0, 3, 1, 2)


class ChannelBlock(nn.Module):
    """Spiking channel mixing on tokens ``[T * B, H * W, C]``.

    Linear(C, hidden) + bias, BatchNorm1d(H * W) (features: the token index), LIF,
    Linear(hidden, C) + bias, BatchNorm1d(H * W). ``[T, B, C, H, W]`` spikes ->
    ``[T, B, C, H, W]`` current (a transposed view of the token layout).
    """

    def __init__(self, dim: int, hidden: int, tokens: int, neuron: Neuron) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.bn1 = nn.BatchNorm1d(tokens)
        self.lif = lif_from_gene(neuron)
        self.fc2 = nn.Linear(hidden, dim)
        self.bn2 = nn.BatchNorm1d(tokens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps, (height, width) = x.shape[:2], x.shape[-2:]
        tokens = x.flatten(3).transpose(2, 3).flatten(0, 1)  # [T*B, H*W, C]
        y = self.bn1(self.fc1(tokens))
        y = self.lif(y.unflatten(0, steps)).flatten(0, 1)
        y = self.bn2(self.fc2(y))  # [T*B, H*W, C]
        return y.transpose(1, 2).unflatten(2, (height, width)).unflatten(0, steps)
