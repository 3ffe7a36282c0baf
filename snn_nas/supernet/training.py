"""Training a supernet: the sandwich rule with in-place distillation (BigNAS), per epoch a
checkpoint and a point of the training curve.

One step on a batch ``(x, y)`` trains the sub-networks ``g_0, ..., g_k`` of
``SubnetSampler.step`` (``g_0`` the largest when ``sandwich`` is on) and accumulates their
gradients before one optimizer step::

    L_0 = CE_ls(f_{g_0}(x), y)                                    (label smoothing ls)
    L_i = T^2 KL( softmax(f_{g_0}(x) / T) || softmax(f_{g_i}(x) / T) )   i >= 1, with distill
    L_i = CE_ls(f_{g_i}(x), y)                                    i >= 1, without

with the teacher's logits detached (the largest learns only from the labels). Each ``L_i`` is
back-propagated at once, so at most one sub-network's graph is alive. The learning rate warms up
linearly, then decays by a cosine per step (``snn_nas.training.schedule``).

After every epoch the largest and the smallest sub-network of a fixed draw are evaluated on the
held-out ``val`` part (``snn_nas.supernet.evaluate``: batch norm recalibrated) and the epoch is
written to ``supernet.pt`` (``snn_nas.supernet.checkpoint``), so a run killed at any moment
resumes from its last finished epoch with the same optimizer, schedule, random state and curve.

Data-parallel training (``snn_nas.search.supernet_train`` runs this under Ray Train) passes
``worker`` (rank and world size: each rank trains on its share of every batch, all ranks draw
the same sub-networks) and ``wrap`` (the DDP wrapper); only rank 0 evaluates and writes.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from snn_nas.genotype import Genotype
from snn_nas.supernet.bounds import SupernetBounds, SupernetError
from snn_nas.supernet.checkpoint import CHECKPOINT, check_metadata, read_supernet_state, save_supernet
from snn_nas.supernet.config import SupernetConfig
from snn_nas.supernet.data import IndexedBatches
from snn_nas.supernet.evaluate import calibration_images, evaluate_subnet
from snn_nas.supernet.model import Supernet
from snn_nas.supernet.sampling import SubnetSampler, constraint_filter


@dataclass(frozen=True)
class Worker:
    """This process's place in a data-parallel run: ``rank`` of ``world_size``."""

    rank: int = 0
    world_size: int = 1

    @property
    def leads(self) -> bool:
        return self.rank == 0


@dataclass
class SupernetRun:
    """Outcome of ``train_supernet``: ``status`` ``ok`` or ``diverged`` (``error`` says where),
    the epochs finished (resumed ones included), the curve, and the trained supernet."""

    status: str
    error: str | None
    epochs: int
    history: list[dict[str, Any]]
    wall_s: float
    supernet: Supernet
    path: Path | None = None
    resumed_from: int = 0
    extremes: tuple[str, str] = field(default=("", ""))


def distill_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T^2 KL(softmax(teacher / T) || softmax(student / T))``, mean over the batch. Logits
    ``[B, K]``; ``teacher`` is not differentiated."""
    t = float(temperature)
    target = F.log_softmax(teacher.detach() / t, dim=1)
    return F.kl_div(F.log_softmax(student / t, dim=1), target, reduction="batchmean", log_target=True) * (t * t)


def sandwich_step(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    subnets: list[Genotype],
    *,
    distill: bool,
    temperature: float = 1.0,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Forward and backward every sub-network of one step (module docstring); gradients
    accumulate in ``model``'s store. Returns the detached losses ``[len(subnets)]``."""
    teacher: torch.Tensor | None = None
    losses = []
    for k, genotype in enumerate(subnets):
        logits = model(x, genotype).float()
        if k > 0 and distill and teacher is not None:
            loss = distill_loss(logits, teacher, temperature)
        else:
            loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
            if k == 0 and distill:
                teacher = logits.detach()
        loss.backward()
        losses.append(loss.detach())
    return torch.stack(losses)


def anchor_genotypes(names: tuple[str, ...], bounds: SupernetBounds) -> tuple[Genotype, ...]:
    """The presets ``names`` (``supernet.anchors``), each checked to be a sub-network of a
    supernet with ``bounds``; ``SupernetError`` names the preset and the dimension otherwise."""
    from snn_nas.presets import get_preset

    out = []
    for name in names:
        genotype = get_preset(name)
        try:
            bounds.check(genotype)
        except SupernetError as exc:
            raise SupernetError(f"supernet.anchors: {name!r} is not a sub-network of this supernet: {exc}") from None
        out.append(genotype)
    return tuple(out)


def _optimizer(net: nn.Module, config: SupernetConfig) -> torch.optim.Optimizer:
    decay = [p for p in net.parameters() if p.ndim > 1]
    rest = [p for p in net.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)
    return torch.optim.AdamW(groups, lr=config.lr)


def train_supernet(
    space: Any,
    config: SupernetConfig,
    data: Any,
    *,
    constraints: tuple[tuple[str, float], ...] = (),
    out_dir: str | Path | None = None,
    resume: bool = False,
    device: str | torch.device | None = None,
    progress: bool = True,
    metadata: dict[str, Any] | None = None,
    worker: Worker = Worker(),
    wrap: Callable[[nn.Module], nn.Module] | None = None,
    on_epoch: Callable[[dict[str, Any], dict[str, Any] | None], Any] | None = None,
) -> SupernetRun:
    """Train a supernet of ``space`` on ``data.train`` (a ``DataSplits``; ``val`` is only
    watched) under ``config``; see the module docstring.

    ``constraints``: the experiment's (``params`` limits the smallest and random draws when
    ``config.feasible_only``). ``out_dir``: where ``supernet.pt`` goes after every epoch (None:
    nowhere). ``resume``: continue from ``out_dir/supernet.pt`` when there; its bounds, settings
    and ``metadata`` must match (else ``SupernetError``). ``on_epoch(metrics, state)``: called
    after every epoch with the curve point and the checkpoint state on rank 0, with
    ``({"epoch": e}, None)`` on the other ranks of a data-parallel run.
    """
    from snn_nas.training.engine import resolve_device
    from snn_nas.training.schedule import warmup_cosine

    dev = resolve_device(device)
    bounds = SupernetBounds.from_space(
        space, num_classes=data.num_classes, in_chans=data.in_chans, image_size=data.image_size
    )
    metadata = dict(metadata or {})
    out = Path(out_dir) if out_dir is not None else None
    accept = constraint_filter(
        constraints, num_classes=data.num_classes, image_size=data.image_size, in_chans=data.in_chans
    )
    sampler = SubnetSampler(
        space,
        accept=accept if config.feasible_only else None,
        seed=config.seed,
        extremes=config.extremes,
        largest=config.largest,
        anchors=anchor_genotypes(config.anchors, bounds),
    )
    train = IndexedBatches(data.training_set(), dev, seed=config.seed, name="supernet training part")
    n = len(train)
    global_batch = config.batch_size * worker.world_size
    steps = max(1, n // global_batch)

    with torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else []):
        torch.manual_seed(config.seed)
        net = Supernet(bounds, seed=config.seed).to(dev)
        model = wrap(net) if wrap is not None else net
        optimizer = _optimizer(net, config)
        scheduler = warmup_cosine(optimizer, config.epochs * steps, round(config.warmup_epochs * steps))
        start, history, resumes = 0, [], []
        path = out / CHECKPOINT if out is not None else None
        if resume and path is not None and path.is_file():
            start, history, resumes = _resume(path, net, optimizer, scheduler, bounds, config, metadata)
            resumes.append(start)
        rng = sampler.rng(0, 0, stream=1)
        watched = (sampler.extreme(rng, "max"), sampler.extreme(rng, "min", accept=True))
        calibration = calibration_images(data, config, dev) if worker.leads else []
        status, error = "ok", None
        wall_before = float(history[-1]["wall_s"]) if history else 0.0
        started = time.perf_counter()
        for epoch in range(start + 1, config.epochs + 1):
            epoch_start = time.perf_counter()
            order = torch.randperm(n, generator=torch.Generator().manual_seed(config.seed * 7919 + epoch))
            model.train()
            totals = torch.zeros(config.subnets_per_step, dtype=torch.float64)
            for step in range(steps):
                batch = order[step * global_batch : (step + 1) * global_batch][worker.rank :: worker.world_size]
                x, y = train.batch(batch)
                subnets = sampler.step(epoch, step, sandwich=config.sandwich, random_subnets=config.random_subnets)
                optimizer.zero_grad(set_to_none=True)
                losses = sandwich_step(
                    model, x.to(dev, non_blocking=True), y.to(dev, non_blocking=True), subnets,
                    distill=config.distill, temperature=config.distill_temperature,
                    label_smoothing=config.label_smoothing,
                )  # fmt: skip
                if not bool(torch.isfinite(losses).all()):
                    status = "diverged"
                    error = (
                        f"supernet loss became {losses.tolist()} at step {step + 1} of epoch {epoch} "
                        f"(lr {optimizer.param_groups[0]['lr']:.3g}); lower supernet.lr or set supernet.grad_clip"
                    )
                    break
                if config.grad_clip is not None:
                    nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
                optimizer.step()
                scheduler.step()
                totals += losses.cpu().double()
                if progress and worker.leads and (step + 1) % max(1, steps // 4) == 0:
                    print(f"  epoch {epoch}/{config.epochs}: step {step + 1}/{steps}", file=sys.stderr, flush=True)
            if status != "ok":
                break
            if not worker.leads:
                if on_epoch is not None:
                    on_epoch({"epoch": epoch}, None)  # a data-parallel worker reports in step with rank 0
                continue
            metrics = _epoch_metrics(
                net, watched, data, config, dev, calibration, epoch, totals / steps,
                wall_before + time.perf_counter() - started, time.perf_counter() - epoch_start, steps,
            )  # fmt: skip
            history.append(metrics)
            state = _state(net, optimizer, scheduler, bounds, config, metadata, epoch, history, space, resumes)
            if path is not None:
                save_supernet(path, state)
            if progress:
                print(_epoch_line(metrics, config.epochs), file=sys.stderr, flush=True)
            if on_epoch is not None:
                on_epoch(dict(metrics), state)
        elapsed = time.perf_counter() - started
    return SupernetRun(
        status=status,
        error=error,
        epochs=len(history) if worker.leads else config.epochs,
        history=history,
        wall_s=wall_before + elapsed,
        supernet=net,
        path=path,
        resumed_from=start,
        extremes=(watched[0].key(), watched[1].key()),
    )


def _epoch_metrics(
    net: Supernet, watched: tuple[Genotype, Genotype], data: Any, config: SupernetConfig, dev: torch.device,
    calibration: list[torch.Tensor], epoch: int, losses: torch.Tensor, wall_s: float, epoch_s: float, steps: int,
) -> dict[str, Any]:  # fmt: skip
    """The curve point of an epoch: mean losses, the largest's and smallest's val accuracy with
    the supernet's own weights (batch norm recalibrated, no ``finetune_steps``: the curve follows
    the training, not the few-shot adaptation an architecture's estimate adds)."""
    own = replace(config, finetune_steps=0)
    largest, smallest = (evaluate_subnet(net, g, data, own, device=dev, calibration=calibration) for g in watched)
    values = losses.tolist()
    return {
        "epoch": epoch,
        "loss_largest": values[0] if config.sandwich else math.nan,
        "loss_others": sum(values[1:]) / max(len(values) - 1, 1) if config.sandwich else sum(values) / len(values),
        "val_acc_largest": largest.val_acc,
        "val_acc_smallest": smallest.val_acc,
        "steps": steps,
        "subnets_per_step": config.subnets_per_step,
        "epoch_s": epoch_s,
        "wall_s": wall_s,
    }


def _epoch_line(metrics: dict[str, Any], epochs: int) -> str:
    return (
        f"supernet epoch {metrics['epoch']}/{epochs}: loss largest {metrics['loss_largest']:.4f}, others "
        f"{metrics['loss_others']:.4f} | val acc largest {metrics['val_acc_largest']:.2%}, smallest "
        f"{metrics['val_acc_smallest']:.2%} | {metrics['epoch_s']:.1f} s"
    )


def _state(net: Supernet, optimizer: torch.optim.Optimizer, scheduler: Any, bounds: SupernetBounds,
           config: SupernetConfig, metadata: dict[str, Any], epoch: int, history: list[dict[str, Any]],
           space: Any, resumes: list[int]) -> dict[str, Any]:  # fmt: skip
    return {
        "bounds": bounds.to_dict(),
        "config": config.to_dict(),
        "metadata": metadata,
        "space": getattr(space, "name", ""),
        "weights": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "epoch": epoch,
        "history": list(history),
        "resumed_from": list(resumes),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": {"torch": torch.get_rng_state()},
    }


def _resume(path: Path, net: Supernet, optimizer: torch.optim.Optimizer, scheduler: Any, bounds: SupernetBounds,
            config: SupernetConfig,
            metadata: dict[str, Any]) -> tuple[int, list[dict[str, Any]], list[int]]:  # fmt: skip
    """Load the last finished epoch of ``path`` into the run; refuse one trained otherwise. Returns
    the finished epochs, the curve and the earlier resumes (``resumed_from``, empty in a file
    written before it was recorded)."""
    state = read_supernet_state(path)
    check_metadata(state.get("metadata"), metadata, path)
    if state["bounds"] != bounds.to_dict():
        raise SupernetError(f"cannot resume from {path}: it holds a supernet of other bounds (another space or data)")
    stored = state["config"] if isinstance(state["config"], dict) else {}
    differ = sorted(k for k, v in config.training_dict().items() if stored.get(k) != v)
    if differ:
        details = ", ".join(f"{k}: {stored.get(k)!r} -> {getattr(config, k)!r}" for k in differ)
        raise SupernetError(f"cannot resume from {path}: the supernet settings differ ({details})")
    try:
        net.load_state_dict(state["weights"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["torch"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise SupernetError(
            f"cannot resume from {path}: its weights or optimizer state do not fit ({type(exc).__name__}); "
            "the file is damaged: delete it and train again"
        ) from None
    epoch = state["epoch"]
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch <= config.epochs:
        raise SupernetError(f"cannot resume from {path}: it records {epoch!r} finished epochs of {config.epochs}")
    resumes = state.get("resumed_from", [])
    if not isinstance(resumes, list) or not all(type(r) is int and 0 <= r <= epoch for r in resumes):
        raise SupernetError(f"cannot resume from {path}: its resumed_from {resumes!r} is not a list of epochs")
    return epoch, list(state["history"]), list(resumes)
