"""Weight sharing: one supernet holds every architecture of a space (pure torch, no Ray).

* ``bounds``: ``SupernetBounds.from_space(space, ...)``, the widest extent of every
  weight-carrying choice; ``check(genotype)`` names the dimension a genotype exceeds;
* ``layout``: store keys, shapes and slices (which store tensor each model tensor is cut from);
* ``model``: ``Supernet(bounds)``, ``forward(x, genotype)`` and ``subnet(genotype)``.
"""

from __future__ import annotations

from snn_nas.supernet.bounds import SupernetBounds, SupernetError
from snn_nas.supernet.model import Supernet

__all__ = ["Supernet", "SupernetBounds", "SupernetError"]
