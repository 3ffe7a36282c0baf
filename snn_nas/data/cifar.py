"""CIFAR-10 and CIFAR-100 from the python-pickle archives under ``data_root``.

Expected layouts (what torchvision downloads and unpacks)::

    <data_root>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}
    <data_root>/cifar-100-python/{train, test, meta}

The pickles are read directly (so any file in that format works, checksums are not enforced);
torchvision downloads them only when ``download=True``. The images are held in memory as
uint8 ``[N, 3, 32, 32]`` and converted per item (scale, resize, normalise); training
augmentation is a random crop (padding 4, scaled with the image size) and a horizontal flip.
``val`` is the official test split.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from snn_nas.data.base import (
    Compose,
    DatasetError,
    DataSplits,
    RandomCropFlip,
    TensorImageDataset,
    ToNormalisedFloat,
    check_image_size,
)
from snn_nas.data.registry import DATASETS


@dataclass(frozen=True)
class _CifarFormat:
    name: str
    folder: str
    train_files: tuple[str, ...]
    test_file: str
    meta_file: str
    label_key: str
    names_key: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    torchvision_class: str


CIFAR10 = _CifarFormat(
    name="cifar10",
    folder="cifar-10-batches-py",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_file="test_batch",
    meta_file="batches.meta",
    label_key="labels",
    names_key="label_names",
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.2470, 0.2435, 0.2616),
    torchvision_class="CIFAR10",
)
CIFAR100 = _CifarFormat(
    name="cifar100",
    folder="cifar-100-python",
    train_files=("train",),
    test_file="test",
    meta_file="meta",
    label_key="fine_labels",
    names_key="fine_label_names",
    mean=(0.5071, 0.4865, 0.4409),
    std=(0.2673, 0.2564, 0.2762),
    torchvision_class="CIFAR100",
)


def _unpickle(path: Path) -> dict[str, object]:
    with path.open("rb") as handle:
        raw = pickle.load(handle, encoding="bytes")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in raw.items()}


def _read_batches(fmt: _CifarFormat, folder: Path, files: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``[N, 3, 32, 32]`` uint8 and labels ``[N]`` from pickled batches."""
    images, labels = [], []
    for file in files:
        try:
            batch = _unpickle(folder / file)
            data = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            target = np.asarray(batch[fmt.label_key], dtype=np.int64)
        except (OSError, KeyError, ValueError, pickle.UnpicklingError, EOFError) as exc:
            raise DatasetError(f"{fmt.name}: cannot read {folder / file}: {type(exc).__name__}: {exc}") from None
        images.append(torch.from_numpy(data))
        labels.append(torch.from_numpy(target))
    return torch.cat(images), torch.cat(labels)


def _download(fmt: _CifarFormat, root: Path) -> None:
    import torchvision.datasets

    try:
        getattr(torchvision.datasets, fmt.torchvision_class)(str(root), train=True, download=True)
    except Exception as exc:  # network errors come in many types (URLError, OSError, RuntimeError)
        raise DatasetError(
            f"{fmt.name}: download into {root} failed ({type(exc).__name__}: {exc}); without a network, "
            f"place the extracted '{fmt.folder}' folder under --data-root"
        ) from None


def _load_cifar(fmt: _CifarFormat, data_root: str | None, image_size: int | None, download: bool) -> DataSplits:
    size = check_image_size(fmt.name, image_size, 32)
    if data_root is None:
        raise DatasetError(
            f"{fmt.name}: needs --data-root, the folder that holds '{fmt.folder}/' (or will, with --download)"
        )
    root = Path(data_root).expanduser()
    folder = root / fmt.folder
    needed = (*fmt.train_files, fmt.test_file, fmt.meta_file)
    missing = [f for f in needed if not (folder / f).is_file()]
    if missing and download:
        _download(fmt, root)
        missing = [f for f in needed if not (folder / f).is_file()]
    if missing and not folder.is_dir():
        raise DatasetError(
            f"{fmt.name}: folder {folder} not found; put the extracted python version '{fmt.folder}/' under "
            "--data-root, or pass --download with a network"
        )
    if missing:
        raise DatasetError(
            f"{fmt.name}: {folder} lacks {', '.join(missing)}; expected the extracted python version "
            f"'{fmt.folder}/' ({', '.join(needed)}) under --data-root, or pass --download with a network"
        )
    train_x, train_y = _read_batches(fmt, folder, fmt.train_files)
    val_x, val_y = _read_batches(fmt, folder, (fmt.test_file,))
    try:
        names = tuple(
            str(n.decode() if isinstance(n, bytes) else n) for n in _unpickle(folder / fmt.meta_file)[fmt.names_key]
        )
    except (OSError, KeyError, pickle.UnpicklingError, EOFError) as exc:
        raise DatasetError(f"{fmt.name}: cannot read class names from {folder / fmt.meta_file}: {exc}") from None

    prepare = ToNormalisedFloat(size, fmt.mean, fmt.std)
    augment = RandomCropFlip(padding=max(1, round(4 * size / 32)), flip=True)
    return DataSplits(
        name=fmt.name,
        train=TensorImageDataset(train_x, train_y, transform=Compose((prepare, augment))),
        val=TensorImageDataset(val_x, val_y, transform=prepare),
        num_classes=len(names),
        in_chans=3,
        image_size=size,
        classes=names,
    )


@DATASETS.register("cifar10")
def load_cifar10(
    *, data_root: str | None = None, image_size: int | None = None, seed: int = 0, download: bool = False
) -> DataSplits:
    """CIFAR-10: 50,000 train / 10,000 test images, 3 x 32 x 32, 10 classes (``seed`` is unused)."""
    return _load_cifar(CIFAR10, data_root, image_size, download)


@DATASETS.register("cifar100")
def load_cifar100(
    *, data_root: str | None = None, image_size: int | None = None, seed: int = 0, download: bool = False
) -> DataSplits:
    """CIFAR-100 (fine labels): 50,000 train / 10,000 test images, 3 x 32 x 32, 100 classes."""
    return _load_cifar(CIFAR100, data_root, image_size, download)
