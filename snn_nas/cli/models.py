"""``snn-nas models``: the preset architectures, their sizes and published accuracy."""

from __future__ import annotations

import argparse
import json
import sys

from snn_nas.errors import SnnNasError

HELP = "list the preset architectures (params, depths, widths, published top-1)"

DESCRIPTION = """\
List the preset architectures: the published seeds (Mixer-SNN MLP-SPE-T/S and MLP-S, SNN-MLP-T/S/B)
and the micro variants for quick runs. Parameters are counted for each preset's recommended input
(224 px and 1000 classes for the ImageNet presets, 32 px and 10 classes for the micro ones) unless
--image-size / --num-classes are given ('n/a' where a preset cannot be built at that size).
Top-1 is the published ImageNet accuracy.

With a NAME, print that preset's details (on stderr) and its genotype as JSON (on stdout).

example:
  snn-nas models
  snn-nas models --image-size 32 --num-classes 10
  snn-nas models mlp_spe_t > mlp_spe_t.json
"""

# display order: the published spiking seeds, the SNN-MLP seeds, then the micro variants
ORDER = ("mlp_spe_t", "mlp_spe_s", "mlp_s", "snn_mlp_t", "snn_mlp_s", "snn_mlp_b", "mlp_spe_micro", "snn_mlp_micro")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", metavar="NAME", help="show one preset and print its genotype JSON")
    parser.add_argument("--image-size", type=int, default=None, metavar="PX", help="count params at this input size")
    parser.add_argument("--num-classes", type=int, default=None, metavar="K", help="count params for K classes")
    parser.add_argument("--json", action="store_true", help="print the table as JSON rows instead")


def preset_rows(image_size: int | None = None, num_classes: int | None = None) -> list[dict[str, object]]:
    """One row of primitives per preset (what the table and ``--json`` show); no torch needed."""
    from snn_nas.genotype import GenotypeError
    from snn_nas.layers.params import parameter_count
    from snn_nas.presets import PRESETS

    names = [n for n in ORDER if n in PRESETS] + [n for n in PRESETS.names() if n not in ORDER]
    rows = []
    for name in names:
        info = PRESETS.get(name)
        g = info.genotype
        size = image_size or info.image_size
        classes = num_classes or info.num_classes
        try:
            params: int | None = parameter_count(g, classes, size)
        except GenotypeError:
            params = None
        rows.append(
            {
                "name": name,
                "family": g.family,
                "time_steps": g.time_steps,
                "depths": list(g.depths),
                "widths": list(g.dims),
                "image_size": size,
                "num_classes": classes,
                "params": params,
                "top1": info.top1,
                "top1_note": info.top1_note,
                "key": g.key(),
            }
        )
    return rows


def _check_positive(flag: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise SnnNasError(f"{flag}: {value} must be a positive integer")


def run(args: argparse.Namespace) -> int:
    _check_positive("--image-size", args.image_size)
    _check_positive("--num-classes", args.num_classes)
    if args.name:
        return _show_one(args)
    rows = preset_rows(args.image_size, args.num_classes)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = ("name", "family", "T", "depths", "widths", "px/cls", "params", "top-1")
    table = [header]
    for r in rows:
        table.append(
            (
                str(r["name"]),
                str(r["family"]),
                str(r["time_steps"]),
                ",".join(map(str, r["depths"])),  # type: ignore[call-overload]
                ",".join(map(str, r["widths"])),  # type: ignore[call-overload]
                f"{r['image_size']}/{r['num_classes']}",
                "n/a" if r["params"] is None else f"{r['params'] / 1e6:.2f}M",  # type: ignore[operator]
                "-" if r["top1"] is None else f"{r['top1']:.2f}",
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    left = {0, 1, 3, 4}
    for row in table:
        cells = [c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        print("  ".join(cells).rstrip())
    print("params at px/classes; top-1: published ImageNet accuracy (%)")
    return 0


def _show_one(args: argparse.Namespace) -> int:
    from snn_nas.layers.params import parameter_count
    from snn_nas.presets import preset_info

    info = preset_info(args.name)
    g = info.genotype
    size = args.image_size or info.image_size
    classes = args.num_classes or info.num_classes
    top1 = (
        "unpublished"
        if info.top1 is None
        else f"{info.top1:.2f} %" + (f" ({info.top1_note})" if info.top1_note else "")
    )
    published = f" (published: {info.params_published})" if info.params_published else ""
    lines = [
        f"{info.name}: {info.description}",
        f"  summary:  {g.summary()}",
        f"  key:      {g.key()}",
        f"  params:   {parameter_count(g, classes, size):,} at {size} px, {classes} classes{published}",
        f"  top-1:    {top1} on {info.dataset}",
    ]
    if info.paper:
        lines.append(f"  paper:    {info.paper}")
    print("\n".join(lines), file=sys.stderr)
    print(g.to_json(indent=2))
    return 0
