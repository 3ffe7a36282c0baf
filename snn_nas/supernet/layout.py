"""Where every weight of every sub-network lives in the supernet: store keys, shapes and slices.

The supernet keeps one *store* tensor per weight-sharing slot, at the widest extent the bounds
allow. A sub-network is an ordinary model from ``build_model``; each of its parameters and
buffers (by its module name, e.g. ``stages.1.blocks.0.channel.fc1.weight``) is read from one
store tensor:

* **store key** = the module name, with the choice that owns separate weights appended to the
  component that depends on it (``@``): the stem per patch size (``stages.0.encoder@p4``), each
  cell edge per operation (``stages.1.encoder.inputs.2@conv3x3``, ``...edges.0_2@conv1x1``), an
  axial MLP per token-grid side (``...token.mix_h@mlp8``, the group LIF's two scalars
  ``...mix_h@glif``), the channel block's token-index norms per side (``...channel.bn1@8``) and
  the head per number of stages (``head@3``). Everything else is shared by every sub-network
  that has the component (the first ``d`` blocks of a stage, say).
* **slice** = the leading ``n`` entries of every axis (elastic width, hidden width, node
  channels), except where a channel's meaning depends on the architecture, which is read as
  segments of a store laid out in fixed slots:

  - the *channel stream* of a spiking stage that starts with a patch-encoding cell: the cell's
    output is the concatenation of its ``k`` nodes of ``C / k`` channels each, so a stream
    channel's meaning is (node, channel of that node), not its position, which moves with ``C``
    and ``k``. The store holds one slot per node (``node_chans[n]`` wide, ``stream_width``) and
    every tensor with an axis on that stream (the stage's blocks, the next cell's input edges,
    the head) reads the segments ``[(offset_n, C / k) for n < k]`` (``stream_cut``). Channel
    ``i`` of node ``n`` is thus one store entry in every architecture;
  - the token block's fusing conv reads ``[identity | h | w]`` slots of the stream's store
    width each (absent branches skipped; each slot cut like the stream);
  - SNN-MLP's space-to-depth norm and reduction read four sub-grid slots of ``in_max`` channels
    each.

So the weights of one architecture are ``{name: slice(store[key])}``, and every architecture
that uses an edge, a block or a width shares the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from snn_nas.genotype import Genotype
from snn_nas.supernet.bounds import StageBounds, SupernetBounds, SupernetError

Segments = tuple[tuple[int, int], ...]  # (start, length) pieces of one axis, concatenated
AxisSlice = int | Segments  # an int n: the leading n entries


@dataclass(frozen=True)
class Entry:
    """One store tensor: ``shape``, how it starts (``init``) and whether it is a buffer.

    ``init``: ``kaiming`` (torch's default for conv/linear weights, ``fan_in`` from the shape),
    ``bias`` (uniform in ``+-1/sqrt(fan_in)``), ``ones``, ``zeros``, ``trunc_normal`` (std 0.02),
    ``value`` (filled with ``value``), ``count`` (an int64 zero).
    """

    shape: tuple[int, ...]
    init: str
    fan_in: int = 0
    value: float = 0.0
    buffer: bool = False


# ---------------------------------------------------------------------------- the store
def stream_width(bounds: SupernetBounds, i: int) -> int:
    """The store width of stage ``i``'s channel stream: one slot per node of its patch-encoding
    cell (spiking stages after the first), else the stage's widest dim (module docstring)."""
    stage = bounds.stages[i]
    if bounds.family == "spiking" and stage.cell is not None:
        return sum(stage.cell.node_chans)
    return stage.dim


def stream_cut(genotype: Genotype, bounds: SupernetBounds, i: int) -> AxisSlice:
    """Where stage ``i``'s ``dim`` stream channels of ``genotype`` lie in the store's stream:
    the leading ``dim``, or one segment per node of its patch-encoding cell (module docstring)."""
    stage, cell = genotype.stages[i], bounds.stages[i].cell
    encoder = stage.encoder
    if genotype.family != "spiking" or cell is None or encoder is None or encoder.nodes == 1:
        return stage.dim
    chans = stage.dim // encoder.nodes
    offsets = [sum(cell.node_chans[:n]) for n in range(encoder.nodes)]
    return tuple((offset, chans) for offset in offsets)


def store_layout(bounds: SupernetBounds) -> dict[str, Entry]:
    """Every store tensor of a supernet with ``bounds``, by store key."""
    out: dict[str, Entry] = {}
    for i, stage in enumerate(bounds.stages):
        prefix = f"stages.{i}"
        if bounds.family == "spiking":
            _spiking_encoder(out, prefix, i, stage, bounds)
            for j in range(stage.depth):
                _spiking_block(out, f"{prefix}.blocks.{j}", stage, stream_width(bounds, i))
        else:
            _snn_mlp_encoder(out, prefix, i, stage, bounds)
            for j in range(stage.depth):
                _snn_mlp_block(out, f"{prefix}.blocks.{j}", stage)
    for n in bounds.stage_counts:
        width = stream_width(bounds, n - 1)
        if bounds.family == "spiking":
            _bn(out, f"head@{n}.bn", width)
        else:
            _norm(out, f"head@{n}.norm", width)
        out[f"head@{n}.fc.weight"] = Entry(
            (bounds.num_classes, width), "trunc_normal" if bounds.family == "snn_mlp" else "kaiming"
        )
        out[f"head@{n}.fc.bias"] = Entry(
            (bounds.num_classes,), "zeros" if bounds.family == "snn_mlp" else "bias", width
        )
    return out


def _weight(out: dict[str, Entry], key: str, shape: tuple[int, ...], bias: bool = False) -> None:
    out[f"{key}.weight"] = Entry(shape, "kaiming")
    if bias:
        out[f"{key}.bias"] = Entry((shape[0],), "bias", math.prod(shape[1:]))


def _bn(out: dict[str, Entry], key: str, n: int) -> None:
    out[f"{key}.weight"] = Entry((n,), "ones")
    out[f"{key}.bias"] = Entry((n,), "zeros")
    out[f"{key}.running_mean"] = Entry((n,), "zeros", buffer=True)
    out[f"{key}.running_var"] = Entry((n,), "ones", buffer=True)
    out[f"{key}.num_batches_tracked"] = Entry((), "count", buffer=True)


def _norm(out: dict[str, Entry], key: str, n: int) -> None:  # GroupNorm: affine only
    out[f"{key}.weight"] = Entry((n,), "ones")
    out[f"{key}.bias"] = Entry((n,), "zeros")


def _group_lif(out: dict[str, Entry], key: str) -> None:
    out[f"{key}.tau"] = Entry((1,), "value", value=0.25)
    out[f"{key}.v_th"] = Entry((1,), "value", value=0.1)


_KERNEL = {"conv3x3": 3, "conv1x1": 1, "avgpool_conv1x1": 1, "conv2x2": 2}


def _conv_bn(out: dict[str, Entry], key: str, op: str, cout: int, cin: int) -> None:
    """The module names ``input_edge`` / ``node_edge`` give each edge operation."""
    k = _KERNEL[op]
    if op == "conv2x2":
        _weight(out, f"{key}.conv", (cout, cin, k, k))
        _bn(out, f"{key}.bn", cout)
    elif op == "avgpool_conv1x1":
        _weight(out, f"{key}.1.0", (cout, cin, k, k))
        _bn(out, f"{key}.1.1", cout)
    else:
        _weight(out, f"{key}.0", (cout, cin, k, k))
        _bn(out, f"{key}.1", cout)


def _spiking_encoder(out: dict[str, Entry], prefix: str, i: int, stage: StageBounds, bounds: SupernetBounds) -> None:
    if i == 0:
        for p in bounds.patch_sizes:
            _weight(out, f"{prefix}.encoder@p{p}.proj.0", (stage.dim, bounds.in_chans, p, p))
            _bn(out, f"{prefix}.encoder@p{p}.proj.1", stage.dim)
        return
    cell = stage.cell
    assert cell is not None  # every spiking stage after the first has one (bounds.from_space)
    for n, chans in enumerate(cell.node_chans):
        if chans == 0:
            continue
        for op in cell.input_ops[n]:
            _conv_bn(out, f"{prefix}.encoder.inputs.{n}@{op}", op, chans, stream_width(bounds, i - 1))
        for j, ops in enumerate(cell.node_ops[n]):
            for op in ops:
                _conv_bn(out, f"{prefix}.encoder.edges.{j}_{n}@{op}", op, chans, chans)


def _spiking_block(out: dict[str, Entry], prefix: str, stage: StageBounds, dim: int) -> None:
    hidden = stage.hidden
    if "lif_bn" in stage.identities:
        _bn(out, f"{prefix}.token.id_branch.bn", dim)
    for axis, ops in zip("hw", stage.token_ops, strict=True):
        if "mlp" in ops:
            for side in stage.sides:
                _weight(out, f"{prefix}.token.mix_{axis}@mlp{side}.proj", (side, side, 1, 1), bias=True)
                _bn(out, f"{prefix}.token.mix_{axis}@mlp{side}.bn", side)
        if "group_lif" in ops:
            _group_lif(out, f"{prefix}.token.mix_{axis}@glif.lif")
    out[f"{prefix}.token.fuse.weight"] = Entry((dim, 3 * dim, 1, 1), "kaiming")
    _bn(out, f"{prefix}.token.bn", dim)
    _weight(out, f"{prefix}.channel.fc1", (hidden, dim), bias=True)
    _weight(out, f"{prefix}.channel.fc2", (dim, hidden), bias=True)
    for side in stage.sides:
        _bn(out, f"{prefix}.channel.bn1@{side}", side * side)
        _bn(out, f"{prefix}.channel.bn2@{side}", side * side)
    if "bn_spike" in stage.skip_sources:
        _bn(out, f"{prefix}.token_shortcut", dim)
        _bn(out, f"{prefix}.channel_shortcut", dim)


def _snn_mlp_encoder(out: dict[str, Entry], prefix: str, i: int, stage: StageBounds, bounds: SupernetBounds) -> None:
    if i == 0:
        for p in bounds.patch_sizes:
            _weight(out, f"{prefix}.encoder@p{p}.proj", (stage.dim, bounds.in_chans, p, p), bias=True)
            _norm(out, f"{prefix}.encoder@p{p}.norm", stage.dim)
        return
    cin = bounds.stages[i - 1].dim
    _norm(out, f"{prefix}.encoder.norm", 4 * cin)
    _weight(out, f"{prefix}.encoder.reduction", (stage.dim, 4 * cin, 1, 1))


def _snn_mlp_block(out: dict[str, Entry], prefix: str, stage: StageBounds) -> None:
    dim, hidden = stage.dim, stage.hidden
    for name in ("norm1", "norm2", "token.norm1", "token.norm2", "token.norm3"):
        _norm(out, f"{prefix}.{name}", dim)
    _weight(out, f"{prefix}.token.conv1", (dim, dim, 1, 1), bias=True)
    _weight(out, f"{prefix}.token.dw", (dim, 1, 3, 3), bias=True)
    _weight(out, f"{prefix}.token.conv3", (dim, dim, 1, 1), bias=True)
    for axis, ops in zip("hw", stage.token_ops, strict=True):
        if set(ops) - {"none"}:
            _weight(out, f"{prefix}.token.branch_{axis}.conv", (dim, dim, 1, 1), bias=True)
        if "mlp" in ops:
            for side in stage.sides:
                _weight(out, f"{prefix}.token.branch_{axis}.mixer@mlp{side}.proj", (side, side, 1, 1), bias=True)
        if "group_lif" in ops:
            _group_lif(out, f"{prefix}.token.branch_{axis}.mixer@glif")
    _weight(out, f"{prefix}.mlp.fc1", (hidden, dim, 1, 1), bias=True)
    _weight(out, f"{prefix}.mlp.fc2", (dim, hidden, 1, 1), bias=True)


# ---------------------------------------------------------------------------- one sub-network
def store_key(name: str, genotype: Genotype, image_size: int) -> str:
    """The store key of parameter or buffer ``name`` of ``build_model(genotype)`` (module
    docstring). Raises ``SupernetError`` for a name no layout rule knows."""
    parts = name.split(".")
    n_stages = len(genotype.stages)
    if parts[0] == "head" or (genotype.family == "snn_mlp" and parts[0] in ("norm", "fc")):
        rest = parts[1:] if parts[0] == "head" else parts
        return ".".join([f"head@{n_stages}", *rest])
    if parts[0] != "stages" or len(parts) < 4:
        raise SupernetError(f"{name}: no supernet slot for this tensor")
    i = int(parts[1])
    stage = genotype.stages[i]
    side = genotype.resolutions(image_size)[i]
    if parts[2] == "encoder":
        if i == 0:
            return ".".join([f"stages.0.encoder@p{genotype.patch_size}", *parts[3:]])
        if parts[3] == "inputs" and stage.encoder is not None:
            n = int(parts[4])
            return ".".join([*parts[:4], f"{n}@{stage.encoder.input_ops[n]}", *parts[5:]])
        if parts[3] == "edges" and stage.encoder is not None:
            j, n = (int(x) for x in parts[4].split("_"))
            return ".".join([*parts[:4], f"{j}_{n}@{stage.encoder.node_ops[n][j]}", *parts[5:]])
        return name
    if parts[2] != "blocks" or len(parts) < 6:
        raise SupernetError(f"{name}: no supernet slot for this tensor")
    head, part, rest = parts[:5], parts[5], parts[6:]
    if parts[4] == "token" and part in ("mix_h", "mix_w"):  # spiking axial mixers
        return ".".join([*head, f"{part}@{_mixer_slot(getattr(stage, 'token_' + part[-1]).op, side)}", *rest])
    if parts[4] == "token" and part in ("branch_h", "branch_w") and rest and rest[0] == "mixer":
        mixer = getattr(stage, "token_" + part[-1])
        return ".".join([*head, part, f"mixer@{_mixer_slot(mixer.op, side)}", *rest[1:]])
    if parts[4] == "channel" and part in ("bn1", "bn2"):
        return ".".join([*head, f"{part}@{side}", *rest])
    return name


def _mixer_slot(op: str, side: int) -> str:
    return f"mlp{side}" if op == "mlp" else "glif"


def axis_slices(name: str, shape: tuple[int, ...], genotype: Genotype, bounds: SupernetBounds) -> tuple[AxisSlice, ...]:
    """How tensor ``name`` of shape ``shape`` is cut from its store tensor: per axis, the leading
    ``n`` entries, or segments of a slotted store (module docstring)."""
    parts = name.split(".")
    if genotype.family == "spiking":
        return _spiking_slices(parts, shape, genotype, bounds)
    is_s2d = len(parts) == 5 and parts[2] == "encoder" and parts[3] in ("norm", "reduction") and parts[1] != "0"
    if genotype.family == "snn_mlp" and is_s2d:  # space-to-depth after the first stage
        i = int(parts[1])
        cin, in_max = genotype.stages[i - 1].dim, bounds.stages[i - 1].dim
        segments = tuple((g * in_max, cin) for g in range(4))
        if parts[3] == "norm":
            return (segments,)
        return (shape[0], segments, *shape[2:])
    return tuple(shape)


# The tensors of a spiking stage's blocks with an axis on the channel stream: which axes.
_STREAM_AXES = {
    ("token", "id_branch"): (0,), ("token", "bn"): (0,), ("token", "fuse"): (0,),
    ("channel", "fc1"): (1,), ("channel", "fc2"): (0,), ("token_shortcut",): (0,), ("channel_shortcut",): (0,),
}  # fmt: skip


def _segments(cut: AxisSlice) -> Segments:
    return ((0, cut),) if isinstance(cut, int) else cut


def _spiking_slices(parts: list[str], shape: tuple[int, ...], genotype: Genotype,
                    bounds: SupernetBounds) -> tuple[AxisSlice, ...]:  # fmt: skip
    """``axis_slices`` of the spiking family: stream axes cut by ``stream_cut``."""
    cut: list[AxisSlice] = list(shape)
    if parts[0] == "head":  # head.bn.* and head.fc.weight read the last stage's stream
        stream = stream_cut(genotype, bounds, len(genotype.stages) - 1)
        if parts[1] == "bn" and len(shape) == 1:
            cut[0] = stream
        elif parts[1:] == ["fc", "weight"]:
            cut[1] = stream
        return tuple(cut)
    i = int(parts[1])
    if parts[2] == "encoder" and parts[3] == "inputs" and len(shape) == 4:  # a cell's input edge conv
        cut[1] = stream_cut(genotype, bounds, i - 1)
        return tuple(cut)
    if parts[2] != "blocks" or not shape:
        return tuple(cut)
    stream = stream_cut(genotype, bounds, i)
    for prefix, axes in _STREAM_AXES.items():
        if tuple(parts[4 : 4 + len(prefix)]) == prefix:
            for axis in (a for a in axes if a < len(shape)):  # fc1's bias has only its hidden axis
                cut[axis] = stream
            break
    if parts[4:6] == ["token", "fuse"]:
        width = stream_width(bounds, i)
        slots = [s for s, present in enumerate(_branches(genotype.stages[i])) if present]
        cut[1] = tuple((s * width + start, n) for s in slots for start, n in _segments(stream))
    return tuple(cut)


def _branches(stage: object) -> tuple[bool, bool, bool]:
    """Which slots of the token block's fusing conv are present: identity, h, w."""
    return (stage.identity != "none", stage.token_h.mixes, stage.token_w.mixes)  # type: ignore[attr-defined]


def fits(shape: tuple[int, ...], cut: tuple[AxisSlice, ...], store_shape: tuple[int, ...]) -> bool:
    """Whether ``cut`` (of a tensor of ``shape``) lies inside a store tensor of ``store_shape``."""
    if len(shape) != len(store_shape) or len(cut) != len(shape):
        return False
    for axis, piece in enumerate(cut):
        if isinstance(piece, int):
            if piece != shape[axis] or piece > store_shape[axis]:
                return False
        elif sum(n for _, n in piece) != shape[axis] or any(s + n > store_shape[axis] for s, n in piece):
            return False
    return True
