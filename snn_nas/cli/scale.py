"""The options ``snn-nas train`` and ``snn-nas retrain`` share for training at scale:
data-parallel workers (``--workers``, ``--gpus-per-worker``, ``--address``), synchronised batch
norm, the published recipes (``--recipe``), the learning-rate rule and ``--dry-run``.

Which trainer runs (``make_trainer``): with none of these options, and no data-parallel checkpoint
to resume, the single-process engine (``snn_nas.training.train_model``), exactly as before; one
worker with a recipe (or resuming a data-parallel run): ``train_worker`` in this process;
several workers: Ray Train (``snn_nas.search.retrain_parallel``).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from snn_nas.errors import SnnNasError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("at scale (see docs/guide/retrain_at_scale.md)")
    group.add_argument("--workers", type=int, default=1, metavar="N",
                       help="data-parallel workers through Ray Train (default 1: this process)")  # fmt: skip
    group.add_argument("--gpus-per-worker", type=float, default=0.0, metavar="G", help="GPUs per worker (NCCL)")
    group.add_argument("--cpus-per-worker", type=float, default=1.0, metavar="C", help="CPUs per worker (default 1)")
    group.add_argument("--address", metavar="HOST:PORT", help="Ray cluster to run the workers on (default: local)")
    group.add_argument("--sync-bn", action="store_true", help="batch norm statistics over the global batch")
    group.add_argument("--recipe", metavar="NAME", help="published recipe: mixer_snn_imagenet, snn_mlp_imagenet")
    group.add_argument("--lr-rule", metavar="RULE",
                       help="'fixed' (lr for the global batch as given) or 'linear:B0' (lr x batch / B0)")  # fmt: skip
    group.add_argument("--max-failures", type=int, default=1, metavar="N",
                       help="worker-group restarts after a worker dies (default 1)")  # fmt: skip
    group.add_argument("--dry-run", action="store_true",
                       help="print the plan and a time estimate from a measured step, then stop")  # fmt: skip


def recipe_of(args: argparse.Namespace) -> Any:
    """The published recipe of ``--recipe`` (None without it)."""
    if not getattr(args, "recipe", None):
        return None
    from snn_nas.training.published import get_recipe

    try:
        return get_recipe(args.recipe)
    except SnnNasError as exc:
        raise SnnNasError(f"--recipe: {exc}") from None


def settings_of(args: argparse.Namespace) -> Any:
    """``ParallelSettings`` from the options (checked before anything is read or started)."""
    from snn_nas.training.augment import Augment
    from snn_nas.training.parallel import ParallelSettings, check_workers

    check_workers(args.workers, args.gpus_per_worker)
    if args.max_failures < 0:
        raise SnnNasError(f"--max-failures: {args.max_failures} must be >= 0")
    if args.cpus_per_worker <= 0:
        raise SnnNasError(f"--cpus-per-worker: {args.cpus_per_worker:g} must be > 0")
    recipe = recipe_of(args)
    rule = args.lr_rule or (recipe.lr_rule if recipe else "fixed")
    return ParallelSettings(
        workers=args.workers,
        gpus_per_worker=args.gpus_per_worker,
        sync_bn=bool(args.sync_bn or (recipe.sync_bn if recipe else False)),
        lr_rule=rule,
        recipe=recipe.name if recipe else "",
        augment=recipe.augment if recipe else Augment(),
    )


def with_recipe(config: Any, recipe: Any, given: set[str], settings: Any) -> Any:
    """``config`` with the recipe's fields (those not ``given`` on the command line), then the
    learning-rate rule applied to the global batch."""
    from snn_nas.training.parallel import scaled_lr

    if recipe is not None:
        config = replace(config, **{k: v for k, v in recipe.train_fields().items() if k not in given})
    return replace(config, lr=scaled_lr(config.lr, settings.lr_rule, config.batch_size))


def make_plan(config: Any, settings: Any, data: Any) -> Any:
    """The ``ParallelPlan`` (``ParallelError`` when the global batch does not divide)."""
    from snn_nas.training.parallel import make_plan as plan_of
    from snn_nas.training.parallel import parse_lr_rule

    holdout = config.train_on == "train"
    images = len(data.training_set(include_val=not holdout))
    if config.subset < 1.0:
        images = max(1, round(images * config.subset))
    rule, reference = parse_lr_rule(settings.lr_rule)
    base = config.lr if rule == "fixed" else config.lr * reference / config.batch_size  # config.lr is scaled
    plan = plan_of(
        workers=settings.workers, gpus_per_worker=settings.gpus_per_worker, global_batch=config.batch_size,
        lr=base, lr_rule=settings.lr_rule, sync_bn=settings.sync_bn, train_images=images, epochs=config.epochs,
        max_batches=config.max_batches_per_epoch,
    )  # fmt: skip
    return plan


def print_plan(plan: Any, settings: Any, file: Any = None) -> None:
    file = file or sys.stderr
    for line in plan.lines():
        print(line, file=file, flush=True)
    if settings.recipe:
        print(f"recipe {settings.recipe}: augmentation {settings.augment.describe()}", file=file, flush=True)


def dry_run(genotype: Any, config: Any, settings: Any, data: Any, device: Any) -> int:
    """``--dry-run``: the plan and the time estimate from a step measured here (stdout)."""
    from snn_nas.training.estimate import estimate_lines, measure_step

    plan = make_plan(config, settings, data)
    print_plan(plan, settings, file=sys.stdout)
    rate = measure_step(
        genotype, num_classes=data.num_classes, image_size=data.image_size, in_chans=data.in_chans,
        batch=min(plan.per_worker_batch, 8), device=device, max_time_steps=config.max_time_steps,
    )  # fmt: skip
    for line in estimate_lines(plan, rate):
        print(line)
    return 0


def check_resume(out: Path, config: Any, settings: Any, genotype: Any, resume: bool) -> bool:
    """Before Ray starts: whether ``out/last.pt`` is a data-parallel checkpoint, with the
    resume refused (``CheckpointError``) when its config, recipe or architecture differ, and
    what changed (workers, batch-norm form) printed."""
    from snn_nas.checkpoint import LAST, CheckpointError, load_checkpoint
    from snn_nas.training.data_parallel import resume_changes
    from snn_nas.training.engine import _check_resume

    path = out / LAST
    if not resume or not path.is_file():
        return False
    state = load_checkpoint(path)
    _check_resume(state, config, genotype, path)
    if settings.plain and "parallel" not in state:
        return False
    try:
        changes = resume_changes(state.get("parallel"), settings)
    except CheckpointError as exc:
        raise CheckpointError(f"cannot resume from {path}: {exc}; use a new --out or the same --recipe") from None
    if changes:
        print(f"resuming {path}: changed: {'; '.join(changes)}", file=sys.stderr, flush=True)
    return True


def make_trainer(args: argparse.Namespace, settings: Any) -> Any:
    """The training function ``(genotype, config, *, out_dir, resume, device, progress, data,
    evaluate_test) -> TrainResult`` for these options (module docstring)."""
    return partial(_train, args=args, settings=settings)


def _train(genotype: Any, config: Any, *, args: argparse.Namespace, settings: Any, out_dir: Any, resume: bool,
           device: Any, progress: bool, data: Any, evaluate_test: bool) -> Any:  # fmt: skip
    from snn_nas.training import train_model

    out = Path(out_dir)
    parallel_checkpoint = check_resume(out, config, settings, genotype, resume)
    if settings.plain and not parallel_checkpoint:
        return train_model(genotype, config, out_dir=out, resume=resume, device=device, progress=progress,
                           data=data, evaluate_test=evaluate_test)  # fmt: skip
    plan = make_plan(config, settings, data)
    if progress:
        print_plan(plan, settings)
    if settings.workers == 1:
        from snn_nas.training.data_parallel import train_worker

        return train_worker(genotype, config, settings, device=device, out_dir=out, resume=resume,
                            progress=progress, data=data, evaluate_test=evaluate_test)  # fmt: skip
    from snn_nas.search.retrain_parallel import train_parallel
    from snn_nas.training import resolve_device

    return train_parallel(
        genotype, config, settings, out_dir=out, resume=resume, data=data, address=args.address,
        cpus_per_worker=args.cpus_per_worker, max_failures=args.max_failures, progress=progress,
        evaluate_test=evaluate_test, device=resolve_device(device),
    )  # fmt: skip


def report_entry(settings: Any, recipe: Any) -> dict[str, Any]:
    """What a retraining's report says about the data-parallel settings and the recipe."""
    lines = [
        f"{settings.workers} worker(s)"
        + (f", {settings.gpus_per_worker:g} GPU each" if settings.gpus_per_worker else " on CPUs")
        + f"; batch norm {'synchronised over the global batch' if settings.sync_bn else 'per worker'}; "
        f"learning-rate rule {settings.lr_rule}",
    ]
    if recipe is not None:
        lines.append(f"recipe `{recipe.name}` from {recipe.source}; augmentation: {recipe.augment.describe()}")
        lines += [f"differs from the reference: {d}" for d in recipe.differences]
    return {"settings": settings.to_dict(), "recipe": recipe.to_dict() if recipe else None, "lines": lines}
