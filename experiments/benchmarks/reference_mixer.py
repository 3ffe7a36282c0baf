"""The reference implementation of the throughput benchmarks: MLP-SPE (Mixer-SNN) written plainly.

What it is. The issue asks for the train step of ``mlp_spe_t`` against "the published reference
code". The authors' code is not available offline, so this module is the stand-in, defined
honestly: a straightforward implementation of the same published architecture
(``/work/shared/design/SEED_ARCHITECTURES.md``, section A; Li, Leng et al., ICLR 2023 / TNNLS
2024), written for this benchmark from the paper's description, in the style of the published
spiking-MLP code bases:

* every neuron is spikingjelly's ``neuron.LIFNode(tau=2., detach_reset=True, step_mode="m")``
  (its default ``backend="torch"``, the one that runs on a CPU), reset with
  ``functional.reset_net`` before every batch;
* every synaptic layer is a plain ``nn.Conv2d`` / ``nn.Linear`` / ``nn.BatchNorm*d`` module run
  on the folded ``[T * B, ...]`` view (spikingjelly's ``SeqToANNContainer`` idiom);
* token mixing along H (W) moves that axis to the channel position and applies
  ``Conv2d(H, H, 1)`` + ``BatchNorm2d(H)`` + LIF, as the paper describes; the three branches are
  concatenated and fused by ``Conv2d(3C, C, 1)`` + BN; channel mixing is ``Linear`` +
  ``BatchNorm1d(H * W)`` + LIF + ``Linear`` + ``BatchNorm1d(H * W)``;
* no fused fast paths: no own LIF kernel, no matmul forms of small convolutions.

It has exactly the parameter tensors of ``build_model(get_preset("mlp_spe_t"))`` at the same
image size and class count (``check_same_parameters`` asserts the count and the shapes), and with
our model's weights copied in (``copy_weights``) it computes the same logits (measured: identical,
max difference 0.0, for ``mlp_spe_t`` and ``mlp_spe_micro`` in train and eval mode), so the two
models do the same arithmetic; only the implementation differs. It is *not* the authors'
code, and a figure "x times the reference" means "x times this plain implementation".
"""

from __future__ import annotations

import torch
from torch import nn


def _lif() -> nn.Module:
    from spikingjelly.activation_based import neuron

    return neuron.LIFNode(tau=2.0, detach_reset=True, step_mode="m")


class SeqToANN(nn.Sequential):
    """Run per-step modules on ``[T, B, ...]`` by folding T into the batch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.flatten(0, 1)).unflatten(0, x.shape[:2])


def conv_bn(cin: int, cout: int, kernel: int, stride: int, padding: int) -> nn.Module:
    return SeqToANN(nn.Conv2d(cin, cout, kernel, stride, padding, bias=False), nn.BatchNorm2d(cout))


class SPECell(nn.Module):
    """Spiking patch encoding: n1 = cbn2(x); n2 = cbn2(x) + cbn1(LIF(n1)); n3 = cbn2(x) + n1 + cbn1(LIF(n2))."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        c = cout // 3
        self.in1, self.in2, self.in3 = conv_bn(cin, c, 3, 2, 1), conv_bn(cin, c, 3, 2, 1), conv_bn(cin, c, 3, 2, 1)
        self.e12, self.e23 = conv_bn(c, c, 3, 1, 1), conv_bn(c, c, 3, 1, 1)
        self.lif1, self.lif2 = _lif(), _lif()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n1 = self.in1(x)
        n2 = self.in2(x) + self.e12(self.lif1(n1))
        n3 = self.in3(x) + n1 + self.e23(self.lif2(n2))
        return torch.cat([n1, n2, n3], dim=2)


class AxisMLP(nn.Module):
    """Dense map along H (``dim=3``) or W (``dim=4``) of ``[T, B, C, H, W]``: Conv2d(S, S, 1) + BN(S) + LIF."""

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.proj = SeqToANN(nn.Conv2d(size, size, 1), nn.BatchNorm2d(size))
        self.lif = _lif()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.transpose(2, self.dim).contiguous()
        return self.lif(self.proj(y)).transpose(2, self.dim).contiguous()


class TokenBlock(nn.Module):
    def __init__(self, dim: int, side: int) -> None:
        super().__init__()
        self.mix_h, self.mix_w = AxisMLP(side, 3), AxisMLP(side, 4)
        self.fuse = SeqToANN(nn.Conv2d(3 * dim, dim, 1, bias=False), nn.BatchNorm2d(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([x, self.mix_h(x), self.mix_w(x)], dim=2))


class ChannelBlock(nn.Module):
    def __init__(self, dim: int, tokens: int, ratio: int = 3) -> None:
        super().__init__()
        self.fc1, self.bn1 = nn.Linear(dim, ratio * dim), nn.BatchNorm1d(tokens)
        self.fc2, self.bn2 = nn.Linear(ratio * dim, dim), nn.BatchNorm1d(tokens)
        self.lif = _lif()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b, c, h, w = x.shape
        y = x.flatten(3).transpose(2, 3).reshape(t * b, h * w, c)
        y = self.bn1(self.fc1(y))
        y = self.lif(y.view(t, b, h * w, -1)).flatten(0, 1)
        y = self.bn2(self.fc2(y))
        return y.view(t, b, h * w, c).transpose(2, 3).reshape(t, b, c, h, w)


class Block(nn.Module):
    """Stage-current skips: x = LIF(h + token); x = LIF(h + token + channel(x))."""

    def __init__(self, dim: int, side: int) -> None:
        super().__init__()
        self.token, self.channel = TokenBlock(dim, side), ChannelBlock(dim, side * side)
        self.lif_tok, self.lif_ch = _lif(), _lif()

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        token = self.token(x)
        x = self.lif_tok(h + token)
        return self.lif_ch(h + token + self.channel(x))


class Stage(nn.Module):
    def __init__(self, encoder: nn.Module, dim: int, side: int, depth: int) -> None:
        super().__init__()
        self.encoder, self.lif = encoder, _lif()
        self.blocks = nn.ModuleList(Block(dim, side) for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)
        x = self.lif(h)
        for block in self.blocks:
            x = block(x, h)
        return x


class ReferenceMLPSPE(nn.Module):
    """MLP-SPE: ``[B, C, H, W]`` images, repeated over ``time_steps`` -> ``[B, classes]`` mean logits."""

    def __init__(
        self,
        dim: int = 78,
        depths: tuple[int, ...] = (2, 8, 14, 2),
        num_classes: int = 10,
        image_size: int = 32,
        in_chans: int = 3,
        patch: int = 4,
        time_steps: int = 4,
    ) -> None:
        super().__init__()
        self.time_steps = time_steps
        side, cin, stages = image_size // patch, in_chans, []
        for i, depth in enumerate(depths):
            width = dim * 2**i
            if i == 0:
                encoder: nn.Module = conv_bn(cin, width, patch, patch, 0)
            else:
                encoder, side = SPECell(cin, width), (side + 1) // 2
            stages.append(Stage(encoder, width, side, depth))
            cin = width
        self.stages = nn.ModuleList(stages)
        self.head_bn, self.fc = nn.BatchNorm2d(cin), nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from spikingjelly.activation_based import functional

        functional.reset_net(self)
        x = x.unsqueeze(0).repeat(self.time_steps, 1, 1, 1, 1)
        for stage in self.stages:
            x = stage(x)
        y = self.head_bn(x.flatten(0, 1)).mean(dim=(2, 3))
        return self.fc(y).unflatten(0, x.shape[:2]).mean(0)


def check_same_parameters(reference: nn.Module, model: nn.Module) -> int:
    """The parameter count of both models; ``ValueError`` unless the counts and the sorted lists
    of parameter shapes agree (the two models do the same arithmetic)."""
    ours = sorted(tuple(p.shape) for p in model.parameters())
    theirs = sorted(tuple(p.shape) for p in reference.parameters())
    count = sum(p.numel() for p in model.parameters())
    if ours != theirs or count != sum(p.numel() for p in reference.parameters()):
        raise ValueError(
            f"the reference has {sum(p.numel() for p in reference.parameters())} parameters in {len(theirs)} "
            f"tensors, the model {count} in {len(ours)}: not the same architecture"
        )
    return count


def copy_weights(model: nn.Module, reference: nn.Module) -> None:
    """Load ``model``'s state (parameters and BN statistics) into ``reference``, entry by entry in
    definition order (both define their layers in the order of the paper's description). With
    the weights copied the two compute the same logits (``tests/test_benchmarks_reference.py``:
    identical for ``mlp_spe_micro`` in train and eval mode; also checked for ``mlp_spe_t``)."""
    ours, theirs = list(model.state_dict().items()), list(reference.state_dict().items())
    if len(ours) != len(theirs) or any(a.shape != b.shape for (_, a), (_, b) in zip(ours, theirs, strict=True)):
        raise ValueError("the reference's state entries do not line up with the model's")
    reference.load_state_dict({name: value for (name, _), (_, value) in zip(theirs, ours, strict=True)})
