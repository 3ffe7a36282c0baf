"""Exact sizes of a space: valid flat configurations (raw) and distinct networks (canonical).

Raw (``count_configurations(space)``): assignments of every *active* label (fixed labels
contribute one value) that decode to a valid genotype at the space's ``image_size``. Inactive
labels do not multiply the count (a ``group`` only counts when its ``op`` is ``group_lif``,
``stage3.*`` only when ``num_stages >= 3``, ``node2.*`` only when ``nodes >= 3``).
Configurations that decode invalid (a width not divisible by the node count, a node with no
input, a token block with no branch, a group larger than its stage's axis, a non-integer width)
are excluded.

Canonical (``count_configurations(space, canonical=True)``): the number of distinct genotypes
(keys) the valid configurations decode to, ``|{decode(sample).key()}|``. It merges the
configurations that ``Genotype.canonical`` maps to one genotype (a depth-1 stage's
``skip_source`` ``block`` / ``stage``, a group equal to its stage's side / 0, ...) and those that
spell one width through different ``base_dim x width_mult`` products.

Both are products over the conditional structure. For one ``patch_size`` (which fixes every
stage's token-grid side) and ``num_stages`` ``n``::

    raw       = F x D x  prod_s (depths_s x token_s x skips_s)  x  sum_base prod_s cells_s(base)
    canonical = F x     [prod_s sum_d token'_s x skips'_s(d)]_D  x  sum_{w in W} prod_s cells_s(w_s)

``F``: product of the choice counts of the labels every configuration has (``time_steps``,
``mlp_ratio``, the neuron's). ``D``: the ``drop_path`` choices. ``token_s``: valid
``(identity, token_h, token_w)`` triples (a group must fit the side; at least one branch);
``token'_s`` the same over canonical mixers. ``skips_s``: ``(skip_source, skip_paths)`` pairs
(``none`` takes no paths); ``skips'_s(d)`` the distinct canonical pairs at depth ``d``.
``cells_s(w)``: the patch-encoding cells of stage ``s > 1`` whose node count divides width ``w``
(1 for the first stage and the ``snn_mlp`` family), summed over the stage's widths. ``W``: the
distinct width tuples over all ``base_dim`` values. ``[...]_D``: with one stage, the depth-1
configurations take a single ``drop_path`` (rule 2 of ``Genotype.canonical``), the others ``D``.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import product
from math import prod
from typing import Any

from snn_nas.genotype import AxisMixer, canonical_mixer, canonical_skip
from snn_nas.space.codec import NEURON_FIELDS, scaled_width, stage_sides
from snn_nas.space.dimension import LabelledSpace, same_value

Choices = Callable[[str], tuple[Any, ...]]


def _has(choices: tuple[Any, ...], value: Any) -> int:
    return int(any(same_value(c, value) for c in choices))


def _axis_count(c: Choices, axis: str, side: int) -> int:
    total = 0
    for op in c(f"{axis}.op"):
        if op == "group_lif":
            groups = sum(1 for g in c(f"{axis}.group") if g <= side)
            total += groups * len(c(f"{axis}.scan")) * len(c(f"{axis}.output"))
        else:
            total += 1
    return total


def _canonical_axis_count(c: Choices, axis: str, side: int, family: str) -> int:
    """Distinct canonical mixers among the valid choices of one axis."""
    mixers = set()
    for op in c(f"{axis}.op"):
        if op != "group_lif":
            mixers.add(AxisMixer(op))
            continue
        for group, scan, output in product(c(f"{axis}.group"), c(f"{axis}.scan"), c(f"{axis}.output")):
            if group <= side:
                mixers.add(canonical_mixer(AxisMixer(op, group, scan, output), side, family))
    return len(mixers)


def _cell_count(c: Choices, nodes: int) -> int:
    total = 1
    for i in range(nodes):
        inputs = c(f"cell.node{i}.in")
        edges = [c(f"cell.node{i}.from{j}") for j in range(i)]
        dead = _has(inputs, "none") * prod(_has(e, "none") for e in edges)
        total *= len(inputs) * prod(len(e) for e in edges) - dead
    return total


def _choices(space: LabelledSpace, s: int) -> Choices:
    by_label, p = space.by_label, f"stage{s}."
    return lambda key: by_label[p + key].choices


def _token_count(space: LabelledSpace, s: int, side: int, canonical: bool) -> int:
    """Valid (identity, token_h, token_w) configurations of stage ``s`` (distinct canonical ones)."""
    c = _choices(space, s)
    if canonical:
        mix_h = _canonical_axis_count(c, "token_h", side, space.family)
        mix_w = _canonical_axis_count(c, "token_w", side, space.family)
    else:
        mix_h, mix_w = _axis_count(c, "token_h", side), _axis_count(c, "token_w", side)
    none_h, none_w = _has(c("token_h.op"), "none"), _has(c("token_w.op"), "none")
    if space.family != "spiking":
        return mix_h * mix_w - none_h * none_w
    identities = c("identity")
    return mix_h * mix_w * len(identities) - none_h * none_w * _has(identities, "none")


def _skip_counts(space: LabelledSpace, s: int, canonical: bool) -> dict[int, int]:
    """``{depth: number of (skip_source, skip_paths) configurations}`` of stage ``s``."""
    c = _choices(space, s)
    depths = c("depth")
    if space.family != "spiking":
        return dict.fromkeys(depths, 1)
    pairs = [(src, p) for src in c("skip_source") for p in (("both",) if src == "none" else c("skip_paths"))]
    if not canonical:
        return dict.fromkeys(depths, len(set(pairs)))
    return {d: len({canonical_skip(d, src, p, space.family) for src, p in pairs}) for d in depths}


def _widths(space: LabelledSpace, s: int, base: int | None) -> list[int]:
    c = _choices(space, s)
    if f"stage{s}.dim" in space.by_label:
        return list(c("dim"))
    return [w for w in (scaled_width(base, m) for m in c("width_mult")) if w is not None]


def _cells_for_width(space: LabelledSpace, s: int) -> Callable[[int], int]:
    """Number of patch-encoding cells of stage ``s`` that a width admits (1 without a cell)."""
    if space.family != "spiking" or s == 1:
        return lambda width: 1
    c = _choices(space, s)
    cells = {k: _cell_count(c, k) for k in c("cell.nodes")}
    return lambda width: sum(n for k, n in cells.items() if width % k == 0)


def stage_count(space: LabelledSpace, s: int, side: int, base: int | None) -> int:
    """Valid configurations of stage ``s`` with token-grid ``side`` and ``base_dim`` ``base``."""
    cells = _cells_for_width(space, s)
    width_count = sum(cells(w) for w in _widths(space, s, base))
    return sum(_skip_counts(space, s, False).values()) * _token_count(space, s, side, False) * width_count


def _width_total(space: LabelledSpace, n: int, canonical: bool) -> int:
    """Sum over the stages' width choices of the product of their cell counts: over every
    ``base_dim`` (raw), or over the distinct width tuples (canonical)."""
    base_dim = space.by_label.get("base_dim")
    active = base_dim is not None and base_dim.is_active({"num_stages": n})
    bases = base_dim.choices if active else (None,)
    cells = [_cells_for_width(space, s) for s in range(1, n + 1)]
    if not canonical:
        return sum(
            prod(sum(cells[s - 1](w) for w in _widths(space, s, base)) for s in range(1, n + 1)) for base in bases
        )
    tuples = {t for base in bases for t in product(*(_widths(space, s, base) for s in range(1, n + 1)))}
    return sum(prod(count(w) for count, w in zip(cells, t, strict=True)) for t in tuples)


def count_configurations(space: LabelledSpace, *, canonical: bool = False) -> int:
    """The exact number of valid flat configurations of ``space``, or with ``canonical`` the
    number of distinct genotypes they decode to (see the module docstring)."""
    by_label = space.by_label
    independent = ["time_steps", "mlp_ratio"]
    if space.family == "spiking":
        independent += [f"neuron.{k}" for k in NEURON_FIELDS]
    factor = prod(len(by_label[label].choices) for label in independent)
    drops = len(by_label["drop_path"].choices)
    total = 0
    for patch in by_label["patch_size"].choices:
        if patch > space.image_size:
            continue
        for n in by_label["num_stages"].choices:
            sides = stage_sides(space.image_size, patch, n)
            per_depth = []  # per stage: {depth: token x skip configurations}
            for s in range(1, n + 1):
                token = _token_count(space, s, sides[s - 1], canonical)
                per_depth.append({d: token * k for d, k in _skip_counts(space, s, canonical).items()})
            blocks = prod(sum(counts.values()) for counts in per_depth)
            if not blocks:
                continue
            if canonical and n == 1:  # one block in all: every drop_path builds the same network
                lone = per_depth[0].get(1, 0)
                blocks_drops = lone + (blocks - lone) * drops
            else:
                blocks_drops = blocks * drops
            total += blocks_drops * _width_total(space, n, canonical)
    return factor * total
