"""One training epoch and one evaluation pass, with the divergence guard.

Images ``[B, C, H, W]`` go to the model (direct encoding: the model repeats them over its
``time_steps``); event frames ``[B, T, C, H, W]`` go as ``[T, B, C, H, W]`` (``time_major``).
The loss is cross-entropy on the T-averaged logits ``[B, K]``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from snn_nas.data.base import DatasetError, time_major


class Diverged(Exception):
    """The loss became NaN or infinite; ``str()`` is the reason."""


def mark_non_finite(first_bad: torch.Tensor, x: torch.Tensor, step: int) -> None:
    """Record in ``first_bad`` (a 0-d int64 tensor on the device, -1 until then) the first
    ``step`` whose batch ``x`` holds NaN or inf, without a host sync: spiking thresholds turn
    NaN into silence, so such a batch would train and evaluate without any error. Integer and
    boolean inputs (event frames) are always finite. Cost, measured on this CPU (one thread,
    ``mlp_spe_micro``, 64 images of 28 px): 0.2 ms against a 209 ms step (0.09 %); on a GPU it
    is three small kernels and no sync (not measured: no device was lent)."""
    if x.is_floating_point():
        first_bad.masked_fill_((first_bad < 0) & ~torch.isfinite(x).all(), step)


def check_finite_input(first_bad: torch.Tensor, part: str) -> None:
    """``DatasetError`` naming the first batch ``mark_non_finite`` found (one host sync)."""
    step = int(first_bad.item())
    if step >= 0:
        raise DatasetError(
            f"the {part} data hold NaN or inf: batch {step + 1} of the epoch (counting from 1), which a spiking "
            "network would turn into silence without an error; check the dataset"
        )


@dataclass
class EpochStats:
    loss: float
    acc: float
    images: int
    steps: int


CPU_AMP_ENV = "SNN_NAS_CPU_AMP"
"""``SNN_NAS_CPU_AMP=bf16`` lets ``amp`` runs on the CPU autocast to bfloat16 (off by default;
``experiments/benchmarks/throughput.py`` measures what it gains)."""


def amp_dtype(device: torch.device, amp: bool | torch.dtype | None) -> torch.dtype | None:
    """The autocast dtype of a run on ``device`` with ``TrainConfig.amp`` = ``amp`` (a dtype is
    taken as given; None / False: float32 throughout).

    CUDA: bfloat16 where the GPU supports it (no loss scaling needed), else float16 (with a
    ``GradScaler``). CPU: bfloat16 only when ``SNN_NAS_CPU_AMP=bf16``; else float32. Spiking
    neurons keep their membrane in float32 either way (``snn_nas.neurons``).
    """
    if isinstance(amp, torch.dtype):
        return amp
    if not amp:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and os.environ.get(CPU_AMP_ENV, "").strip().lower() in ("bf16", "bfloat16"):
        return torch.bfloat16
    return None


def autocast(device: torch.device, amp: bool | torch.dtype | None):
    """``torch.autocast`` to ``amp_dtype(device, amp)``; a no-op context when that is None."""
    dtype = amp_dtype(device, amp)
    if dtype is None:
        return nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def train_one_epoch(
    model: nn.Module,
    loader: Iterable,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    *,
    device: torch.device,
    amp: bool | torch.dtype | None,
    label_smoothing: float,
    grad_clip: float | None,
    max_batches: int | None,
    check_every: int = 1,
    on_step: Callable[[int, float], None] | None = None,
) -> EpochStats:
    """Train over ``loader`` (at most ``max_batches`` batches), stepping ``scheduler`` per batch.

    ``loader`` yields ``(images [B, C, H, W], labels [B])`` (a ``DataLoader`` or the resident
    batches of ``snn_nas.data.resident``, already on ``device``); ``amp`` as ``amp_dtype``.

    The loss is checked every ``check_every`` steps (and at the end); a NaN or infinite loss
    raises ``Diverged``. ``on_step(step, running_loss)`` is called after those checks.
    """
    model.train()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    first_bad = torch.full((), -1, device=device, dtype=torch.int64)
    images = steps = 0
    non_blocking = device.type == "cuda"
    for step, (x, y) in enumerate(loader):
        if max_batches is not None and step >= max_batches:
            break
        x = time_major(x.to(device, non_blocking=non_blocking))
        y = y.to(device, non_blocking=non_blocking)
        mark_non_finite(first_bad, x, step)
        if steps % check_every == 0:  # before the step is taken: no update from a bad batch
            check_finite_input(first_bad, "training")
        with autocast(device, amp):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if grad_clip is not None:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        batch = y.shape[0]
        loss_sum += loss.detach().double() * batch
        correct += (logits.detach().argmax(1) == y).sum()
        images += batch
        steps += 1
        if steps % check_every == 0:
            running = loss_sum.item() / images
            if not math.isfinite(running):
                raise Diverged(f"training loss became {running} at step {steps} of the epoch")
            if on_step is not None:
                on_step(steps, running)
    check_finite_input(first_bad, "training")
    if images == 0:
        raise ValueError("the training loader yielded no batch")
    mean_loss = loss_sum.item() / images
    if not math.isfinite(mean_loss):
        raise Diverged(f"training loss became {mean_loss} during the epoch")
    return EpochStats(loss=mean_loss, acc=correct.item() / images, images=images, steps=steps)


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, *, device: torch.device, amp: bool | torch.dtype | None) -> EpochStats:
    """Mean cross-entropy (no smoothing) and top-1 accuracy (a fraction) over ``loader``."""
    model.eval()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    first_bad = torch.full((), -1, device=device, dtype=torch.int64)
    images = steps = 0
    non_blocking = device.type == "cuda"
    for x, y in loader:
        x = time_major(x.to(device, non_blocking=non_blocking))
        y = y.to(device, non_blocking=non_blocking)
        mark_non_finite(first_bad, x, steps)
        with autocast(device, amp):
            logits = model(x)
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").double()
        correct += (logits.argmax(1) == y).sum()
        images += y.shape[0]
        steps += 1
    check_finite_input(first_bad, "evaluation")
    if images == 0:
        raise ValueError("the validation loader yielded no batch")
    return EpochStats(loss=loss_sum.item() / images, acc=correct.item() / images, images=images, steps=steps)
