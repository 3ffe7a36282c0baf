"""Shared pieces of the dataset loaders: the split container, in-memory datasets, helpers.

Every loader returns a ``DataSplits`` with three disjoint parts, torch ``Dataset`` objects
yielding ``(image, label)`` with ``image`` a float tensor ``[C, H, W]`` (normalised) and
``label`` an ``int``:

* ``train``: what a model is fitted on;
* ``val``: held out from the training data (stratified, fixed by the split seed); a search
  ranks its trials on it;
* ``test``: the official test split where one exists, else a fixed stratified part; only
  read after a search (``snn-nas retrain``, ``snn-nas audit``, ``snn-nas train``).

This is the protocol of NAS-Bench-201 and DARTS: an accuracy that selected an architecture is
never the accuracy reported for it. Small datasets are held in memory as one tensor that is
resized and normalised once; per-item work is limited to augmentation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch.utils.data import ConcatDataset, Dataset

from snn_nas.errors import SnnNasError

Transform = Callable[[torch.Tensor], torch.Tensor]


class DatasetError(SnnNasError, ValueError):
    """A dataset that cannot be loaded: missing files, bad layout, bad option."""


@dataclass(frozen=True)
class DataSplits:
    """The three parts of one dataset at one image size (see the module docstring).

    ``train`` / ``val`` / ``test`` yield ``(float image [in_chans, image_size, image_size], int
    label)``. ``trainval`` is ``train`` and ``val`` together served as training data (with the
    training augmentation), or None when plain concatenation does that (in-memory sets without
    augmentation). ``val_fraction`` is the share of the training data held out as ``val``.
    """

    name: str
    train: Dataset
    val: Dataset
    num_classes: int
    in_chans: int
    image_size: int
    classes: tuple[str, ...] = field(default=())
    test: Dataset | None = None
    trainval: Dataset | None = None
    val_fraction: float | None = None

    def training_set(self, include_val: bool = False) -> Dataset:
        """``train``, or with ``include_val`` all the training data (``train`` + ``val``)."""
        if not include_val:
            return self.train
        return self.trainval if self.trainval is not None else ConcatDataset([self.train, self.val])

    def at_time_steps(self, time_steps: int) -> DataSplits:
        """The splits a model with ``time_steps`` steps trains and is evaluated on: the same
        images for static data (repeated over T by the model); event data bins its streams
        into ``time_steps`` frames (``snn_nas.data.events``)."""
        return self

    def without_test(self) -> DataSplits:
        """The same splits with ``test`` withheld: any read of it raises ``SplitWithheldError``
        (what a search trial gets, so that nothing in a search can look at test images)."""
        return replace(self, test=WithheldTest(self.name))

    def describe(self) -> str:
        test = "no" if self.test is None else _length(self.test)
        return (
            f"{self.name}: {len(self.train)} train / {len(self.val)} val / {test} test images, "  # type: ignore[arg-type]
            f"{self.in_chans}x{self.image_size}x{self.image_size}, {self.num_classes} classes"
        )


def _length(dataset: Dataset) -> int | str:
    """The size of a part, without reading a part that is withheld or not read yet."""
    if isinstance(dataset, WithheldTest):
        return "withheld"
    if isinstance(dataset, LazyDataset) and not dataset.built:
        return "(read on first use)"
    return len(dataset)  # type: ignore[arg-type]


class SplitWithheldError(SnnNasError, RuntimeError):
    """Something tried to read the test part where it is withheld (inside a search)."""


class WithheldTest(Dataset):
    """Stands in for the test part inside a search: reading it raises ``SplitWithheldError``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def _refuse(self) -> SplitWithheldError:
        return SplitWithheldError(
            f"{self.name}: the test part is withheld during a search (trials rank on 'val'); "
            "test accuracy is measured after the search by 'snn-nas retrain' or 'snn-nas audit'"
        )

    def __len__(self) -> int:
        raise self._refuse()

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        raise self._refuse()


class LazyDataset(Dataset):
    """A dataset built on first use by ``build()`` (e.g. a test split read from disk only when
    something evaluates on it)."""

    def __init__(self, build: Callable[[], Dataset]) -> None:
        self._build = build
        self._dataset: Dataset | None = None

    @property
    def built(self) -> bool:
        return self._dataset is not None

    @property
    def dataset(self) -> Dataset:
        if self._dataset is None:
            self._dataset = self._build()
        return self._dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.dataset[index]


class TensorImageDataset(Dataset):
    """In-memory images ``[N, C, H, W]`` (or frame sequences ``[N, T, C, H, W]`` of event data)
    with labels ``[N]``.

    Without ``transform`` the images must already be normalised floats. ``transform`` maps one
    stored image ``[C, H, W]`` to the float ``[C, H', W']`` served (conversion, augmentation); it
    may draw from torch's default generator (the training engine seeds it in a forked scope).
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Transform | None = None) -> None:
        if images.ndim not in (4, 5) or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(
                f"expected images [N, C, H, W] or [N, T, C, H, W] and labels [N], got {tuple(images.shape)}, "
                f"{tuple(labels.shape)}"
            )
        self.images = images
        self.labels = labels.long()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])


def time_major(batch: torch.Tensor) -> torch.Tensor:
    """A batch as the model takes it: ``[B, T, C, H, W]`` frame sequences (event data, batch
    first as loaders stack items) -> ``[T, B, C, H, W]``; ``[B, C, H, W]`` images unchanged."""
    return batch.transpose(0, 1) if batch.ndim == 5 else batch


def stratified_split(labels: torch.Tensor, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split indices ``[N]`` into (train, val) keeping class proportions; fixed by ``seed``.

    Each class contributes ``round(count * val_fraction)`` images (at least one when it has two
    or more) to the validation part. Both index tensors are sorted.
    """
    generator = torch.Generator().manual_seed(seed)
    train, val = [], []
    for cls in torch.unique(labels).tolist():
        members = torch.nonzero(labels == cls).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        n_val = round(len(members) * val_fraction)
        if len(members) >= 2:
            n_val = min(max(n_val, 1), len(members) - 1)
        val.append(members[:n_val])
        train.append(members[n_val:])
    return torch.cat(train).sort().values, torch.cat(val).sort().values


def check_val_fraction(name: str, val_fraction: float | None, default: float) -> float:
    """The share of the training data to hold out as ``val``: ``val_fraction`` if given (a
    number in (0, 1)), else the dataset's ``default``."""
    if val_fraction is None:
        return default
    ok = isinstance(val_fraction, (int, float)) and not isinstance(val_fraction, bool)
    if not ok or not 0.0 < float(val_fraction) < 1.0:
        raise DatasetError(f"{name}: val_fraction must be a number in (0, 1), got {val_fraction!r}")
    return float(val_fraction)


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear (antialiased) resize of ``[N, C, H, W]`` to ``[N, C, size, size]``."""
    if images.shape[-2:] == (size, size):
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def pad_images(images: torch.Tensor, size: int, value: float = 0.0) -> torch.Tensor:
    """Centre ``[N, C, H, W]`` on a ``size x size`` canvas filled with ``value`` (extra pixel right/bottom)."""
    h, w = images.shape[-2:]
    top, left = (size - h) // 2, (size - w) // 2
    return F.pad(images, (left, size - w - left, top, size - h - top), value=value)


def normalise(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(images - mean) / std`` per channel for ``[N, C, H, W]``."""
    m = torch.tensor(mean, dtype=images.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=images.dtype).view(1, -1, 1, 1)
    return (images - m) / s


def check_image_size(name: str, image_size: int | None, default: int) -> int:
    """The image size to use: ``image_size`` if given (a positive int), else ``default``."""
    if image_size is None:
        return default
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise DatasetError(f"{name}: image_size must be a positive integer or None, got {image_size!r}")
    return image_size


class Compose:
    """Apply per-image transforms ``[C, H, W] -> [C, H, W]`` in order."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = tuple(transforms)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        for transform in self.transforms:
            image = transform(image)
        return image

    def __repr__(self) -> str:
        return f"Compose({list(self.transforms)})"


class ToNormalisedFloat:
    """uint8 image ``[C, H, W]`` -> float ``[C, size, size]``: scale to [0, 1], resize, normalise."""

    def __init__(self, size: int, mean: Sequence[float], std: Sequence[float]) -> None:
        self.size = size
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        image = image.float() / 255.0
        if image.shape[-2:] != (self.size, self.size):
            image = resize_images(image.unsqueeze(0), self.size).squeeze(0)
        return (image - self.mean) / self.std

    def __repr__(self) -> str:
        return f"ToNormalisedFloat(size={self.size})"


class RandomCropFlip:
    """Per-image augmentation on a normalised tensor ``[C, H, W]``: zero-padded random crop, flip.

    ``padding`` pixels of 0 (the normalised mean) on every side, then a random ``H x W`` crop;
    a horizontal flip with probability 0.5 when ``flip``. Draws from torch's default generator.
    """

    def __init__(self, padding: int = 4, flip: bool = True) -> None:
        self.padding = padding
        self.flip = flip

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        top = left = 0
        if self.padding:
            top, left = torch.randint(0, 2 * self.padding + 1, (2,)).tolist()
        flip = bool(self.flip and torch.rand(()) < 0.5)
        return self.apply(image, top, left, flip)

    def apply(self, image: torch.Tensor, top: int, left: int, flip: bool) -> torch.Tensor:
        """The crop at (``top``, ``left``) of the padded ``[C, H, W]`` image, mirrored if ``flip``
        (the draws made; ``snn_nas.data.resident.crop_flip`` is the same in batch)."""
        h, w = image.shape[-2:]
        if self.padding:
            p = self.padding
            image = F.pad(image, (p, p, p, p))[:, top : top + h, left : left + w]
        return image.flip(-1) if flip else image

    def __repr__(self) -> str:
        return f"RandomCropFlip(padding={self.padding}, flip={self.flip})"
