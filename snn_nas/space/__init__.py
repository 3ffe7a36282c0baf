"""Declarative YAML search spaces over spiking-MLP genotypes.

``load_space(path_or_name) -> SearchSpace``; a space lists its labelled ``dimensions``, counts
its valid configurations (``size()``), draws seeded ``sample``\\ s (flat ``{label: value}``
dicts, what Optuna and Ray store), samples define-by-run through an Optuna trial (``suggest``),
and maps samples to genotypes and back (``decode`` / ``encode`` / ``contains``). The file format
is documented in ``snn_nas.space.schema`` and in the comments of ``search_spaces/spiking_mlp.yaml``.
"""

from __future__ import annotations

from snn_nas.space.dimension import Clause, Dimension, SpaceError
from snn_nas.space.loading import load_space, parse_yaml, shipped_spaces
from snn_nas.space.search_space import SearchSpace

__all__ = ["Clause", "Dimension", "SearchSpace", "SpaceError", "load_space", "parse_yaml", "shipped_spaces"]
