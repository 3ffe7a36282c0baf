"""Batches for supernet training and evaluation: drawn by index, device-resident where they fit.

Supernet steps are many and short, so the training part is held on the device where it fits
(``snn_nas.data.resident``: uint8 where stored so, converted and augmented on the device in
batch, with the part's own augmentation drawn from a seeded device generator); a batch is one
gather. Parts that are not held as tensors (image folders) or do not fit are read item by item
(their per-item transform augments there, drawing from torch's generator).
"""

from __future__ import annotations

from typing import Any

import torch


class IndexedBatches:
    """``batch(index) -> (x [B, C, S, S] float, y [B] int64)`` on ``device`` for a data set part.

    ``seed`` seeds the on-device augmentation of a resident training part."""

    def __init__(self, dataset: Any, device: torch.device | str, *, seed: int = 0, name: str = "data") -> None:
        from snn_nas.data.resident import (
            ResidentBatches,
            device_budget,
            make_augment_generator,
            say_once,
            tensor_source,
        )

        self.device = torch.device(device)
        self.dataset = dataset
        self.resident: ResidentBatches | None = None
        source = tensor_source(dataset)
        if source is not None and source.nbytes() <= device_budget(self.device):
            augment = make_augment_generator(self.device, seed) if source.augment is not None else None
            self.resident = ResidentBatches(source, self.device, 1, augment_generator=augment)
        elif source is not None:
            say_once(f"{name}: the supernet reads its images item by item (they do not fit the resident budget)")

    def __len__(self) -> int:
        return len(self.dataset)

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.resident is not None:
            return self.resident.batch(index.to(self.device))
        items = [self.dataset[int(i)] for i in index]
        x = torch.stack([image for image, _ in items]).to(self.device)
        return x, torch.tensor([int(label) for _, label in items], device=self.device)


def dataset_tensors(dataset: Any, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Every image and label of ``dataset`` on ``device`` (its conversion and, for a training
    part, its augmentation applied)."""
    batches = IndexedBatches(dataset, device)
    return batches.batch(torch.arange(len(batches)))
