"""The first trials of a search: warm start from the seed designs, and training-free pre-screening.

Both produce samples (flat ``{label: value}`` dicts) that ``snn_nas.search.tune`` enqueues into
the samplers' study before the sampler draws its own; they are trained first, as normal trials,
and the sampler learns from their results like from any other trial.

* **Warm start** (``warm_start: baselines``, the default): every seed design named by the
  experiment (its ``baselines``, or the listed presets) that is a member of the space, encoded as
  a sample. Designs outside the space (e.g. the non-spiking ``snn_mlp_micro`` in a spiking space)
  are skipped. Mutations of a good design are where TPE and NSGA-II pay off, so starting from the
  hand designs lets the sampler search around them.
* **Pre-screening** (``prescreen: {pool, keep}``): ``pool`` seeded random samples of the space
  (distinct architectures, none already enqueued) are built untrained and scored on the first
  calibration images of ``val`` (``snn_nas.zero_cost``): SAHD, maximised, and the dense synaptic
  operations per image ``macs_per_step x T``, minimised (an untrained network's firing rates say
  little about the trained one's, while the dense count bounds its SOPs and ranks architectures by
  size). ``select_candidates`` keeps ``keep`` of them by non-domination rank, then SAHD.

No Ray or Optuna here: the module returns samples and leaves the enqueueing to the caller.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np

from snn_nas.errors import SnnNasError


def warm_start_samples(experiment: Any, space: Any) -> list[tuple[str, dict[str, Any]]]:
    """``(preset name, sample)`` of the experiment's warm-start designs that the space holds, in
    order, one per architecture."""
    from snn_nas.presets import get_preset

    if experiment.warm_start == "none":
        return []
    names = experiment.baselines if experiment.warm_start == "baselines" else experiment.warm_start
    out: list[tuple[str, dict[str, Any]]] = []
    keys: set[str] = set()
    for name in names:
        genotype = get_preset(name)
        if genotype.family != space.family or not space.contains(genotype):
            continue
        sample = space.encode(genotype)
        key = space.decode(sample).key()
        if key not in keys:
            keys.add(key)
            out.append((name, sample))
    return out


def draw_pool(space: Any, pool: int, seed: int, exclude: set[str] = frozenset()) -> list[tuple[dict[str, Any], Any]]:
    """Up to ``pool`` seeded random ``(sample, genotype)`` pairs of distinct architectures whose
    keys are not in ``exclude`` (at most ``20 x pool`` draws)."""
    rng = np.random.default_rng(seed)
    seen = set(exclude)
    out = []
    for _ in range(20 * pool):
        if len(out) >= pool:
            break
        sample = space.sample(rng)
        genotype = space.decode(sample)
        if genotype.key() in seen:
            continue
        seen.add(genotype.key())
        out.append((sample, genotype))
    return out


def prescreen_samples(
    experiment: Any, space: Any, spec: Any, *, exclude: set[str] = frozenset(), show: bool = False
) -> list[dict[str, Any]]:
    """The ``experiment.prescreen.keep`` samples to train first (see the module docstring)."""
    import torch

    from snn_nas.search.trial import calibration_batch
    from snn_nas.training import load_config_data
    from snn_nas.zero_cost import score_candidates, select_candidates

    settings = experiment.prescreen
    started = time.perf_counter()
    config = spec.config()
    data = load_config_data(config).without_test()
    images = calibration_batch(data, spec.calibration_images)
    if len(images) < 2:
        raise SnnNasError("prescreen: the calibration batch needs at least 2 validation images")
    candidates = draw_pool(space, settings.pool, experiment.seed, exclude)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(max(1, int(spec.cpus)))
        scores = score_candidates(
            [g for _, g in candidates],
            images,
            num_classes=data.num_classes,
            image_size=data.image_size,
            in_chans=data.in_chans,
            seed=config.seed,
        )
    finally:
        torch.set_num_threads(threads)
    chosen = select_candidates([s.sahd for s in scores], [s.dense_ops for s in scores], settings.keep)
    if show:
        print(
            f"pre-screen: scored {len(scores)} untrained architectures (SAHD, dense ops) in "
            f"{time.perf_counter() - started:.1f} s; {len(chosen)} go first",
            file=sys.stderr,
            flush=True,
        )
    return [candidates[i][0] for i in chosen]
