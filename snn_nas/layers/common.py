"""Small shared pieces of the layer package: multi-step folding, drop path, the model base class.

Spiking layers exchange ``[T, B, C, H, W]`` tensors. Per-step layers (conv, BN, linear) run on
the folded view ``[T * B, ...]`` (``x.flatten(0, 1)``), which is free for contiguous tensors;
``snn_nas.neurons.LIF`` runs on the unfolded ``[T, B, ...]`` view.
"""

from __future__ import annotations

import torch
from torch import nn

from snn_nas.errors import SnnNasError
from snn_nas.genotype import Genotype


class ModelInputError(SnnNasError, ValueError):
    """An input tensor a model cannot take; the message names the expected shape."""


def drop_path_rates(total_blocks: int, drop_path: float) -> list[float]:
    """Stochastic-depth rate of every block, rising linearly from 0 to ``drop_path``.

    Same values as ``torch.linspace(0, drop_path, total_blocks)``.
    """
    if total_blocks <= 1:
        return [0.0] * total_blocks
    return [drop_path * i / (total_blocks - 1) for i in range(total_blocks)]


class DropPath(nn.Module):
    """Stochastic depth: zero a whole sample's branch with probability ``p`` while training.

    ``batch_dim`` is the sample axis (1 for ``[T, B, ...]`` so that a sample is dropped at every
    time step alike, 0 for ``[B, ...]``). Kept samples are scaled by ``1 / (1 - p)``.
    """

    def __init__(self, p: float, batch_dim: int = 0) -> None:
        super().__init__()
        self.p = float(p)
        self.batch_dim = batch_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        shape = [1] * x.ndim
        shape[self.batch_dim] = x.shape[self.batch_dim]
        keep = x.new_empty(shape).bernoulli_(1.0 - self.p)
        return x * keep / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p:.3f}"


class MLPModel(nn.Module):
    """Base class of every built model: the input/output contract of ``docs/architecture.md``.

    ``forward(x)`` takes ``[B, C, H, W]`` images (repeated over ``time_steps``, direct encoding)
    or ``[T, B, C, H, W]`` sequences (``T`` overrides ``time_steps``) and returns the
    ``[B, num_classes]`` mean over T of the per-step logits. ``forward_steps(x)`` returns the
    per-step logits ``[T, B, num_classes]``. Subclasses implement ``_forward_sequence``.
    """

    #: whether the layers depend on the token grid size (dense axial maps, BN over tokens)
    fixed_size: bool = True

    def __init__(self, genotype: Genotype, num_classes: int, image_size: int, in_chans: int) -> None:
        super().__init__()
        self.genotype = genotype
        self.num_classes = num_classes
        self.image_size = image_size
        self.in_chans = in_chans
        self._time_steps = genotype.time_steps

    @property
    def time_steps(self) -> int:
        """Number of time steps a ``[B, C, H, W]`` input is repeated for; may be lowered after build."""
        return self._time_steps

    @time_steps.setter
    def time_steps(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ModelInputError(f"time_steps: expected an integer >= 1, got {value!r}")
        self._time_steps = value

    def as_sequence(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` or ``[T, B, C, H, W]`` -> ``[T, B, C, H, W]`` (checked)."""
        if x.ndim == 4:
            x = x.unsqueeze(0).expand(self.time_steps, *x.shape)
        elif x.ndim != 5:
            raise ModelInputError(
                f"input: expected [B, C, H, W] or [T, B, C, H, W], got a tensor of shape {list(x.shape)}"
            )
        if x.shape[2] != self.in_chans:
            raise ModelInputError(f"input: the model takes {self.in_chans} channels, got {x.shape[2]}")
        if self.fixed_size and tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            raise ModelInputError(
                f"input: the model was built for {self.image_size}x{self.image_size} images, got "
                f"{x.shape[-2]}x{x.shape[-1]}; rebuild it with image_size={x.shape[-1]}"
            )
        return x

    def forward_steps(self, x: torch.Tensor) -> torch.Tensor:
        """x: ``[B, C, H, W]`` or ``[T, B, C, H, W]``. Returns per-step logits ``[T, B, num_classes]``."""
        return self._forward_sequence(self.as_sequence(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: ``[B, C, H, W]`` or ``[T, B, C, H, W]``. Returns logits ``[B, num_classes]`` (mean over T)."""
        return self.forward_steps(x).mean(0)

    def _forward_sequence(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def extra_repr(self) -> str:
        return (
            f"family={self.genotype.family}, key={self.genotype.key()}, num_classes={self.num_classes}, "
            f"image_size={self.image_size}, in_chans={self.in_chans}, time_steps={self.time_steps}"
        )
