"""What a supernet can hold: the widest extent of every weight-carrying choice of a space.

``SupernetBounds.from_space(space, ...)`` reads the choices of a search space (no sampling, no
model) and records, per stage, the deepest stage, the widest width, the widest channel-MLP hidden
width, the token-grid sides the stage can have, the token-mixing ops, the identity and skip
choices that carry weights, and for every patch-encoding cell the widest channels of each node
and the edge operations each (node, input) pair can take. A genotype is a sub-network of the
supernet when each of its weight tensors is a slice of one of these (``check``); choices without
weights (time steps, neuron settings, skip wiring, group-LIF group/scan/output, drop path) are
switches and take any value.

Everything here is primitives and tuples: bounds travel inside checkpoints (``to_dict``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from snn_nas.errors import SnnNasError
from snn_nas.genotype import Genotype


class SupernetError(SnnNasError, ValueError):
    """A genotype outside a supernet, a bad supernet setting, or a checkpoint that does not fit;
    the message names the dimension or setting and what is allowed."""


def _sorted(values: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(sorted(set(values), key=str))


@dataclass(frozen=True)
class CellBounds:
    """The patch-encoding cell of one stage: ``node_chans[n]`` is the widest channel count of
    node ``n`` (0 where the node never exists), ``input_ops[n]`` the edge ops from the cell
    input to node ``n``, ``node_ops[n][j]`` those from node ``j`` to node ``n``."""

    in_chans: int
    node_chans: tuple[int, ...]
    input_ops: tuple[tuple[str, ...], ...]
    node_ops: tuple[tuple[tuple[str, ...], ...], ...]

    @property
    def nodes(self) -> int:
        return sum(1 for c in self.node_chans if c > 0)


@dataclass(frozen=True)
class StageBounds:
    """The weight-carrying extents of one stage (see the module docstring)."""

    depth: int
    dim: int
    hidden: int
    sides: tuple[int, ...]
    token_ops: tuple[tuple[str, ...], tuple[str, ...]]  # (token_h ops, token_w ops)
    identities: tuple[str, ...]
    skip_sources: tuple[str, ...]
    cell: CellBounds | None = None


@dataclass(frozen=True)
class SupernetBounds:
    """The extents of a supernet for one space, one image size and one dataset."""

    space: str
    family: str
    image_size: int
    in_chans: int
    num_classes: int
    patch_sizes: tuple[int, ...]
    stage_counts: tuple[int, ...]
    stages: tuple[StageBounds, ...]

    # ------------------------------------------------------------------ reading a space
    @classmethod
    def from_space(
        cls, space: Any, *, num_classes: int, in_chans: int, image_size: int | None = None
    ) -> SupernetBounds:
        """The bounds of ``space`` (a ``SearchSpace``) for images of ``image_size`` (default: the
        space's own) with ``in_chans`` channels and ``num_classes`` classes."""
        from snn_nas.space.codec import scaled_width, stage_sides

        size = int(image_size or space.image_size)
        dims = space.by_label

        def choices(label: str, default: tuple[Any, ...] = ()) -> tuple[Any, ...]:
            return tuple(dims[label].choices) if label in dims else default

        patches = tuple(sorted(p for p in choices("patch_size") if p <= size))
        counts = tuple(sorted(choices("num_stages")))
        if not patches or not counts:
            raise SupernetError(f"space {space.name!r}: no patch size fits {size} px images; nothing to hold")
        ratios = choices("mlp_ratio")
        widths: list[tuple[int, ...]] = []
        stages: list[StageBounds] = []
        for s in range(1, max(counts) + 1):
            p = f"stage{s}."
            if p + "dim" in dims:
                stage_dims = tuple(choices(p + "dim"))
            else:
                stage_dims = tuple(
                    w
                    for b in choices("base_dim")
                    for m in choices(p + "width_mult")
                    if (w := scaled_width(b, m)) is not None
                )
            widths.append(stage_dims)
            sides = _sorted(stage_sides(size, patch, max(counts))[s - 1] for patch in patches)
            cell = None
            if space.family == "spiking" and s > 1:
                cell = _cell_bounds(choices, p + "cell.", stage_dims, max(widths[-2]))
            stages.append(
                StageBounds(
                    depth=max(choices(p + "depth")),
                    dim=max(stage_dims),
                    hidden=max(int(d * r) for d in stage_dims for r in ratios),
                    sides=sides,
                    token_ops=(_sorted(choices(p + "token_h.op")), _sorted(choices(p + "token_w.op"))),
                    identities=_sorted(choices(p + "identity", ("none",))),
                    skip_sources=_sorted(choices(p + "skip_source", ("block",))),
                    cell=cell,
                )
            )
        return cls(
            space=space.name,
            family=space.family,
            image_size=size,
            in_chans=int(in_chans),
            num_classes=int(num_classes),
            patch_sizes=patches,
            stage_counts=counts,
            stages=tuple(stages),
        )

    # ------------------------------------------------------------------ membership
    def check(self, genotype: Genotype) -> None:
        """Raise ``SupernetError`` naming the first dimension of ``genotype`` that has no weights
        in this supernet (the supernet's extent and the genotype's value are both given)."""
        if not isinstance(genotype, Genotype):
            raise SupernetError(f"genotype: expected a snn_nas.Genotype, got {type(genotype).__name__}")
        where = f"the supernet of space {self.space!r}"
        if genotype.family != self.family:
            raise SupernetError(f"family: {genotype.family!r}, but {where} holds the {self.family!r} family")
        if len(genotype.stages) not in self.stage_counts:
            raise SupernetError(
                f"stages: {len(genotype.stages)} stages, but {where} holds {_or(self.stage_counts)} stages"
            )
        if genotype.patch_size not in self.patch_sizes:
            raise SupernetError(
                f"patch_size: {genotype.patch_size}, but {where} holds stems for patch sizes {_or(self.patch_sizes)}"
            )
        sides = genotype.resolutions(self.image_size)
        for i, (stage, bound) in enumerate(zip(genotype.stages, self.stages, strict=False)):
            _check_stage(f"stages[{i}]", stage, bound, sides[i], genotype.mlp_ratio, where)
            if stage.encoder is not None:
                if bound.cell is None:
                    raise SupernetError(f"stages[{i}].encoder: {where} has no patch-encoding cell in stage {i + 1}")
                _check_cell(f"stages[{i}].encoder", stage.encoder, stage.dim, bound.cell, where)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SupernetBounds:
        """Rebuild bounds from ``to_dict`` output (e.g. read from a checkpoint)."""
        try:
            stages = []
            for s in data["stages"]:
                cell = s.get("cell")
                if cell is not None:
                    cell = CellBounds(
                        in_chans=int(cell["in_chans"]),
                        node_chans=tuple(int(c) for c in cell["node_chans"]),
                        input_ops=tuple(tuple(ops) for ops in cell["input_ops"]),
                        node_ops=tuple(tuple(tuple(ops) for ops in row) for row in cell["node_ops"]),
                    )
                stages.append(
                    StageBounds(
                        depth=int(s["depth"]),
                        dim=int(s["dim"]),
                        hidden=int(s["hidden"]),
                        sides=tuple(int(x) for x in s["sides"]),
                        token_ops=(tuple(s["token_ops"][0]), tuple(s["token_ops"][1])),
                        identities=tuple(s["identities"]),
                        skip_sources=tuple(s["skip_sources"]),
                        cell=cell,
                    )
                )
            return cls(
                space=str(data["space"]),
                family=str(data["family"]),
                image_size=int(data["image_size"]),
                in_chans=int(data["in_chans"]),
                num_classes=int(data["num_classes"]),
                patch_sizes=tuple(int(p) for p in data["patch_sizes"]),
                stage_counts=tuple(int(c) for c in data["stage_counts"]),
                stages=tuple(stages),
            )
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise SupernetError(f"supernet bounds: malformed ({type(exc).__name__}: {exc})") from None


def _or(values: tuple[Any, ...]) -> str:
    items = [str(v) for v in values]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _cell_bounds(choices: Any, prefix: str, dims: tuple[int, ...], in_chans: int) -> CellBounds:
    counts = choices(prefix + "nodes", (1,))
    most = max(counts)
    node_chans, inputs, edges = [], [], []
    for n in range(most):
        widths = [d // k for d in dims for k in counts if k > n and d % k == 0]
        node_chans.append(max(widths, default=0))
        inputs.append(_sorted(op for op in choices(f"{prefix}node{n}.in", ("conv2x2",)) if op != "none"))
        edges.append(
            tuple(
                _sorted(op for op in choices(f"{prefix}node{n}.from{j}", ("none",)) if op.startswith("conv"))
                for j in range(n)
            )
        )
    return CellBounds(in_chans, tuple(node_chans), tuple(inputs), tuple(edges))


def _check_stage(where: str, stage: Any, bound: StageBounds, side: int, ratio: float, net: str) -> None:
    if stage.depth > bound.depth:
        raise SupernetError(f"{where}.depth: {stage.depth} blocks, but {net} holds at most {bound.depth} in this stage")
    if stage.dim > bound.dim:
        raise SupernetError(f"{where}.dim: {stage.dim} channels, but {net} is at most {bound.dim} wide in this stage")
    hidden = int(stage.dim * ratio)
    if hidden > bound.hidden:
        raise SupernetError(
            f"mlp_ratio: {ratio:g} x {where}.dim {stage.dim} = {hidden} hidden channels, but {net} holds at most "
            f"{bound.hidden} in this stage"
        )
    for axis, ops in zip(("token_h", "token_w"), bound.token_ops, strict=True):
        op = getattr(stage, axis).op
        if op != "none" and op not in ops:
            raise SupernetError(f"{where}.{axis}.op: {op!r}, but {net} holds {_or(ops)} on this axis")
        if op == "mlp" and side not in bound.sides:
            raise SupernetError(f"{where}.{axis}: a {side}-wide axial MLP, but {net} holds sides {_or(bound.sides)}")
    if stage.identity == "lif_bn" and "lif_bn" not in bound.identities:
        raise SupernetError(f"{where}.identity: 'lif_bn', but {net} holds no LIF(BN(x)) identity branch")
    if stage.skip_source == "bn_spike" and "bn_spike" not in bound.skip_sources:
        raise SupernetError(f"{where}.skip_source: 'bn_spike', but {net} holds no BN shortcut")


def _check_cell(where: str, cell: Any, dim: int, bound: CellBounds, net: str) -> None:
    chans = dim // cell.nodes
    if cell.nodes > bound.nodes:
        raise SupernetError(f"{where}.nodes: {cell.nodes}, but {net} holds at most {bound.nodes} in this cell")
    for n, op in enumerate(cell.input_ops):
        if chans > bound.node_chans[n]:
            raise SupernetError(
                f"{where}: node {n} of {chans} channels, but {net} holds at most {bound.node_chans[n]} for it"
            )
        if op != "none" and op not in bound.input_ops[n]:
            raise SupernetError(f"{where}.input_ops[{n}]: {op!r}, but {net} holds {_or(bound.input_ops[n])}")
        for j, edge in enumerate(cell.node_ops[n]):
            if edge.startswith("conv") and edge not in bound.node_ops[n][j]:
                allowed = bound.node_ops[n][j] or ("no conv edge",)
                raise SupernetError(f"{where}.node_ops[{n}][{j}]: {edge!r}, but {net} holds {_or(allowed)}")
