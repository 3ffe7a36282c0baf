"""Data-parallel training, the maths: the plan, the learning-rate rule, the shards of an epoch.

No Ray and no ``torch.distributed`` here: ``snn_nas.training.data_parallel`` runs the loop on
each worker, ``snn_nas.search.retrain_parallel`` starts the workers through Ray Train.

**Global batch.** ``TrainConfig.batch_size`` is the *global* batch ``G``: what one optimizer step
sees, whatever the number of workers ``W``. Each worker takes ``G / W`` images of it (``G`` must
divide by ``W``), so the run is the same training for any ``W`` (up to float summation order,
and exactly so for batch norm only in its synchronised form, ``sync_bn``).

**One epoch.** Every worker computes the same global order of the ``N`` training images from
``(seed, epoch)`` alone (``epoch_order``), so no worker has to tell another; step ``k`` trains
on the global batch ``order[k G : (k + 1) G]``, and worker ``r`` reads positions
``r, r + W, r + 2W, ...`` of it (``shard``): the shards are disjoint and their union is the
global batch. ``N // G`` steps per epoch (a final short batch is dropped; when ``N < G`` the one
step trains on all ``N``). With repeated augmentation (``repeats`` = m > 1, as DeiT's
``RASampler``) the order lists every image of a random permutation m times in a row, cut to
``N`` entries, so an epoch still has ``N`` entries; the strided shard puts the m copies of an
image on m different workers (when ``W >= m``), each of which augments it differently.

**The loss.** Worker ``r`` with ``n_r`` images of a global batch of ``n`` back-propagates
``L_r = (W / n) sum_{i in shard r} l_i``; DDP averages gradients over the workers, so the
gradient is that of ``(1 / n) sum_i l_i``, the mean over the global batch, even when the
shards differ in size.

**Learning-rate rule.** ``lr`` is the peak learning rate for the global batch. ``fixed``: used
as given; ``linear:B0``: ``lr x G / B0`` (Goyal et al. 2017; SNN-MLP's code scales its base lr
by ``G / 512``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from snn_nas.errors import SnnNasError
from snn_nas.training.augment import Augment

LR_RULES = ("fixed", "linear")


class ParallelError(SnnNasError, ValueError):
    """A data-parallel setting that cannot run; the message names the option and what is allowed."""


def check_workers(workers: Any, gpus_per_worker: Any = 0.0) -> None:
    """``ParallelError`` for ``--workers`` < 1 or a negative ``--gpus-per-worker``."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ParallelError(f"--workers: {workers!r} must be an integer >= 1 (one training process per device)")
    ok = isinstance(gpus_per_worker, (int, float)) and not isinstance(gpus_per_worker, bool)
    if not ok or not math.isfinite(float(gpus_per_worker)) or float(gpus_per_worker) < 0:
        raise ParallelError(f"--gpus-per-worker: {gpus_per_worker!r} must be a number >= 0")


def parse_lr_rule(rule: str) -> tuple[str, int | None]:
    """``"fixed"`` -> ("fixed", None); ``"linear:512"`` -> ("linear", 512)."""
    name, _, base = str(rule).partition(":")
    if name == "fixed" and not base:
        return "fixed", None
    if name == "linear":
        try:
            value = int(base)
        except ValueError:
            value = 0
        if value >= 1:
            return "linear", value
    raise ParallelError(
        f"--lr-rule: {rule!r} is not a rule; use 'fixed' (lr as given) or 'linear:B0' (lr x global batch / B0)"
    )


def scaled_lr(lr: float, rule: str, global_batch: int) -> float:
    """The peak learning rate ``lr`` under ``rule`` for ``global_batch`` (module docstring)."""
    name, base = parse_lr_rule(rule)
    return lr if name == "fixed" else lr * global_batch / float(base)  # type: ignore[arg-type]


def per_worker_batch(global_batch: int, workers: int) -> int:
    """``global_batch / workers``; ``ParallelError`` when it does not divide."""
    if global_batch % workers:
        lower, upper = (global_batch // workers) * workers, -(-global_batch // workers) * workers
        raise ParallelError(
            f"--batch-size: the global batch {global_batch} does not divide by {workers} workers; "
            f"use a multiple of {workers} (e.g. {lower or workers} or {upper}) or another number of workers"
        )
    return global_batch // workers


def steps_per_epoch(n_images: int, global_batch: int, max_batches: int | None = None) -> int:
    """Optimizer steps per epoch: ``N // G`` (at least 1), capped by ``max_batches``."""
    steps = max(1, n_images // global_batch)
    return min(steps, max_batches) if max_batches is not None else steps


def epoch_order(n: int, seed: int, epoch: int, repeats: int = 1) -> list[int]:
    """The global order of the ``n`` training images in ``epoch`` (1-based): a permutation drawn
    from ``(seed, epoch)`` alone; with ``repeats`` m > 1 each image of it m times in a row, cut to
    ``n`` entries (module docstring)."""
    import torch

    generator = torch.Generator().manual_seed(order_seed(seed, epoch))
    order = torch.randperm(n, generator=generator)
    if repeats > 1:
        order = order.repeat_interleave(repeats)[:n]
    return order.tolist()


def order_seed(seed: int, epoch: int) -> int:
    """The seed of ``epoch``'s order (the same on every worker)."""
    return (seed * 1_000_003 + epoch * 7_919) % (2**63 - 1)


def worker_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of worker ``rank``'s own draws in ``epoch`` (augmentation, mixup, dropout):
    different on every worker, reproducible from the checkpoint's epoch alone."""
    return (seed * 1_000_003 + epoch * 7_919 + (rank + 1) * 104_729) % (2**63 - 1)


def global_batches(order: list[int], global_batch: int, steps: int) -> list[list[int]]:
    """The global batches of an epoch: ``steps`` slices of ``order`` of ``global_batch`` images
    (the last one shorter only when the order is)."""
    return [order[k * global_batch : (k + 1) * global_batch] for k in range(steps)]


def shard(batch: list[int], rank: int, workers: int) -> list[int]:
    """Worker ``rank``'s part of a global batch: positions ``rank, rank + W, ...``."""
    return batch[rank::workers]


def loss_scale(shard_size: int, batch_size: int, workers: int) -> float:
    """Factor on a worker's summed loss so that DDP's gradient average is the global mean:
    ``W / n`` (module docstring); 0 for an empty shard."""
    return workers / batch_size if shard_size else 0.0


@dataclass(frozen=True)
class ParallelPlan:
    """How a run is spread over workers, and what each step is (printed before training)."""

    workers: int
    gpus_per_worker: float
    global_batch: int
    per_worker_batch: int
    lr: float
    lr_rule: str
    base_lr: float
    sync_bn: bool
    train_images: int
    steps_per_epoch: int
    epochs: int

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.epochs

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """The plan in words (what ``--workers`` prints before training)."""
        device = f"{self.gpus_per_worker:g} GPU each" if self.gpus_per_worker else "CPU"
        device += ", NCCL" if self.gpus_per_worker and self.workers > 1 else ", gloo" if self.workers > 1 else ""
        rule = (
            f"lr {self.lr:g} (rule fixed: as given for the global batch)"
            if self.lr_rule == "fixed"
            else f"lr {self.lr:g} (rule {self.lr_rule}: {self.base_lr:g} x {self.global_batch} / "
            f"{self.lr_rule.partition(':')[2]})"
        )
        bn = "synchronised batch norm (statistics over the global batch)" if self.sync_bn else (
            f"batch norm per worker (statistics over {self.per_worker_batch} images)"
        )  # fmt: skip
        return [
            f"workers: {self.workers} ({device}); global batch {self.global_batch} = {self.workers} x "
            f"{self.per_worker_batch}; {rule}",
            f"{self.train_images} training images: {self.steps_per_epoch} steps per epoch x {self.epochs} epochs "
            f"= {self.total_steps} steps; {bn}",
        ]


def make_plan(
    *,
    workers: int,
    gpus_per_worker: float,
    global_batch: int,
    lr: float,
    lr_rule: str,
    sync_bn: bool,
    train_images: int,
    epochs: int,
    max_batches: int | None = None,
) -> ParallelPlan:
    """The ``ParallelPlan`` of a run; ``ParallelError`` for settings that cannot run."""
    check_workers(workers, gpus_per_worker)
    per_worker = per_worker_batch(global_batch, workers)
    return ParallelPlan(
        workers=workers,
        gpus_per_worker=float(gpus_per_worker),
        global_batch=global_batch,
        per_worker_batch=per_worker,
        lr=scaled_lr(lr, lr_rule, global_batch),
        lr_rule=lr_rule,
        base_lr=lr,
        sync_bn=sync_bn,
        train_images=train_images,
        steps_per_epoch=steps_per_epoch(train_images, global_batch, max_batches),
        epochs=epochs,
    )


@dataclass(frozen=True)
class ParallelSettings:
    """What a data-parallel run adds to its ``TrainConfig`` (stored in its checkpoints): the
    workers and their GPUs, the batch-norm form, the learning-rate rule, the named recipe and its
    augmentation (``snn_nas.training.augment.Augment``)."""

    workers: int = 1
    gpus_per_worker: float = 0.0
    sync_bn: bool = False
    lr_rule: str = "fixed"
    recipe: str = ""
    augment: Augment = field(default_factory=Augment)

    def __post_init__(self) -> None:
        check_workers(self.workers, self.gpus_per_worker)
        object.__setattr__(self, "gpus_per_worker", float(self.gpus_per_worker))
        parse_lr_rule(self.lr_rule)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "augment": self.augment.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ParallelSettings:
        known = {k: v for k, v in data.items() if k in {f.name for f in fields(cls)}}
        return cls(**{**known, "augment": Augment.from_dict(known.get("augment"))})

    @property
    def plain(self) -> bool:
        """Whether a single process would train exactly as ``snn_nas.training.train_model`` does
        (one worker, no augmentation beyond the dataset's own)."""
        return self.workers == 1 and self.augment == Augment() and not self.gpus_per_worker


def placement_refusal(workers: int, cpus: float, gpus: float, capacity: list[tuple[float, float]]) -> str | None:
    """Why ``workers`` workers of ``cpus`` CPUs and ``gpus`` GPUs each do not fit on nodes of
    ``capacity`` ((CPUs, GPUs) per alive node), naming what is missing; None when they fit.

    A worker runs on one node; node ``j`` holds ``min(floor(c_j / cpus), floor(g_j / gpus))``
    workers (the GPU term only when ``gpus > 0``)."""
    total_gpus = sum(g for _, g in capacity)
    nodes = f"{len(capacity)} node{'s' if len(capacity) != 1 else ''}: " + ", ".join(
        f"{c:g} CPU/{g:g} GPU" for c, g in capacity
    )
    if gpus > 0 and total_gpus == 0:
        return f"--gpus-per-worker {gpus:g}: the Ray cluster has no GPU ({nodes}); leave it out to train on CPUs"
    fits = 0
    for have_cpus, have_gpus in capacity:
        by_cpu = math.floor(have_cpus / cpus + 1e-9) if cpus > 0 else workers
        by_gpu = math.floor(have_gpus / gpus + 1e-9) if gpus > 0 else workers
        fits += max(0, min(by_cpu, by_gpu))
    if fits >= workers:
        return None
    missing = workers - fits
    need = [f"{missing * cpus:g} CPUs"] + ([f"{missing * gpus:g} GPUs"] if gpus > 0 else [])
    return (
        f"--workers {workers}: the Ray cluster can place {fits} worker(s) of {cpus:g} CPU"
        + (f" + {gpus:g} GPU" if gpus > 0 else "")
        + f" each ({nodes}); missing: room for {missing} more, i.e. {' and '.join(need)} on nodes that hold "
        "a whole worker"
    )
