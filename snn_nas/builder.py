"""Genotype -> ``nn.Module``: the only way to make a model.

``build_model`` returns a ``SpikingMLP`` for the ``spiking`` family and an ``SNNMLP`` for the
``snn_mlp`` family; both follow the model contract of ``docs/architecture.md`` (see
``snn_nas.layers.common.MLPModel``).
"""

from __future__ import annotations

import torch

from snn_nas.genotype import Genotype, GenotypeError
from snn_nas.layers.common import MLPModel
from snn_nas.layers.snn_mlp import SNNMLP
from snn_nas.layers.spiking_mlp import SpikingMLP


def _check_count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise GenotypeError(f"{name}: expected an integer >= 1, got {value!r}")
    return value


def build_model(
    genotype: Genotype,
    num_classes: int = 10,
    image_size: int = 32,
    in_chans: int = 3,
    *,
    seed: int | None = None,
) -> MLPModel:
    """Build the model of ``genotype`` for square ``image_size`` inputs with ``in_chans`` channels.

    The model maps ``[B, in_chans, image_size, image_size]`` (repeated over ``time_steps``) or
    ``[T, B, in_chans, image_size, image_size]`` to ``[B, num_classes]`` logits, the mean over T
    of ``forward_steps``'s ``[T, B, num_classes]``.

    ``seed``: when given, the initial weights are drawn from ``torch.manual_seed(seed)`` inside a
    forked RNG (the global random state is left as it was); otherwise from the global RNG.
    Raises ``GenotypeError`` for a non-genotype, bad counts, or an ``image_size`` too small for the
    genotype (smaller than the patch, or a stage's group LIF group larger than its side).
    """
    if not isinstance(genotype, Genotype):
        raise GenotypeError(f"genotype: expected a snn_nas.Genotype, got {type(genotype).__name__}")
    _check_count("num_classes", num_classes)
    _check_count("image_size", image_size)
    _check_count("in_chans", in_chans)
    genotype.check_image_size(image_size)
    cls = SpikingMLP if genotype.is_spiking else SNNMLP
    if seed is None:
        return cls(genotype, num_classes, image_size, in_chans)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(genotype, num_classes, image_size, in_chans)


def count_parameters(genotype: Genotype, num_classes: int = 1000, image_size: int = 224, in_chans: int = 3) -> int:
    """Number of parameters of ``build_model(genotype, ...)``, built on the meta device (no memory,
    no initialisation: fast even for ImageNet-size models)."""
    with torch.device("meta"):
        model = build_model(genotype, num_classes, image_size, in_chans)
    return sum(p.numel() for p in model.parameters())
