"""The spiking family (Mixer-SNN / MLP-SPE and every searched spiking point): blocks, stages, model.

Layout ``[T, B, C, H, W]`` throughout; every spiking neuron is a ``snn_nas.neurons.LIF``; only
spikes pass between blocks and every residual is a current added before a LIF.

Residual currents of one stage (``skip_source`` x ``skip_paths``; ``r`` the residual current,
``h`` the stage's encoder current, ``token = TokenBlock(x)``, ``Channel`` the channel block)::

    u_tok = token + (r        if paths in {both, token})      x1 = LIF(u_tok)
    u_ch  = Channel(x1) + (r + token if paths in {both, channel})   x = LIF(u_ch)

* ``stage``: ``r = h`` for every block (published);
* ``block``: ``r_0 = h``, ``r_{j+1} = u_ch`` of block ``j``;
* ``bn_spike``: the token path adds ``BN(x)`` instead of ``r``, the channel path adds
  ``BN'(x1)`` instead of ``r + token``, i.e. ``LIF(BN(x) + F(x))`` per sub-block;
* ``none``: no residual.

With ``genotype.drop_path > 0`` the token and channel block outputs are dropped per sample
(stochastic depth, rate rising linearly over all blocks); the presets use 0.
"""

from __future__ import annotations

import torch
from torch import nn

from snn_nas.genotype import Genotype, Neuron, Stage
from snn_nas.layers.common import DropPath, MLPModel, drop_path_rates
from snn_nas.layers.encoders import DagCell, SpikingStem
from snn_nas.layers.mixing import ChannelBlock, TokenBlock
from snn_nas.neurons import lif_from_gene


class SpikingBlock(nn.Module):
    """Token block + channel block with the stage's skip configuration (see module docstring).

    ``forward(x, r)``: ``x`` spikes ``[T, B, C, H, W]``, ``r`` the residual current (same shape)
    or ``None``; returns the new spikes and the residual current for the next block.
    """

    def __init__(self, stage: Stage, side: int, neuron: Neuron, mlp_ratio: float, drop_path: float) -> None:
        super().__init__()
        dim = stage.dim
        self.source = stage.skip_source
        self.token_path = stage.skip_source != "none" and stage.skip_paths in ("both", "token")
        self.channel_path = stage.skip_source != "none" and stage.skip_paths in ("both", "channel")
        self.token = TokenBlock(dim, side, stage.identity, stage.token_h, stage.token_w, neuron)
        self.token_lif = lif_from_gene(neuron)
        self.channel = ChannelBlock(dim, int(dim * mlp_ratio), side * side, neuron)
        self.channel_lif = lif_from_gene(neuron)
        bn_spike = self.source == "bn_spike"
        self.token_shortcut = nn.BatchNorm2d(dim) if bn_spike and self.token_path else None
        self.channel_shortcut = nn.BatchNorm2d(dim) if bn_spike and self.channel_path else None
        self.drop_path = DropPath(drop_path, batch_dim=1) if drop_path > 0 else nn.Identity()

    @staticmethod
    def _bn(bn: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return bn(x.flatten(0, 1)).unflatten(0, x.shape[:2])

    def forward(self, x: torch.Tensor, r: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        token = self.drop_path(self.token(x))
        u_tok = token
        if self.token_shortcut is not None:
            u_tok = token + self._bn(self.token_shortcut, x)
        elif self.token_path and r is not None:
            u_tok = token + r
        x1 = self.token_lif(u_tok)
        u_ch = self.drop_path(self.channel(x1))
        if self.channel_shortcut is not None:
            u_ch = u_ch + self._bn(self.channel_shortcut, x1)
        elif self.channel_path and r is not None:
            u_ch = u_ch + (r + token)
        return self.channel_lif(u_ch), (u_ch if self.source == "block" else r)


class SpikingStage(nn.Module):
    """``h = encoder(x)``, ``x = LIF(h)``, then the blocks. ``[T, B, C_in, H, W]`` -> spikes
    ``[T, B, dim, side, side]``. The first stage's encoder is the stem on the analog image.
    """

    def __init__(
        self,
        stage: Stage,
        in_chans: int,
        side: int,
        neuron: Neuron,
        mlp_ratio: float,
        patch_size: int,
        drop_paths: list[float],
    ) -> None:
        super().__init__()
        self.skip_source = stage.skip_source
        if stage.encoder is None:
            self.encoder: nn.Module = SpikingStem(in_chans, stage.dim, patch_size)
        else:
            self.encoder = DagCell(stage.encoder, in_chans, stage.dim, neuron)
        self.encoder_lif = lif_from_gene(neuron)
        self.blocks = nn.ModuleList(SpikingBlock(stage, side, neuron, mlp_ratio, p) for p in drop_paths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)
        x = self.encoder_lif(h)
        r = h if self.skip_source in ("stage", "block") else None
        for block in self.blocks:
            x, r = block(x, r)
        return x


class SpikingHead(nn.Module):
    """BN(C) on the last spikes, mean over H and W, Linear per step. ``[T, B, C, H, W] -> [T, B, K]``."""

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(dim)
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(x.flatten(0, 1)).mean(dim=(2, 3))
        return self.fc(y).unflatten(0, x.shape[:2])


class SpikingMLP(MLPModel):
    """A spiking MLP of the ``spiking`` family built from a genotype (use ``build_model``)."""

    def __init__(self, genotype: Genotype, num_classes: int, image_size: int, in_chans: int) -> None:
        super().__init__(genotype, num_classes, image_size, in_chans)
        sides = genotype.resolutions(image_size)
        rates = drop_path_rates(sum(genotype.depths), genotype.drop_path)
        self.stages = nn.ModuleList()
        chans, start = in_chans, 0
        for stage, side in zip(genotype.stages, sides, strict=True):
            self.stages.append(
                SpikingStage(
                    stage,
                    chans,
                    side,
                    genotype.neuron,
                    genotype.mlp_ratio,
                    genotype.patch_size,
                    rates[start : start + stage.depth],
                )
            )
            chans, start = stage.dim, start + stage.depth
        self.head = SpikingHead(chans, num_classes)

    def _forward_sequence(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = stage(x)
        return self.head(x)
