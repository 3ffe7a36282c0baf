"""``snn-nas retrain``: retrain one architecture of a search at full fidelity and report on it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from snn_nas.errors import SnnNasError

HELP = "retrain a front architecture (--rank K or --key KEY) at full fidelity; write checkpoint and report"

DESCRIPTION = """\
Retrain one architecture of a search at full fidelity, measure its costs, and write a report.

Which one: by default the most accurate front member that the search found, i.e. not a seed
design (a baseline preset, or the hand design a warm start began from); it says which one and
why. --rank K is the K-th row of the Pareto front as 'snn-nas pareto RESULTS_DIR' prints it
(accuracy vs --x, default sops, most accurate first, one row per architecture, seed designs
included and named). --key KEY picks the trial with that architecture key (a unique prefix is
enough). A seed design is retrained only when --rank or --key asks for it, and it says so.

Fidelity: the trial's own training config from the search, raised to full fidelity: all the
training data (train + val: the search chose the architecture on val, so val now trains it
too), every batch, the architecture's own time steps (no cap) and --epochs (default 30).
Dataset, image size, batch size and the recipe stay as in the search unless given here
(--image-size native: the dataset's own size). The test part, which the search never read, is
evaluated once on the final model: that is the reported accuracy (test_acc). No epoch is
chosen by it.

Writes RESULTS_DIR/retrain/<key>/: last.pt (the trained model; load it with
snn_nas.load_model(path)), report.json and report.md (architecture, test accuracy next to
the search's validation accuracy, SOPs, MACs, energy, params, T, config, per-epoch curve) and
training_curve.png, and model.pt2 (a torch.export program that runs without snn-nas).
Interrupted? Run the same command again: it resumes from last.pt (--no-resume starts over).

example:
  snn-nas retrain results/quick
  snn-nas retrain results/quick --rank 2 --epochs 50
  snn-nas retrain results/quick --key 3fa2c1 --dataset cifar10 --data-root ~/data --image-size 32
  snn-nas retrain results/imagenet --recipe mixer_snn_imagenet --workers 8 --gpus-per-worker 1 \
      --dataset imagefolder --data-root ~/imagenet          # data-parallel with the published recipe
"""

_OVERRIDES = {  # command-line option -> TrainConfig field
    "dataset": "dataset",
    "data_root": "data_root",
    "batch_size": "batch_size",
    "lr": "lr",
    "optimizer": "optimizer",
    "weight_decay": "weight_decay",
    "warmup_epochs": "warmup_epochs",
    "label_smoothing": "label_smoothing",
    "seed": "seed",
    "num_workers": "num_workers",
}


def _image_size(text: str) -> int | str:
    if text == "native":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'native', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'native', got {text!r}")
    return value


DEFAULT_EPOCHS = 30  # snn_nas.retrain.DEFAULT_EPOCHS (a test checks); no pandas import for --help


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from snn_nas.cli.pareto import COST_COLUMNS

    parser.add_argument("results_dir", metavar="RESULTS_DIR", help="directory written by 'snn-nas search'")
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--rank",
        type=int,
        metavar="K",
        help="K-th front row by accuracy, 0 = most accurate (default: the best architecture the search found)",
    )
    which.add_argument("--key", metavar="KEY", help="architecture key (or a unique prefix) of a trial")
    parser.add_argument("--x", default="sops", choices=COST_COLUMNS, help="cost axis of the front --rank refers to")
    parser.add_argument("--epochs", type=int, help=f"training epochs (default {DEFAULT_EPOCHS}, or the --recipe's)")
    parser.add_argument("--dataset", help="dataset name (default: the search's)")
    parser.add_argument("--data-root", help="folder holding the dataset files (CIFAR, imagefolder)")
    parser.add_argument("--download", action="store_true", help="download CIFAR into --data-root if missing")
    parser.add_argument("--image-size", type=_image_size, help="input side length, or 'native' (default: the search's)")
    parser.add_argument("--batch-size", type=int, help="training batch size (default: the search's)")
    parser.add_argument("--lr", type=float, help="peak learning rate (default: the search's)")
    parser.add_argument("--optimizer", choices=("sgd", "adamw"), help="optimizer (default: the search's)")
    parser.add_argument("--weight-decay", type=float, help="weight decay")
    parser.add_argument("--warmup-epochs", type=float, help="linear warm-up length in epochs")
    parser.add_argument("--label-smoothing", type=float, help="label smoothing of the cross-entropy")
    parser.add_argument("--seed", type=int, help="training seed (default: the search's)")
    parser.add_argument("--num-workers", type=int, help="data-loader worker processes")
    parser.add_argument("--calibration-images", type=int, help="validation images the costs are measured on")
    parser.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--no-resume", action="store_true", help="start over instead of resuming from last.pt")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print report.json instead of the summary")
    parser.add_argument("--no-export", action="store_true", help="do not write the torch.export program model.pt2")
    from snn_nas.cli import scale

    scale.add_arguments(parser)


def _check_out_dir(root: Path) -> None:
    """``RESULTS_DIR/retrain`` must be a folder that can be made or written, before training."""
    out = root / "retrain"
    for parent in (out, *out.parents):
        if parent.exists():
            if not parent.is_dir():
                raise SnnNasError(f"{parent}: not a folder; the retraining writes into {out}/<key>/")
            break


def run(args: argparse.Namespace) -> int:
    from snn_nas.cli import scale
    from snn_nas.report import format_count
    from snn_nas.retrain import choose_trial, retrain

    settings = scale.settings_of(args)  # --workers 0 and the like: refused before anything is read
    recipe = scale.recipe_of(args)
    if args.epochs is None:  # the recipe's, else the default
        args.epochs = int(recipe.train_fields()["epochs"]) if recipe is not None else DEFAULT_EPOCHS
    if args.epochs < 1:
        raise SnnNasError(f"--epochs: {args.epochs} must be >= 1")
    if args.rank is not None and args.rank < 0:
        raise SnnNasError(f"--rank: {args.rank} must be >= 0 (0 = most accurate front member)")
    if args.calibration_images is not None and args.calibration_images < 1:
        raise SnnNasError(f"--calibration-images: {args.calibration_images} must be >= 1")
    if args.device is not None:
        from snn_nas.training import resolve_device

        resolve_device(args.device)  # '--device cuda' without CUDA fails before anything is read
    overrides = {field: getattr(args, flag) for flag, field in _OVERRIDES.items()}
    native = args.image_size == "native"  # the dataset's own size: image_size None in the config
    if args.image_size is not None and not native:
        overrides["image_size"] = args.image_size
    selected = choose_trial(Path(args.results_dir), rank=args.rank, key=args.key, x=args.x)
    # the choice and why, before the training (on stderr with --json, which keeps stdout for the report)
    print(f"retraining {selected['key']}: {selected['why']}", file=sys.stderr if args.json else sys.stdout, flush=True)
    if selected.get("constraint_warning"):
        print(f"warning: {selected['key']}: {selected['constraint_warning']}", file=sys.stderr, flush=True)
    _check_out_dir(Path(args.results_dir))
    overrides = {k: v for k, v in overrides.items() if v is not None}
    given = {*overrides, "epochs"}  # the recipe sets the rest

    def config_hook(config: object) -> object:
        return scale.with_recipe(config, recipe, given, settings)

    if args.dry_run:
        return _dry_run(args, selected, overrides, native, config_hook, settings)
    result = retrain(
        Path(args.results_dir),
        selected=selected,
        rank=args.rank,
        key=args.key,
        x=args.x,
        epochs=args.epochs,
        overrides=overrides,
        native_image_size=native,
        resume=not args.no_resume,
        device=args.device,
        progress=not args.no_progress,
        download=args.download,
        calibration_images=args.calibration_images,
        trainer=scale.make_trainer(args, settings),
        config_hook=config_hook,
        at_scale=None if settings.plain else scale.report_entry(settings, recipe),
        export=not args.no_export,
    )
    if args.json:
        sys.stdout.write(Path(result.report_json).read_text())
        return 0 if result.status == "ok" else 1
    if result.status != "ok":
        report = json.loads(Path(result.report_json).read_text())
        print(f"snn-nas retrain: {result.status}: {report.get('error')}", file=sys.stderr)
        print(f"wrote {result.report_json}")
        return 1
    search = "-" if result.search_val_acc is None else f"{result.search_val_acc:.2%}"
    print(
        f"{result.key}: test_acc {result.test_acc:.2%} (final model, trained on train+val; search val_acc {search}); "
        f"{format_count(result.sops)} SOPs, {result.energy_uj:.4g} uJ per image"
    )
    print(f"checkpoint {result.checkpoint}")
    program = Path(result.out_dir) / "model.pt2"
    if program.is_file():
        print(f"program {program} (torch.export.load(path).module(): runs without snn-nas)")
    print(f"report {result.report_md} (and report.json, training_curve.png)")
    return 0


def _dry_run(args: argparse.Namespace, selected: dict, overrides: dict, native: bool, hook: object,
             settings: object) -> int:  # fmt: skip
    """``--dry-run``: the plan of this retraining and its time estimate, no training."""
    from snn_nas.cli import scale
    from snn_nas.genotype import Genotype
    from snn_nas.retrain import full_fidelity_config
    from snn_nas.training import load_config_data, resolve_device

    config = hook(full_fidelity_config(selected.get("fidelity"), epochs=args.epochs,  # type: ignore[operator]
                                       overrides=overrides, native_image_size=native))  # fmt: skip
    data = load_config_data(config, download=args.download)
    genotype = Genotype.from_json(str(selected["genotype"]))
    return scale.dry_run(genotype, config, settings, data, resolve_device(args.device))
