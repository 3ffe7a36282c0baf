"""ImageNet-style image folders: ``<data_root>/train/<class>/*.png|jpg`` and ``<data_root>/val/<class>/...``.

Read with torchvision's ``ImageFolder`` (RGB); the usual ImageNet transforms: training uses a
random resized crop to ``image_size`` and a horizontal flip, validation resizes the short side to
``image_size * 256 / 224`` and centre-crops; both normalise with the ImageNet mean and std.
"""

from __future__ import annotations

from pathlib import Path

from snn_nas.data.base import DatasetError, DataSplits, check_image_size
from snn_nas.data.registry import DATASETS

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_transforms(size: int) -> tuple[object, object]:
    """(train, val) torchvision transforms producing normalised ``[3, size, size]`` tensors."""
    from torchvision import transforms

    normalize = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    train = transforms.Compose(
        [
            transforms.RandomResizedCrop(size),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            normalize,
        ]
    )
    val = transforms.Compose(
        [
            transforms.Resize(round(size * 256 / 224)),
            transforms.CenterCrop(size),
            transforms.ToTensor(),
            normalize,
        ]
    )
    return train, val


@DATASETS.register("imagefolder")
def load_imagefolder(
    *, data_root: str | None = None, image_size: int | None = None, seed: int = 0, download: bool = False
) -> DataSplits:
    """An ImageNet-style folder tree under ``data_root`` (default image size 224; ``seed`` unused)."""
    size = check_image_size("imagefolder", image_size, 224)
    if data_root is None:
        raise DatasetError(
            "imagefolder: needs --data-root, a folder with 'train/<class>/' and 'val/<class>/' image folders"
        )
    if download:
        raise DatasetError("imagefolder: cannot be downloaded; point --data-root at an existing folder tree")
    root = Path(data_root).expanduser()
    for part in ("train", "val"):
        if not (root / part).is_dir():
            raise DatasetError(
                f"imagefolder: {root / part} is not a folder; "
                f"expected '{root}/train/<class>/' and '{root}/val/<class>/'"
            )
    from torchvision.datasets import ImageFolder

    train_tf, val_tf = imagenet_transforms(size)
    try:
        train = ImageFolder(str(root / "train"), transform=train_tf)
        val = ImageFolder(str(root / "val"), transform=val_tf)
    except (FileNotFoundError, OSError) as exc:
        raise DatasetError(f"imagefolder: cannot read {root}: {exc}") from None
    if train.classes != val.classes:
        only_train = sorted(set(train.classes) - set(val.classes))
        only_val = sorted(set(val.classes) - set(train.classes))
        raise DatasetError(
            "imagefolder: train/ and val/ must hold the same class folders; "
            f"only in train: {only_train}, only in val: {only_val}"
        )
    return DataSplits(
        name="imagefolder",
        train=train,
        val=val,
        num_classes=len(train.classes),
        in_chans=3,
        image_size=size,
        classes=tuple(train.classes),
    )
