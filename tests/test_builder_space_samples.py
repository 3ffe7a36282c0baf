"""Issue 2's check: 100 seeded samples of every shipped space build, run forward and backward.

Each sample is built at the smallest of 32/64/128/256 px at which its group-LIF groups fit
their stages (the space decoder guarantees they fit at the space's own image size), with one
time step and a batch of 2, so that the whole check stays at CPU scale.
"""

from __future__ import annotations

import pytest
import torch

from snn_nas.builder import build_model
from snn_nas.genotype import Genotype, GenotypeError
from snn_nas.space import load_space, shipped_spaces

SAMPLES = 100


def groups_fit(genotype: Genotype, size: int) -> bool:
    """Every group-LIF group fits its stage at ``size`` (as the space decoder checks at its own size;
    the builder alone would accept more, passing short axes through)."""
    try:
        genotype.check_image_size(size)
    except GenotypeError:
        return False
    sides = genotype.resolutions(size)
    return all(
        mixer.group <= side
        for stage, side in zip(genotype.stages, sides, strict=True)
        for mixer in (stage.token_h, stage.token_w)
        if mixer.op == "group_lif"
    )


def smallest_image_size(genotype: Genotype, space_size: int) -> int:
    for size in (32, 64, 128, 256):
        if size > space_size:
            break
        if groups_fit(genotype, size):
            return size
    return space_size


@pytest.mark.parametrize("name", shipped_spaces())
def test_100_samples_build_and_train_one_step(name):
    space = load_space(name)
    keys = set()
    for seed in range(SAMPLES):
        genotype = space.decode(space.sample(seed))
        keys.add(genotype.key())
        size = smallest_image_size(genotype, space.image_size)
        model = build_model(genotype, num_classes=7, image_size=size, in_chans=3, seed=seed)
        model.time_steps = 1
        images = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(seed))
        logits = model(images)
        assert logits.shape == (2, 7), (name, seed, genotype.summary())
        assert torch.isfinite(logits).all(), (name, seed, genotype.summary())
        logits.logsumexp(dim=1).sum().backward()
        grads = [p.grad for p in model.parameters() if p.requires_grad]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), (name, seed)
    assert len(keys) > SAMPLES * 0.9  # seeded samples are (nearly) all distinct architectures
