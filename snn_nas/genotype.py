"""Frozen genotypes: the architecture of one point of the spiking-MLP space.

A genotype holds only primitives and tuples, round-trips through JSON (``to_dict`` /
``from_dict``) and has a stable ``key()``. ``snn_nas.build_model`` is the only way to turn one
into an ``nn.Module``.

Two block families share the genotype:

* ``spiking``: the spiking MLP of Li, Leng et al. (Mixer-SNN / MLP-SPE). Tensors are
  ``[T, B, C, H, W]``; every block exchanges spikes; residuals are currents added before a LIF.
* ``snn_mlp``: the full-precision SNN-MLP of Li et al. (CVPR 2022), whose token mixing is a
  LIF run across patches. ``time_steps`` is 1 and all operations are MACs.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from typing import Any

from snn_nas.errors import SnnNasError

SCHEMA_VERSION = 1

FAMILIES = ("spiking", "snn_mlp")
SKIP_SOURCES = ("stage", "block", "bn_spike", "none")
SKIP_PATHS = ("both", "token", "channel")
AXIS_OPS = ("mlp", "group_lif", "none")
SCANS = ("forward", "backward", "both")
LIF_OUTPUTS = ("spike", "real")
IDENTITIES = ("x", "lif_bn", "none")
INPUT_OPS = ("none", "conv2x2", "conv3x3", "conv1x1", "avgpool_conv1x1")
NODE_OPS = ("none", "identity", "conv3x3", "conv1x1")
SURROGATES = ("sigmoid", "atan", "piecewise_quadratic")
RESETS = ("hard", "soft")
MAX_CELL_NODES = 4


MAX_DIM = 16384  # widths beyond any published model (SNN-MLP-B: 1024) by 16x; a typo of 1e9 fails here, not in torch
MAX_DEPTH = 128  # blocks per stage (published: up to 18)
MAX_TIME_STEPS = 256  # time steps (published: 4; conversion-style SNNs use up to a few hundred)
MAX_PATCH_SIZE = 256
MAX_MLP_RATIO = 64.0


class GenotypeError(SnnNasError, ValueError):
    """An invalid genotype; the message names the field and what is allowed."""


def _check_choice(where: str, value: Any, allowed: tuple[Any, ...]) -> None:
    if value not in allowed:
        raise GenotypeError(f"{where}: {value!r} is not allowed; choose one of {list(allowed)}")


def _check_int(where: str, value: Any, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise GenotypeError(f"{where}: expected an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise GenotypeError(f"{where}: {value} is out of range; must be {bound}")


def _check_positive(where: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise GenotypeError(f"{where}: expected a positive finite number, got {value!r}")


def _as_float(obj: Any, name: str) -> None:
    value = getattr(obj, name)
    if isinstance(value, int) and not isinstance(value, bool):
        object.__setattr__(obj, name, float(value))


def _as_tuple(obj: Any, name: str) -> None:
    value = getattr(obj, name)
    if isinstance(value, list):
        object.__setattr__(obj, name, tuple(value))


@dataclass(frozen=True)
class Neuron:
    """LIF neuron of the spiking family (spikingjelly's parameter names)."""

    tau: float = 2.0
    v_threshold: float = 1.0
    reset: str = "hard"  # hard: V = 0 after a spike; soft: V -= v_threshold
    detach_reset: bool = True
    surrogate: str = "sigmoid"
    alpha: float = 4.0

    def __post_init__(self) -> None:
        for name in ("tau", "v_threshold", "alpha"):
            _as_float(self, name)

    def validate(self, where: str = "neuron") -> None:
        _check_positive(f"{where}.tau", self.tau)
        if self.tau < 1.0:
            raise GenotypeError(f"{where}.tau: {self.tau} must be >= 1 (decay 1/tau <= 1)")
        _check_positive(f"{where}.v_threshold", self.v_threshold)
        _check_choice(f"{where}.reset", self.reset, RESETS)
        _check_choice(f"{where}.detach_reset", self.detach_reset, (True, False))
        _check_choice(f"{where}.surrogate", self.surrogate, SURROGATES)
        _check_positive(f"{where}.alpha", self.alpha)


@dataclass(frozen=True)
class AxisMixer:
    """Token mixing along one spatial axis (height or width).

    ``op``: ``mlp`` a dense axial linear map (published Mixer-SNN), ``group_lif`` a patch-axis
    LIF scan in groups of ``group`` positions (0 = the whole axis) in direction ``scan``, with
    ``spike`` or real-valued ``max(u, v_th)`` ``output`` (SNN-MLP), or ``none``. The group
    fields must keep their defaults unless ``op`` is ``group_lif``.
    """

    op: str = "mlp"
    group: int = 0
    scan: str = "forward"
    output: str = "spike"

    def validate(self, where: str) -> None:
        _check_choice(f"{where}.op", self.op, AXIS_OPS)
        _check_int(f"{where}.group", self.group, 0)
        _check_choice(f"{where}.scan", self.scan, SCANS)
        _check_choice(f"{where}.output", self.output, LIF_OUTPUTS)
        if self.op != "group_lif" and (self.group, self.scan, self.output) != (0, "forward", "spike"):
            raise GenotypeError(
                f"{where}: group/scan/output apply only to op 'group_lif'; "
                f"with op {self.op!r} leave them at group=0, scan='forward', output='spike'"
            )
        if self.op == "group_lif" and self.group == 1:
            raise GenotypeError(f"{where}.group: 1 mixes nothing; use 0 (whole axis) or >= 2")

    @property
    def mixes(self) -> bool:
        return self.op != "none"


@dataclass(frozen=True)
class Cell:
    """Patch-encoding DAG of one downsampling step (stride 2, channels ``C_in -> C``).

    Node ``i`` (``0 <= i < k``) has ``C / k`` channels and sums
    ``input_ops[i]`` applied to the cell input (stride 2) and ``node_ops[i][j]`` applied to node
    ``j < i`` (``identity`` adds node j's current; ``conv3x3``/``conv1x1`` act on LIF(node j)).
    The output is the concatenation of the node currents. The published SPE cell is
    ``input_ops=("conv3x3",)*3, node_ops=((), ("conv3x3",), ("identity", "conv3x3"))``; the
    plain 2x2 patch-merging conv is ``input_ops=("conv2x2",), node_ops=((),)``.
    """

    input_ops: tuple[str, ...] = ("conv2x2",)
    node_ops: tuple[tuple[str, ...], ...] = ((),)

    def __post_init__(self) -> None:
        _as_tuple(self, "input_ops")
        object.__setattr__(self, "node_ops", tuple(tuple(row) for row in self.node_ops))

    @property
    def nodes(self) -> int:
        return len(self.input_ops)

    def validate(self, where: str) -> None:
        k = self.nodes
        _check_int(f"{where}.nodes", k, 1, MAX_CELL_NODES)
        if len(self.node_ops) != k:
            raise GenotypeError(f"{where}.node_ops: expected {k} rows (one per node), got {len(self.node_ops)}")
        for i, op in enumerate(self.input_ops):
            _check_choice(f"{where}.input_ops[{i}]", op, INPUT_OPS)
        for i, row in enumerate(self.node_ops):
            if len(row) != i:
                raise GenotypeError(
                    f"{where}.node_ops[{i}]: node {i} takes one edge from each earlier node, "
                    f"so it needs {i} entries, got {len(row)}"
                )
            for j, op in enumerate(row):
                _check_choice(f"{where}.node_ops[{i}][{j}]", op, NODE_OPS)
            if self.input_ops[i] == "none" and all(op == "none" for op in row):
                raise GenotypeError(f"{where}.node{i}: node {i} has no input edge (all edges are 'none')")

    def spiking_nodes(self) -> tuple[int, ...]:
        """Nodes whose spikes feed a later node through a conv edge (they own a LIF)."""
        return tuple(
            j
            for j in range(self.nodes)
            if any(self.node_ops[i][j].startswith("conv") for i in range(j + 1, self.nodes))
        )


@dataclass(frozen=True)
class Stage:
    """One stage: an encoder (stem or downsampling cell), then ``depth`` blocks of width ``dim``.

    ``encoder`` is ``None`` for the first stage (the stem on the analog image) and for every
    stage of the ``snn_mlp`` family (which downsamples by space-to-depth). Skip connections:
    ``skip_source`` is where the residual current comes from (``stage``: the encoder current as
    published, ``block``: chained block to block, ``bn_spike``: ``LIF(BN(x) + F(x))``, ``none``)
    and ``skip_paths`` which paths carry it (``both``, ``token``, ``channel``).
    """

    depth: int
    dim: int
    encoder: Cell | None = None
    token_h: AxisMixer = field(default_factory=AxisMixer)
    token_w: AxisMixer = field(default_factory=AxisMixer)
    identity: str = "x"
    skip_source: str = "stage"
    skip_paths: str = "both"

    def validate(self, where: str, family: str, first: bool) -> None:
        _check_int(f"{where}.depth", self.depth, 1, MAX_DEPTH)
        _check_int(f"{where}.dim", self.dim, 1, MAX_DIM)
        self.token_h.validate(f"{where}.token_h")
        self.token_w.validate(f"{where}.token_w")
        _check_choice(f"{where}.identity", self.identity, IDENTITIES)
        _check_choice(f"{where}.skip_source", self.skip_source, SKIP_SOURCES)
        _check_choice(f"{where}.skip_paths", self.skip_paths, SKIP_PATHS)
        if self.skip_source == "none" and self.skip_paths != "both":
            raise GenotypeError(f"{where}.skip_paths: with skip_source 'none' leave skip_paths at 'both'")
        if family == "snn_mlp":
            if self.encoder is not None:
                raise GenotypeError(
                    f"{where}.encoder: the snn_mlp family downsamples by space-to-depth; set it to null"
                )
            for axis in ("token_h", "token_w"):
                mixer = getattr(self, axis)
                if mixer.op == "group_lif" and mixer.output != "real":
                    raise GenotypeError(f"{where}.{axis}.output: the snn_mlp family needs 'real' (non-spiking)")
            if (self.identity, self.skip_source, self.skip_paths) != ("none", "block", "both"):
                raise GenotypeError(
                    f"{where}: the snn_mlp family uses pre-norm residual blocks; set identity='none', "
                    "skip_source='block', skip_paths='both'"
                )
            if not (self.token_h.mixes or self.token_w.mixes):
                raise GenotypeError(f"{where}: token mixing needs at least one of token_h, token_w")
            return
        if first and self.encoder is not None:
            raise GenotypeError(f"{where}.encoder: the first stage is encoded by the stem; set it to null")
        if not first:
            if self.encoder is None:
                raise GenotypeError(f"{where}.encoder: stages after the first need a patch-encoding cell")
            self.encoder.validate(f"{where}.encoder")
            if self.dim % self.encoder.nodes:
                raise GenotypeError(
                    f"{where}.dim: {self.dim} is not divisible by the encoder's {self.encoder.nodes} nodes"
                )
        if not (self.token_h.mixes or self.token_w.mixes or self.identity != "none"):
            raise GenotypeError(f"{where}: the token block has no branch (identity, token_h and token_w are all none)")


@dataclass(frozen=True)
class Genotype:
    """A whole architecture. Stage ``i > 0`` halves the resolution of stage ``i - 1``."""

    stages: tuple[Stage, ...]
    family: str = "spiking"
    time_steps: int = 4
    patch_size: int = 4
    mlp_ratio: float = 3.0
    neuron: Neuron = field(default_factory=Neuron)
    drop_path: float = 0.0

    def __post_init__(self) -> None:
        _as_tuple(self, "stages")
        _as_float(self, "mlp_ratio")
        _as_float(self, "drop_path")
        self.validate()

    # ---------------------------------------------------------------- validation
    def validate(self) -> None:
        _check_choice("family", self.family, FAMILIES)
        _check_int("time_steps", self.time_steps, 1, MAX_TIME_STEPS)
        _check_int("patch_size", self.patch_size, 1, MAX_PATCH_SIZE)
        _check_positive("mlp_ratio", self.mlp_ratio)
        if self.mlp_ratio > MAX_MLP_RATIO:
            raise GenotypeError(f"mlp_ratio: {self.mlp_ratio:g} is out of range; must be <= {MAX_MLP_RATIO:g}")
        if not isinstance(self.drop_path, float) or not 0.0 <= self.drop_path < 1.0:
            raise GenotypeError(f"drop_path: {self.drop_path!r} must be in [0, 1)")
        if not isinstance(self.stages, tuple) or not 1 <= len(self.stages) <= 4:
            got = len(self.stages) if isinstance(self.stages, tuple) else repr(self.stages)
            raise GenotypeError(f"stages: need 1 to 4 stages, got {got}")
        if not isinstance(self.neuron, Neuron):
            raise GenotypeError("neuron: expected a Neuron")
        self.neuron.validate()
        if self.family == "snn_mlp" and self.time_steps != 1:
            raise GenotypeError("time_steps: the snn_mlp family is not spiking; time_steps must be 1")
        for i, stage in enumerate(self.stages):
            if not isinstance(stage, Stage):
                raise GenotypeError(f"stages[{i}]: expected a Stage")
            stage.validate(f"stages[{i}]", self.family, first=i == 0)
            hidden = int(stage.dim * self.mlp_ratio)  # the channel MLP's width (snn_nas.layers)
            if hidden < 1:
                raise GenotypeError(
                    f"mlp_ratio: {self.mlp_ratio:g} x stages[{i}].dim {stage.dim} = {stage.dim * self.mlp_ratio:g} "
                    f"gives 0 hidden channels (a zero-wide channel MLP); use mlp_ratio >= {1 / stage.dim:g} "
                    "or a wider stage"
                )

    # ---------------------------------------------------------------- accessors
    @property
    def depths(self) -> tuple[int, ...]:
        return tuple(s.depth for s in self.stages)

    @property
    def dims(self) -> tuple[int, ...]:
        return tuple(s.dim for s in self.stages)

    @property
    def is_spiking(self) -> bool:
        return self.family == "spiking"

    def resolutions(self, image_size: int) -> tuple[int, ...]:
        """Token-grid side length of every stage for a square input of ``image_size``."""
        sides = [image_size // self.patch_size]
        for _ in self.stages[1:]:
            sides.append(-(-sides[-1] // 2))
        return tuple(sides)

    def check_image_size(self, image_size: int) -> None:
        """Raise if the genotype cannot run on ``image_size`` inputs: smaller than one patch.

        A group LIF whose ``group`` exceeds its stage's side is not an error: as in the
        published SNN-MLP kernel, positions beyond the last whole group (here: all of them) pass
        through unchanged, so the published models run at 32 px. A search space still rules such
        degenerate choices out (``snn_nas.space``).
        """
        if isinstance(image_size, bool) or not isinstance(image_size, int):
            raise GenotypeError(f"image_size: expected an integer, got {image_size!r}")
        if image_size < self.patch_size:
            raise GenotypeError(f"image_size: {image_size} is smaller than patch_size {self.patch_size}")

    def summary(self) -> str:
        """A one-line human description, e.g. for plot hovers."""
        parts = [f"{self.family} T={self.time_steps} p={self.patch_size} r={self.mlp_ratio:g}"]
        for i, s in enumerate(self.stages):
            enc = "stem" if s.encoder is None else f"cell{s.encoder.nodes}"
            mix = "/".join(
                m.op if m.op != "group_lif" else f"lif{m.group or 'all'}{m.scan[0]}{m.output[0]}"
                for m in (s.token_h, s.token_w)
            )
            parts.append(f"s{i + 1}:{s.depth}x{s.dim} {enc} {mix} id={s.identity} skip={s.skip_source}/{s.skip_paths}")
        return "; ".join(parts)

    def canonical(self, image_size: int | None = None) -> Genotype:
        """The canonical representative of the genotypes that build the same network as this one.

        Two genotypes build the same network when, built from the same seed, they create the same
        parameters (names, shapes, initial values) and compute the same outputs and the same
        gradients in train and eval mode. ``canonical`` applies only rewrites that never change the
        built network, so that such genotypes share one ``key()``; the search-space decoder returns
        canonical genotypes (``experiments/benchmarks/duplicates.py`` checks the shipped spaces for
        equal networks under different keys). Structural rules, always applied:

        1. ``skip_source`` ``block`` -> ``stage`` in a ``spiking`` stage of depth 1 (any
           ``skip_paths``). Both start from the encoder current, ``r_0 = h``; they differ only in
           the residual a block hands to the next block of its stage (``r_1 = u_ch`` versus
           ``h``), and the residual of a stage's last block is discarded. No module depends on the
           choice. ``stage`` is the published name.
        2. ``drop_path`` -> 0 when the network has one block in all: the rates rise linearly from 0
           over the blocks (``drop_path_rates``), so a lone block gets rate 0 and no ``DropPath``.

        Rules at ``image_size``, for a ``group_lif`` token mixer on a stage whose token grid has
        side ``n`` (``resolutions(image_size)``):

        3. ``group == n`` -> ``group = 0`` (whole axis): one group of ``n`` steps and no trailing
           positions either way (the same kernel call).
        4. ``group > n`` -> ``group = n + 1``, ``scan = 'forward'``, ``output`` ``spike`` (spiking
           family) or ``real`` (``snn_mlp``): no group fits, so every position passes through
           unchanged (gradient 1 to ``x``, 0 to ``tau`` and ``v_th``) whatever the group, scan and
           output (the builder accepts such groups; a search space rules them out).
        5. ``n == 1`` (so ``group`` is 0 after rule 3) -> ``scan = 'forward'``: a one-step scan
           visits the same position in both directions, and ``both`` gives ``(f + f) / 2 = f``
           exactly in floating point (doubling and halving are exact, as are the halved gradients
           summed back).

        Not rewritten: rules that would hold only at one number of time steps (e.g. the reset mode
        at ``T = 1``), because a model's ``time_steps`` may be lowered after building or overridden
        by a ``[T, ...]`` input; cells that differ by a permutation of their nodes (the same
        architecture up to a channel permutation, but the same seed gives them different initial
        weights). The image-size rules hold at ``image_size`` only: a canonical genotype built at
        another size may differ from the original there.

        Idempotent: ``g.canonical(n).canonical(n) == g.canonical(n)``. Raises ``GenotypeError`` for
        an ``image_size`` smaller than ``patch_size``.
        """
        if image_size is None:
            sides: tuple[int | None, ...] = (None,) * len(self.stages)
        else:
            _check_int("image_size", image_size, self.patch_size)
            sides = self.resolutions(image_size)
        stages = tuple(canonical_stage(s, self.family, side) for s, side in zip(self.stages, sides, strict=True))
        drop_path = 0.0 if sum(self.depths) == 1 else self.drop_path
        if stages == self.stages and drop_path == self.drop_path:
            return self
        return _replace(self, stages=stages, drop_path=drop_path)

    # ---------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA_VERSION, **_to_primitive(self)}

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=indent)

    def key(self) -> str:
        """A stable 12-hex-digit hash of the architecture."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Genotype:
        """Rebuild a genotype from ``to_dict`` output (or hand-written JSON); validates."""
        if not isinstance(data, dict):
            raise GenotypeError(f"genotype: expected a mapping, got {type(data).__name__}")
        data = dict(data)
        schema = data.pop("schema", SCHEMA_VERSION)
        if schema != SCHEMA_VERSION:
            raise GenotypeError(f"schema: version {schema!r} is not supported (this snn-nas reads {SCHEMA_VERSION})")
        _check_keys("genotype", data, cls)
        if "stages" not in data:
            raise GenotypeError("genotype: missing required field 'stages'")
        stages = data.pop("stages")
        if not isinstance(stages, (list, tuple)):
            raise GenotypeError("stages: expected a list of stages")
        neuron = data.pop("neuron", {})
        _check_keys("neuron", neuron, Neuron)
        return cls(
            stages=tuple(_stage_from_dict(f"stages[{i}]", s) for i, s in enumerate(stages)),
            neuron=Neuron(**neuron),
            **data,
        )

    @classmethod
    def from_json(cls, text: str) -> Genotype:
        """Rebuild a genotype from JSON text, read strictly (no duplicate keys, no NaN/Infinity)."""
        from snn_nas.jsonutil import loads_strict

        if not isinstance(text, (str, bytes, bytearray)):
            raise GenotypeError(f"genotype JSON: expected text, got {type(text).__name__}")
        return cls.from_dict(loads_strict(text, "genotype JSON is malformed", error=GenotypeError))


def _check_keys(where: str, data: Any, cls: type) -> None:
    if not isinstance(data, dict):
        raise GenotypeError(f"{where}: expected a mapping, got {type(data).__name__}")
    allowed = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise GenotypeError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(allowed)}")


def _stage_from_dict(where: str, data: Any) -> Stage:
    _check_keys(where, data, Stage)
    data = dict(data)
    for axis in ("token_h", "token_w"):
        if axis in data:
            _check_keys(f"{where}.{axis}", data[axis], AxisMixer)
            data[axis] = AxisMixer(**data[axis])
    encoder = data.get("encoder")
    if encoder is not None:
        _check_keys(f"{where}.encoder", encoder, Cell)
        data["encoder"] = Cell(**encoder)
    missing = [name for name in ("depth", "dim") if name not in data]
    if missing:
        raise GenotypeError(f"{where}: missing required field(s) {missing}")
    return Stage(**data)


def _to_primitive(obj: Any) -> Any:
    if hasattr(obj, "__dataclass_fields__"):
        return {f.name: _to_primitive(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, tuple):
        return [_to_primitive(v) for v in obj]
    return obj


# ---------------------------------------------------------------- canonical forms (Genotype.canonical)
def _replace(obj: Any, **changes: Any) -> Any:
    """A copy of the frozen dataclass ``obj`` with ``changes`` (validated by its constructor)."""
    return type(obj)(**{**{f.name: getattr(obj, f.name) for f in fields(obj)}, **changes})


def canonical_skip(depth: int, skip_source: str, skip_paths: str, family: str = "spiking") -> tuple[str, str]:
    """Canonical ``(skip_source, skip_paths)`` of a stage of ``depth`` blocks (rule 1 of
    ``Genotype.canonical``: ``block`` -> ``stage`` in a spiking stage of one block)."""
    if family == "spiking" and depth == 1 and skip_source == "block":
        return "stage", skip_paths
    return skip_source, skip_paths


def canonical_mixer(mixer: AxisMixer, side: int | None, family: str = "spiking") -> AxisMixer:
    """Canonical token mixer on an axis of ``side`` positions (rules 3-5 of ``Genotype.canonical``;
    ``side=None``: unknown image size, returned unchanged)."""
    if mixer.op != "group_lif" or side is None:
        return mixer
    if mixer.group > side:  # rule 4: every position passes through
        return AxisMixer("group_lif", side + 1, "forward", "real" if family == "snn_mlp" else "spike")
    group = 0 if mixer.group == side else mixer.group  # rule 3
    scan = "forward" if group == 0 and side == 1 else mixer.scan  # rule 5
    if (group, scan) == (mixer.group, mixer.scan):
        return mixer
    return AxisMixer("group_lif", group, scan, mixer.output)


def canonical_stage(stage: Stage, family: str, side: int | None) -> Stage:
    """``stage`` with its canonical skips and token mixers (``side``: its token-grid side, or None)."""
    source, paths = canonical_skip(stage.depth, stage.skip_source, stage.skip_paths, family)
    token_h, token_w = canonical_mixer(stage.token_h, side, family), canonical_mixer(stage.token_w, side, family)
    if (source, paths, token_h, token_w) == (stage.skip_source, stage.skip_paths, stage.token_h, stage.token_w):
        return stage
    return _replace(stage, skip_source=source, skip_paths=paths, token_h=token_h, token_w=token_w)
