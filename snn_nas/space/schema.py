"""Reading a space file: its keys, the checks on every value, defaults, and the dimensions.

File layout (every dimension is a single value or ``{choice: [...]}``)::

    name: quick                      # optional, default: the file name
    description: ...                 # optional
    image_size: 32                   # required: the resolution the space is meant for
    family: spiking                  # spiking (default) | snn_mlp
    time_steps / patch_size / mlp_ratio / drop_path / num_stages (required) / base_dim
    neuron: {tau, v_threshold, surrogate, alpha, reset, detach_reset}     # spiking only
    stage_defaults: {...}            # a stage section applied to every stage
    stage1: {...} ... stage4: {...}  # per-stage sections; they win over stage_defaults

A stage section holds ``depth``, a width (``dim``, or ``width_mult`` times ``base_dim``),
``identity``, ``skip_source``, ``skip_paths``, ``token_h`` / ``token_w`` (``op``, ``group``,
``scan``, ``output``) and, for stages 2-4, ``cell`` (``nodes``, ``in``: every node's input edge,
``from``: every edge between nodes, and ``node<i>: {in, from, from<j>}`` for single nodes; the
most specific key of a section wins, and a stage section wins over stage_defaults).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from snn_nas.genotype import (
    AXIS_OPS,
    FAMILIES,
    IDENTITIES,
    INPUT_OPS,
    LIF_OUTPUTS,
    MAX_CELL_NODES,
    MAX_DEPTH,
    MAX_DIM,
    MAX_PATCH_SIZE,
    MAX_TIME_STEPS,
    NODE_OPS,
    RESETS,
    SCANS,
    SKIP_PATHS,
    SKIP_SOURCES,
    SURROGATES,
    Neuron,
)
from snn_nas.space.dimension import PRIMITIVES, Clause, Dimension, SpaceError, format_value, same_value

Check = Callable[[Any], "str | None"]
MAX_STAGES = 4
STAGE_SECTIONS = tuple(f"stage{s}" for s in range(1, MAX_STAGES + 1))
GLOBAL_KEYS = ("time_steps", "patch_size", "mlp_ratio", "drop_path", "num_stages", "base_dim")
NEURON_KEYS = ("tau", "v_threshold", "surrogate", "alpha", "reset", "detach_reset")
TOP_KEYS = ("name", "description", "image_size", "family", *GLOBAL_KEYS, "neuron", "stage_defaults", *STAGE_SECTIONS)
SPIKING_ONLY = ("identity", "skip_source", "skip_paths", "cell")
MIXER_KEYS = ("op", "group", "scan", "output")
CELL_KEYS = ("nodes", "in", "from", *(f"node{i}" for i in range(MAX_CELL_NODES)))
_DEFAULT = "(default)"


def _one_of(options: tuple[Any, ...]) -> Check:
    def check(value: Any) -> str | None:
        if any(same_value(value, o) for o in options):
            return None
        return f"one of [{', '.join(format_value(o) for o in options)}]"

    return check


def _integer(low: int, high: int | None = None, forbid: tuple[int, ...] = ()) -> Check:
    text = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
    if forbid:
        text += f" other than {', '.join(map(str, forbid))}"

    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return text
        if value < low or (high is not None and value > high) or value in forbid:
            return text
        return None

    return check


def _number(low: float, *, low_open: bool, high: float | None = None) -> Check:
    text = f"a finite number {'>' if low_open else '>='} {low:g}" + ("" if high is None else f" and < {high:g}")

    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return text
        if value < low or (low_open and value == low) or (high is not None and value >= high):
            return text
        return None

    return check


GLOBAL_CHECKS: dict[str, Check] = {
    "time_steps": _integer(1, MAX_TIME_STEPS),
    "patch_size": _integer(1, MAX_PATCH_SIZE),
    "mlp_ratio": _number(0, low_open=True),
    "drop_path": _number(0, low_open=False, high=1),
    "num_stages": _integer(1, MAX_STAGES),
    "base_dim": _integer(1, MAX_DIM),
}
NEURON_CHECKS: dict[str, Check] = {
    "tau": _number(1, low_open=False),
    "v_threshold": _number(0, low_open=True),
    "surrogate": _one_of(SURROGATES),
    "alpha": _number(0, low_open=True),
    "reset": _one_of(RESETS),
    "detach_reset": _one_of((True, False)),
}
STAGE_CHECKS: dict[str, Check] = {
    "depth": _integer(1, MAX_DEPTH),
    "dim": _integer(1, MAX_DIM),
    "width_mult": _number(0, low_open=True),
    "identity": _one_of(IDENTITIES),
    "skip_source": _one_of(SKIP_SOURCES),
    "skip_paths": _one_of(SKIP_PATHS),
}
MIXER_CHECKS: dict[str, Check] = {
    "op": _one_of(AXIS_OPS),
    "group": _integer(0, forbid=(1,)),
    "scan": _one_of(SCANS),
    "output": _one_of(LIF_OUTPUTS),
}
INPUT_CHECK = _one_of(INPUT_OPS)
EDGE_CHECK = _one_of(NODE_OPS)

Spec = tuple[tuple[Any, ...], str]  # (choices, key in the file)


class _Reader:
    """Checks raw YAML values; every error names the file and the key."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, message: str) -> SpaceError:
        return SpaceError(f"{self.source}: {key}: {message}")

    def mapping(self, key: str, raw: Any, allowed: tuple[str, ...], family: str = "spiking") -> Mapping[str, Any]:
        if not isinstance(raw, Mapping):
            raise self.fail(key, f"expected a mapping with keys among [{', '.join(allowed)}], got {raw!r}")
        for name in raw:
            where = f"{key}.{name}" if key else str(name)
            if family == "snn_mlp" and name in (*SPIKING_ONLY, "neuron"):
                raise self.fail(where, "does not apply to family snn_mlp (pre-norm residual blocks, no spiking cells)")
            if name not in allowed:
                raise self.fail(where, f"unknown key; allowed here: [{', '.join(allowed)}]")
        return raw

    def spec(self, key: str, raw: Any, check: Check) -> Spec:
        """``raw`` is one value (fixed) or ``{choice: [v, ...]}``; returns the checked choices."""
        if isinstance(raw, Mapping):
            if set(raw) != {"choice"}:
                extra = sorted(map(str, set(raw) - {"choice"}))
                raise self.fail(key, f"a dimension is one value or {{choice: [...]}}; unexpected key(s) {extra}")
            values = raw["choice"]
            if not isinstance(values, list):
                raise self.fail(key, f"choice must be a list of values, got {values!r}")
            if not values:
                raise self.fail(key, "the choice list is empty; give at least one value")
        elif isinstance(raw, list):
            raise self.fail(key, f"a bare list is ambiguous; write {{choice: {raw!r}}} to search over the values")
        else:
            values = [raw]
        for value in values:
            if not isinstance(value, PRIMITIVES):
                raise self.fail(key, f"{value!r} is not a single value (number, string or boolean)")
            allowed = check(value)
            if allowed is not None:
                raise self.fail(key, f"{value!r} is not allowed; expected {allowed}")
        for i, value in enumerate(values):
            if any(same_value(value, other) for other in values[:i]):
                raise self.fail(key, f"{value!r} is listed twice")
        return tuple(values), key


def _read_stage_section(r: _Reader, key: str, raw: Any, family: str) -> dict[str, Spec]:
    """Flatten a stage section to ``{relative key: (choices, file key)}``."""
    allowed = tuple(
        k for k in (*STAGE_CHECKS, "token_h", "token_w", "cell") if family == "spiking" or k not in SPIKING_ONLY
    )
    section = r.mapping(key, {} if raw is None else raw, allowed, family)  # "stage2:" alone is empty
    out: dict[str, Spec] = {}
    for name, value in section.items():
        path = f"{key}.{name}"
        if name in ("token_h", "token_w"):
            for k, v in r.mapping(path, value, MIXER_KEYS).items():
                check = _one_of(("real",)) if family == "snn_mlp" and k == "output" else MIXER_CHECKS[k]
                out[f"{name}.{k}"] = r.spec(f"{path}.{k}", v, check)
        elif name == "cell":
            if key == "stage1":
                raise r.fail(path, "stage1 is encoded by the stem (see patch_size); a cell applies to stages 2-4")
            for k, v in r.mapping(path, value, CELL_KEYS).items():
                if k == "nodes":
                    out["cell.nodes"] = r.spec(f"{path}.nodes", v, _integer(1, MAX_CELL_NODES))
                elif k in ("in", "from"):
                    out[f"cell.{k}"] = r.spec(f"{path}.{k}", v, INPUT_CHECK if k == "in" else EDGE_CHECK)
                else:
                    i = int(k[len("node") :])
                    node_keys = ("in", "from", *(f"from{j}" for j in range(i)))
                    for nk, nv in r.mapping(f"{path}.{k}", v, node_keys).items():
                        check = INPUT_CHECK if nk == "in" else EDGE_CHECK
                        out[f"cell.{k}.{nk}"] = r.spec(f"{path}.{k}.{nk}", nv, check)
        else:
            out[name] = r.spec(path, value, STAGE_CHECKS[name])
    return out


def _stage_dimensions(
    r: _Reader, s: int, own: dict[str, Spec], defaults: dict[str, Spec], family: str
) -> tuple[list[Dimension], bool]:
    """Dimensions of stage ``s`` (1-based) and whether its width is ``base_dim x width_mult``."""
    p = f"stage{s}."
    staged = (Clause("num_stages", ">=", s),) if s > 1 else ()
    dims: list[Dimension] = []

    def pick(*keys: str, default: Any = None) -> Spec | None:
        for section in (own, defaults):
            for k in keys:
                if k in section:
                    return section[k]
        return None if default is None else ((default,), _DEFAULT)

    def add(label: str, spec: Spec, extra: tuple[Clause, ...] = ()) -> Dimension:
        dim = Dimension(p + label, spec[0], staged + extra, spec[1])
        dims.append(dim)
        return dim

    depth = pick("depth")
    if depth is None:
        raise r.fail(f"stage{s}.depth", f"missing; give depth in stage{s} or in stage_defaults")
    add("depth", depth)
    for section, where in ((own, f"stage{s}"), (defaults, "stage_defaults")):
        if "dim" in section and "width_mult" in section:
            raise r.fail(where, "give either dim or width_mult (times base_dim), not both")
    width = "dim" if "dim" in own else "width_mult" if "width_mult" in own else None
    width = width or ("dim" if "dim" in defaults else "width_mult" if "width_mult" in defaults else None)
    if width is None:
        raise r.fail(f"stage{s}", "missing a width; give dim, or width_mult with a top-level base_dim")
    add(width, pick(width))
    if family == "spiking":
        add("identity", pick("identity", default="x"))
        add("skip_source", pick("skip_source", default="stage"))
        add("skip_paths", pick("skip_paths", default="both"), (Clause(p + "skip_source", "!=", "none"),))
    for axis in ("token_h", "token_w"):
        add(f"{axis}.op", pick(f"{axis}.op", default="mlp"))
        lif = (Clause(f"{p}{axis}.op", "==", "group_lif"),)
        add(f"{axis}.group", pick(f"{axis}.group", default=0), lif)
        add(f"{axis}.scan", pick(f"{axis}.scan", default="forward"), lif)
        add(f"{axis}.output", pick(f"{axis}.output", default="spike" if family == "spiking" else "real"), lif)
    if family == "spiking" and s > 1:
        nodes = add("cell.nodes", pick("cell.nodes", default=1))
        max_nodes = max(nodes.choices)
        for k in own:
            if k.startswith("cell.node") and k != "cell.nodes" and int(k.split(".")[1][4:]) >= max_nodes:
                raise r.fail(own[k][1], f"node {k.split('.')[1][4:]} does not exist: cell.nodes is at most {max_nodes}")
        for i in range(max_nodes):
            node = f"cell.node{i}"
            extra = (Clause(p + "cell.nodes", ">=", i + 1),) if i > 0 else ()
            add(f"{node}.in", pick(f"{node}.in", "cell.in", default="conv2x2"), extra)
            for j in range(i):
                add(f"{node}.from{j}", pick(f"{node}.from{j}", f"{node}.from", "cell.from", default="none"), extra)
    return dims, width == "width_mult"


def _fold(dims: list[Dimension]) -> tuple[Dimension, ...]:
    """Resolve clauses on fixed labels: drop clauses that always hold, and the dimensions that
    can never be active (e.g. ``group`` when ``op`` is fixed to ``mlp``)."""
    live: dict[str, Dimension] = {}
    for dim in dims:
        kept: list[Clause] = []
        dead = False
        for clause in dim.condition:
            ref = live.get(clause.label)
            holds = [] if ref is None else [c for c in ref.choices if clause.holds(c)]
            if not holds:
                dead = True
                break
            if ref is not None and len(holds) < len(ref.choices):
                kept.append(clause)
        if not dead:
            live[dim.label] = replace(dim, condition=tuple(kept))
    return tuple(live.values())


def parse_space(data: Any, source: str, default_name: str) -> dict[str, Any]:
    """Check a loaded space file; returns the fields of a ``SearchSpace``."""
    r = _Reader(source)
    if not isinstance(data, Mapping):
        raise SpaceError(
            f"{source}: expected a mapping at the top level (keys {', '.join(TOP_KEYS[:6])}, ...), "
            f"got {type(data).__name__}"
        )
    family_spec = r.spec("family", data.get("family", "spiking"), _one_of(FAMILIES))[0]
    if len(family_spec) != 1:
        raise r.fail("family", "the family is fixed per space; write one value")
    family = family_spec[0]
    top = r.mapping("", data, TOP_KEYS, family)
    name = top.get("name", default_name)
    if not isinstance(name, str) or not name.strip():
        raise r.fail("name", f"expected a non-empty string, got {name!r}")
    description = top.get("description", "")
    if not isinstance(description, str):
        raise r.fail("description", f"expected a string, got {description!r}")
    if "image_size" not in top:
        raise r.fail("image_size", "missing; give the input resolution the space is meant for (e.g. 32 or 224)")
    image_size = r.spec("image_size", top["image_size"], _integer(1))[0]
    if len(image_size) != 1:
        raise r.fail("image_size", "the image size is fixed per space; write one value")
    if "num_stages" not in top:
        raise r.fail("num_stages", "missing; give the number of stages (1-4) or {choice: [...]}")

    spiking = family == "spiking"
    defaults = {
        "time_steps": 4 if spiking else 1,
        "patch_size": 4,
        "mlp_ratio": 3.0 if spiking else 4.0,
        "drop_path": 0.0,
    }
    checks = dict(GLOBAL_CHECKS)
    if not spiking:
        checks["time_steps"] = _one_of((1,))
    dims: list[Dimension] = []
    for key in ("time_steps", "patch_size", "mlp_ratio", "drop_path"):
        choices, where = r.spec(key, top[key], checks[key]) if key in top else ((defaults[key],), _DEFAULT)
        dims.append(Dimension(key, choices, (), where))
    if spiking:
        neuron = r.mapping("neuron", {} if top.get("neuron") is None else top["neuron"], NEURON_KEYS)
        for key in NEURON_KEYS:
            where = f"neuron.{key}"
            default = ((getattr(Neuron(), key),), _DEFAULT)
            choices, given = r.spec(where, neuron[key], NEURON_CHECKS[key]) if key in neuron else default
            dims.append(Dimension(where, choices, (), given))
    choices, given = r.spec("num_stages", top["num_stages"], checks["num_stages"])
    num_stages = Dimension("num_stages", choices, (), given)
    dims.append(num_stages)
    max_stages = max(num_stages.choices)
    for s in range(max_stages + 1, MAX_STAGES + 1):
        if f"stage{s}" in top:
            raise r.fail(f"stage{s}", f"stage {s} never exists: num_stages is at most {max_stages}")

    stage_defaults = _read_stage_section(r, "stage_defaults", top.get("stage_defaults", {}), family)
    stage_dims: list[Dimension] = []
    scaled: list[int] = []
    for s in range(1, max_stages + 1):
        own = _read_stage_section(r, f"stage{s}", top.get(f"stage{s}", {}), family)
        more, uses_base = _stage_dimensions(r, s, own, stage_defaults, family)
        stage_dims += more
        if uses_base:
            scaled.append(s)
    if scaled:
        if "base_dim" not in top:
            raise r.fail("base_dim", f"missing; stage{scaled[0]}.width_mult multiplies it")
        base = r.spec("base_dim", top["base_dim"], checks["base_dim"])
        dims.append(Dimension("base_dim", base[0], (Clause("num_stages", ">=", scaled[0]),), base[1]))
    elif "base_dim" in top:
        raise r.fail("base_dim", "no stage uses it; give width_mult in stage_defaults or a stage section")
    dims += stage_dims
    return {
        "name": name.strip(),
        "description": description.strip(),
        "image_size": image_size[0],
        "family": family,
        "source": source,
        "all_dimensions": _fold(dims),
    }
