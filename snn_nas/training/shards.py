"""Each worker's shard of every epoch, from device-resident tensors or a ``DataLoader``.

``ShardedBatches(dataset, rank, workers, global_batch, ...)`` yields, per step of an epoch, worker
``rank``'s part of the global batch (``snn_nas.training.parallel``: the same global order on
every worker, drawn from ``(seed, epoch)``; strided shards). Two paths, as
``snn_nas.data.resident.make_batches`` picks them:

* **resident**: the part is held on the device as tensors (small data sets); a shard is one
  gather, augmented there (random crop and flip from a generator seeded per worker and epoch);
* **loader**: a ``DataLoader`` whose batch sampler is ``ShardSampler`` (image folders); its
  worker processes decode and augment in parallel, persist across epochs and pin memory on CUDA.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from snn_nas.data.resident import ResidentBatches, device_budget, tensor_source
from snn_nas.training.parallel import epoch_order, global_batches, shard, steps_per_epoch, worker_seed


class ShardSampler(Sampler[list[int]]):
    """Batch sampler of worker ``rank``'s shards for the epoch set by ``set_epoch`` (1-based)."""

    def __init__(
        self, n: int, *, rank: int, workers: int, global_batch: int, seed: int, repeats: int = 1,
        max_batches: int | None = None,
    ) -> None:  # fmt: skip
        self.n, self.rank, self.workers, self.global_batch = n, rank, workers, global_batch
        self.seed, self.repeats = seed, repeats
        self.steps = steps_per_epoch(n, global_batch, max_batches)
        self.epoch = 1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        """Worker ``rank``'s shard of each global batch of the current epoch."""
        order = epoch_order(self.n, self.seed, self.epoch, self.repeats)
        return [shard(b, self.rank, self.workers) for b in global_batches(order, self.global_batch, self.steps)]

    def global_size(self, step: int) -> int:
        """Images in the global batch of ``step`` (0-based)."""
        return max(0, min(self.global_batch, self.n - step * self.global_batch))

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return self.steps


class ShardedBatches:
    """Worker ``rank``'s ``(x, y)`` shards of every step of an epoch (module docstring).
    ``set_epoch(e)`` before iterating epoch ``e``; ``len()`` is the steps per epoch."""

    def __init__(
        self,
        dataset: Dataset,
        *,
        device: torch.device,
        rank: int,
        workers: int,
        global_batch: int,
        seed: int,
        repeats: int = 1,
        max_batches: int | None = None,
        num_workers: int = 0,
        resident: bool | None = None,
    ) -> None:
        self.device, self.rank, self.seed = device, rank, seed
        self.sampler = ShardSampler(
            len(dataset), rank=rank, workers=workers, global_batch=global_batch, seed=seed,  # type: ignore[arg-type]
            repeats=repeats, max_batches=max_batches,
        )  # fmt: skip
        source = tensor_source(dataset) if resident is not False else None
        self.resident: ResidentBatches | None = None
        self.loader: DataLoader | None = None
        if source is not None and source.nbytes() <= device_budget(device):
            self.resident = ResidentBatches(
                source, device, global_batch, augment_generator=torch.Generator(device=device).manual_seed(seed)
            )
        else:
            self.loader = DataLoader(
                dataset,
                batch_sampler=self.sampler,
                num_workers=num_workers,
                persistent_workers=num_workers > 0,
                pin_memory=device.type == "cuda",
                generator=torch.Generator().manual_seed(worker_seed(seed, 0, rank)),
            )

    @property
    def kind(self) -> str:
        return "resident" if self.resident is not None else "loader"

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)
        if self.resident is not None and self.resident.augment_generator is not None:
            self.resident.augment_generator.manual_seed(worker_seed(self.seed, epoch, self.rank))

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.loader is not None:
            yield from self.loader
            return
        assert self.resident is not None
        for indices in self.sampler.batches():
            yield self.resident.batch(torch.as_tensor(indices, dtype=torch.long, device=self.device))


def describe_loader(batches: Any) -> str:
    """``resident`` or ``loader`` (with its data workers), for the plan's lines."""
    if getattr(batches, "loader", None) is not None:
        return f"DataLoader with {batches.loader.num_workers} data workers"
    return "device-resident tensors"
