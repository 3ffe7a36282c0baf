"""The first trials of a search: warm start from the seed designs, and training-free pre-screening.

Both produce samples (flat ``{label: value}`` dicts) that ``snn_nas.search.tune`` enqueues into
the samplers' study before the sampler draws its own; they are trained first, as normal trials,
and the sampler learns from their results like from any other trial.

* **Warm start** (``warm_start: baselines``, the default): every seed design named by the
  experiment (its ``baselines``, or the listed presets) that is a member of the space, encoded as
  a sample. Designs outside the space (e.g. the non-spiking ``snn_mlp_micro`` in a spiking space)
  are skipped. Mutations of a good design are where TPE and NSGA-II pay off, so starting from the
  hand designs lets the sampler search around them.
* **Mutants of the seed designs** (``warm_start: {from: baselines, mutants: K}``): after each
  design, ``K`` of its single-label mutations (every valid sample that differs from it in one
  searchable label; labels the change activates take their first choice), chosen to spread along
  the cost axis below the design: among the mutants whose dense synaptic operations per image
  (``macs_per_step x T``, counted on the meta device: no weights, no data) are at most the
  design's, the ones nearest to ``K`` targets evenly spaced in log cost from the cheapest mutant
  to the design's own cost. A
  cheaper neighbour of a good design is the likeliest point of the front below it, and one at
  the design's own cost is the likeliest to dominate it.
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


def warm_start_samples(
    experiment: Any, space: Any, image: tuple[int, int] | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """``(name, sample)`` of the experiment's warm-start designs that the space holds, in order,
    one per architecture, each followed by its ``experiment.warm_mutants`` mutants (named
    ``<preset>~<label>=<value>``); ``image``: ``(image_size, in_chans)`` the mutants' costs are counted at
    (default: the space's image size, 3 channels)."""
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
        if key in keys:
            continue
        keys.add(key)
        out.append((name, sample))
        if experiment.warm_mutants:
            size, chans = image or (space.image_size, 3)
            for label, mutant in cheaper_mutants(space, sample, experiment.warm_mutants, size, chans, exclude=keys):
                keys.add(space.decode(mutant).key())
                out.append((f"{name}~{label}={mutant.get(label)}", mutant))
    return out


def warm_start_keys(experiment: Any, space: Any) -> set[str]:
    """Keys of the warm-start presets that the space holds (``warm_start_samples``, mutants aside):
    a baseline of one of them is reused by the warm-start trial instead of training it twice."""
    from snn_nas.presets import get_preset

    if experiment.warm_start == "none":
        return set()
    names = experiment.baselines if experiment.warm_start == "baselines" else experiment.warm_start
    keys = set()
    for name in names:
        genotype = get_preset(name)
        if genotype.family == space.family and space.contains(genotype):
            keys.add(space.decode(space.encode(genotype)).key())
    return keys


def single_label_mutants(space: Any, sample: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(label, mutant)`` for every valid sample that differs from ``sample`` in the value of one
    searchable label (labels the new value activates take their first choice; labels it
    deactivates are dropped), one per architecture, ``sample``'s own architecture excluded."""
    from snn_nas.space.dimension import same_value

    seen = {space.decode(sample).key()}
    out = []
    for dim in space.dimensions:
        if dim.label not in sample:
            continue
        for choice in dim.choices:
            if same_value(choice, sample[dim.label]):
                continue
            changed = {**sample, dim.label: choice}
            mutant: dict[str, Any] = {}
            for other in space.dimensions:  # define-by-run order: conditions refer to earlier labels
                if other.is_active(mutant):
                    mutant[other.label] = changed.get(other.label, other.choices[0])
            try:
                key = space.decode(mutant).key()
            except SnnNasError:
                continue
            if key not in seen:
                seen.add(key)
                out.append((dim.label, mutant))
    return out


def dense_ops(genotype: Any, image_size: int, in_chans: int) -> float:
    """Dense synaptic operations of one image over all time steps, ``macs_per_step x T``, counted
    on the meta device (nothing allocated, nothing trained)."""
    import torch

    from snn_nas.builder import build_model
    from snn_nas.costs.macs import count_params_macs

    with torch.device("meta"):
        model = build_model(genotype, num_classes=10, image_size=image_size, in_chans=in_chans)
    _, macs = count_params_macs(model, image_size, in_chans)
    return float(macs) * int(genotype.time_steps)


def cheaper_mutants(
    space: Any, sample: dict[str, Any], count: int, image_size: int, in_chans: int, exclude: set[str] = frozenset()
) -> list[tuple[str, dict[str, Any]]]:
    """``count`` single-label mutants of ``sample`` spread along the cost axis at or below its
    dense synaptic operations (see the module docstring), cheapest first."""
    own = dense_ops(space.decode(sample), image_size, in_chans)
    priced = []
    for label, mutant in single_label_mutants(space, sample):
        genotype = space.decode(mutant)
        if genotype.key() in exclude:
            continue
        try:
            cost = dense_ops(genotype, image_size, in_chans)
        except SnnNasError:  # too small for this image size
            continue
        if cost <= own:
            priced.append((cost, label, mutant))
    priced.sort(key=lambda item: (item[0], item[1]))
    if len(priced) > count:
        logs = np.log(np.maximum([cost for cost, _, _ in priced], 1.0))
        chosen: list[int] = []
        for target in np.linspace(logs[0], np.log(max(own, 1.0)), count):  # even steps of log cost
            free = [i for i in range(len(priced)) if i not in chosen]
            chosen.append(min(free, key=lambda i: (abs(logs[i] - target), i)))
        priced = [priced[i] for i in sorted(chosen)]
    return [(label, mutant) for _, label, mutant in priced]


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
