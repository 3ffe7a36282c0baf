"""CIFAR-10 and CIFAR-100 from the python-pickle archives under ``data_root``.

Expected layouts (what torchvision downloads and unpacks)::

    <data_root>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}
    <data_root>/cifar-100-python/{train, test, meta}

Parts: ``test`` is the official test batch (read from disk only when something evaluates on
it); ``val`` is ``val_fraction`` (default 0.1: 5,000 images) of the training batches, stratified
and fixed by the split seed; ``train`` is the rest. ``trainval`` serves all 50,000 training
images with the training augmentation (what ``snn-nas retrain`` trains on).

Trust: the files are python pickles, and unpickling a file can run code. Before unpickling,
each file's MD5 is checked against the official release (``OFFICIAL_MD5``, the figures
torchvision checks too); a file that differs is refused. For a file you made yourself in the
same format (a test fixture, a subset), pass the dataset option ``verify=0``
(``cifar10:verify=0``): only for files you trust. torchvision downloads the archive only when
``download=True``. The images are held in memory as uint8 ``[N, 3, 32, 32]`` and converted per
item (scale, resize, normalise); training augmentation is a random crop (padding 4, scaled
with the image size) and a horizontal flip.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from snn_nas.data.base import (
    Compose,
    DatasetError,
    DataSplits,
    LazyDataset,
    RandomCropFlip,
    TensorImageDataset,
    ToNormalisedFloat,
    check_image_size,
    check_val_fraction,
    stratified_split,
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
VAL_FRACTION = 0.1

OFFICIAL_MD5 = {
    "cifar-10-batches-py": {
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
        "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
    },
    "cifar-100-python": {
        "train": "16019d7e3df5f24257cddd939b257f8d",
        "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
        "meta": "7973b15100ade9c7d40fb424638fde48",
    },
}
"""MD5 of every file of the official python releases (as torchvision checks them)."""


@lru_cache(maxsize=64)
def _md5(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_official(fmt: _CifarFormat, path: Path) -> None:
    """Refuse ``path`` unless its MD5 is that of the official file of the same name."""
    expected = OFFICIAL_MD5[fmt.folder][path.name]
    stat = path.stat()
    if _md5(str(path), stat.st_size, stat.st_mtime_ns) != expected:
        raise DatasetError(
            f"{fmt.name}: {path} is not the official {fmt.folder}/{path.name} (MD5 differs); it is a pickle and "
            f"is not opened. Re-download it (--download into an empty --data-root), or, for a file you made "
            f"yourself and trust, pass the dataset as '{fmt.name}:verify=0'"
        )


def _unpickle(fmt: _CifarFormat, path: Path, verify: bool) -> dict[str, object]:
    if verify:
        verify_official(fmt, path)
    with path.open("rb") as handle:
        raw = pickle.load(handle, encoding="bytes")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in raw.items()}


def _read_batches(
    fmt: _CifarFormat, folder: Path, files: tuple[str, ...], verify: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``[N, 3, 32, 32]`` uint8 and labels ``[N]`` from pickled batches."""
    images, labels = [], []
    for file in files:
        try:
            batch = _unpickle(fmt, folder / file, verify)
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


def _verify_flag(fmt: _CifarFormat, verify: object) -> bool:
    if verify in (0, 1, True, False) or verify in ("0", "1", "true", "false"):
        return verify not in (0, False, "0", "false")
    raise DatasetError(f"{fmt.name}: option verify must be 1 (check the official MD5s, default) or 0, got {verify!r}")


def _load_cifar(
    fmt: _CifarFormat,
    data_root: str | None,
    image_size: int | None,
    download: bool,
    seed: int,
    val_fraction: float | None,
    verify: object,
) -> DataSplits:
    size = check_image_size(fmt.name, image_size, 32)
    fraction = check_val_fraction(fmt.name, val_fraction, VAL_FRACTION)
    check = _verify_flag(fmt, verify)
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
    train_x, train_y = _read_batches(fmt, folder, fmt.train_files, check)
    try:
        names = tuple(
            str(n.decode() if isinstance(n, bytes) else n)
            for n in _unpickle(fmt, folder / fmt.meta_file, check)[fmt.names_key]
        )
    except (OSError, KeyError, pickle.UnpicklingError, EOFError) as exc:
        raise DatasetError(f"{fmt.name}: cannot read class names from {folder / fmt.meta_file}: {exc}") from None
    prepare = ToNormalisedFloat(size, fmt.mean, fmt.std)
    augment = Compose((prepare, RandomCropFlip(padding=max(1, round(4 * size / 32)), flip=True)))
    train_idx, val_idx = stratified_split(train_y, fraction, seed)

    def test_part() -> TensorImageDataset:
        test_x, test_y = _read_batches(fmt, folder, (fmt.test_file,), check)
        return TensorImageDataset(test_x, test_y, transform=prepare)

    return DataSplits(
        name=fmt.name,
        train=TensorImageDataset(train_x[train_idx], train_y[train_idx], transform=augment),
        val=TensorImageDataset(train_x[val_idx], train_y[val_idx], transform=prepare),
        test=LazyDataset(test_part),
        trainval=TensorImageDataset(train_x, train_y, transform=augment),
        num_classes=len(names),
        in_chans=3,
        image_size=size,
        classes=names,
        val_fraction=fraction,
    )


@DATASETS.register("cifar10")
def load_cifar10(
    *,
    data_root: str | None = None,
    image_size: int | None = None,
    seed: int = 0,
    download: bool = False,
    val_fraction: float | None = None,
    verify: int = 1,
) -> DataSplits:
    """CIFAR-10, 3 x 32 x 32, 10 classes: 45,000 train / 5,000 val (held out of the 50,000
    training images by ``seed``) / 10,000 test images (the official test batch)."""
    return _load_cifar(CIFAR10, data_root, image_size, download, seed, val_fraction, verify)


@DATASETS.register("cifar100")
def load_cifar100(
    *,
    data_root: str | None = None,
    image_size: int | None = None,
    seed: int = 0,
    download: bool = False,
    val_fraction: float | None = None,
    verify: int = 1,
) -> DataSplits:
    """CIFAR-100 (fine labels), 3 x 32 x 32, 100 classes: 45,000 train / 5,000 val / 10,000
    test images (as ``load_cifar10``)."""
    return _load_cifar(CIFAR100, data_root, image_size, download, seed, val_fraction, verify)
