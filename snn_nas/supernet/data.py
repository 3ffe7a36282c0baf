"""Batches for supernet training and evaluation, straight from in-memory datasets.

Supernet steps are many and short, so images are gathered by index into one tensor instead of
going through a ``DataLoader``: in-memory datasets without a per-item transform (``mnist5k``,
``digits``, ``synthetic``) are sliced directly; other datasets are read item by item (their
transform, e.g. CIFAR's augmentation, applies per item, drawing from torch's generator).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import ConcatDataset, Dataset, Subset


def _stored(dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(images, labels)`` of a dataset that serves its stored tensors unchanged, else None."""
    from snn_nas.data.base import LazyDataset, TensorImageDataset

    if isinstance(dataset, LazyDataset):
        return _stored(dataset.dataset)
    if isinstance(dataset, TensorImageDataset) and dataset.transform is None:
        return dataset.images, dataset.labels
    if isinstance(dataset, Subset):
        inner = _stored(dataset.dataset)
        if inner is not None:
            index = torch.as_tensor(list(dataset.indices), dtype=torch.long)
            return inner[0][index], inner[1][index]
    if isinstance(dataset, ConcatDataset):
        parts = [_stored(d) for d in dataset.datasets]
        if all(p is not None for p in parts):
            return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])  # type: ignore[index]
    return None


def gather(dataset: Any, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``[len(indices), C, H, W]`` and labels ``[len(indices)]`` of ``dataset`` at ``indices``."""
    stored = _stored(dataset)
    if stored is not None:
        return stored[0][indices], stored[1][indices]
    items = [dataset[int(i)] for i in indices]
    return torch.stack([image for image, _ in items]), torch.tensor([int(label) for _, label in items])


def dataset_tensors(dataset: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image and label of ``dataset`` (its transform applied per item where it has one)."""
    stored = _stored(dataset)
    if stored is not None:
        return stored
    return gather(dataset, torch.arange(len(dataset)))
