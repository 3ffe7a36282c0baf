"""Evaluating one architecture on a trained supernet: inherit, recalibrate batch norm, measure.

A sub-network's batch-norm statistics are not its own after weight-sharing training (the store's
running statistics mix every architecture trained), so, as in BigNAS and OFA, each evaluation
recomputes them: the model is extracted (``Supernet.subnet``), every ``BatchNorm`` is reset and
fed ``bn_batches`` batches of training images in training mode with a cumulative average
(``momentum=None``), everything else in eval mode (no stochastic depth). The calibration images
are the same fixed ones for every architecture (drawn with the supernet's seed), so evaluations
compare like with like. With ``finetune_steps`` the inherited weights are first adapted by that
many AdamW steps on fixed training batches (a few-shot evaluation, with the norms in training
mode, so the statistics are computed once, after it). Then ``val_images`` validation images are
classified.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from snn_nas.genotype import Genotype
from snn_nas.supernet.config import SupernetConfig
from snn_nas.supernet.data import dataset_tensors
from snn_nas.supernet.model import Supernet

BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


@dataclass
class SubnetEvaluation:
    """An architecture evaluated on the supernet: the recalibrated model (eval mode) and its
    validation accuracy (a fraction) and loss over ``images`` images."""

    model: nn.Module
    val_acc: float
    val_loss: float
    images: int
    wall_s: float


@torch.no_grad()
def recalibrate_batch_norm(model: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Replace every batch norm's running statistics by their exact average over ``batches``
    (each ``[B, C, H, W]``, fed in training mode for the norms only). Returns the images seen;
    with no batch the statistics are left as they were. The norms keep ``momentum`` afterwards."""
    norms = [m for m in model.modules() if isinstance(m, BATCH_NORMS)]
    batches = list(batches)
    if not batches or not norms:
        return 0
    momenta = [m.momentum for m in norms]
    model.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative moving average: the exact mean over the batches
        norm.train()
    seen = 0
    for images in batches:
        model(images)
        seen += images.shape[0]
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
    model.eval()
    return seen


def calibration_images(data: object, config: SupernetConfig, device: torch.device) -> list[torch.Tensor]:
    """The fixed training images that recalibrate batch norm: ``bn_batches`` batches of
    ``bn_batch_size``, drawn without replacement with the supernet's seed."""
    from snn_nas.supernet.data import IndexedBatches

    train = IndexedBatches(data.train, device, seed=config.seed, name="calibration images")  # type: ignore[attr-defined]
    count = min(config.bn_batches * config.bn_batch_size, len(train))
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(config.seed + 104729))[:count]
    picked, _ = train.batch(order)
    return [picked[i : i + config.bn_batch_size] for i in range(0, count, config.bn_batch_size)]


_VALIDATION: list[tuple[object, str, tuple[torch.Tensor, torch.Tensor]]] = []


def validation_tensors(data: object, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The validation part's images and labels on ``device`` (gathered once per process for the
    last part asked for)."""
    part = data.val  # type: ignore[attr-defined]
    if not _VALIDATION or _VALIDATION[0][0] is not part or _VALIDATION[0][1] != str(device):
        _VALIDATION[:] = [(part, str(device), dataset_tensors(part, device))]
    return _VALIDATION[0][2]


@torch.no_grad()
def classify(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int) -> tuple[float, float]:
    """Accuracy (fraction) and mean cross-entropy of ``model`` (eval mode) on ``images``."""
    model.eval()
    correct, loss = 0, 0.0
    for i in range(0, len(images), batch_size):
        logits = model(images[i : i + batch_size]).float()
        target = labels[i : i + batch_size]
        loss += float(F.cross_entropy(logits, target, reduction="sum"))
        correct += int((logits.argmax(1) == target).sum())
    n = max(len(images), 1)
    return correct / n, loss / n


def finetune(model: nn.Module, data: object, config: SupernetConfig, device: torch.device) -> None:
    """``config.finetune_steps`` AdamW steps (lr ``config.finetune_lr``, batches of
    ``config.batch_size`` training images drawn with the supernet's seed, the same for every
    architecture) on the inherited weights: a few-shot adaptation before the measurement."""
    from snn_nas.supernet.data import IndexedBatches

    train = IndexedBatches(data.train, device, seed=config.seed, name="fine-tuning images")  # type: ignore[attr-defined]
    generator = torch.Generator().manual_seed(config.seed + 7)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.finetune_lr, weight_decay=0.0)
    model.train()
    for _ in range(config.finetune_steps):
        x, y = train.batch(torch.randperm(len(train), generator=generator)[: config.batch_size])
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x).float(), y).backward()
        optimizer.step()
    model.eval()


def evaluate_subnet(
    net: Supernet,
    genotype: Genotype,
    data: object,
    config: SupernetConfig,
    *,
    device: torch.device | str = "cpu",
    calibration: list[torch.Tensor] | None = None,
    time_steps: int | None = None,
) -> SubnetEvaluation:
    """Inherit ``genotype``'s weights, recalibrate its batch norms and classify the validation
    images (``config.val_images`` of them; all when None). ``calibration``: precomputed
    ``calibration_images`` (computed here when None). ``time_steps``: a cap on T."""
    started = time.perf_counter()
    device = torch.device(device)
    model = net.subnet(genotype, device=device)
    if time_steps is not None:
        model.time_steps = min(int(model.time_steps), int(time_steps))
    calibration = calibration if calibration is not None else calibration_images(data, config, device)
    if config.finetune_steps:
        # fine-tuning runs the norms in training mode (batch statistics), so statistics computed
        # before it would be discarded unread: recalibrate once, after it
        finetune(model, data, config, device)
    recalibrate_batch_norm(model, calibration)
    images, labels = validation_tensors(data, device)
    if config.val_images is not None:
        images, labels = images[: config.val_images], labels[: config.val_images]
    acc, loss = classify(model, images, labels, config.eval_batch_size)
    if not math.isfinite(loss):
        loss = math.nan
    return SubnetEvaluation(model.eval(), acc, loss, len(images), time.perf_counter() - started)
