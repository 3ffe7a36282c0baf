"""``snn-nas train``: train one architecture (a preset or a genotype JSON file) and save the result."""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path
from typing import Any

from snn_nas.errors import SnnNasError
from snn_nas.jsonutil import finite_or_null

HELP = "train one architecture (preset or genotype JSON) on a dataset; write result.json and checkpoints"

DESCRIPTION = """\
Train one architecture on the training part, evaluate it on the held-out validation part after
every epoch, and measure the final model once on the test part (val_acc and test_acc; no
epoch is chosen by test accuracy).

ARCH is a preset name (see 'snn-nas models') or a JSON file holding a genotype (or a result.json
with a "genotype" entry). Settings not given on the command line come from the dataset's recipe;
for mnist5k (the default, bundled, offline): AdamW lr 3e-3, weight decay 0.01, batch 32, 5 epochs,
half an epoch of warm-up then cosine, label smoothing 0.1, gradient clipping 5, 28 x 28 images,
the architecture's own T (mlp_spe_micro: about 96 % validation accuracy in 1-3 CPU minutes).

Writes into --out (default results/train/ARCH-DATASET): result.json (status, val_acc as a
fraction, the training config, the costs of one validation batch when the cost model is
available, wall time, per-epoch history), last.pt (after every epoch) and best.pt (best
validation accuracy). --resume continues from last.pt with the same settings.

Datasets: mnist5k, digits, synthetic (offline); cifar10, cifar100 (--data-root holding the python
pickles, --download to fetch them); imagefolder (--data-root with train/ and val/ class folders).

example:
  snn-nas train mlp_spe_micro
  snn-nas train mlp_spe_micro --dataset mnist5k --epochs 5 --time-steps 2 --out runs/micro
  snn-nas train arch.json --dataset cifar10 --data-root ~/data --download --epochs 200
  snn-nas train mlp_spe_micro --out runs/micro --resume
  snn-nas train mlp_spe_micro --workers 2 --sync-bn          # data-parallel, Ray Train (gloo on CPUs)
  snn-nas train mlp_spe_t --dataset imagefolder --data-root ~/imagenet --recipe mixer_snn_imagenet \
      --workers 8 --gpus-per-worker 1 --dry-run             # the plan and a measured time estimate
"""

_FLAGS = {  # command-line option -> TrainConfig field
    "epochs": "epochs",
    "batch_size": "batch_size",
    "lr": "lr",
    "optimizer": "optimizer",
    "weight_decay": "weight_decay",
    "warmup_epochs": "warmup_epochs",
    "label_smoothing": "label_smoothing",
    "grad_clip": "grad_clip",
    "image_size": "image_size",
    "time_steps": "max_time_steps",
    "subset": "subset",
    "max_batches": "max_batches_per_epoch",
    "seed": "seed",
    "num_workers": "num_workers",
    "data_root": "data_root",
    "val_fraction": "val_fraction",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from snn_nas.training.config import OPTIMIZERS

    parser.add_argument("arch", metavar="ARCH", help="preset name or genotype JSON file")
    parser.add_argument("--dataset", default="mnist5k", metavar="NAME", help="dataset name (default: mnist5k)")
    parser.add_argument("--epochs", type=int, metavar="N", help="training epochs")
    parser.add_argument("--batch-size", type=int, metavar="N", help="training batch size")
    parser.add_argument("--lr", type=float, metavar="LR", help="peak learning rate")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, help="optimizer")
    parser.add_argument(
        "--weight-decay", type=float, metavar="WD", help="weight decay (weights only, not biases/norms)"
    )
    parser.add_argument("--warmup-epochs", type=float, metavar="E", help="linear warm-up length in epochs")
    parser.add_argument("--label-smoothing", type=float, metavar="S", help="label smoothing of the cross-entropy")
    parser.add_argument("--grad-clip", type=float, metavar="NORM", help="max gradient norm (0: off)")
    parser.add_argument("--image-size", type=int, metavar="PX", help="input side length (default: the dataset's own)")
    parser.add_argument("--time-steps", type=int, metavar="T", help="cap on the architecture's time steps T")
    parser.add_argument("--subset", type=float, metavar="FRACTION", help="fraction of the training split to use (0, 1]")
    parser.add_argument("--max-batches", type=int, metavar="N", help="at most this many batches per epoch")
    parser.add_argument("--seed", type=int, metavar="N", help="random seed (default 0)")
    parser.add_argument("--num-workers", type=int, metavar="N", help="data-loader worker processes")
    parser.add_argument("--data-root", metavar="DIR", help="folder holding the dataset files (CIFAR, imagefolder)")
    parser.add_argument(
        "--val-fraction", type=float, metavar="F",
        help="share of the training data held out as val (default: the dataset's, e.g. mnist5k 0.25)",
    )  # fmt: skip
    parser.add_argument("--download", action="store_true", help="download CIFAR into --data-root if missing")
    parser.add_argument("--out", type=Path, metavar="DIR", help="output folder (default: results/train/ARCH-DATASET)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    parser.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar or per-epoch lines")
    from snn_nas.cli import scale

    scale.add_arguments(parser)


def load_arch(arch: str) -> tuple[str, Any]:
    """(name, Genotype) from a preset name or a JSON file (a genotype or a dict with 'genotype').

    The file is read as strict UTF-8 JSON (``snn_nas.jsonutil``); a checkpoint (``.pt``) is
    refused with what to do instead.
    """
    from snn_nas.genotype import Genotype
    from snn_nas.jsonutil import loads_strict, read_json

    path = Path(arch)
    if path.suffix in (".pt", ".pth") or (path.is_file() and _is_checkpoint(path)):
        where = "" if path.is_file() else " (and it does not exist)"
        raise SnnNasError(
            f"ARCH: {path} is a checkpoint{where}, not an architecture; to continue its training give its architecture "
            f"with --resume --out {path.parent}; to evaluate it use snn_nas.load_model('{path}') or "
            f"'snn-nas profile {path} --dataset NAME'"
        )
    if arch.endswith(".json") or path.is_file():
        if not path.is_file():
            raise SnnNasError(f"ARCH: genotype file {path} not found")
        data = read_json(path, what="genotype file")
        if isinstance(data, dict) and isinstance(data.get("genotype"), (dict, str)):
            data = data["genotype"]
            if isinstance(data, str):
                data = loads_strict(data, f"{path}: the 'genotype' entry")
        return path.stem, Genotype.from_dict(data)
    from snn_nas.presets import get_preset

    return arch, get_preset(arch)


def _is_checkpoint(path: Path) -> bool:
    """Whether ``path`` starts like a file written by ``torch.save`` (a zip archive or a pickle)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(2)
    except OSError:
        return False
    return head in (b"PK", b"\x80\x02")


def build_config(args: argparse.Namespace, recipe: Any = None) -> Any:
    """The TrainConfig: TrainConfig defaults, then the dataset's recipe, then a published recipe
    (``--recipe``), then the given flags."""
    from snn_nas.training import TrainConfig
    from snn_nas.training.recipes import recipe_for

    values: dict[str, Any] = {"dataset": args.dataset, **recipe_for(args.dataset)}
    if recipe is not None:
        values.update(recipe.train_fields())
    for flag, name in _FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            values[name] = value
    if values.get("grad_clip") == 0:
        values["grad_clip"] = None
    return TrainConfig(**values)


def _costs(model: Any, data: Any, device: Any) -> dict[str, Any] | None:
    """The cost report of up to 64 validation images (the calibration batch a search uses), or
    None without a cost model."""
    try:
        from snn_nas.costs import measure_costs
    except ImportError:
        return None
    from snn_nas.search.trial import calibration_batch

    return measure_costs(model, calibration_batch(data, 64).to(device)).to_dict()


def run(args: argparse.Namespace) -> int:
    import torch

    from snn_nas.cli import scale
    from snn_nas.training import load_config_data, resolve_device
    from snn_nas.version import __version__

    settings = scale.settings_of(args)  # --workers 0 and the like: refused before anything is read
    name, genotype = load_arch(args.arch)
    config = scale.with_recipe(build_config(args, scale.recipe_of(args)), None, set(), settings)
    dataset_label = config.dataset.split(":")[0]
    out = args.out if args.out is not None else Path("results") / "train" / f"{name}-{dataset_label}"
    if out.exists() and not out.is_dir():
        raise SnnNasError(f"--out: {out} exists and is not a folder")
    blocking = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:  # found now, not after the training
        raise SnnNasError(f"--out: {out} lies under {blocking}, which is a file, not a folder")
    if (out / "last.pt").is_file() and not args.resume:
        raise SnnNasError(
            f"--out: {out} already holds a checkpoint; pass --resume to continue it or choose another --out"
        )
    if args.resume and not (out / "last.pt").is_file():
        raise SnnNasError(
            f"--resume: {out / 'last.pt'} not found, so there is nothing to continue; "
            "give the --out of the run to resume, or leave out --resume to start training"
        )
    device = resolve_device(args.device)
    data = load_config_data(config, download=args.download)
    if args.dry_run:
        return scale.dry_run(genotype, config, settings, data, device)
    progress = not args.no_progress
    if progress:
        print(f"training {name} ({genotype.summary()})", file=sys.stderr)
        print(f"data: {data.describe()}; device: {device}; out: {out}", file=sys.stderr)
    train = scale.make_trainer(args, settings)
    result = train(
        genotype, config, out_dir=out, resume=args.resume, device=device, progress=progress, data=data,
        evaluate_test=True,
    )  # fmt: skip
    costs = _costs(result.model, result.data, device) if result.ok else None  # result.data: event frames binned
    report = {
        "arch": name,
        "key": genotype.key(),
        "summary": genotype.summary(),
        "genotype": genotype.to_dict(),
        "dataset": config.dataset,
        "config": config.to_dict(),
        **result.summary(),
        "costs": costs,
        **({} if settings.plain else {"parallel": settings.to_dict()}),
        "checkpoints": {k: str(out / f"{k}.pt") if (out / f"{k}.pt").is_file() else None for k in ("last", "best")},
        "device": str(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "version": __version__,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(finite_or_null(report), indent=2) + "\n")
    if not result.ok:
        print(f"snn-nas train: {result.status}: {result.error}", file=sys.stderr)
        print(f"wrote {out / 'result.json'}")
        return 1
    line = (
        f"{name} on {data.name}: val_acc {result.val_acc:.2%} (best {result.best_val_acc:.2%}), "
        f"test_acc {result.test_acc:.2%} (final model) after {result.epochs} epochs, {result.wall_s:.1f} s"
    )
    if costs is not None:
        line += f"; {costs['sops']:.3g} SOPs, {costs['energy_uj']:.3g} uJ per image"
    print(line)
    print(f"wrote {out / 'result.json'}")
    return 0
