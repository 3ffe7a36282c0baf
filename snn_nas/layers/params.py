"""Parameter counts of built models, computed from the genotype alone (no torch import).

Mirrors the layers of ``spiking_mlp``/``encoders``/``mixing`` and ``snn_mlp`` term by term; a
test checks it against ``sum(p.numel())`` of real builds. Used where importing torch would be
too slow (``snn-nas models``).
"""

from __future__ import annotations

from snn_nas.genotype import AxisMixer, Cell, Genotype, Stage

_INPUT_KERNEL = {"conv3x3": 9, "conv1x1": 1, "avgpool_conv1x1": 1, "conv2x2": 4}
_NODE_KERNEL = {"conv3x3": 9, "conv1x1": 1}


def _bn(c: int) -> int:
    return 2 * c  # weight + bias (GroupNorm too)


def _cell(cell: Cell, in_chans: int, dim: int) -> int:
    c = dim // cell.nodes
    total = sum(in_chans * c * _INPUT_KERNEL[op] + _bn(c) for op in cell.input_ops if op != "none")
    for row in cell.node_ops:
        total += sum(c * c * _NODE_KERNEL[op] + _bn(c) for op in row if op in _NODE_KERNEL)
    return total


def _spiking_mixer(mixer: AxisMixer, side: int) -> int:
    if mixer.op == "mlp":
        return side * side + side + _bn(side)
    return 2 if mixer.op == "group_lif" else 0


def _spiking_block(stage: Stage, side: int, mlp_ratio: float) -> int:
    dim, hidden = stage.dim, int(stage.dim * mlp_ratio)
    branches = (stage.identity != "none") + stage.token_h.mixes + stage.token_w.mixes
    token = (_bn(dim) if stage.identity == "lif_bn" else 0) + _spiking_mixer(stage.token_h, side)
    token += _spiking_mixer(stage.token_w, side) + branches * dim * dim + _bn(dim)
    channel = dim * hidden + hidden + hidden * dim + dim + 2 * _bn(side * side)
    shortcuts = 0
    if stage.skip_source == "bn_spike":
        shortcuts = _bn(dim) * (2 if stage.skip_paths == "both" else 1)
    return token + channel + shortcuts


def _snn_mlp_block(stage: Stage, side: int, mlp_ratio: float) -> int:
    dim, hidden = stage.dim, int(stage.dim * mlp_ratio)
    conv1x1 = dim * dim + dim
    lif_module = conv1x1 + _bn(dim) + 10 * dim + _bn(dim) + _bn(dim) + conv1x1
    for mixer in (stage.token_h, stage.token_w):
        if mixer.mixes:
            lif_module += (2 if mixer.op == "group_lif" else side * side + side) + conv1x1
    mlp = dim * hidden + hidden + hidden * dim + dim
    return _bn(dim) + lif_module + _bn(dim) + mlp


def parameter_count(genotype: Genotype, num_classes: int = 1000, image_size: int = 224, in_chans: int = 3) -> int:
    """Number of parameters of ``build_model(genotype, num_classes, image_size, in_chans)``.

    Raises ``GenotypeError`` where ``build_model`` would (image too small for the genotype).
    """
    genotype.check_image_size(image_size)
    sides = genotype.resolutions(image_size)
    p = genotype.patch_size
    total, chans = 0, in_chans
    for i, (stage, side) in enumerate(zip(genotype.stages, sides, strict=True)):
        dim = stage.dim
        if genotype.is_spiking:
            total += chans * dim * p * p + _bn(dim) if i == 0 else _cell(stage.encoder, chans, dim)  # type: ignore[arg-type]
            total += stage.depth * _spiking_block(stage, side, genotype.mlp_ratio)
        else:
            total += chans * dim * p * p + dim + _bn(dim) if i == 0 else _bn(4 * chans) + 4 * chans * dim
            total += stage.depth * _snn_mlp_block(stage, side, genotype.mlp_ratio)
        chans = dim
    return total + _bn(chans) + chans * num_classes + num_classes
