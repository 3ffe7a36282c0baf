"""Device-resident batches: the data set held on the trial's device, batches drawn by index.

A search's trials are many short trainings of small networks on small data sets. Served item by
item through a ``DataLoader`` (index, transform, collate, copy to the device) a GPU waits on the
loader; held on the device as one tensor, a batch is one gather (the airbench way). This module
is that path; ``make_batches`` picks it or the ``DataLoader`` path:

* **resident** when the part is held in memory as tensors (``TensorImageDataset``, and
  ``Subset`` / ``ConcatDataset`` / ``LazyDataset`` of them) with transforms this module knows
  (``ToNormalisedFloat``, ``RandomCropFlip``, ``Compose`` of them, or none), and its bytes on
  the device fit ``device_budget``;
* **loader** (``torch.utils.data.DataLoader``) otherwise: image folders (ImageNet) read from
  disk, other transforms, or a part too large for the budget, which is said once per process
  (``logging`` warning naming the part, its size and the budget).

The same code serves CPU trials (the device is then the CPU).

Stored images stay ``uint8`` ``[N, C, H, W]`` where the data set keeps them so (CIFAR) and are
converted per batch; images that need a resize are prepared once (float). A batch is::

    idx    = order[k * B : (k + 1) * B]                      order: randperm(N) or arange(N)
    x      = prepare(images[idx])                            [B, C, S, S] float, normalised
    x[i]   = crop_flip(x[i], top_i, left_i, flip_i)          training augmentation only
    y      = labels[idx]                                     [B] int64

What "the same batches as the loader path" means (``tests/test_data_resident.py``):

* **indices and labels**: identical for a seed. Per epoch the ``DataLoader`` draws one int64
  from its generator (its workers' base seed), then ``randperm(N)``, and, once its sampler is
  exhausted, a second ``randperm(N)`` it does not use; the resident path makes the same draws
  from the same generator, so both visit the same images in the same order, batch for batch,
  epoch after epoch (also when an epoch stops early at ``max_batches_per_epoch``);
* **pixels without augmentation**: identical (the same elementwise conversion, in batch);
* **augmented pixels**: identical when the crop offsets and flips are the same. The loader path
  draws them per image from torch's default generator, the resident path for the whole batch at
  once from its own seeded generator on the device (``augment_generator``): the same
  distribution (offsets uniform in ``[0, 2p]``, flip with probability 1/2), not the same numbers.

Held-out parts (``val``, ``test``) are served in order, without augmentation; ``test`` is never
touched unless a caller asks for its batches (a search's ``DataSplits.without_test()`` withholds it).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset

from snn_nas.data.base import (
    Compose,
    LazyDataset,
    RandomCropFlip,
    TensorImageDataset,
    ToNormalisedFloat,
    WithheldTest,
    resize_images,
)

logger = logging.getLogger(__name__)

RESIDENT_FRACTION = 0.5
"""Share of a trial's device memory (its GPU share on CUDA, available RAM on the CPU) that its
resident data may take; the rest is for the model, activations and the other trials."""

BUDGET_ENV = "SNN_NAS_RESIDENT_BYTES"
"""Environment variable overriding ``device_budget`` (bytes; 0 turns resident data off)."""

AUGMENT_SEED_OFFSET = 104_729
"""``augment_generator`` is seeded with ``config.seed + AUGMENT_SEED_OFFSET`` (not the shuffling seed)."""

_SAID: set[str] = set()


@dataclass
class TensorSource:
    """One data set part as tensors: ``images [N, C, H, W]`` (uint8 or float), ``labels [N]``
    int64, the conversion ``prepare`` (uint8 -> normalised float, None: already float) and the
    training ``augment`` (None: none)."""

    images: torch.Tensor
    labels: torch.Tensor
    prepare: ToNormalisedFloat | None = None
    augment: RandomCropFlip | None = None

    def nbytes(self) -> int:
        """Bytes held on the device: uint8 images unless a resize makes them float."""
        n, c = self.images.shape[:2]
        if self.prepare is not None and tuple(self.images.shape[-2:]) != (self.prepare.size, self.prepare.size):
            return n * c * self.prepare.size**2 * 4 + n * 8
        return self.images.numel() * self.images.element_size() + n * 8


def _transforms(transform: object) -> tuple[bool, ToNormalisedFloat | None, RandomCropFlip | None]:
    """(known, prepare, augment) of a per-image transform."""
    if transform is None:
        return True, None, None
    parts = transform.transforms if isinstance(transform, Compose) else (transform,)
    prepare = augment = None
    for i, part in enumerate(parts):
        if isinstance(part, ToNormalisedFloat) and i == 0:
            prepare = part
        elif isinstance(part, RandomCropFlip) and augment is None and i == len(parts) - 1:
            augment = part
        else:
            return False, None, None
    return True, prepare, augment


def tensor_source(dataset: Dataset) -> TensorSource | None:
    """The tensors behind ``dataset``, or None when it is not held in memory as tensors with
    transforms this module applies in batch (see the module docstring). Never reads a withheld
    test part."""
    if isinstance(dataset, WithheldTest):
        return None
    if isinstance(dataset, LazyDataset):
        return tensor_source(dataset.dataset)
    if isinstance(dataset, TensorImageDataset):
        known, prepare, augment = _transforms(dataset.transform)
        if not known or (prepare is None and dataset.images.dtype == torch.uint8):
            return None
        return TensorSource(dataset.images, dataset.labels, prepare, augment)
    if isinstance(dataset, Subset):
        inner = tensor_source(dataset.dataset)
        if inner is None:
            return None
        index = torch.as_tensor(list(dataset.indices), dtype=torch.long)
        return TensorSource(inner.images[index], inner.labels[index], inner.prepare, inner.augment)
    if isinstance(dataset, ConcatDataset):
        parts = [tensor_source(d) for d in dataset.datasets]
        if not parts or any(p is None for p in parts):
            return None
        first = parts[0]
        same = all(
            p.images.dtype == first.images.dtype
            and p.images.shape[1:] == first.images.shape[1:]
            and repr(p.prepare) == repr(first.prepare)
            and repr(p.augment) == repr(first.augment)
            for p in parts  # type: ignore[union-attr]
        )
        if not same:
            return None
        return TensorSource(
            torch.cat([p.images for p in parts]),  # type: ignore[union-attr]
            torch.cat([p.labels for p in parts]),  # type: ignore[union-attr]
            first.prepare,
            first.augment,
        )
    return None


def _available_ram() -> int:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 4 << 30  # no /proc: assume a modest machine


def device_budget(device: torch.device, share: float = 1.0) -> int:
    """Bytes of resident data a trial may hold on ``device``: ``RESIDENT_FRACTION`` x ``share``
    (the trial's fraction of the GPU, e.g. 0.25) x the GPU's total memory, at most 90 % of what
    is free now; on the CPU ``RESIDENT_FRACTION`` x ``share`` x the available RAM.
    ``SNN_NAS_RESIDENT_BYTES`` overrides it."""
    override = os.environ.get(BUDGET_ENV)
    if override is not None and override.strip():
        return max(0, int(float(override)))
    share = min(max(float(share), 0.0), 1.0) or 1.0
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        return int(min(RESIDENT_FRACTION * share * total, 0.9 * free))
    return int(RESIDENT_FRACTION * share * _available_ram())


def say_once(message: str) -> None:
    """Log ``message`` as a warning the first time this process sees it."""
    if message not in _SAID:
        _SAID.add(message)
        logger.warning(message)


def crop_flip(
    images: torch.Tensor, tops: torch.Tensor, lefts: torch.Tensor, flips: torch.Tensor, padding: int
) -> torch.Tensor:
    """Zero-padded crop and horizontal flip of a batch in one gather.

    ``images [B, C, H, W]`` are padded with ``padding`` zeros on every side; image ``i`` is the
    ``H x W`` window at row ``tops[i]``, column ``lefts[i]`` of its padded copy, mirrored left to
    right where ``flips[i]``: ``out[i, c, r, j] = padded[i, c, tops[i] + r, lefts[i] + j']`` with
    ``j' = W - 1 - j`` if flipped else ``j``. Equals ``RandomCropFlip.apply`` image by image.
    """
    b, c, h, w = images.shape
    padded = F.pad(images, (padding,) * 4) if padding else images
    dev = images.device
    rows = tops.view(b, 1) + torch.arange(h, device=dev)  # [B, H]
    ahead = torch.arange(w, device=dev)
    cols = lefts.view(b, 1) + torch.where(flips.view(b, 1), (w - 1) - ahead, ahead)  # [B, W]
    batch = torch.arange(b, device=dev).view(b, 1, 1, 1)
    chans = torch.arange(c, device=dev).view(1, c, 1, 1)
    return padded[batch, chans, rows.view(b, 1, h, 1), cols.view(b, 1, 1, w)]


class ResidentBatches:
    """Batches ``(x [B, C, S, S] float, y [B] int64)`` of a ``TensorSource`` held on ``device``.

    ``shuffle``: a new order each epoch from ``generator`` (a CPU generator; the same draws as a
    ``DataLoader`` with that generator, see the module docstring); else in order. A source with
    an augmentation (the training part of CIFAR) is augmented with offsets and flips drawn from
    ``augment_generator`` (a generator on ``device``), as the loader path applies the part's own
    transform. ``drop_last``: drop a final short batch. ``len()``: batches per epoch.
    """

    resident = True

    def __init__(
        self,
        source: TensorSource,
        device: torch.device,
        batch_size: int,
        *,
        shuffle: bool = False,
        drop_last: bool = False,
        generator: torch.Generator | None = None,
        augment_generator: torch.Generator | None = None,
    ) -> None:
        if shuffle and generator is None:
            raise ValueError("ResidentBatches: shuffle needs an explicit generator")
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.shuffle, self.drop_last = shuffle, drop_last
        self.generator = generator
        self.augment = source.augment
        if self.augment is not None and augment_generator is None:
            raise ValueError("ResidentBatches: augmentation needs an explicit augment_generator")
        self.augment_generator = augment_generator
        images, self.prepare = source.images, source.prepare
        if self.prepare is not None and tuple(images.shape[-2:]) != (self.prepare.size, self.prepare.size):
            images = torch.cat([self._convert(chunk.to(self.device)) for chunk in images.split(1024)])
            self.prepare = None  # resized and normalised once
        self.images = images.to(self.device)
        self.labels = source.labels.to(self.device, torch.long)
        if self.prepare is not None:
            self.mean = self.prepare.mean.to(self.device)
            self.std = self.prepare.std.to(self.device)

    def _convert(self, images: torch.Tensor) -> torch.Tensor:
        """``ToNormalisedFloat`` in batch: ``[B, C, H, W]`` uint8 -> normalised float ``[B, C, S, S]``."""
        prepare = self.prepare
        assert prepare is not None
        x = images.float() / 255.0
        if x.shape[-2:] != (prepare.size, prepare.size):
            x = resize_images(x, prepare.size)
        return (x - prepare.mean.to(x.device).unsqueeze(0)) / prepare.std.to(x.device).unsqueeze(0)

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def order(self) -> torch.Tensor:
        """This epoch's order of the images ``[N]`` (draws from ``generator`` when shuffling)."""
        n = len(self.labels)
        if not self.shuffle:
            return torch.arange(n)
        torch.empty((), dtype=torch.int64).random_(generator=self.generator)  # the DataLoader's base seed
        return torch.randperm(n, generator=self.generator)

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch of the images at ``index`` ``[B]`` (on the device), augmented if configured."""
        x = self.images[index]
        if self.prepare is not None:
            x = (x.float() / 255.0 - self.mean) / self.std
        if self.augment is not None:
            x = self._augment(x)
        return x, self.labels[index]

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        aug = self.augment
        assert aug is not None
        b = x.shape[0]
        shifts = torch.randint(0, 2 * aug.padding + 1, (b, 2), generator=self.augment_generator, device=self.device)
        if aug.flip:
            flips = torch.rand(b, generator=self.augment_generator, device=self.device) < 0.5
        else:
            flips = torch.zeros(b, dtype=torch.bool, device=self.device)
        return crop_flip(x, shifts[:, 0], shifts[:, 1], flips, aug.padding)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.order().to(self.device)
        for k in range(len(self)):
            yield self.batch(order[k * self.batch_size : (k + 1) * self.batch_size])
        if self.shuffle:  # an exhausted RandomSampler draws one more (empty) permutation
            torch.randperm(len(self.labels), generator=self.generator)


Batches = ResidentBatches | DataLoader


def make_batches(
    dataset: Dataset,
    *,
    device: torch.device,
    batch_size: int,
    shuffle: bool = False,
    drop_last: bool = False,
    generator: torch.Generator | None = None,
    augment_generator: torch.Generator | None = None,
    num_workers: int = 0,
    resident: bool | None = None,
    share: float = 1.0,
    name: str = "data",
) -> Batches:
    """Batches of ``dataset`` for a trial on ``device``: ``ResidentBatches`` when the part is
    held as tensors and fits ``device_budget(device, share)`` (``resident`` None: decide so;
    False: always the loader), else a ``DataLoader`` (same ``generator``; the part's per-image
    transform augments there). ``augment_generator``: the resident path's augmentation draws
    (needed when the part augments; see ``make_augment_generator``). ``name`` labels the
    part in the once-only message when a part too large falls back to the loader.
    """
    source = tensor_source(dataset) if resident is not False else None
    if source is not None:
        need, budget = source.nbytes(), device_budget(device, share)
        if need <= budget:
            return ResidentBatches(
                source,
                device,
                batch_size,
                shuffle=shuffle,
                drop_last=drop_last,
                generator=generator,
                augment_generator=augment_generator,
            )
        if budget == 0 and os.environ.get(BUDGET_ENV, "").strip():
            say_once(f"{BUDGET_ENV}=0: resident data is off; batches come from a DataLoader")
        else:
            say_once(
                f"{name}: {need / 2**20:.0f} MiB of images do not fit the resident-data budget on {device} "
                f"({budget / 2**20:.0f} MiB: {RESIDENT_FRACTION:g} of the trial's memory share, or "
                f"{BUDGET_ENV}); batches come from a DataLoader instead (slower on a GPU)"
            )
    workers = dict(num_workers=num_workers, persistent_workers=num_workers > 0)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        generator=generator,
        pin_memory=device.type == "cuda",
        **workers,
    )


def make_augment_generator(device: torch.device, seed: int) -> torch.Generator:
    """The generator of the resident path's augmentation draws, on ``device``, seeded with
    ``seed + AUGMENT_SEED_OFFSET``."""
    return torch.Generator(device=device).manual_seed(seed + AUGMENT_SEED_OFFSET)
