"""The ``snn_mlp`` block family: SNN-MLP (Li et al., CVPR 2022), a full-precision MLP whose token
mixing is a LIF scan across patches. NCHW throughout; no time dimension inside (``T = 1``;
a ``[T, B, ...]`` input is folded into the batch).

LIF module (``GN`` = GroupNorm(1, C), convs 1x1 with bias unless noted)::

    conv1 -> GN -> GELU -> depthwise conv3x3 -> GN -> GELU
          -> sum over axis branches of (mixer -> conv -> GELU) -> GN -> conv3

An axis branch's mixer is ``GroupLIF`` along H (``token_h``) or W (``token_w``) for op
``group_lif`` (the published model: group 4, forward scan, real output), or for op ``mlp`` a
dense axial map (Conv2d(side, side, 1) with bias after moving the axis to channels, no norm).
Block: ``x = x + drop(LIFModule(GN(x)))``, ``x = x + drop(MLP(GN(x)))``,
MLP = conv C -> rC, GELU, conv rC -> C.
"""

from __future__ import annotations

import torch
from torch import nn

from snn_nas.genotype import AxisMixer, Genotype, Stage
from snn_nas.layers.common import DropPath, MLPModel, drop_path_rates
from snn_nas.layers.encoders import ConvStem, SpaceToDepth


class AxialLinear(nn.Module):
    """Dense real-valued map along one axis: Conv2d(size, size, 1) with bias on the axis moved to
    the channel position. NCHW ``[N, C, H, W] -> [N, C, H, W]``.
    """

    def __init__(self, axis: str, size: int) -> None:
        super().__init__()
        self.dim = 2 if axis == "h" else 3
        self.proj = nn.Conv2d(size, size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x.transpose(1, self.dim)).transpose(1, self.dim)


def _mixer(mixer: AxisMixer, axis: str, side: int) -> nn.Module:
    if mixer.op == "group_lif":
        from snn_nas.group_lif import GroupLIF

        return GroupLIF(axis, mixer.group, mixer.scan, mixer.output)
    return AxialLinear(axis, side)


class AxisBranch(nn.Module):
    """``mixer -> conv1x1 (bias) -> GELU`` along one axis. NCHW in, NCHW out."""

    def __init__(self, mixer: AxisMixer, axis: str, dim: int, side: int) -> None:
        super().__init__()
        self.mixer = _mixer(mixer, axis, side)
        self.conv = nn.Conv2d(dim, dim, 1)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(self.mixer(x)))


class LIFModule(nn.Module):
    """SNN-MLP token mixing (see module docstring). ``[N, C, H, W] -> [N, C, H, W]``."""

    def __init__(self, dim: int, side: int, token_h: AxisMixer, token_w: AxisMixer) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, 1)
        self.norm1 = nn.GroupNorm(1, dim)
        self.dw = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)
        self.norm2 = nn.GroupNorm(1, dim)
        self.act = nn.GELU()
        self.branch_h = AxisBranch(token_h, "h", dim, side) if token_h.mixes else None
        self.branch_w = AxisBranch(token_w, "w", dim, side) if token_w.mixes else None
        self.norm3 = nn.GroupNorm(1, dim)
        self.conv3 = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.norm1(self.conv1(x)))
        x = self.act(self.norm2(self.dw(x)))
        if self.branch_h is not None and self.branch_w is not None:
            x = self.branch_h(x) + self.branch_w(x)
        else:
            x = (self.branch_h or self.branch_w)(x)  # type: ignore[operator]
        return self.conv3(self.norm3(x))


class ConvMLP(nn.Module):
    """Channel MLP: conv1x1 C -> hidden, GELU, conv1x1 hidden -> C (both with bias). NCHW."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SnnMlpBlock(nn.Module):
    """Pre-norm residual block: ``x + drop(LIFModule(GN(x)))`` then ``x + drop(MLP(GN(x)))``. NCHW."""

    def __init__(self, stage: Stage, side: int, mlp_ratio: float, drop_path: float) -> None:
        super().__init__()
        dim = stage.dim
        self.norm1 = nn.GroupNorm(1, dim)
        self.token = LIFModule(dim, side, stage.token_h, stage.token_w)
        self.norm2 = nn.GroupNorm(1, dim)
        self.mlp = ConvMLP(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path, batch_dim=0) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.token(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class SnnMlpStage(nn.Module):
    """Encoder (stem or space-to-depth), then the blocks. NCHW ``[N, C_in, H, W] -> [N, dim, side, side]``."""

    def __init__(
        self, stage: Stage, in_chans: int, side: int, first: bool, patch_size: int, mlp_ratio: float, rates: list[float]
    ) -> None:
        super().__init__()
        self.encoder = ConvStem(in_chans, stage.dim, patch_size) if first else SpaceToDepth(in_chans, stage.dim)
        self.blocks = nn.Sequential(*(SnnMlpBlock(stage, side, mlp_ratio, p) for p in rates))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.encoder(x))


class SNNMLP(MLPModel):
    """A model of the ``snn_mlp`` family built from a genotype (use ``build_model``).

    Head: GroupNorm(1, C) -> global average pool -> Linear. Linear weights start from a
    truncated normal (std 0.02) with zero bias, as published.
    """

    def __init__(self, genotype: Genotype, num_classes: int, image_size: int, in_chans: int) -> None:
        super().__init__(genotype, num_classes, image_size, in_chans)
        sides = genotype.resolutions(image_size)
        rates = drop_path_rates(sum(genotype.depths), genotype.drop_path)
        self.stages = nn.ModuleList()
        chans, start = in_chans, 0
        for i, (stage, side) in enumerate(zip(genotype.stages, sides, strict=True)):
            block_rates = rates[start : start + stage.depth]
            self.stages.append(
                SnnMlpStage(stage, chans, side, i == 0, genotype.patch_size, genotype.mlp_ratio, block_rates)
            )
            chans, start = stage.dim, start + stage.depth
        self.norm = nn.GroupNorm(1, chans)
        self.fc = nn.Linear(chans, num_classes)
        nn.init.trunc_normal_(self.fc.weight, std=0.02)
        nn.init.zeros_(self.fc.bias)

    def _forward_sequence(self, x: torch.Tensor) -> torch.Tensor:
        y = x.flatten(0, 1)
        for stage in self.stages:
            y = stage(y)
        y = self.norm(y).mean(dim=(2, 3))
        return self.fc(y).unflatten(0, x.shape[:2])
