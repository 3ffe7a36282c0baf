"""The augmentations of the published ImageNet recipes, as a frozen setting and its transforms.

``Augment`` holds the settings (all primitives; ``Augment()`` is none of them, which is what every
run of the search and of ``snn-nas train`` without ``--recipe`` uses):

* per image, on the training part of an image folder (``train_transform``): random resized crop
  (``interpolation``), horizontal flip, RandAugment (``randaugment_ops`` operations of magnitude
  ``randaugment_magnitude`` out of 10, timm's ``rand-m9-...`` scale: torchvision's
  ``RandAugment`` with 11 magnitude bins), normalisation, random erasing (probability
  ``random_erasing``, per-pixel normal noise: timm's ``mode=pixel``);
* per batch, on the device (``BatchMixer``): MixUp (Beta(``mixup``, ``mixup``)) or CutMix
  (Beta(``cutmix``, ``cutmix``)), one of the two per batch with probability ``switch_prob`` for
  CutMix (timm's ``mode=batch``, ``prob=1``); the targets become soft labels, to which the
  cross-entropy applies the run's label smoothing (``(1 - s) y + s / K``, as timm smooths before
  mixing: the same linear map);
* per epoch (``repeats`` > 1): repeated augmentation, the sampler of
  ``snn_nas.training.parallel.epoch_order``.

Not reproduced: timm's magnitude noise (``mstd0.5``) and its ``inc1`` operation set differ in
detail from torchvision's RandAugment (the same kinds of operation, the same severity scale).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from snn_nas.errors import SnnNasError

INTERPOLATIONS = ("bilinear", "bicubic")


class AugmentError(SnnNasError, ValueError):
    """An augmentation setting out of range; the message names it."""


@dataclass(frozen=True)
class Augment:
    """Augmentation settings (module docstring). The default is no augmentation beyond the
    dataset's own."""

    mixup: float = 0.0
    cutmix: float = 0.0
    switch_prob: float = 0.5
    randaugment_ops: int = 0
    randaugment_magnitude: int = 9
    random_erasing: float = 0.0
    repeats: int = 1
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        for name in ("mixup", "cutmix", "switch_prob", "random_erasing"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise AugmentError(f"{name}: {value!r} must be a number >= 0")
            object.__setattr__(self, name, float(value))
        if self.switch_prob > 1 or self.random_erasing > 1:
            raise AugmentError("switch_prob and random_erasing are probabilities in [0, 1]")
        for name, low, high in (("randaugment_ops", 0, 8), ("randaugment_magnitude", 0, 10), ("repeats", 1, 8)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise AugmentError(f"{name}: {value!r} must be an integer in [{low}, {high}]")
        if self.interpolation not in INTERPOLATIONS:
            raise AugmentError(f"interpolation: {self.interpolation!r} is not one of {list(INTERPOLATIONS)}")

    @property
    def mixes(self) -> bool:
        return self.mixup > 0 or self.cutmix > 0

    @property
    def per_image(self) -> bool:
        """Whether the training images need ``train_transform`` (an image folder's loader)."""
        return self.randaugment_ops > 0 or self.random_erasing > 0 or self.interpolation != "bilinear"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Augment:
        return cls(**(data or {}))

    def describe(self) -> str:
        parts = []
        if self.mixes:
            parts.append(f"mixup {self.mixup:g} / cutmix {self.cutmix:g} (cutmix with p {self.switch_prob:g})")
        if self.randaugment_ops:
            parts.append(f"RandAugment {self.randaugment_ops} ops, magnitude {self.randaugment_magnitude}/10")
        if self.random_erasing:
            parts.append(f"random erasing {self.random_erasing:g}")
        if self.repeats > 1:
            parts.append(f"repeated augmentation x{self.repeats}")
        if self.interpolation != "bilinear":
            parts.append(f"{self.interpolation} resizing")
        return ", ".join(parts) or "none beyond the dataset's own"


def train_transform(augment: Augment, size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> Any:
    """The per-image training transform of an image folder under ``augment`` (PIL image ->
    normalised float ``[3, size, size]``)."""
    import torch
    from torchvision.transforms import InterpolationMode, v2

    mode = InterpolationMode.BICUBIC if augment.interpolation == "bicubic" else InterpolationMode.BILINEAR
    steps: list[Any] = [v2.RandomResizedCrop(size, interpolation=mode, antialias=True), v2.RandomHorizontalFlip()]
    if augment.randaugment_ops:  # on the PIL image, as timm's; its geometric operations resample bilinearly
        steps.append(
            v2.RandAugment(
                num_ops=augment.randaugment_ops,
                magnitude=augment.randaugment_magnitude,
                num_magnitude_bins=11,
                interpolation=InterpolationMode.BILINEAR,
            )
        )
    steps += [v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    if augment.random_erasing:
        steps.append(v2.RandomErasing(p=augment.random_erasing, value="random"))
    return v2.Compose(steps)


class BatchMixer:
    """MixUp or CutMix of a batch on its device: ``(x [B, ...], y [B] int64) -> (x, y_soft [B, K])``.

    Draws from torch's default generator (the worker seeds it per epoch)."""

    def __init__(self, augment: Augment, num_classes: int) -> None:
        from torchvision.transforms import v2

        self.num_classes = num_classes
        choices, weights = [], []
        if augment.mixup > 0:
            choices.append(v2.MixUp(alpha=augment.mixup, num_classes=num_classes))
            weights.append(1.0 - augment.switch_prob if augment.cutmix > 0 else 1.0)
        if augment.cutmix > 0:
            choices.append(v2.CutMix(alpha=augment.cutmix, num_classes=num_classes))
            weights.append(augment.switch_prob if augment.mixup > 0 else 1.0)
        self.mix = choices[0] if len(choices) == 1 else v2.RandomChoice(choices, p=weights)

    def __call__(self, x: Any, y: Any) -> tuple[Any, Any]:
        if x.ndim == 5:  # event frames [T, B, C, H, W]: mix the same way at every step
            steps = x.shape[0]
            mixed, soft = self.mix(x.permute(1, 0, 2, 3, 4).flatten(1, 2), y)
            return mixed.unflatten(1, (steps, -1)).permute(1, 0, 2, 3, 4), soft
        return self.mix(x, y)


def with_training_transform(data: Any, augment: Augment) -> Any:
    """``data`` (a ``DataSplits``) whose training images (``train`` and ``trainval``) go through
    ``train_transform(augment, ...)``: image folders only (PIL images read from disk); the
    held-out parts keep their evaluation transform. ``AugmentError`` for data held as tensors."""
    import copy
    from dataclasses import replace

    from torch.utils.data import Subset

    from snn_nas.data.imagefolder import IMAGENET_MEAN, IMAGENET_STD

    transform = train_transform(augment, data.image_size, IMAGENET_MEAN, IMAGENET_STD)

    def swap(part: Any) -> Any:
        if isinstance(part, Subset):
            return Subset(swap(part.dataset), part.indices)
        if hasattr(part, "loader") and hasattr(part, "transform") and hasattr(part, "samples"):
            part = copy.copy(part)
            part.transform = transform
            return part
        raise AugmentError(
            f"RandAugment, random erasing and {augment.interpolation} resizing work on image folders (PIL images); "
            f"{data.name} is held as tensors: use a recipe on --dataset imagefolder, or leave those out"
        )

    trainval = swap(data.trainval) if data.trainval is not None else None
    return replace(data, train=swap(data.train), trainval=trainval)
