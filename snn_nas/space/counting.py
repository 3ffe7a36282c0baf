"""Exact size of a space: the number of valid flat configurations.

Counted: assignments of every *active* label (fixed labels contribute one value) that decode to
a valid genotype at the space's ``image_size``. Inactive labels do not multiply the count (a
``group`` only counts when its ``op`` is ``group_lif``, ``stage3.*`` only when
``num_stages >= 3``, ``node2.*`` only when ``nodes >= 3``). Configurations that decode invalid
(a width not divisible by the node count, a node with no input, a token block with no branch, a
group larger than its stage's axis, a non-integer width) are excluded. Distinct configurations
give distinct genotypes unless a stage lists the same width twice through different
``base_dim x width_mult`` products. The count is a product over the conditional structure,
summed over the few labels that couple stages (``patch_size``, ``num_stages``, ``base_dim``).
"""

from __future__ import annotations

from math import prod
from typing import TYPE_CHECKING, Any

from snn_nas.space.codec import NEURON_FIELDS, scaled_width, stage_sides
from snn_nas.space.dimension import same_value

if TYPE_CHECKING:
    from snn_nas.space.search_space import SearchSpace


def _has(choices: tuple[Any, ...], value: Any) -> int:
    return int(any(same_value(c, value) for c in choices))


def _axis_count(c: Any, axis: str, side: int) -> int:
    total = 0
    for op in c(f"{axis}.op"):
        if op == "group_lif":
            groups = sum(1 for g in c(f"{axis}.group") if g <= side)
            total += groups * len(c(f"{axis}.scan")) * len(c(f"{axis}.output"))
        else:
            total += 1
    return total


def _cell_count(c: Any, nodes: int) -> int:
    total = 1
    for i in range(nodes):
        inputs = c(f"cell.node{i}.in")
        edges = [c(f"cell.node{i}.from{j}") for j in range(i)]
        dead = _has(inputs, "none") * prod(_has(e, "none") for e in edges)
        total *= len(inputs) * prod(len(e) for e in edges) - dead
    return total


def stage_count(space: SearchSpace, s: int, side: int, base: int | None) -> int:
    """Valid configurations of stage ``s`` with token-grid ``side`` and ``base_dim`` ``base``."""
    by_label = space.by_label
    p = f"stage{s}."

    def c(key: str) -> tuple[Any, ...]:
        return by_label[p + key].choices

    spiking = space.family == "spiking"
    mix_h, mix_w = _axis_count(c, "token_h", side), _axis_count(c, "token_w", side)
    none_h, none_w = _has(c("token_h.op"), "none"), _has(c("token_w.op"), "none")
    if spiking:
        identities = c("identity")
        token = mix_h * mix_w * len(identities) - none_h * none_w * _has(identities, "none")
        skip = sum(1 if src == "none" else len(c("skip_paths")) for src in c("skip_source"))
    else:
        token = mix_h * mix_w - none_h * none_w
        skip = 1
    if p + "dim" in by_label:
        widths = list(c("dim"))
    else:
        widths = [w for w in (scaled_width(base, m) for m in c("width_mult")) if w is not None]
    if spiking and s > 1:
        cells = {k: _cell_count(c, k) for k in c("cell.nodes")}
        width_count = sum(n for w in widths for k, n in cells.items() if w % k == 0)
    else:
        width_count = len(widths)
    return len(c("depth")) * token * skip * width_count


def count_configurations(space: SearchSpace) -> int:
    """The exact number of valid flat configurations of ``space`` (see the module docstring)."""
    by_label = space.by_label
    independent = ["time_steps", "mlp_ratio", "drop_path"]
    if space.family == "spiking":
        independent += [f"neuron.{k}" for k in NEURON_FIELDS]
    factor = prod(len(by_label[label].choices) for label in independent)
    base_dim = by_label.get("base_dim")
    total = 0
    for patch in by_label["patch_size"].choices:
        if patch > space.image_size:
            continue
        for n in by_label["num_stages"].choices:
            sides = stage_sides(space.image_size, patch, n)
            active = base_dim is not None and base_dim.is_active({"num_stages": n})
            for base in base_dim.choices if active else (None,):
                count = 1
                for s in range(1, n + 1):
                    count *= stage_count(space, s, sides[s - 1], base)
                    if not count:
                        break
                total += count
    return factor * total
