"""Checks a search runs before Ray starts: what would otherwise fail every trial, one by one.

A trial that cannot load its dataset, or whose architecture does not fit the images it trains
on, is recorded as ``failed`` / ``invalid`` and the search goes on: right for one bad
candidate, wrong when *every* trial must fail the same way. So the driver checks, once:

* the dataset: its name (and options) are known, and its files are where ``data_root`` says.
  The driver loads it once, as a trial would (``load_config_data``); for ``imagefolder`` (an
  ImageNet tree, too big to index twice) only the folder layout is checked. Skipped for a Ray
  Client address (``ray://``): the driver then runs on another machine than the trials.
* the image size: at least one architecture of the space runs at the size the trials train at
  (``fidelity.image_size``, else the dataset's own). The space validates its samples at its own
  ``image_size`` ``S``; a trial also needs ``genotype.check_image_size(s)`` at the training size
  ``s``. For ``s >= S`` every valid sample fits (token grids only grow with the image). For
  ``s < S``: the space's own rules at ``min(S, s)`` are the stricter test (``size() > 0`` there
  means some architecture fits both); when that count is 0, seeded samples of the space are
  tried against the trial's own check before giving up. When some architectures fit but some
  ``patch_size`` choices are larger than the training size, a warning names them (every sample
  drawing one is recorded ``invalid``).

No Ray in here: errors are ``ExperimentError`` naming the experiment file and the key.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from snn_nas.errors import SnnNasError
from snn_nas.search.experiment import Experiment, ExperimentError

logger = logging.getLogger(__name__)

DRAWS = 256  # samples tried against the trial's image-size check when the space's count is 0
IMAGEFOLDER_SIZE = 224  # imagefolder's default image size (snn_nas.data.imagefolder)


def check_before_ray(experiment: Experiment, space: Any, *, address: str | None = None) -> None:
    """Raise ``ExperimentError`` when no trial of ``experiment`` could run (see the module doc)."""
    check_presets(experiment, space, baselines=False)
    config = experiment.train_config()
    remote = bool(address) and str(address).startswith("ray://")
    image_size = check_dataset(experiment, config, read_files=not remote)
    if image_size is not None:
        check_image_size(experiment, space, image_size)


def check_presets(experiment: Experiment, space: Any, *, baselines: bool = True) -> None:
    """Every preset the experiment names must exist, and the ones it asks the *space* to hold
    must be members of it. One rule for both settings that name members, ``warm_start`` (a
    list: trained as the search's first trials) and ``oneshot.supernet.anchors`` (trained as a
    sub-network at every step): a non-member is refused, naming the setting and the file.
    ``warm_start: baselines`` takes the baselines that are members (documented: a baseline of
    another family is a reference point, not a starting design). ``baselines``: check the
    ``baselines`` list too (unknown names)."""
    from snn_nas.presets import get_preset

    where = experiment.source or experiment.name
    warm = experiment.warm_start if isinstance(experiment.warm_start, tuple) else ()
    anchors = experiment.oneshot.supernet.anchors if experiment.oneshot is not None else ()
    named = [("baselines", name) for name in (experiment.baselines if baselines else ())]
    named += [("warm_start", name) for name in warm] + [("oneshot.supernet.anchors", name) for name in anchors]
    for setting, name in named:
        try:
            genotype = get_preset(name)
        except SnnNasError as exc:
            raise ExperimentError(f"{where}: {setting}: {exc}") from None
        if setting == "baselines":
            continue
        reason = ""
        if genotype.family != space.family:
            reason = f"family {genotype.family}, the space's is {space.family}"
        elif not space.contains(genotype):
            reason = "some value lies outside its choices"
        if reason:
            use = "the search starts from it" if setting == "warm_start" else "the supernet trains it at every step"
            raise ExperimentError(
                f"{where}: {setting}: {name!r} is not a member of space {space.name!r} ({reason}), but {use}; "
                "name presets the space holds (snn-nas models lists the presets)"
            )


def check_dataset(experiment: Experiment, config: Any, *, read_files: bool = True) -> int | None:
    """Check the dataset of ``config``; return the image size trials train at (None: unknown,
    when the files are not read)."""
    from snn_nas.data import DATASETS, parse_dataset_name

    where = experiment.source or experiment.name
    try:
        base, _ = parse_dataset_name(config.dataset)
        DATASETS.get(base)
        if not read_files:
            return config.image_size
        if base == "imagefolder":
            return _check_image_folders(config)
        from snn_nas.training import load_config_data

        return int(load_config_data(config).image_size)
    except (SnnNasError, OSError) as exc:
        root = f" (data_root {config.data_root})" if config.data_root else ""
        raise ExperimentError(f"{where}: dataset {config.dataset!r}{root}: {exc}") from None


def _check_image_folders(config: Any) -> int:
    from snn_nas.data import DatasetError

    if config.data_root is None:
        raise DatasetError("needs data_root, a folder with 'train/<class>/' and 'val/<class>/' image folders")
    root = Path(config.data_root).expanduser()
    for part in ("train", "val"):
        folder = root / part
        if not folder.is_dir() or not any(p.is_dir() for p in folder.iterdir()):
            raise DatasetError(f"{folder} is not a folder of class folders; expected '{root}/{part}/<class>/'")
    from snn_nas.data.imagefolder import check_image_files

    check_image_files(root / "train")  # the part trials read (val/ is the test part, read after the search)
    return config.image_size or IMAGEFOLDER_SIZE


def fits_at(space: Any, image_size: int) -> bool:
    """Whether some architecture of ``space`` runs at ``image_size`` (see the module doc)."""
    if image_size >= space.image_size:
        return True
    if replace(space, image_size=image_size).size() > 0:
        return True
    import numpy as np

    rng = np.random.default_rng(0)
    for _ in range(DRAWS):
        try:
            space.decode(space.sample(rng)).check_image_size(image_size)
        except SnnNasError:
            continue
        return True
    return False


def smallest_fitting_size(space: Any, image_size: int) -> int:
    """The smallest image size above ``image_size`` at which the space's own rules leave some
    architecture (at most the space's ``image_size``; token grids grow with the image, so the
    count is monotone and a bisection finds it)."""
    low, high = image_size, space.image_size  # no fit at low, fit at high
    while high - low > 1:
        middle = (low + high) // 2
        if replace(space, image_size=middle).size() > 0:
            high = middle
        else:
            low = middle
    return high


def check_image_size(experiment: Experiment, space: Any, image_size: int) -> None:
    """``ExperimentError`` when no architecture of ``space`` runs at ``image_size``; a warning
    when some ``patch_size`` choices cannot."""
    where = experiment.source or experiment.name
    key = "fidelity.image_size" if dict(experiment.fidelity).get("image_size") is not None else "dataset"
    if fits_at(space, image_size):
        patch = space.by_label.get("patch_size")
        too_large = [p for p in (patch.choices if patch is not None else ()) if p > image_size]
        if too_large:
            logger.warning(
                "warning: %s: %s: trials train at %d px, where patch_size %s cannot run: samples drawing it are "
                "recorded invalid (remove it from the space's patch_size choices, or raise fidelity.image_size)",
                where,
                key,
                image_size,
                " or ".join(str(p) for p in too_large),
            )
        return
    reason = ""
    try:
        space.decode(space.sample(0)).check_image_size(image_size)
    except SnnNasError as exc:
        reason = f"; e.g. {exc}"
    raise ExperimentError(
        f"{where}: {key}: trials train at {image_size} px, and no architecture of space {space.name!r} "
        f"(laid out for {space.image_size} px) runs at that size{reason}; set fidelity.image_size to at least "
        f"{smallest_fitting_size(space, image_size)}, or narrow the space's patch_size and group choices"
    )
