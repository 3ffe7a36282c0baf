"""Checks on a whole parsed space, run when it is built (``SearchSpace.from_dict``).

A space file can be well formed value by value and still mean something else than it says:

* **zero-wide layers**: ``int(width x mlp_ratio) == 0`` hidden channels in a channel MLP;
  rejected when any ``mlp_ratio`` choice meets any width choice of a stage
  (``zero_wide_layers``);
* **choices that are never valid**: a value of a choice list that no valid configuration at the
  space's ``image_size`` uses (a group larger than every side it could meet, a stage count
  whose last stage is too small for every group, ...). Such a value only produces invalid
  samples during a search. ``never_valid_choices`` finds them with the exact counter: a value
  ``v`` of label ``L`` is usable iff ``count_configurations`` of the space with ``L`` pinned to
  ``v``, and the labels of ``L``'s condition narrowed to the values that activate it, is > 0.
  A value is reported by the file key that gave it: a ``stage_defaults`` value is an error only
  when no stage it applies to can use it (a group too large for the deepest stage may still fit
  the first);
* **no valid configuration at all**: the message names the label that rules configurations out
  (``explain_empty``: the most common decode failure over seeded random configurations).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any, TypeVar

import numpy as np

from snn_nas.space.codec import decode
from snn_nas.space.counting import count_configurations
from snn_nas.space.dimension import Dimension, LabelledSpace, SpaceError, format_value

S = TypeVar("S", bound=LabelledSpace)

DRAWS = 200  # random configurations drawn to explain why a (narrowed) space has none valid
DEFAULT_SOURCE = "(default)"


def check_space(space: LabelledSpace, source: str) -> None:
    """Raise ``SpaceError`` (naming ``source``, the key and the value) for the problems above."""
    zero_wide_layers(space, source)
    if count_configurations(space) == 0:
        raise SpaceError(
            f"{source}: the space has no valid configuration at image_size {space.image_size}: {explain_empty(space)}"
        )
    bad = never_valid_choices(space)
    if bad:
        key, value, reason = bad[0]
        more = f" (and {len(bad) - 1} more never-valid value(s))" if len(bad) > 1 else ""
        raise SpaceError(
            f"{source}: {key}: {format_value(value)} is never valid at image_size {space.image_size}: {reason}; "
            f"remove it from the choice list{more}"
        )


def _widths(space: LabelledSpace, s: int) -> list[tuple[int, str]]:
    """(width, file key) of every width choice of stage ``s``."""
    by_label = space.by_label
    dim = by_label.get(f"stage{s}.dim")
    if dim is not None:
        return [(w, dim.source) for w in dim.choices]
    mults, bases = by_label[f"stage{s}.width_mult"], by_label["base_dim"]
    out = []
    for base in bases.choices:
        for mult in mults.choices:
            width = base * mult
            if float(width).is_integer():
                out.append((int(width), f"base_dim {base} x {mults.source} {format_value(mult)}"))
    return out


def zero_wide_layers(space: LabelledSpace, source: str) -> None:
    """``SpaceError`` when an ``mlp_ratio`` choice times a width choice gives 0 hidden channels."""
    ratios = space.by_label["mlp_ratio"].choices
    s = 1
    while f"stage{s}.depth" in space.by_label:
        for width, where in _widths(space, s):
            for ratio in ratios:
                if int(width * ratio) < 1:
                    raise SpaceError(
                        f"{source}: mlp_ratio: {format_value(ratio)} x the width {width} of stage {s} ({where}) "
                        f"gives int({width * ratio:g}) = 0 hidden channels (a zero-wide channel MLP); every "
                        f"mlp_ratio x width must be >= 1"
                    )
        s += 1


def _narrowed(space: S, dim: Dimension, value: Any) -> S:
    """``space`` with ``dim`` pinned to ``value`` and its condition's labels narrowed to the
    values that make ``dim`` active."""
    by_label = dict(space.by_label)
    by_label[dim.label] = replace(dim, choices=(value,))
    for clause in dim.condition:
        ref = by_label[clause.label]
        by_label[clause.label] = replace(ref, choices=tuple(c for c in ref.choices if clause.holds(c)))
    return replace(space, all_dimensions=tuple(by_label[d.label] for d in space.all_dimensions))


def usable_values(space: LabelledSpace) -> dict[str, tuple[Any, ...]]:
    """``{label: values}``: the choices of every searchable label that some valid configuration
    uses (``count_configurations`` of the space narrowed to the value, see the module docstring)."""
    return {
        dim.label: tuple(v for v in dim.choices if count_configurations(_narrowed(space, dim, v)) > 0)
        for dim in space.dimensions
    }


def never_valid_choices(space: LabelledSpace) -> list[tuple[str, Any, str]]:
    """``(file key, value, reason)`` of every choice value no valid configuration can use (see the
    module docstring), in the order of the space's labels. A ``stage_defaults`` value counts as
    never valid only when no label it sets can use it."""
    first_unusable: dict[tuple[str, int], Dimension | None] = {}  # None: some label uses the value
    for dim in space.dimensions:
        if dim.source == DEFAULT_SOURCE:
            continue
        for i, value in enumerate(dim.choices):
            slot = (dim.source, i)
            if first_unusable.get(slot, False) is None:
                continue  # an earlier label of the same file key uses it
            if count_configurations(_narrowed(space, dim, value)) > 0:
                first_unusable[slot] = None
            else:
                first_unusable.setdefault(slot, dim)
    bad = [(source, i, dim) for (source, i), dim in first_unusable.items() if dim is not None]
    if not bad:
        return []
    usable = usable_values(space)
    out = []
    for source, i, dim in bad:
        value = dim.choices[i]
        # the other labels held to values that do occur in valid configurations: the reason is this value's
        keep = {dim.label, *(c.label for c in dim.condition)}
        narrowed = _narrowed(_usable_only(space, usable, keep), dim, value)
        out.append((source, value, explain_empty(narrowed, prefer=dim.label)))
    return out


def _usable_only(space: S, usable: dict[str, tuple[Any, ...]], keep: set[str]) -> S:
    """``space`` with every searchable label but ``keep`` restricted to its usable values (kept
    whole when it has none)."""
    dims = tuple(
        replace(d, choices=usable[d.label]) if d.label not in keep and usable.get(d.label) else d
        for d in space.all_dimensions
    )
    return replace(space, all_dimensions=dims)


def _reasons(space: LabelledSpace, draws: int = DRAWS) -> list[str]:
    """Decode failures of ``draws`` seeded random configurations (each label uniform)."""
    rng = np.random.default_rng(0)
    prefix = f"space {space.name!r}: "
    reasons = []
    for _ in range(draws):
        values, sample = dict(space.fixed), {}  # a narrowed space may condition on labels it pinned
        for dim in space.dimensions:
            if dim.is_active(values):
                values[dim.label] = sample[dim.label] = dim.choices[int(rng.integers(len(dim.choices)))]
        try:
            decode(space, sample)
        except SpaceError as exc:
            text = str(exc)
            reasons.append(text[len(prefix) :] if text.startswith(prefix) else text)
    return reasons


def explain_empty(space: LabelledSpace, prefer: str | None = None) -> str:
    """Why configurations of ``space`` fail: the most common decode failure of random draws
    (one naming ``prefer`` when there is one), e.g. ``stage3.token_h.group: 4 exceeds the 2
    positions of stage 3 ...``."""
    reasons = _reasons(space)
    if not reasons:
        return "no configuration decodes (check group sizes, widths versus cell.nodes, and patch_size)"
    if prefer is not None:
        reasons = [r for r in reasons if r.startswith(f"{prefer}:")] or reasons
    label = Counter(r.split(":", 1)[0] for r in reasons).most_common(1)[0][0]
    return next(r for r in reasons if r.split(":", 1)[0] == label)
