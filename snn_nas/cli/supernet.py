"""``snn-nas supernet``: train a weight-sharing supernet of an experiment's space, or show one."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = "train the weight-sharing supernet of an experiment (one-shot search), or show a trained one"

DESCRIPTION = """\
A supernet holds the weights of every architecture of a search space at once: elastic stages,
depths, widths and MLP ratios take leading slices of the widest tensors, every patch-encoding
edge and every token-grid side has its own weights shared by all architectures that use it, and
weight-free choices (skip wiring, group LIF, time steps, neuron settings) are switches. Any
architecture is then evaluated in seconds: inherit its weights, recalibrate batch norm, measure.

  snn-nas supernet train EXPERIMENT   train it with the sandwich rule (per step the largest,
                                      the smallest and n random sub-networks, the others
                                      distilled from the largest, BigNAS); settings from the
                                      experiment's oneshot.supernet block, defaults otherwise
  snn-nas supernet show RESULTS_DIR   its settings, extent and training curve

Training writes RESULTS_DIR/<name>/supernet/supernet.pt after every epoch (the space's
fingerprint, the data and the settings inside); a run killed at any moment continues from its
last finished epoch with --resume. 'snn-nas search EXPERIMENT' of a one-shot experiment
(experiments/oneshot.yaml) uses a finished supernet found there, else trains it first.
With --workers N (or GPUs in the experiment's resources) it trains data-parallel through Ray
Train, one worker per device (on a cluster: --address; RESULTS_DIR must be shared storage).

examples:
  snn-nas supernet train oneshot
  snn-nas supernet train oneshot --epochs 2 --results-dir /tmp/results
  snn-nas supernet train experiments/cifar10.yaml --workers 4 --address auto
  snn-nas supernet show results/oneshot
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    train = actions.add_parser(
        "train",
        help="train (or continue) the supernet of an experiment",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("experiment", metavar="EXPERIMENT", help="experiment file or bundled name (e.g. oneshot)")
    train.add_argument("--results-dir", default="results", help="where <name>/supernet/ goes (default: results)")
    train.add_argument("--name", help="folder name under --results-dir (default: the experiment's name)")
    train.add_argument("--epochs", type=int, help="override oneshot.supernet.epochs")
    train.add_argument("--resume", action="store_true", help="continue a supernet whose training was interrupted")
    train.add_argument("--device", help="cpu, cuda or cuda:N (default: CUDA when available)")
    train.add_argument("--workers", type=int, default=1, help="data-parallel workers through Ray Train (default 1)")
    train.add_argument("--address", help="Ray cluster address for --workers (default: a local Ray instance)")
    train.add_argument("--num-cpus", type=int, help="CPUs of the local Ray instance (default: all)")
    train.add_argument("--no-progress", action="store_true", help="no per-step progress lines")
    show = actions.add_parser("show", help="settings, extent and training curve of a trained supernet")
    show.add_argument("results_dir", metavar="RESULTS_DIR", help="a search folder, its supernet/ folder or a .pt file")
    show.add_argument("--json", action="store_true", help="print JSON")


def _settings(experiment: object, epochs: int | None) -> object:
    from dataclasses import replace

    from snn_nas.search.experiment import ExperimentError
    from snn_nas.search.oneshot_settings import OneShot
    from snn_nas.supernet import SupernetError

    oneshot = experiment.oneshot or OneShot()  # type: ignore[attr-defined]
    if epochs is not None:
        try:
            oneshot = replace(oneshot, supernet=replace(oneshot.supernet, epochs=epochs))
        except SupernetError as exc:
            raise ExperimentError(f"--epochs: {str(exc).split(': ', 1)[-1]}") from None
    return replace(experiment, oneshot=oneshot)


def run(args: argparse.Namespace) -> int:
    if args.action is None:
        print("snn-nas supernet: error: choose an action: train or show (see --help)", file=sys.stderr)
        return 2
    if args.action == "show":
        return _show(args)
    from snn_nas.search.experiment import ExperimentError, load_experiment

    experiment = load_experiment(args.experiment).with_overrides(name=args.name)
    experiment = _settings(experiment, args.epochs)
    if args.workers < 1:
        raise ExperimentError(f"--workers: expected an integer >= 1, got {args.workers}")
    from snn_nas.search.supernet_train import run_supernet_training

    outcome = run_supernet_training(
        experiment, results_dir=args.results_dir, resume=args.resume, device=args.device, workers=args.workers,
        address=args.address, num_cpus=args.num_cpus, progress=not args.no_progress,
    )  # fmt: skip
    last = outcome["history"][-1] if outcome["history"] else {}
    verb = "trained" if outcome["trained"] else "already trained"
    print(
        f"supernet {verb}: {outcome['epochs']} epochs, {outcome['wall_s']:.0f} s; val acc largest "
        f"{100 * last.get('val_acc_largest', float('nan')):.2f} %, smallest "
        f"{100 * last.get('val_acc_smallest', float('nan')):.2f} %; {outcome['path']}"
    )
    return 0


def _show(args: argparse.Namespace) -> int:
    from snn_nas.supernet.checkpoint import CHECKPOINT, load_supernet

    path = Path(args.results_dir)
    if path.is_dir() and (path / "supernet" / CHECKPOINT).is_file():
        path = path / "supernet" / CHECKPOINT
    net, state = load_supernet(path)
    info = {
        "path": str(path),
        "space": state.get("space"),
        "epochs": state["epoch"],
        "parameters": net.parameter_count(),
        "stores": len(net.layout),
        "widths": [s.dim for s in net.bounds.stages],
        "depths": [s.depth for s in net.bounds.stages],
        "patch_sizes": list(net.bounds.patch_sizes),
        "settings": state["config"],
        "metadata": state["metadata"],
        "history": state["history"],
    }
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(f"supernet of space {info['space']!r}: {info['parameters']:,} weights in {info['stores']} store tensors")
    print(f"  widths {info['widths']}, depths {info['depths']}, patch sizes {info['patch_sizes']}")
    print(f"  trained {info['epochs']} of {state['config']['epochs']} epochs ({path})")
    for point in info["history"]:
        print(
            f"  epoch {point['epoch']}: loss largest {point['loss_largest']:.4f}, others {point['loss_others']:.4f}; "
            f"val acc largest {100 * point['val_acc_largest']:.2f} %, smallest {100 * point['val_acc_smallest']:.2f} %"
            f" ({point['epoch_s']:.0f} s)"
        )
    return 0
