"""``snn-nas profile``: parameters, dense MACs, and (on real images) SOPs, energy, firing rates."""

from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path
from typing import Any

from snn_nas.errors import SnnNasError

HELP = "costs of one architecture: params, dense MACs/step, and on a dataset SOPs, energy, firing rates per layer"

DESCRIPTION = """\
Costs of one architecture. ARCH is a preset name (see 'snn-nas models'), a genotype JSON file,
or a checkpoint (.pt) written by 'snn-nas train' (then its trained weights are profiled).

Without --dataset: parameters and dense MACs of one image at one time step (thop, with our
rules: only convolutions and linear maps cost MACs; norms, activations, pooling, LIF neurons and
the group LIF cost 0). A preset is counted at its published input (224 px, 1000 classes for the
ImageNet presets) unless --image-size / --num-classes / --in-chans say otherwise; a genotype
file at 32 px, 10 classes, 3 channels. Nothing is allocated: the model is built on the meta
device, so ImageNet-size models are counted in seconds.

With --dataset: also runs the model (eval mode, no gradients; initial weights drawn with --seed,
or the checkpoint's) on the first --batch validation images and reports, per image and summed
over the T time steps: SOPs (accumulates triggered by spikes, counted exactly per operation),
MACs (operations on real-valued inputs: the stem on the analog image, the head, all of a
non-spiking model), energy = --sop-pj x SOPs + --mac-pj x MACs (defaults 0.9 and 4.6 pJ, 45 nm,
Horowitz 2014), the mean firing rate, and a per-layer table. Image size, classes and channels
come from the dataset (--image-size resizes its images).

--json prints one JSON object: params, macs_per_step, time_steps (and with --dataset sops, macs,
energy_uj, firing_rate, layers, neurons, energy_per_sop_pj, energy_per_mac_pj).

example:
  snn-nas profile snn_mlp_t --image-size 224 --num-classes 1000 --json
  snn-nas profile mlp_spe_micro --dataset mnist5k --batch 32
  snn-nas profile arch.json --dataset synthetic --json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("arch", metavar="ARCH", help="preset name, genotype JSON file, or checkpoint (.pt)")
    parser.add_argument("--dataset", metavar="NAME", help="measure SOPs, energy, firing rates on its validation images")
    parser.add_argument("--batch", type=int, default=32, metavar="N", help="validation images to run (default 32)")
    parser.add_argument("--data-root", help="folder holding the dataset files (CIFAR, imagefolder)")
    parser.add_argument("--image-size", type=int, metavar="PX", help="input side length")
    parser.add_argument("--num-classes", type=int, metavar="K", help="classes of the head (without --dataset)")
    parser.add_argument("--in-chans", type=int, metavar="C", help="input channels (without --dataset)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial weights (default 0)")
    parser.add_argument("--sop-pj", type=float, default=0.9, help="energy per SOP in pJ (default 0.9)")
    parser.add_argument("--mac-pj", type=float, default=4.6, help="energy per MAC in pJ (default 4.6)")
    parser.add_argument("--device", help="torch device for --dataset (default: cuda if available, else cpu)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")


def _positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise SnnNasError(f"{name}: expected an integer >= 1, got {value}")


def _shape_defaults(args: argparse.Namespace, name: str) -> tuple[int, int, int]:
    """(image_size, num_classes, in_chans) without a dataset: flags, else the preset's, else 32/10/3."""
    from snn_nas.presets import PRESETS

    info = PRESETS.get(name) if name in PRESETS else None
    image_size = args.image_size or (info.image_size if info else 32)
    num_classes = args.num_classes or (info.num_classes if info else 10)
    return image_size, num_classes, args.in_chans or 3


def _load_checkpoint_model(path: Path, device: str) -> Any:
    from snn_nas.checkpoint import load_model

    return load_model(path, map_location=device)


def _dense_figures(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from snn_nas.builder import build_model
    from snn_nas.cli.train import load_arch
    from snn_nas.costs import count_params_macs

    if args.arch.endswith(".pt"):
        model = _load_checkpoint_model(Path(args.arch), "cpu")
        name = Path(args.arch).stem
        image_size = args.image_size or model.image_size
        if args.image_size and args.image_size != model.image_size:
            raise SnnNasError(f"--image-size: the checkpoint's model takes {model.image_size} px images")
        num_classes, in_chans = model.num_classes, model.in_chans
    else:
        name, genotype = load_arch(args.arch)
        image_size, num_classes, in_chans = _shape_defaults(args, args.arch)
        with torch.device("meta"):
            model = build_model(genotype, num_classes, image_size, in_chans)
    params, macs_per_step = count_params_macs(model, image_size, in_chans)
    return {
        "arch": name,
        "family": model.genotype.family,
        "image_size": image_size,
        "num_classes": num_classes,
        "in_chans": in_chans,
        "params": params,
        "macs_per_step": macs_per_step,
        "time_steps": model.time_steps,
    }


def _measured_figures(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from snn_nas.builder import build_model
    from snn_nas.cli.train import load_arch
    from snn_nas.costs import EnergyModel, measure_costs
    from snn_nas.data import load_dataset
    from snn_nas.data.base import time_major
    from snn_nas.training import resolve_device

    device = str(resolve_device(args.device))
    checkpoint = args.arch.endswith(".pt")
    if checkpoint:
        model = _load_checkpoint_model(Path(args.arch), device)
        name = Path(args.arch).stem
        data = load_dataset(args.dataset, data_root=args.data_root, image_size=args.image_size or model.image_size)
    else:
        name, genotype = load_arch(args.arch)
        data = load_dataset(args.dataset, data_root=args.data_root, image_size=args.image_size)
    for flag, given, actual in (
        ("--num-classes", args.num_classes, data.num_classes),
        ("--in-chans", args.in_chans, data.in_chans),
    ):
        if given is not None and given != actual:
            raise SnnNasError(f"{flag}: {given} does not match dataset {data.name!r}, which has {actual}; leave it out")
    if not checkpoint:
        model = build_model(genotype, data.num_classes, data.image_size, data.in_chans, seed=args.seed).to(device)
    data = data.at_time_steps(model.time_steps)  # event data: frames binned into the model's T
    n = min(args.batch, len(data.val))
    if n < 1:
        raise SnnNasError(f"dataset {data.name!r} has no validation images")
    images = time_major(torch.stack([data.val[i][0] for i in range(n)])).to(device)
    energy = EnergyModel(args.sop_pj, args.mac_pj)
    report = measure_costs(model, images, energy=energy)
    return {
        "arch": name,
        "family": model.genotype.family,
        "dataset": data.name,
        "weights": "checkpoint" if checkpoint else f"initial (seed {args.seed})",
        "image_size": data.image_size,
        "num_classes": data.num_classes,
        "in_chans": data.in_chans,
        **report.to_dict(),
    }


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _print_dense(fig: dict[str, Any]) -> None:
    from snn_nas.costs import format_count

    print(
        f"{fig['arch']} ({fig['family']}), {fig['in_chans']}x{fig['image_size']}x{fig['image_size']} input, "
        f"{fig['num_classes']} classes"
    )
    print(f"  parameters          {format_count(fig['params'])}  ({fig['params']:,})")
    macs = fig["macs_per_step"]
    print(f"  dense MACs / step   {format_count(macs)}  ({macs:,} per image, one time step)")
    print(f"  time steps T        {fig['time_steps']}")
    print("  run with --dataset NAME to measure SOPs, energy and firing rates on real images")


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f} %"


def _print_measured(fig: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    from snn_nas.costs import EnergyModel, format_count

    energy = EnergyModel(fig["energy_per_sop_pj"], fig["energy_per_mac_pj"])
    longest = max((len(row["name"]) for row in fig["layers"]), default=10)
    console = Console(highlight=False, width=max(shutil.get_terminal_size().columns, longest + 70))
    console.print(
        f"{fig['arch']} ({fig['family']}, T={fig['time_steps']}) on {fig['batch_size']} {fig['dataset']} "
        f"validation images ({fig['in_chans']}x{fig['image_size']}x{fig['image_size']}), {fig['weights']} weights"
    )
    console.print(f"per image, summed over the T time steps; energy at {energy.describe()}")
    table = Table()
    for column in ("layer", "kind", "input rate", "SOPs", "MACs", "energy µJ"):
        table.add_column(column, justify="left" if column in ("layer", "kind") else "right")
    for row in fig["layers"]:
        table.add_row(
            row["name"],
            row["kind"],
            _rate(row["input_rate"]),
            format_count(row["sops"]),
            format_count(row["macs"]),
            f"{energy.energy_uj(row['sops'], row['macs']):.4g}",
        )
    console.print(table)
    sop_pj, mac_pj, rate = fig["energy_per_sop_pj"], fig["energy_per_mac_pj"], fig["firing_rate"]
    summary = [
        ("parameters", f"{format_count(fig['params'])}  ({fig['params']:,})"),
        ("dense MACs / step", f"{format_count(fig['macs_per_step'])}  (one image, one time step)"),
        ("time steps T", str(fig["time_steps"])),
        ("SOPs / image", format_count(fig["sops"])),
        ("MACs / image", format_count(fig["macs"])),
        ("energy / image", f"{fig['energy_uj']:.4g} µJ  = {sop_pj:g} pJ x SOPs + {mac_pj:g} pJ x MACs"),
        ("mean firing rate", _rate(rate) + ("" if rate is not None else "  (no spiking neurons)")),
    ]
    for label, value in summary:
        console.print(f"  {label:<18} {value}")


def run(args: argparse.Namespace) -> int:
    for name in ("batch", "image_size", "num_classes", "in_chans"):
        _positive(f"--{name.replace('_', '-')}", getattr(args, name))
    for name in ("sop_pj", "mac_pj"):
        value = getattr(args, name)
        if not math.isfinite(value) or value < 0:
            raise SnnNasError(f"--{name.replace('_', '-')}: expected a number >= 0 (picojoules), got {value}")
    if args.arch.endswith(".pt") and not Path(args.arch).is_file():
        raise SnnNasError(f"ARCH: checkpoint {args.arch} not found")
    if args.device is not None:
        from snn_nas.training import resolve_device

        resolve_device(args.device)  # one line, not a driver traceback, when e.g. CUDA is missing
    figures = _measured_figures(args) if args.dataset else _dense_figures(args)
    if args.json:
        print(json.dumps(_json_safe(figures), indent=2))
    elif args.dataset:
        _print_measured(figures)
    else:
        _print_dense(figures)
    return 0
