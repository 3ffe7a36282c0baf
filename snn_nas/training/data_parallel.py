"""The training loop of one data-parallel worker (or of a single process with ``workers`` 1).

``train_worker(genotype, config, settings, rank=r, workers=W, ...)`` is what every Ray Train
worker runs (``snn_nas.search.retrain_parallel``) and what a single process runs for a
``--recipe`` or a resumed data-parallel run: the maths of ``snn_nas.training.parallel`` (global
batch, shards, loss scale), the model wrapped in ``DistributedDataParallel`` when ``W > 1`` (its
gradient all-reduce averages the workers' gradients), batch norm synchronised with
``settings.sync_bn`` (``snn_nas.training.sync_bn``), and the published augmentations of
``settings.augment``. Everything random in an epoch is drawn from ``(seed, epoch, rank)``, so a
resumed run needs no generator state from the checkpoint.

Rank 0 evaluates (``val`` each epoch when held out; ``test`` once on the final model), writes
``last.pt`` (and ``best.pt``) in the format of ``snn_nas.checkpoint``, plus a ``parallel`` entry
(the settings and the plan), and ``status.json`` at the end. Divergence is decided by all workers
together (an all-reduce of the running sums), so no worker waits for one that has stopped.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from snn_nas.checkpoint import (
    BEST,
    LAST,
    CheckpointError,
    copy_checkpoint,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)
from snn_nas.data.base import time_major
from snn_nas.data.resident import make_batches
from snn_nas.training.augment import BatchMixer
from snn_nas.training.config import TrainConfig
from snn_nas.training.engine import (
    TrainResult,
    _check_resume,
    _make_model,
    _seeded_scope,
    _training_subset,
    build_optimizer,
    load_config_data,
    resolve_device,
)
from snn_nas.training.loops import Diverged, amp_dtype, autocast, evaluate
from snn_nas.training.parallel import ParallelSettings, loss_scale, worker_seed
from snn_nas.training.schedule import warmup_cosine
from snn_nas.training.shards import ShardedBatches

STATUS = "status.json"
OnEpoch = Callable[[int, dict[str, Any], Path | None], Any]


def _all_reduce(values: torch.Tensor, workers: int) -> torch.Tensor:
    if workers > 1:
        import torch.distributed as dist

        dist.all_reduce(values)
    return values


def resume_changes(stored: dict[str, Any] | None, settings: ParallelSettings) -> list[str]:
    """What differs between the ``parallel`` entry of a checkpoint (None: written by the
    single-process trainer) and ``settings``, in words; ``CheckpointError`` when the recipe or
    the augmentation differs (that would be another training)."""
    before = ParallelSettings.from_dict(stored) if stored else None
    if before is not None and (before.recipe, before.augment) != (settings.recipe, settings.augment):
        raise CheckpointError(
            f"the checkpoint was trained with recipe {before.recipe or '(none)'!r} ({before.augment.describe()}), "
            f"this run asks for {settings.recipe or '(none)'!r} ({settings.augment.describe()})"
        )
    changes = []
    if before is None:
        changes.append("written by the single-process trainer: from here on the image order is the data-parallel one")
        before = ParallelSettings()
    if before.workers != settings.workers:
        changes.append(f"workers {before.workers} -> {settings.workers} (global batch kept)")
    if before.sync_bn != settings.sync_bn:
        changes.append(f"sync_bn {before.sync_bn} -> {settings.sync_bn}")
    if before.gpus_per_worker != settings.gpus_per_worker:
        changes.append(f"gpus_per_worker {before.gpus_per_worker:g} -> {settings.gpus_per_worker:g}")
    return changes


def train_worker(
    genotype: Any,
    config: TrainConfig,
    settings: ParallelSettings,
    *,
    rank: int = 0,
    device: str | torch.device | None = None,
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    data: Any = None,
    evaluate_test: bool = False,
    on_epoch: OnEpoch | None = None,
    stop_after: int | None = None,
) -> TrainResult:
    """Train ``genotype`` under ``config`` (``batch_size``: the global batch) as worker ``rank`` of
    ``settings.workers`` (a process group must be up when there are several); see the module
    docstring. ``on_epoch(epoch, metrics, checkpoint_path)`` after every epoch on every worker
    (the path on rank 0 only). ``stop_after``: leave after that epoch (a test's interruption).
    Returns the ``TrainResult`` (on ranks > 0 without evaluations)."""
    workers = settings.workers
    leads = rank == 0
    dev = resolve_device(device)
    if data is None:
        data = load_config_data(config)
    if settings.augment.per_image:
        from snn_nas.training.augment import with_training_transform

        data = with_training_transform(data, settings.augment)
    out = Path(out_dir) if out_dir is not None else None
    amp = amp_dtype(dev, config.amp)
    say = print if (progress and leads) else (lambda *a, **k: None)
    with _seeded_scope(config.seed, dev):
        model, geno = _make_model(genotype, data)
        model.to(dev)
        if config.max_time_steps is not None and hasattr(model, "time_steps"):
            model.time_steps = min(int(model.time_steps), config.max_time_steps)
        time_steps = getattr(model, "time_steps", None)
        if time_steps is not None:
            data = data.at_time_steps(int(time_steps))
        if settings.sync_bn and workers > 1:
            from snn_nas.training.sync_bn import convert_sync_batchnorm

            model = convert_sync_batchnorm(model, dev)
        holdout = config.train_on == "train"
        train_set = _training_subset(data.training_set(include_val=not holdout), config.subset, config.seed)
        batches = ShardedBatches(
            train_set, device=dev, rank=rank, workers=workers, global_batch=config.batch_size, seed=config.seed,
            repeats=settings.augment.repeats, max_batches=config.max_batches_per_epoch,
            num_workers=config.num_workers,
        )  # fmt: skip
        steps = len(batches)
        val_loader = (
            make_batches(data.val, batch_size=config.eval_batch_size, device=dev, name=f"{data.name} val")
            if holdout and leads
            else None
        )
        optimizer = build_optimizer(model, config)
        scheduler = warmup_cosine(optimizer, config.epochs * steps, round(config.warmup_epochs * steps))
        scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)
        start, history, best_acc, resumed = 0, [], -1.0, []
        last_path = out / LAST if out is not None else None
        if resume and last_path is not None and last_path.is_file():
            state = load_checkpoint(last_path, map_location="cpu")
            _check_resume(state, config, geno, last_path)
            try:
                changes = resume_changes(state.get("parallel"), settings)
            except CheckpointError as exc:
                raise CheckpointError(f"cannot resume from {last_path}: {exc}; use a new --out") from None
            load_weights(model, state["model"], last_path)
            try:
                optimizer.load_state_dict(state["optimizer"])
                scheduler.load_state_dict(state["scheduler"])
                if scaler.is_enabled() and state.get("scaler"):
                    scaler.load_state_dict(state["scaler"])
            except (KeyError, TypeError, ValueError, RuntimeError) as exc:
                raise CheckpointError(
                    f"cannot resume from {last_path}: its optimizer state does not fit ({exc})"
                ) from None
            start, history = int(state["epoch"]), list(state["history"])
            best_acc = float(state["best_val_acc"])
            resumed = [*(state.get("parallel") or {}).get("resumed_from", []), start]
            say(f"resuming {last_path} after epoch {start}" + (f"; changed: {'; '.join(changes)}" if changes else ""),
                file=sys.stderr, flush=True)  # fmt: skip
        net: nn.Module = model
        if workers > 1:
            from torch.nn.parallel import DistributedDataParallel

            net = DistributedDataParallel(model, device_ids=[dev.index or 0] if dev.type == "cuda" else None)
        mixer = BatchMixer(settings.augment, data.num_classes) if settings.augment.mixes else None

        def checkpoint_state(epoch: int) -> dict[str, Any]:
            return {
                "epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                "best_val_acc": best_acc, "history": history, "config": config.to_dict(),
                "genotype": geno.to_dict() if geno is not None else None,
                "model_args": {"num_classes": data.num_classes, "image_size": data.image_size,
                               "in_chans": data.in_chans, "time_steps": time_steps},
                "rng": {"torch": torch.get_rng_state()},
                "parallel": {**settings.to_dict(), "resumed_from": resumed},
            }  # fmt: skip

        status, error = "ok", None
        wall_before = float(history[-1]["wall_s"]) if history else 0.0
        started = time.perf_counter()
        for epoch in range(start + 1, config.epochs + 1):
            epoch_start = time.perf_counter()
            lr = optimizer.param_groups[0]["lr"]
            torch.manual_seed(worker_seed(config.seed, epoch, rank))  # mixup, dropout: per worker and epoch
            batches.set_epoch(epoch)
            try:
                loss, acc, images = _train_epoch(
                    net, batches, optimizer, scheduler, scaler, dev, amp, config, mixer, workers
                )
                flag = torch.zeros(1, device=dev)
                val = evaluate(model, val_loader, device=dev, amp=amp) if val_loader is not None else None
                if val is not None and not math.isfinite(val.loss):
                    flag += 1
                if float(_all_reduce(flag, workers)) > 0:  # rank 0's verdict on val, told to every worker
                    raise Diverged(f"validation loss became {val.loss if val else 'NaN'}")
            except Diverged as exc:
                status, error = "diverged", f"{exc} in epoch {epoch} (lr {lr:.3g}); lower the learning rate"
                break
            epoch_s = time.perf_counter() - epoch_start
            metrics = {
                "epoch": epoch, "val_acc": val.acc if val else math.nan, "val_loss": val.loss if val else math.nan,
                "train_loss": loss, "train_acc": acc, "lr": lr, "wall_s": wall_before + time.perf_counter() - started,
                "epoch_s": epoch_s, "train_images": images, "images_per_s": images / epoch_s if epoch_s > 0 else 0.0,
                "time_steps": time_steps, "workers": workers,
            }  # fmt: skip
            history.append(metrics)
            path = None
            if leads:
                improved = val is not None and val.acc > best_acc
                if val is not None:
                    best_acc = max(best_acc, val.acc)
                if out is not None:
                    path = save_checkpoint(out / LAST, checkpoint_state(epoch))
                    if improved:
                        copy_checkpoint(out / LAST, out / BEST)
                say(epoch_line(metrics, config.epochs), file=sys.stderr, flush=True)
            if on_epoch is not None:
                on_epoch(epoch, dict(metrics), path)
            if stop_after is not None and epoch >= stop_after:
                break
    model.eval()
    test_acc = test_loss = None
    if leads and evaluate_test and status == "ok" and history and len(history) == config.epochs:
        loader = make_batches(data.test, batch_size=config.eval_batch_size, device=dev, name=f"{data.name} test")
        stats = evaluate(model, loader, device=dev, amp=amp)
        test_acc, test_loss = stats.acc, stats.loss
    wall = wall_before + time.perf_counter() - started
    if leads and out is not None:
        out.mkdir(parents=True, exist_ok=True)
        summary = {"status": status, "error": error, "epochs": len(history), "test_acc": test_acc,
                   "test_loss": test_loss, "wall_s": wall, "time_steps": time_steps}  # fmt: skip
        (out / STATUS).write_text(json.dumps(summary, indent=2) + "\n")
    last = history[-1] if history else {}
    return TrainResult(
        status=status, error=error, val_acc=float(last.get("val_acc", 0.0)),
        best_val_acc=max(best_acc, 0.0) if holdout else math.nan, val_loss=float(last.get("val_loss", math.nan)),
        epochs=len(history), history=history, wall_s=wall, model=model, data=data, config=config,
        time_steps=time_steps, test_acc=test_acc, test_loss=test_loss,
    )  # fmt: skip


def _train_epoch(
    net: nn.Module,
    batches: ShardedBatches,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: torch.amp.GradScaler,
    dev: torch.device,
    amp: torch.dtype | None,
    config: TrainConfig,
    mixer: BatchMixer | None,
    workers: int,
) -> tuple[float, float, int]:
    """One epoch of this worker's shards; returns the global (mean loss, accuracy, images).

    Every ``check`` steps (every step on the CPU) the running sums ``[loss, correct, images,
    bad input]`` of all workers are all-reduced and a non-finite loss or input raises
    ``Diverged`` on every worker at the same step."""
    net.train()
    sums = torch.zeros(4, device=dev, dtype=torch.float64)  # loss, correct, images, non-finite inputs
    check = 1 if dev.type == "cpu" else 25
    non_blocking = dev.type == "cuda"
    for step, (x, y) in enumerate(batches):
        x = time_major(x.to(dev, non_blocking=non_blocking))
        y = y.to(dev, non_blocking=non_blocking)
        if x.is_floating_point():
            sums[3] += (~torch.isfinite(x).all()).double()
        target = y
        if mixer is not None:
            x, target = mixer(x, y)
        with autocast(dev, amp):
            logits = net(x)
        summed = F.cross_entropy(logits.float(), target, label_smoothing=config.label_smoothing, reduction="sum")
        loss = summed * loss_scale(y.shape[0], batches.sampler.global_size(step), workers)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if config.grad_clip is not None:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        sums[0] += summed.detach().double()
        sums[1] += (logits.detach().argmax(1) == y).sum()
        sums[2] += y.shape[0]
        if (step + 1) % check == 0 or step + 1 == len(batches):
            totals = _all_reduce(sums.clone(), workers)
            if totals[3] > 0:
                raise Diverged("the training data hold NaN or inf (a spiking network would turn them into silence)")
            if not math.isfinite(float(totals[0])):
                raise Diverged(f"training loss became {float(totals[0])} at step {step + 1} of the epoch")
    totals = _all_reduce(sums.clone(), workers)
    images = int(totals[2])
    return float(totals[0]) / max(images, 1), float(totals[1]) / max(images, 1), images


def epoch_line(metrics: dict[str, Any], epochs: int) -> str:
    val = "" if math.isnan(metrics["val_acc"]) else f", val acc {metrics['val_acc']:.2%}"
    return (
        f"epoch {metrics['epoch']}/{epochs}: train loss {metrics['train_loss']:.4f}, train acc "
        f"{metrics['train_acc']:.2%}{val} | {metrics['images_per_s']:.0f} images/s on {metrics['workers']} worker(s)"
    )
