"""``SearchSpace``: a declarative space of spiking-MLP genotypes, listed, counted, sampled,
decoded and encoded before anything runs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

import numpy as np

from snn_nas.genotype import Genotype
from snn_nas.space import codec
from snn_nas.space.checks import check_space
from snn_nas.space.counting import count_configurations
from snn_nas.space.dimension import Dimension, SpaceError
from snn_nas.space.schema import parse_space


class CategoricalTrial(Protocol):
    """What ``SearchSpace.suggest`` needs of a trial (an ``optuna.Trial`` has it)."""

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


@dataclass(frozen=True)
class SearchSpace:
    """A search space: an ordered tuple of labelled dimensions and the family they describe.

    ``all_dimensions`` is in define-by-run order (a condition refers only to earlier labels).
    Only the searchable dimensions (more than one choice) appear in samples; fixed ones are
    implied. A sample holds exactly the labels active under its own values.
    """

    name: str
    description: str
    image_size: int
    family: str
    all_dimensions: tuple[Dimension, ...]
    source: str = ""

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<mapping>", default_name: str = "space") -> SearchSpace:
        """Build a space from the mapping a space file holds; ``SpaceError`` for bad content."""
        space = cls(**parse_space(data, source, default_name))
        check_space(space, source)  # zero-wide layers, never-valid choices, no valid configuration
        return space

    # ------------------------------------------------------------------ listing
    @cached_property
    def by_label(self) -> dict[str, Dimension]:
        """Every live dimension (fixed ones included) by label."""
        return {d.label: d for d in self.all_dimensions}

    @property
    def dimensions(self) -> tuple[Dimension, ...]:
        """The searchable dimensions (two or more choices), in define-by-run order."""
        return tuple(d for d in self.all_dimensions if not d.fixed)

    @property
    def labels(self) -> tuple[str, ...]:
        """Labels of the searchable dimensions."""
        return tuple(d.label for d in self.dimensions)

    @property
    def fixed(self) -> dict[str, Any]:
        """``{label: value}`` of the dimensions with a single choice."""
        return {d.label: d.choices[0] for d in self.all_dimensions if d.fixed}

    def active_labels(self, partial: Mapping[str, Any]) -> list[str]:
        """Searchable labels that matter given the values in ``partial`` (a partial or full
        sample); a label whose condition refers to a label missing from ``partial`` is left out."""
        values = {**self.fixed, **partial}
        return [d.label for d in self.dimensions if d.is_active(values)]

    def size(self) -> int:
        """Exact number of valid flat configurations (see ``snn_nas.space.counting``)."""
        return self._size

    @cached_property
    def _size(self) -> int:
        return count_configurations(self)

    def canonical_size(self) -> int:
        """Exact number of distinct genotypes (keys) the samples decode to: ``size()`` less the
        configurations that build the same network as another (``Genotype.canonical`` at the
        space's ``image_size``; see ``snn_nas.space.counting``). ``canonical_size() <= size()``."""
        return self._canonical_size

    @cached_property
    def _canonical_size(self) -> int:
        return count_configurations(self, canonical=True)

    # ------------------------------------------------------------------ sampling
    def _walk(self, pick: Callable[[Dimension], Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for dim in self.dimensions:
            if dim.is_active(values):
                values[dim.label] = pick(dim)
        return values

    def sample(self, seed: int | np.random.Generator, *, max_tries: int = 1000) -> dict[str, Any]:
        """A random valid sample: each active label uniform over its choices, redrawn until it
        decodes (at most ``max_tries`` draws, then ``SpaceError`` with the last reason).

        ``seed`` is an int (reproducible) or a ``numpy.random.Generator`` (advanced in place).
        """
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        reason = ""
        for _ in range(max_tries):
            sample = self._walk(lambda d: d.choices[int(rng.integers(len(d.choices)))])
            try:
                codec.decode(self, sample)
            except SpaceError as exc:
                reason = str(exc)
                continue
            return sample
        raise SpaceError(f"space {self.name!r}: no valid sample in {max_tries} draws; last reason: {reason}")

    def suggest(self, trial: CategoricalTrial) -> dict[str, Any]:
        """Sample define-by-run through ``trial.suggest_categorical(label, choices)`` (Optuna's
        interface), asking only for the labels active under the values drawn so far.

        The choices of a label never change between calls (Optuna requires it), so the result
        may still be invalid: ``decode`` it and treat a ``SpaceError`` as an invalid trial.
        """
        return self._walk(lambda d: trial.suggest_categorical(d.label, list(d.choices)))

    def sample_with(self, pick: Callable[[Dimension], Any]) -> dict[str, Any]:
        """A sample whose every active searchable label takes ``pick(dimension)``, walked in
        define-by-run order (not checked: ``decode`` it). ``sample`` and ``suggest`` are the
        uniform and the Optuna pickers; the supernet's sandwich rule picks extremes."""
        return self._walk(pick)

    # ------------------------------------------------------------------ samples <-> genotypes
    def decode(self, sample: Mapping[str, Any], *, canonical: bool = True) -> Genotype:
        """The genotype of ``sample``; ``SpaceError`` naming the label for invalid values or
        combinations (e.g. a cell node with no input, a group larger than its stage's axis).

        The genotype is canonical (``Genotype.canonical(self.image_size)``): samples that build
        the same network decode to one genotype and key. ``canonical=False``: the genotype the
        labels spell out, as written."""
        return codec.decode(self, sample, canonical=canonical)

    def encode(self, genotype: Genotype) -> dict[str, Any]:
        """The sample that decodes to ``genotype.canonical(self.image_size)`` (so ``genotype``
        may be canonical or any genotype building the same network); ``SpaceError`` naming the
        first label whose value the space does not allow."""
        return codec.encode(self, genotype)

    def contains(self, genotype: Genotype) -> bool:
        """Whether some sample of this space decodes to ``genotype``'s canonical form (builds
        the same network at the space's ``image_size``)."""
        try:
            codec.encode(self, genotype)
        except SpaceError:
            return False
        return True

    # ------------------------------------------------------------------ description
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description: meta data, sizes (raw and canonical), dimensions and fixed values."""
        return {
            "name": self.name,
            "description": self.description,
            "family": self.family,
            "image_size": self.image_size,
            "source": self.source,
            "size": self.size(),
            "canonical_size": self.canonical_size(),
            "dimensions": [d.to_dict() for d in self.dimensions],
            "fixed": self.fixed,
        }
