"""The dataset registry: name -> loader ``(*, data_root, image_size, seed, download, **options) -> DataSplits``."""

from __future__ import annotations

from collections.abc import Callable

from snn_nas.registry import Registry

DATASETS: Registry[Callable[..., object]] = Registry("dataset")
