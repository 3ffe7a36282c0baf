"""Samples <-> genotypes: ``decode`` (with the checks that name the offending label) and its
inverse ``encode`` for members of a space.

``decode`` returns canonical genotypes (``Genotype.canonical`` at the space's ``image_size``), so
samples that build the same network share one key; ``encode`` maps any member (canonical or not)
to the sample of its canonical genotype, preferring the canonical value of a label and otherwise
the first choice equivalent to it (``stage2.skip_source: block`` when a space offers no
``stage`` for a depth-1 stage)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from snn_nas.genotype import AxisMixer, Cell, Genotype, GenotypeError, Neuron, Stage
from snn_nas.space.dimension import LabelledSpace, SpaceError, format_value, same_value

NEURON_FIELDS = ("tau", "v_threshold", "surrogate", "alpha", "reset", "detach_reset")


def stage_sides(image_size: int, patch_size: int, num_stages: int) -> tuple[int, ...]:
    """Token-grid side of every stage (as ``Genotype.resolutions``): ``image // patch``, then
    halved (rounding up) at every downsampling step."""
    sides = [image_size // patch_size]
    for _ in range(num_stages - 1):
        sides.append(-(-sides[-1] // 2))
    return tuple(sides)


def scaled_width(base: int, mult: float) -> int | None:
    """``base x mult`` channels, or None when that is not a whole number."""
    width = base * mult
    return int(width) if float(width).is_integer() else None


def _choices_text(choices: tuple[Any, ...]) -> str:
    return "[" + ", ".join(format_value(c) for c in choices) + "]"


def resolve_values(space: LabelledSpace, sample: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``sample`` and return the value of every active label, fixed ones included.

    Labels present but inactive are ignored; unknown labels, missing active labels and values
    outside the choices raise ``SpaceError`` naming the label.
    """
    where = f"space {space.name!r}"
    if not isinstance(sample, Mapping):
        raise SpaceError(f"{where}: a sample is a mapping {{label: value}}, got {type(sample).__name__}")
    by_label = space.by_label
    for label in sample:
        if label not in by_label:
            known = ", ".join(d.label for d in space.dimensions)
            raise SpaceError(f"{where}: unknown label {label!r}; searchable labels: {known}")
    values: dict[str, Any] = {}
    for dim in space.all_dimensions:
        if not dim.is_active(values):
            continue
        if dim.label not in sample:
            if not dim.fixed:
                why = "" if not dim.condition else f" (active because {dim.condition_text})"
                raise SpaceError(f"{where}: {dim.label}: missing from the sample{why}")
            values[dim.label] = dim.choices[0]
            continue
        index = dim.index(sample[dim.label])
        if index is None:
            raise SpaceError(
                f"{where}: {dim.label}: {sample[dim.label]!r} is not allowed; "
                f"choose one of {_choices_text(dim.choices)}"
            )
        values[dim.label] = dim.choices[index]
    return values


def _mixer(values: dict[str, Any], prefix: str) -> AxisMixer:
    op = values[f"{prefix}.op"]
    if op != "group_lif":
        return AxisMixer(op=op)
    return AxisMixer(op, values[f"{prefix}.group"], values[f"{prefix}.scan"], values[f"{prefix}.output"])


def _width(space: LabelledSpace, values: dict[str, Any], s: int) -> int:
    p = f"stage{s}."
    if p + "dim" in values:
        return values[p + "dim"]
    base, mult = values["base_dim"], values[p + "width_mult"]
    width = scaled_width(base, mult)
    if width is None:
        raise SpaceError(
            f"space {space.name!r}: {p}width_mult: base_dim {base} x {format_value(mult)} = {base * mult:g} "
            "is not a whole number of channels"
        )
    return width


def _cell(space: LabelledSpace, values: dict[str, Any], s: int, width: int) -> Cell:
    p = f"stage{s}.cell."
    nodes = values[p + "nodes"]
    if width % nodes:
        raise SpaceError(
            f"space {space.name!r}: {p}nodes: {nodes} nodes do not divide the stage width {width} "
            "(every node gets width / nodes channels); choose a node count that divides it"
        )
    inputs = tuple(values[f"{p}node{i}.in"] for i in range(nodes))
    edges = tuple(tuple(values[f"{p}node{i}.from{j}"] for j in range(i)) for i in range(nodes))
    for i in range(nodes):
        if inputs[i] == "none" and all(op == "none" for op in edges[i]):
            also = f" and every {p}node{i}.from<j>" if i else ""
            raise SpaceError(
                f"space {space.name!r}: {p}node{i}: node {i} has no input ({p}node{i}.in{also} are 'none')"
            )
    return Cell(input_ops=inputs, node_ops=edges)


def decode(space: LabelledSpace, sample: Mapping[str, Any], *, canonical: bool = True) -> Genotype:
    """The genotype of ``sample``; ``SpaceError`` naming the label for invalid combinations.

    ``canonical``: return ``genotype.canonical(space.image_size)`` (the default), so that samples
    building the same network share a key; ``False`` returns the genotype the labels spell out.
    """
    values = resolve_values(space, sample)
    where = f"space {space.name!r}"
    n, patch = values["num_stages"], values["patch_size"]
    if patch > space.image_size:
        raise SpaceError(f"{where}: patch_size: {patch} is larger than the space's image_size {space.image_size}")
    sides = stage_sides(space.image_size, patch, n)
    spiking = space.family == "spiking"
    stages = []
    for s in range(1, n + 1):
        p = f"stage{s}."
        width = _width(space, values, s)
        mixers = {axis: _mixer(values, p + axis) for axis in ("token_h", "token_w")}
        for axis, mixer in mixers.items():
            if mixer.op == "group_lif" and mixer.group > sides[s - 1]:
                raise SpaceError(
                    f"{where}: {p}{axis}.group: {mixer.group} exceeds the {sides[s - 1]} positions of stage {s} "
                    f"at image size {space.image_size} (patch {patch}); use a group <= {sides[s - 1]} or 0 (whole axis)"
                )
        no_mixing = all(m.op == "none" for m in mixers.values())
        if spiking:
            identity, source = values[p + "identity"], values[p + "skip_source"]
            paths = values[p + "skip_paths"] if source != "none" else "both"
            if no_mixing and identity == "none":
                raise SpaceError(
                    f"{where}: {p}identity: the token block has no branch ({p}identity, {p}token_h.op and "
                    f"{p}token_w.op are all 'none')"
                )
            encoder = _cell(space, values, s, width) if s > 1 else None
        else:
            identity, source, paths, encoder = "none", "block", "both", None
            if no_mixing:
                raise SpaceError(
                    f"{where}: {p}token_h.op: token mixing needs token_h.op or token_w.op other than 'none'"
                )
        stages.append(
            Stage(
                depth=values[p + "depth"],
                dim=width,
                encoder=encoder,
                token_h=mixers["token_h"],
                token_w=mixers["token_w"],
                identity=identity,
                skip_source=source,
                skip_paths=paths,
            )
        )
    neuron = Neuron(**{k: values[f"neuron.{k}"] for k in NEURON_FIELDS}) if spiking else Neuron()
    try:
        genotype = Genotype(
            stages=tuple(stages),
            family=space.family,
            time_steps=values["time_steps"],
            patch_size=patch,
            mlp_ratio=values["mlp_ratio"],
            neuron=neuron,
            drop_path=float(values["drop_path"]),
        )
    except GenotypeError as exc:
        raise SpaceError(f"{where}: the sample does not decode to a valid genotype: {exc}") from None
    return genotype.canonical(space.image_size) if canonical else genotype


def _candidates(g: Genotype) -> dict[str, Any]:
    """The value every label would need for ``g`` (base_dim / width_mult excluded)."""
    values: dict[str, Any] = {
        "time_steps": g.time_steps,
        "patch_size": g.patch_size,
        "mlp_ratio": g.mlp_ratio,
        "drop_path": g.drop_path,
        "num_stages": len(g.stages),
        **{f"neuron.{k}": getattr(g.neuron, k) for k in NEURON_FIELDS},
    }
    for s, stage in enumerate(g.stages, start=1):
        p = f"stage{s}."
        values[p + "depth"] = stage.depth
        values[p + "dim"] = stage.dim
        values[p + "identity"] = stage.identity
        values[p + "skip_source"] = stage.skip_source
        values[p + "skip_paths"] = stage.skip_paths
        for axis in ("token_h", "token_w"):
            mixer = getattr(stage, axis)
            for name in ("op", "group", "scan", "output"):
                values[f"{p}{axis}.{name}"] = getattr(mixer, name)
        if stage.encoder is not None:
            cell = stage.encoder
            values[p + "cell.nodes"] = cell.nodes
            for i in range(cell.nodes):
                values[f"{p}cell.node{i}.in"] = cell.input_ops[i]
                for j in range(i):
                    values[f"{p}cell.node{i}.from{j}"] = cell.node_ops[i][j]
    return values


def _factor_widths(space: LabelledSpace, g: Genotype, fail: Any) -> dict[str, Any]:
    """``base_dim`` and ``stage<s>.width_mult`` values reproducing the widths of ``g``."""
    by_label = space.by_label
    scaled = [s for s in range(1, len(g.stages) + 1) if f"stage{s}.width_mult" in by_label]
    if not scaled:
        return {}
    for base in by_label["base_dim"].choices:
        found: dict[str, Any] = {"base_dim": base}
        for s in scaled:
            label = f"stage{s}.width_mult"
            mults = [m for m in by_label[label].choices if scaled_width(base, m) == g.stages[s - 1].dim]
            if not mults:
                break
            found[label] = mults[0]
        else:
            return found
    widths = [g.stages[s - 1].dim for s in scaled]
    raise fail(
        "base_dim",
        f"the widths {widths} of stages {scaled} are not base_dim x width_mult for any base_dim in "
        f"{_choices_text(by_label['base_dim'].choices)} with the width_mult choices of those stages",
    )


def _with_value(g: Genotype, label: str, value: Any) -> Genotype | None:
    """``g`` with the gene behind ``label`` set to ``value``, for the labels a canonical rewrite
    touches (``drop_path``, a stage's skips, a group LIF's group / scan / output); None for other
    labels or when the result is not a valid genotype."""
    parts = label.split(".")
    try:
        if label == "drop_path":
            return replace(g, drop_path=float(value))
        if len(parts) < 2 or not parts[0].startswith("stage") or not parts[0][5:].isdigit():
            return None
        s = int(parts[0][5:]) - 1
        stage = g.stages[s]
        if parts[1:] in (["skip_source"], ["skip_paths"]):
            stage = replace(stage, **{parts[1]: value})
        elif len(parts) == 3 and parts[1] in ("token_h", "token_w") and parts[2] in ("group", "scan", "output"):
            stage = replace(stage, **{parts[1]: replace(getattr(stage, parts[1]), **{parts[2]: value})})
        else:
            return None
        return replace(g, stages=(*g.stages[:s], stage, *g.stages[s + 1 :]))
    except (GenotypeError, IndexError, TypeError, ValueError):
        return None


def _pick(dim: Any, value: Any, canonical: Genotype, image_size: int) -> Any:
    """The choice of ``dim`` that spells ``value`` of the canonical genotype: ``value`` itself, else
    the first choice that ``Genotype.canonical`` maps to the same genotype; None if none does."""
    index = dim.index(value)
    if index is not None:
        return dim.choices[index]
    for choice in dim.choices:
        other = _with_value(canonical, dim.label, choice)
        if other is not None and other.canonical(image_size) == canonical:
            return choice
    return None


def encode(space: LabelledSpace, g: Genotype) -> dict[str, Any]:
    """The sample (active searchable labels) that decodes to ``g.canonical(space.image_size)``;
    ``SpaceError`` if none does. ``g`` itself may be canonical or not (a depth-1 stage with
    ``skip_source`` ``block``, a group equal to its stage's side, ...)."""
    if not isinstance(g, Genotype):
        raise SpaceError(f"space {space.name!r}: encode needs a Genotype, got {type(g).__name__}")

    def fail(label: str, message: str) -> SpaceError:
        return SpaceError(f"genotype {g.key()} is not in space {space.name!r}: {label}: {message}")

    if g.family != space.family:
        raise fail("family", f"{g.family!r} but the space is of family {space.family!r}")
    try:
        canonical = g.canonical(space.image_size)
    except GenotypeError as exc:
        raise fail("patch_size", str(exc)) from None
    wanted = _candidates(canonical)
    wanted.update(_factor_widths(space, canonical, fail))
    values: dict[str, Any] = {}
    for dim in space.all_dimensions:
        if not dim.is_active(values):
            continue
        if dim.label not in wanted:
            raise fail(dim.label, "the genotype has no such part")
        choice = _pick(dim, wanted[dim.label], canonical, space.image_size)
        if choice is None:
            raise fail(dim.label, f"{format_value(wanted[dim.label])} is not one of {_choices_text(dim.choices)}")
        values[dim.label] = choice
    sample = {d.label: values[d.label] for d in space.dimensions if d.label in values}
    try:
        back = decode(space, sample)
    except SpaceError as exc:
        raise fail("sample", str(exc)) from None
    if back != canonical:
        differs = [
            k
            for k in ("family", "time_steps", "neuron", "drop_path", "stages")
            if getattr(back, k) != getattr(canonical, k)
        ]
        raise fail(", ".join(differs), "fixed by the space to other values (e.g. " + back.summary() + ")")
    return sample


def same_sample(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Equal label sets and values (``3 == 3.0``, ``True != 1``)."""
    return set(a) == set(b) and all(same_value(a[k], b[k]) for k in a)
