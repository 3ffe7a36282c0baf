"""Deterministic synthetic images of any shape, for tests and smoke runs.

Every class has a random prototype image; a sample is its class prototype plus Gaussian noise,
so the task is learnable but not trivial. The ``train``, ``val`` and ``test`` parts are drawn
separately (their noise differs, so no image is in two parts). Everything is drawn from a generator seeded by
``seed``: the same arguments give the same tensors.
"""

from __future__ import annotations

import torch

from snn_nas.data.base import DatasetError, DataSplits, TensorImageDataset, check_image_size
from snn_nas.data.registry import DATASETS

LIKE = ("", "cifar")
CIFAR_LIKE_MEAN, CIFAR_LIKE_STD = 0.5, 0.25


def make_synthetic(
    *,
    train: int = 256,
    val: int = 128,
    classes: int = 10,
    channels: int = 3,
    image_size: int = 32,
    noise: float = 1.0,
    seed: int = 0,
    test: int | None = None,
    like: str = "",
) -> DataSplits:
    """Synthetic splits: ``train`` / ``val`` / ``test`` (default: as many as ``val``) images
    ``[channels, image_size, image_size]``, ``classes`` labels.

    Labels cycle through the classes (balanced) in a seeded random order; images are
    ``prototype[label] + noise * N(0, 1)`` with unit-variance prototypes.

    ``like="cifar"``: held and served as CIFAR is (``snn_nas.data.cifar``): each image is
    quantised to uint8 pixels ``clamp(round(255 (0.5 + 0.25 z)), 0, 255)`` of its value ``z``,
    converted per item (``ToNormalisedFloat`` with mean 0.5, std 0.25), and the training part
    (and ``trainval``) is augmented with a random crop (padding 4) and flip. CIFAR-shaped data
    of any size, e.g. ``synthetic:train=45000,val=5000,like=cifar`` for throughput benchmarks.
    """
    test = val if test is None else test
    counts = (
        ("train", train, 1),
        ("val", val, 1),
        ("test", test, 1),
        ("classes", classes, 2),
        ("channels", channels, 1),
    )
    for key, value, low in counts:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise DatasetError(f"synthetic: option {key} must be an integer >= {low}, got {value!r}")
    if not isinstance(noise, (int, float)) or noise < 0:
        raise DatasetError(f"synthetic: option noise must be a number >= 0, got {noise!r}")
    if like not in LIKE:
        raise DatasetError(f"synthetic: option like must be 'cifar' or absent, got {like!r}")
    size = check_image_size("synthetic", image_size, 32)
    generator = torch.Generator().manual_seed(seed)
    prototypes = torch.randn(classes, channels, size, size, generator=generator)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = (torch.arange(n) % classes)[torch.randperm(n, generator=generator)]
        if like == "cifar":  # in chunks: the float images of 50,000 CIFAR-sized images would take 600 MB
            chunks = [
                _to_uint8(prototypes[part] + noise * torch.randn(len(part), channels, size, size, generator=generator))
                for part in labels.split(4096)
            ]
            return torch.cat(chunks), labels
        images = prototypes[labels] + noise * torch.randn(n, channels, size, size, generator=generator)
        return images, labels

    train_x, train_y = draw(train)
    val_x, val_y = draw(val)
    test_x, test_y = draw(test)
    if like == "cifar":
        return _cifar_like(train_x, train_y, val_x, val_y, test_x, test_y, classes, channels, size)
    return DataSplits(
        name="synthetic",
        train=TensorImageDataset(train_x, train_y),
        val=TensorImageDataset(val_x, val_y),
        test=TensorImageDataset(test_x, test_y),
        num_classes=classes,
        in_chans=channels,
        image_size=size,
        classes=tuple(str(i) for i in range(classes)),
    )


def _to_uint8(images: torch.Tensor) -> torch.Tensor:
    return (255.0 * (CIFAR_LIKE_MEAN + CIFAR_LIKE_STD * images)).round_().clamp_(0, 255).to(torch.uint8)


def _cifar_like(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    val_x: torch.Tensor,
    val_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    classes: int,
    channels: int,
    size: int,
) -> DataSplits:
    """uint8 parts with CIFAR's per-item transforms (see ``make_synthetic``)."""
    from snn_nas.data.base import Compose, RandomCropFlip, ToNormalisedFloat

    prepare = ToNormalisedFloat(size, (CIFAR_LIKE_MEAN,) * channels, (CIFAR_LIKE_STD,) * channels)
    augment = Compose((prepare, RandomCropFlip(padding=max(1, round(4 * size / 32)), flip=True)))
    return DataSplits(
        name="synthetic",
        train=TensorImageDataset(train_x, train_y, transform=augment),
        val=TensorImageDataset(val_x, val_y, transform=prepare),
        test=TensorImageDataset(test_x, test_y, transform=prepare),
        trainval=TensorImageDataset(torch.cat([train_x, val_x]), torch.cat([train_y, val_y]), transform=augment),
        num_classes=classes,
        in_chans=channels,
        image_size=size,
        classes=tuple(str(i) for i in range(classes)),
    )


@DATASETS.register("synthetic")
def load_synthetic(
    *,
    data_root: str | None = None,
    image_size: int | None = None,
    seed: int = 0,
    download: bool = False,
    val_fraction: float | None = None,
    train: int = 256,
    val: int = 128,
    test: int | None = None,
    classes: int = 10,
    channels: int = 3,
    noise: float = 1.0,
    like: str = "",
) -> DataSplits:
    """``synthetic[:train=N,val=N,test=N,classes=K,channels=C,noise=S,like=cifar]``; default
    3 x 32 x 32, 10 classes. ``val_fraction`` (when given) holds out that share of ``train +
    val`` images as ``val`` instead of the ``val`` option. ``like=cifar``: uint8 images served
    as CIFAR is (see ``make_synthetic``)."""
    if val_fraction is not None:
        from snn_nas.data.base import check_val_fraction

        total = train + val
        val = max(1, round(total * check_val_fraction("synthetic", val_fraction, 0.5)))
        train = max(1, total - val)
    return make_synthetic(
        train=train,
        val=val,
        test=test,
        classes=classes,
        channels=channels,
        image_size=32 if image_size is None else image_size,
        noise=noise,
        seed=seed,
        like=like,
    )
