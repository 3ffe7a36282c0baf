"""Train and evaluate one architecture: ``train_model(genotype, config, ...) -> TrainResult``.

Reproducibility: the model is initialised and trained inside a ``torch.random.fork_rng`` scope
seeded with ``config.seed`` (the caller's RNG state is untouched); the training subset and the
shuffling come from explicit ``torch.Generator`` objects. On the CPU the same seed gives the same
weights. Checkpoints (``last.pt``, ``best.pt``) hold every state an exact resume needs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, Subset

from snn_nas.checkpoint import (
    BEST,
    LAST,
    CheckpointError,
    copy_checkpoint,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)
from snn_nas.data import DataSplits, load_dataset
from snn_nas.data.resident import make_augment_generator, make_batches
from snn_nas.genotype import Genotype
from snn_nas.training.compiled import compiled
from snn_nas.training.config import ConfigError, TrainConfig
from snn_nas.training.loops import Diverged, EpochStats, amp_dtype, evaluate, train_one_epoch
from snn_nas.training.progress import EpochProgress
from snn_nas.training.schedule import warmup_cosine

SPLIT_SEED = 0  # which training images are held out as ``val`` is fixed
RESUME_MAY_DIFFER = ("num_workers", "data_root", "eval_batch_size", "amp")

Callback = Callable[[int, dict[str, Any]], Any]
_NOT_HELD_OUT = EpochStats(loss=math.nan, acc=math.nan, images=0, steps=0)  # "val" when training on train+val


@dataclass
class TrainResult:
    """Outcome of ``train_model``.

    ``status``: ``ok``, ``diverged`` (NaN/inf loss; ``error`` says where) or ``failed`` (a runtime
    error such as out-of-memory; ``error`` holds it). ``val_acc`` / ``val_loss`` are those of the
    last completed epoch (0.0 / NaN when none completed; NaN when training on ``train+val``,
    which holds nothing out); ``test_acc`` / ``test_loss`` those of the final model on the test
    part, measured once after training when asked for (``evaluate_test``), else None.
    Accuracies are fractions.
    """

    status: str
    error: str | None
    val_acc: float
    best_val_acc: float
    val_loss: float
    epochs: int
    history: list[dict[str, Any]]
    wall_s: float
    model: nn.Module
    data: DataSplits
    config: TrainConfig | None = None
    time_steps: int | None = None
    test_acc: float | None = None
    test_loss: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def summary(self) -> dict[str, Any]:
        """The primitive fields (no model, no data), e.g. for ``result.json``."""
        return {
            "status": self.status,
            "error": self.error,
            "val_acc": self.val_acc,
            "best_val_acc": self.best_val_acc,
            "val_loss": self.val_loss,
            "test_acc": self.test_acc,
            "test_loss": self.test_loss,
            "epochs": self.epochs,
            "time_steps": self.time_steps,
            "wall_s": self.wall_s,
            "history": self.history,
        }


def load_config_data(config: TrainConfig, *, download: bool = False) -> DataSplits:
    """The dataset of ``config``: its name, data root, image size and ``val_fraction``, split by
    ``SPLIT_SEED`` (the same held-out ``val`` part for every trial, audit and retraining)."""
    return load_dataset(
        config.dataset,
        data_root=config.data_root,
        image_size=config.image_size,
        seed=SPLIT_SEED,
        download=download,
        val_fraction=config.val_fraction,
    )


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` -> CUDA when available, else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"device: {device!r} is not a torch device ('cpu', 'cuda', 'cuda:1'): {exc}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        build = f"torch {torch.__version__}" + ("" if torch.version.cuda else ", built without CUDA")
        raise ConfigError(
            f"device: {device!r} (--device) asked for, but CUDA is not available here ({build}; no GPU visible); "
            "use 'cpu', or leave --device out to use a GPU when there is one"
        )
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise ConfigError(
            f"device: {device!r} (--device) asked for, but only {torch.cuda.device_count()} CUDA device(s) are "
            f"visible (cuda:0 .. cuda:{torch.cuda.device_count() - 1})"
        )
    return resolved


@contextmanager
def _seeded_scope(seed: int, device: torch.device):
    """Fork torch's CPU (and this CUDA device's) RNG, seed it, restore the caller's state on exit."""
    devices = (
        [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    )
    with torch.random.fork_rng(devices=devices):
        torch.default_generator.manual_seed(seed)
        if devices:
            with torch.cuda.device(devices[0]):
                torch.cuda.manual_seed(seed)
        yield


@contextmanager
def _cudnn_benchmark(device: torch.device):
    if device.type != "cuda":
        yield
        return
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous


def _training_subset(train: Dataset, fraction: float, seed: int) -> Dataset:
    """A seeded random ``fraction`` of ``train`` (at least one item); the whole set at 1.0."""
    if fraction >= 1.0:
        return train
    n = len(train)  # type: ignore[arg-type]
    keep = max(1, round(n * fraction))
    indices = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 7919))[:keep].sort().values
    return Subset(train, indices.tolist())


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on weight matrices and kernels only (not on biases, norms, scalars)."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.ndim > 1 else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD (with momentum) or AdamW over ``model``'s parameters as configured."""
    groups = _param_groups(model, config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)
    return torch.optim.AdamW(groups, lr=config.lr)


def _make_model(genotype: Genotype | nn.Module, data: DataSplits) -> tuple[nn.Module, Genotype | None]:
    if isinstance(genotype, nn.Module):
        return genotype, getattr(genotype, "genotype", None)
    if not isinstance(genotype, Genotype):
        raise ConfigError(f"train_model: expected a Genotype or an nn.Module, got {type(genotype).__name__}")
    from snn_nas.builder import build_model

    genotype.check_image_size(data.image_size)
    model = build_model(genotype, num_classes=data.num_classes, image_size=data.image_size, in_chans=data.in_chans)
    return model, genotype


_RESUME_KEYS = ("optimizer", "scheduler", "history", "best_val_acc", "rng")


def _check_resume(state: dict[str, Any], config: TrainConfig, genotype: Genotype | None, path: Path) -> None:
    missing = [key for key in _RESUME_KEYS if key not in state]
    stored = state["config"]
    if missing or not isinstance(stored, dict):
        lacks = f"lacks {missing}" if missing else "has no training config"
        raise CheckpointError(f"cannot resume from {path}: the checkpoint {lacks}; use a new --out")
    epoch = state["epoch"]
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch <= config.epochs:
        raise CheckpointError(
            f"cannot resume from {path}: it records {epoch!r} completed epochs but the run has {config.epochs}; "
            "the file is damaged or belongs to another run; use a new --out"
        )
    differ = sorted(
        k for k, v in config.to_dict().items() if k not in RESUME_MAY_DIFFER and stored.get(k, object()) != v
    )
    if differ:
        details = ", ".join(f"{k}: {stored.get(k)!r} -> {getattr(config, k)!r}" for k in differ)
        raise CheckpointError(
            f"cannot resume from {path}: the training config differs ({details}); use a new --out or the same settings"
        )
    if genotype is not None and state.get("genotype") not in (None, genotype.to_dict()):
        raise CheckpointError(f"cannot resume from {path}: it was trained with a different architecture")


def train_model(
    genotype: Genotype | nn.Module,
    config: TrainConfig,
    *,
    callback: Callback | None = None,
    out_dir: str | Path | None = None,
    resume: bool = False,
    device: str | torch.device | None = None,
    progress: bool = True,
    data: DataSplits | None = None,
    evaluate_test: bool = False,
    resident: bool | None = None,
    memory_share: float = 1.0,
    compile_model: bool | None = None,
) -> TrainResult:
    """Train ``genotype`` (or an already built model ``[B, C, H, W] -> [B, K]``) under ``config``.

    ``data``: preloaded splits (default: ``load_dataset(config.dataset, ...)``).
    ``callback(epoch, metrics)`` runs after every epoch, once its checkpoint is written, with
    ``epoch`` (1-based), ``val_acc``, ``val_loss``, ``train_loss``, ``train_acc``, ``lr``,
    ``wall_s`` (since the start, resumed runs included), ``epoch_s``, ``train_images``, ``images_per_s``,
    ``time_steps``; exceptions it raises propagate (the last checkpoint stays valid).
    ``out_dir``: where ``last.pt`` / ``best.pt`` go (None: no checkpoints). ``resume``: continue
    from ``out_dir/last.pt`` when present (the config must match, see ``RESUME_MAY_DIFFER``).
    A NaN/inf loss ends the run with status ``diverged``; a runtime error (e.g. out of memory)
    with ``failed``; neither raises.

    Who sees what: the model is fitted on ``data.train`` (``config.train_on == "train"``, and
    ``val`` is evaluated after every epoch) or on ``train`` + ``val`` (``"train+val"``: nothing
    is held out, per-epoch ``val_acc`` is NaN and no ``best.pt`` is chosen). ``evaluate_test``:
    evaluate the final model once on ``data.test`` (``TrainResult.test_acc``); no epoch or
    checkpoint is ever chosen by it.

    Speed: batches come from ``snn_nas.data.resident.make_batches``: held on ``device`` and
    drawn by index when the data fits (``resident`` None: decided by size against
    ``memory_share``, the trial's share of the device; False: always a ``DataLoader``).
    ``config.amp`` autocasts as ``snn_nas.training.loops.amp_dtype`` says (CUDA: bfloat16 or
    float16). ``compile_model``: run the model through ``torch.compile`` (None: only when
    ``SNN_NAS_COMPILE=1``; see ``snn_nas.training.compiled``).
    """
    if not isinstance(config, TrainConfig):
        raise ConfigError(f"train_model: config must be a TrainConfig, got {type(config).__name__}")
    dev = resolve_device(device)
    if data is None:
        data = load_config_data(config)
    elif config.image_size is not None and config.image_size != data.image_size:
        raise ConfigError(
            f"image_size: the config asks for {config.image_size} but the given data is {data.image_size}"
        )
    out = Path(out_dir) if out_dir is not None else None
    amp = amp_dtype(dev, config.amp)  # None: float32
    use_scaler = amp == torch.float16

    with _seeded_scope(config.seed, dev), _cudnn_benchmark(dev):
        model, geno = _make_model(genotype, data)
        model.to(dev)
        if config.max_time_steps is not None and hasattr(model, "time_steps"):
            model.time_steps = min(int(model.time_steps), config.max_time_steps)
        time_steps = getattr(model, "time_steps", None)
        if time_steps is not None:  # event data: frames binned into the model's T
            data = data.at_time_steps(int(time_steps))

        holdout = config.train_on == "train"
        train_set = _training_subset(data.training_set(include_val=not holdout), config.subset, config.seed)
        loader_gen = torch.Generator().manual_seed(config.seed)
        aug_gen = make_augment_generator(dev, config.seed)
        where = dict(device=dev, num_workers=config.num_workers, resident=resident, share=memory_share)
        train_loader = make_batches(
            train_set,
            batch_size=config.batch_size,
            shuffle=True,
            drop_last=len(train_set) > config.batch_size,  # type: ignore[arg-type]
            generator=loader_gen,
            augment_generator=aug_gen,
            name=f"{data.name} training data",
            **where,
        )
        val_loader = (
            make_batches(data.val, batch_size=config.eval_batch_size, name=f"{data.name} val", **where)
            if holdout
            else None
        )
        step_model = compiled(model, compile_model)
        steps_per_epoch = len(train_loader)
        if config.max_batches_per_epoch is not None:
            steps_per_epoch = min(steps_per_epoch, config.max_batches_per_epoch)

        optimizer = build_optimizer(model, config)
        scheduler = warmup_cosine(
            optimizer, config.epochs * steps_per_epoch, round(config.warmup_epochs * steps_per_epoch)
        )
        scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)

        start_epoch, history, best_acc = 0, [], -1.0
        last_path = out / LAST if out is not None else None
        if resume and last_path is not None and last_path.is_file():
            state = load_checkpoint(last_path, map_location="cpu")
            _check_resume(state, config, geno, last_path)
            load_weights(model, state["model"], last_path)
            try:
                optimizer.load_state_dict(state["optimizer"])
                scheduler.load_state_dict(state["scheduler"])
                if use_scaler and state.get("scaler"):
                    scaler.load_state_dict(state["scaler"])
                start_epoch, history = int(state["epoch"]), list(state["history"])
                best_acc = float(state["best_val_acc"])
                rng = state["rng"]
                torch.set_rng_state(rng["torch"])
                loader_gen.set_state(rng["loader"])
                if rng.get("augment") is not None:
                    aug_gen.set_state(rng["augment"])
                if dev.type == "cuda" and rng.get("cuda") is not None:
                    torch.cuda.set_rng_state(rng["cuda"], dev)
            except (KeyError, TypeError, ValueError, RuntimeError) as exc:
                raise CheckpointError(
                    f"cannot resume from {last_path}: its optimizer, scheduler or random state does not fit "
                    f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); use a new --out"
                ) from None

        def checkpoint_state(epoch: int) -> dict[str, Any]:
            return {
                "epoch": epoch,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if use_scaler else None,
                "best_val_acc": best_acc,
                "history": history,
                "config": config.to_dict(),
                "genotype": geno.to_dict() if geno is not None else None,
                "model_args": {
                    "num_classes": data.num_classes,
                    "image_size": data.image_size,
                    "in_chans": data.in_chans,
                    "time_steps": time_steps,
                },
                "rng": {
                    "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None,
                    "loader": loader_gen.get_state(),
                    "augment": aug_gen.get_state(),
                },
            }

        status, error = "ok", None
        wall_before = float(history[-1]["wall_s"]) if history else 0.0
        started = time.perf_counter()
        check_every = 1 if dev.type == "cpu" else 25
        with EpochProgress(enabled=progress, total_epochs=config.epochs, steps=steps_per_epoch) as bar:
            for epoch in range(start_epoch + 1, config.epochs + 1):
                epoch_start = time.perf_counter()
                lr = optimizer.param_groups[0]["lr"]
                bar.start_epoch(epoch)
                try:
                    train_stats = train_one_epoch(
                        step_model,
                        train_loader,
                        optimizer,
                        scheduler,
                        scaler,
                        device=dev,
                        amp=amp,
                        label_smoothing=config.label_smoothing,
                        grad_clip=config.grad_clip,
                        max_batches=config.max_batches_per_epoch,
                        check_every=check_every,
                        on_step=bar.step,
                    )
                    val_stats = evaluate(step_model, val_loader, device=dev, amp=amp) if val_loader else _NOT_HELD_OUT
                    if holdout and not math.isfinite(val_stats.loss):
                        raise Diverged(f"validation loss became {val_stats.loss}")
                    if not holdout and not math.isfinite(train_stats.loss):
                        raise Diverged(f"training loss became {train_stats.loss}")
                except Diverged as exc:
                    status, error = (
                        "diverged",
                        f"{exc} in epoch {epoch} (lr {lr:.3g}); lower the learning rate or clip gradients",
                    )
                    break
                except RuntimeError as exc:  # out of memory, CUDA errors, shape errors of a bad model
                    status, error = "failed", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                    if dev.type == "cuda":
                        torch.cuda.empty_cache()
                    break
                epoch_s = time.perf_counter() - epoch_start
                metrics = {
                    "epoch": epoch,
                    "val_acc": val_stats.acc,
                    "val_loss": val_stats.loss,
                    "train_loss": train_stats.loss,
                    "train_acc": train_stats.acc,
                    "lr": lr,
                    "wall_s": wall_before + time.perf_counter() - started,
                    "epoch_s": epoch_s,
                    "train_images": train_stats.images,
                    "images_per_s": train_stats.images / epoch_s if epoch_s > 0 else 0.0,
                    "time_steps": time_steps,
                }
                history.append(metrics)
                improved = holdout and val_stats.acc > best_acc
                if holdout:
                    best_acc = max(best_acc, val_stats.acc)
                if out is not None:
                    save_checkpoint(out / LAST, checkpoint_state(epoch))
                    if improved:
                        copy_checkpoint(out / LAST, out / BEST)
                bar.end_epoch(metrics)
                if callback is not None:
                    callback(epoch, dict(metrics))

    model.eval()
    last = history[-1] if history else {}
    test_acc = test_loss = None
    if evaluate_test and status == "ok" and history:
        test_loader = make_batches(
            data.test, batch_size=config.eval_batch_size, device=dev, resident=resident, share=memory_share,
            name=f"{data.name} test",
        )  # fmt: skip
        test_stats = evaluate(step_model, test_loader, device=dev, amp=amp)
        test_acc, test_loss = test_stats.acc, test_stats.loss
    return TrainResult(
        status=status,
        error=error,
        val_acc=float(last.get("val_acc", 0.0)),
        best_val_acc=max(best_acc, 0.0) if holdout else math.nan,
        val_loss=float(last.get("val_loss", math.nan)),
        epochs=len(history),
        history=history,
        wall_s=wall_before + time.perf_counter() - started,
        model=model,
        data=data,
        config=config,
        time_steps=time_steps,
        test_acc=test_acc,
        test_loss=test_loss,
    )
