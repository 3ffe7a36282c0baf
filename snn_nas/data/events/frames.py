"""Event data as ``DataSplits``: sets of streams, their index, and frames binned per T (cached).

An event dataset is loaded in two steps:

1. ``load_dataset`` returns an ``EventSplits`` *before binning*: the parts (``train``, ``val``
   held out of the training set, ``test``) are fixed, but their frames are not made yet, because
   they depend on the architecture's time steps ``T``. Its parts have a length; reading an item
   raises ``DatasetError`` (bin first).
2. ``at_time_steps(T)`` bins every stream into ``T`` frames (``stream.to_frames``) and returns
   an ``EventSplits`` whose parts serve ``(frames [T, 2, S, S] float 0/1, label)``. A batch of
   them is ``[B, T, 2, S, S]``, which ``base.time_major`` turns into the model's
   ``[T, B, 2, S, S]``. The training engine and a search trial call it with the model's T, so
   a model trained with T bins is evaluated with T bins.

The frames of a whole set (all its streams) at one ``(T, S)`` are cached on disk
(``cache``), and in memory for the process, so a search bins each set once per value of T;
the ``test`` part is binned only when something reads it (after the search).

Before binning, every stream of a set is read once and checked (``stream.check_stream``):
events outside the sensor or time stamps going backwards refuse the dataset naming the file;
streams without events are dropped from their part (the number is said once). The check's
result, each stream's event count and span, is cached too (the *index*).

Frames are held as uint8 0/1 ``[N, T, 2, S, S]`` and served as float through
``BinaryFrames``, so that the device-resident batches (``snn_nas.data.resident``) hold one byte
per pixel.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np
import torch
from torch.utils.data import Dataset

from snn_nas.data.base import (
    DatasetError,
    DataSplits,
    LazyDataset,
    TensorImageDataset,
    ToNormalisedFloat,
    WithheldTest,
)
from snn_nas.data.events import cache
from snn_nas.data.events.stream import EMPTY, check_stream, check_time_bins, span, to_frames

logger = logging.getLogger(__name__)
INDEX_VERSION = 1
FRAMES_VERSION = 1


class EventSet:
    """The streams of one recorded set (e.g. N-MNIST's training files), read on demand.

    ``key``: what identifies the set's contents for the cache (name, folder, file sizes and
    times, or the simulation's version and seed); ``labels [N]``; ``sensor``: ``(W, H)``;
    ``read(i)``: stream ``i`` in tonic's layout; ``where(i)``: names it in messages (its file);
    ``index``: ``(counts [N], spans [N])`` when known without reading (a simulation).
    """

    def __init__(
        self,
        name: str,
        key: str,
        labels: np.ndarray,
        sensor: tuple[int, int],
        read: Callable[[int], np.ndarray],
        where: Callable[[int], str],
        index: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        self.name, self.key, self.sensor = name, key, sensor
        self.labels = np.asarray(labels, dtype=np.int64)
        self.read, self.where = read, where
        self._index = index

    def __len__(self) -> int:
        return len(self.labels)

    def index(self) -> tuple[np.ndarray, np.ndarray]:
        """``(event counts [N], spans [N] in us)``, checking every stream once (cached on disk)."""
        if self._index is None:
            path = cache.cache_path("index", INDEX_VERSION, self.key)
            stored = cache.load(path)
            if stored is None or len(stored["counts"]) != len(self):
                counts, spans = np.zeros(len(self), np.int64), np.zeros(len(self), np.int64)
                for i in range(len(self)):
                    events = self.read(i)
                    if check_stream(events, self.sensor, self.where(i)) != EMPTY:
                        counts[i], spans[i] = len(events), span(events)
                cache.save(path, counts=counts, spans=spans)
                stored = {"counts": counts, "spans": spans}
            self._index = (stored["counts"], stored["spans"])
        return self._index


@lru_cache(maxsize=6)
def set_frames(events: EventSet, time_bins: int, size: int) -> torch.Tensor:
    """uint8 0/1 frames ``[N, T, 2, S, S]`` of every stream of ``events`` (zeros for an empty
    stream), from the disk cache or binned with tonic and cached."""
    shape = (len(events), time_bins, 2, size, size)
    path = cache.cache_path("frames", FRAMES_VERSION, events.key, time_bins, size)
    stored = cache.load(path)
    if stored is not None and tuple(stored["shape"]) == shape:
        return torch.from_numpy(cache.unpack(stored["packed"], shape))
    counts, _ = events.index()
    frames = np.zeros(shape, dtype=bool)
    for i in np.flatnonzero(counts):
        frames[i] = to_frames(events.read(int(i)), events.sensor, size, time_bins)
    cache.save(path, packed=cache.pack(frames), shape=np.asarray(shape))
    return torch.from_numpy(frames.view(np.uint8))


class BinaryFrames(ToNormalisedFloat):
    """uint8 0/1 frames ``[..., 2, S, S]`` -> the same 0/1 as float32.

    ``ToNormalisedFloat`` with mean 0 and std 1/255: ``(x / 255) / (1 / 255)`` is exactly ``x``
    in float32 for ``x`` in {0, 1} (both divisions round 1/255 to the same float), so the
    resident batches convert frames on the device as they convert CIFAR's uint8 images.
    """

    def __init__(self, size: int, channels: int = 2) -> None:
        super().__init__(size, (0.0,) * channels, (1.0 / 255.0,) * channels)

    def __repr__(self) -> str:
        return f"BinaryFrames(size={self.size})"


class UnbinnedFrames(Dataset):
    """A part before binning: it has a length, but its frames wait for the model's T."""

    def __init__(self, name: str, length: int) -> None:
        self.name, self.length = name, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        raise DatasetError(
            f"{self.name}: event frames are binned per the architecture's time steps T; call "
            "data.at_time_steps(T) first (the training engine and search trials do)"
        )


Part = tuple[str, EventSet, np.ndarray]  # (part name, its set, indices into the set)


@dataclass(frozen=True)
class EventSplits(DataSplits):
    """``DataSplits`` of event data; ``time_bins`` is the T of the frames served (None: not
    binned yet), ``parts`` says which streams make each part, ``sensor`` is ``(W, H)``."""

    parts: tuple[Part, ...] = field(default=(), repr=False)
    sensor: tuple[int, int] = (0, 0)
    time_bins: int | None = None

    def at_time_steps(self, time_steps: int) -> EventSplits:
        """These splits with every part binned into ``time_steps`` frames (see the module
        docstring); the ``test`` part is binned when first read, or stays withheld."""
        if self.time_bins == time_steps:
            return self
        where = f"{self.name}"
        used = [(name, events, idx) for name, events, idx in self.parts if name != "test"]
        shortest = min(int(events.index()[1][idx[_kept(events, idx)]].min(initial=2**62)) for _, events, idx in used)
        check_time_bins(time_steps, shortest, where)
        served = {name: self._served(events, idx, time_steps) for name, events, idx in used}
        test = self.test
        if not isinstance(test, WithheldTest):
            test_part = next(((events, idx) for name, events, idx in self.parts if name == "test"), None)
            if test_part is not None:
                test = LazyDataset(lambda: self._served(*test_part, time_steps))
        train_set, train_idx = _part(self.parts, "train")
        val_set, val_idx = _part(self.parts, "val")
        trainval = None
        if train_set is val_set:
            trainval = self._served(train_set, np.union1d(train_idx, val_idx), time_steps)
        return replace(
            self, train=served["train"], val=served["val"], test=test, trainval=trainval, time_bins=time_steps
        )

    def _served(self, events: EventSet, idx: np.ndarray, time_steps: int) -> TensorImageDataset:
        kept = idx[_kept(events, idx)]
        dropped = len(idx) - len(kept)
        if dropped:
            _say_once(
                f"{self.name} ({events.name}): dropped {dropped} of {len(idx)} streams with no events (tonic's "
                "ToFrame would give them all-zero frames)"
            )
        if not len(kept):
            raise DatasetError(f"{self.name} ({events.name}): every stream of the part is empty; nothing to train on")
        frames = set_frames(events, time_steps, self.image_size)
        index = torch.from_numpy(kept)
        labels = torch.from_numpy(events.labels[kept])
        return TensorImageDataset(frames[index], labels, transform=BinaryFrames(self.image_size, self.in_chans))

    def describe(self) -> str:
        bins = "not binned yet" if self.time_bins is None else f"T={self.time_bins} bins"
        return f"{super().describe()}; event frames ({bins}) from a {self.sensor[0]}x{self.sensor[1]} sensor"


def _part(parts: Sequence[Part], name: str) -> tuple[EventSet, np.ndarray]:
    for part, events, idx in parts:
        if part == name:
            return events, idx
    raise KeyError(name)


def _kept(events: EventSet, idx: np.ndarray) -> np.ndarray:
    """Mask over ``idx`` of the streams that have events."""
    return events.index()[0][idx] > 0


_SAID: set[str] = set()


def _say_once(message: str) -> None:
    if message not in _SAID:
        _SAID.add(message)
        logger.warning(message)


def event_splits(
    name: str,
    parts: Sequence[Part],
    *,
    classes: Sequence[str],
    image_size: int,
    sensor: tuple[int, int],
    val_fraction: float,
) -> EventSplits:
    """Unbinned ``EventSplits`` over ``parts`` (``train``, ``val`` and optionally ``test``)."""
    sizes = {part: len(idx) for part, _, idx in parts}
    test = UnbinnedFrames(f"{name} test", sizes["test"]) if "test" in sizes else None
    return EventSplits(
        name=name,
        train=UnbinnedFrames(f"{name} train", sizes["train"]),
        val=UnbinnedFrames(f"{name} val", sizes["val"]),
        test=test,
        num_classes=len(classes),
        in_chans=2,
        image_size=image_size,
        classes=tuple(classes),
        val_fraction=val_fraction,
        parts=tuple(parts),
        sensor=sensor,
    )
