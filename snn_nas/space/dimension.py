"""Labels, choices and activity conditions: the vocabulary of a search space.

A :class:`Dimension` is one flat label (``stage2.token_h.group``) with its categorical
``choices`` and the ``condition`` under which it matters: a conjunction of :class:`Clause`\\ s on
earlier labels (``num_stages >= 2 and stage2.token_h.op == group_lif``). A sample is a flat
``{label: value}`` dict of primitives holding exactly the active, searchable labels.
:class:`LabelledSpace` is what the pure functions over a space (``codec``, ``counting``,
``checks``) read of it, so that they take a space without importing ``SearchSpace``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from snn_nas.errors import SnnNasError

PRIMITIVES = (bool, int, float, str)
CLAUSE_OPS = ("==", "!=", ">=")


class SpaceError(SnnNasError, ValueError):
    """A malformed space file, an invalid sample, or a genotype outside the space.

    The message names the file (or space), the key or label, and what is allowed.
    """


def same_value(a: Any, b: Any) -> bool:
    """Equality of choice values where booleans never equal numbers (``True != 1``)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    return a == b


def format_value(value: Any) -> str:
    """A value as it would be written in YAML (``group_lif``, ``4``, ``2.0``, ``true``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class Clause:
    """``label op value``; ``op`` is one of ``==``, ``!=``, ``>=``."""

    label: str
    op: str
    value: Any

    def holds(self, value: Any) -> bool:
        if self.op == "==":
            return same_value(value, self.value)
        if self.op == "!=":
            return not same_value(value, self.value)
        return value >= self.value

    def __str__(self) -> str:
        return f"{self.label} {self.op} {format_value(self.value)}"


@dataclass(frozen=True)
class Dimension:
    """One label of a space: its ``choices`` and the ``condition`` under which it is active.

    ``source`` is the key of the space file that gave the choices (for messages). A dimension
    with one choice is fixed: it never appears in a sample.
    """

    label: str
    choices: tuple[Any, ...]
    condition: tuple[Clause, ...] = ()
    source: str = ""

    @property
    def fixed(self) -> bool:
        return len(self.choices) == 1

    @property
    def condition_text(self) -> str:
        return " and ".join(str(c) for c in self.condition) or "always"

    def is_active(self, values: Mapping[str, Any]) -> bool:
        """True when every clause holds for ``values``; a label missing from ``values`` fails."""
        return all(c.label in values and c.holds(values[c.label]) for c in self.condition)

    def index(self, value: Any) -> int | None:
        """Position of ``value`` among the choices (``3`` matches ``3.0``; numpy scalars, as a
        table may hand them back, match their Python value), or None."""
        if not isinstance(value, PRIMITIVES) and hasattr(value, "item"):
            value = value.item()
        for i, choice in enumerate(self.choices):
            if same_value(value, choice):
                return i
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "choices": list(self.choices), "condition": self.condition_text}


class LabelledSpace(Protocol):
    """A space as the pure functions of ``codec``, ``counting`` and ``checks`` read it: its
    dimensions and the ``image_size`` and ``family`` they are valid at (``SearchSpace`` is one).

    ``all_dimensions`` is in define-by-run order; ``by_label`` maps every label (fixed ones
    included) to its dimension, ``dimensions`` are the searchable ones (two or more choices) and
    ``fixed`` is ``{label: value}`` of the others. ``name`` is for messages. A dataclass: a check
    narrows a space with ``dataclasses.replace(space, all_dimensions=...)``.
    """

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def name(self) -> str: ...

    @property
    def image_size(self) -> int: ...

    @property
    def family(self) -> str: ...

    @property
    def all_dimensions(self) -> tuple[Dimension, ...]: ...

    @property
    def by_label(self) -> Mapping[str, Dimension]: ...

    @property
    def dimensions(self) -> tuple[Dimension, ...]: ...

    @property
    def fixed(self) -> Mapping[str, Any]: ...
