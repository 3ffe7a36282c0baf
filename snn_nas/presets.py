"""Named genotypes: the published seed architectures and two micro variants for quick runs.

Spiking family (Mixer-SNN, Li, Leng et al., ICLR 2023 / TNNLS 2024): ``mlp_spe_t``,
``mlp_spe_s`` (spiking patch encoding cells) and ``mlp_s`` (2x2 conv downsampling, identity
branch ``LIF(BN(x))``); 4 stages of widths ``dim * [1, 2, 4, 8]``, depths ``[2, 8, 14, 2]``,
channel ratio 3, T = 4, patch 4, LIF tau 2 / v_th 1 / sigmoid surrogate alpha 4, "stage
current" skips on both paths, dense axial h/w token mixing.

``snn_mlp`` family (SNN-MLP, Li et al., CVPR 2022): ``snn_mlp_t``, ``snn_mlp_s``, ``snn_mlp_b``;
group LIF along H and W with group 4, forward scan, real output; MLP ratio 4.

Micro presets (3 stages of widths 24 / 48 / 96, one block each, patch 4) keep the structure of
their family and are meant for 32 px images (CIFAR, the bundled digits) and CPU smoke runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from snn_nas.genotype import AxisMixer, Cell, Genotype, Stage
from snn_nas.registry import Registry

SPE_CELL = Cell(input_ops=("conv3x3",) * 3, node_ops=((), ("conv3x3",), ("identity", "conv3x3")))
CONV2X2_CELL = Cell(input_ops=("conv2x2",), node_ops=((),))
MIXER_SNN_PAPER = (
    "Li, Leng et al., Efficient Deep Spiking Multi-Layer Perceptrons with Multiplication-Free Inference (TNNLS 2024)"
)
SNN_MLP_PAPER = "Li, Chen, Guo, Zhang, Wang, Brain-inspired Multilayer Perceptron with Spiking Neurons (CVPR 2022)"


@dataclass(frozen=True)
class PresetInfo:
    """A preset: its genotype and published figures (``top1`` in percent, ``None`` if unpublished)."""

    name: str
    genotype: Genotype
    description: str
    dataset: str = "ImageNet-1k"
    num_classes: int = 1000
    image_size: int = 224  # the recommended (published) input size
    top1: float | None = None
    top1_note: str = ""
    params_published: str = ""  # as the authors state it, e.g. "25M"
    paper: str = ""

    @property
    def family(self) -> str:
        return self.genotype.family


PRESETS: Registry[PresetInfo] = Registry("preset")


def _register(info: PresetInfo) -> None:
    PRESETS.register(info.name, info)


def mixer_snn(
    dim: int,
    depths: tuple[int, ...] = (2, 8, 14, 2),
    encoder: Cell = SPE_CELL,
    identity: str = "x",
    time_steps: int = 4,
) -> Genotype:
    """The Mixer-SNN structure with base width ``dim`` (widths ``dim * 2**i``)."""
    stages = tuple(
        Stage(depth=d, dim=dim * 2**i, encoder=None if i == 0 else encoder, identity=identity)
        for i, d in enumerate(depths)
    )
    return Genotype(stages=stages, family="spiking", time_steps=time_steps, patch_size=4, mlp_ratio=3.0)


def snn_mlp(dim: int, depths: tuple[int, ...], drop_path: float, groups: tuple[int, ...] | None = None) -> Genotype:
    """The SNN-MLP structure with base width ``dim``; ``groups``: group LIF size per stage (default 4)."""
    groups = groups or (4,) * len(depths)
    stages = []
    for i, (d, g) in enumerate(zip(depths, groups, strict=True)):
        mixer = AxisMixer(op="group_lif", group=g, scan="forward", output="real")
        stages.append(
            Stage(
                depth=d,
                dim=dim * 2**i,
                token_h=mixer,
                token_w=mixer,
                identity="none",
                skip_source="block",
                skip_paths="both",
            )
        )
    return Genotype(
        stages=tuple(stages), family="snn_mlp", time_steps=1, patch_size=4, mlp_ratio=4.0, drop_path=drop_path
    )


_register(
    PresetInfo(
        "mlp_spe_t",
        mixer_snn(78),
        "Mixer-SNN MLP-SPE-T: spiking MLP with spiking patch encoding, dim 78",
        top1=66.39,
        top1_note="T=4; 69.09 % at T=6",
        params_published="25M",
        paper=MIXER_SNN_PAPER,
    )
)
_register(
    PresetInfo(
        "mlp_spe_s",
        mixer_snn(96),
        "Mixer-SNN MLP-SPE-S: spiking MLP with spiking patch encoding, dim 96",
        top1=68.84,
        top1_note="T=4",
        params_published="38M",
        paper=MIXER_SNN_PAPER,
    )
)
_register(
    PresetInfo(
        "mlp_s",
        mixer_snn(96, encoder=CONV2X2_CELL, identity="lif_bn"),
        "Mixer-SNN MLP-S: spiking MLP with 2x2 conv downsampling and LIF(BN(x)) identity, dim 96",
        top1=63.25,
        top1_note="T=4",
        params_published="34M",
        paper=MIXER_SNN_PAPER,
    )
)
_register(
    PresetInfo(
        "snn_mlp_t",
        snn_mlp(96, (2, 2, 6, 2), 0.2),
        "SNN-MLP-T: full-precision MLP with patch-axis group LIF token mixing, C 96",
        top1=81.9,
        top1_note="4.4 GFLOPs",
        params_published="28.3M",
        paper=SNN_MLP_PAPER,
    )
)
_register(
    PresetInfo(
        "snn_mlp_s",
        snn_mlp(96, (2, 2, 18, 2), 0.3),
        "SNN-MLP-S: full-precision MLP with patch-axis group LIF token mixing, C 96",
        top1=83.3,
        top1_note="8.5 GFLOPs",
        params_published="49.7M",
        paper=SNN_MLP_PAPER,
    )
)
_register(
    PresetInfo(
        "snn_mlp_b",
        snn_mlp(128, (2, 2, 18, 2), 0.5),
        "SNN-MLP-B: full-precision MLP with patch-axis group LIF token mixing, C 128",
        top1=83.5,
        top1_note="15.2 GFLOPs",
        params_published="87.9M",
        paper=SNN_MLP_PAPER,
    )
)
_register(
    PresetInfo(
        "mlp_spe_micro",
        mixer_snn(24, depths=(1, 1, 1)),
        "MLP-SPE structure in miniature: 3 stages, widths 24/48/96, one block each, T=4 (for 32 px)",
        dataset="any (CIFAR, bundled digits)",
        num_classes=10,
        image_size=32,
    )
)
_register(
    PresetInfo(
        "snn_mlp_micro",
        snn_mlp(24, (1, 1, 1), 0.0, groups=(4, 4, 2)),
        "SNN-MLP structure in miniature: 3 stages, widths 24/48/96, one block each; group LIF of "
        "4 in stages 1-2 and 2 in stage 3, whose side is 2 at 32 px (works for image sizes >= 28)",
        dataset="any (CIFAR, bundled digits)",
        num_classes=10,
        image_size=32,
    )
)


def get_preset(name: str) -> Genotype:
    """The genotype of preset ``name`` (unknown -> ``UnknownNameError`` listing the presets)."""
    return PRESETS.get(name).genotype


def list_presets() -> list[str]:
    """Names of all presets, sorted."""
    return PRESETS.names()


def preset_info(name: str) -> PresetInfo:
    """Published figures of preset ``name``: top-1, recommended image size, dataset, paper."""
    return PRESETS.get(name)
