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
) -> DataSplits:
    """Synthetic splits: ``train`` / ``val`` / ``test`` (default: as many as ``val``) images
    ``[channels, image_size, image_size]``, ``classes`` labels.

    Labels cycle through the classes (balanced) in a seeded random order; images are
    ``prototype[label] + noise * N(0, 1)`` with unit-variance prototypes.
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
    size = check_image_size("synthetic", image_size, 32)
    generator = torch.Generator().manual_seed(seed)
    prototypes = torch.randn(classes, channels, size, size, generator=generator)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = (torch.arange(n) % classes)[torch.randperm(n, generator=generator)]
        images = prototypes[labels] + noise * torch.randn(n, channels, size, size, generator=generator)
        return images, labels

    train_x, train_y = draw(train)
    val_x, val_y = draw(val)
    test_x, test_y = draw(test)
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
) -> DataSplits:
    """``synthetic[:train=N,val=N,test=N,classes=K,channels=C,noise=S]``; default 3 x 32 x 32,
    10 classes. ``val_fraction`` (when given) holds out that share of ``train + val`` images as
    ``val`` instead of the ``val`` option."""
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
    )
