"""``snn-nas space``: the dimensions, size and seeded samples of a search-space file."""

from __future__ import annotations

import argparse
import json
from typing import Any

MAX_SAMPLES = 10_000  # about 6 s of decoding here (100,000 took 63 s); a larger count is a typo
HELP = "show the dimensions and sizes of a search space, and seeded samples of it"
DESCRIPTION = """\
Show a search space: its name, description, every searchable dimension (label, choices,
condition under which it matters), the fixed values, its two exact sizes, and optionally N
seeded samples (label dict, genotype key and summary).

Sizes: "raw" is the number of valid configurations (label assignments); "canonical" the number
of distinct networks (genotype keys) they decode to. They differ where different values build
the same network (e.g. skip_source block or stage in a one-block stage, a group LIF group equal
to its stage's side or 0): the space decodes such samples to one canonical genotype
(Genotype.canonical) so a search never trains the same network twice under two keys.

FILE is a space file (.yaml) or the name of a shipped space (quick, spiking_mlp, snn_mlp, events);
without FILE the shipped spaces are listed.

examples:
  snn-nas space quick
  snn-nas space search_spaces/spiking_mlp.yaml --sample 3 --seed 7
  snn-nas space quick --sample 5 --json > quick.json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", metavar="FILE", help="space file or shipped space name")
    parser.add_argument(
        "--sample", type=int, default=0, metavar="N", help="draw N valid samples, at most 10,000 (default: 0)"
    )
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the samples (default: 0)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _percent(share: float) -> str:
    return f"{100 * share:.1f}%" if share == 0 or share >= 0.001 else f"{100 * share:.2g}%"


def _list_shipped(as_json: bool) -> int:
    from snn_nas.space import load_space, shipped_spaces

    spaces = [load_space(name) for name in shipped_spaces()]
    if as_json:
        rows = [
            {
                "name": s.name,
                "family": s.family,
                "image_size": s.image_size,
                "size": s.size(),
                "canonical_size": s.canonical_size(),
            }
            for s in spaces
        ]
        print(json.dumps(rows, indent=2))
        return 0
    print("shipped spaces (snn-nas space NAME for details):")
    for s in spaces:
        print(
            f"  {s.name:<14} {s.family:<8} {s.image_size:>4} px  {s.size():.3e} configurations, "
            f"{s.canonical_size():.3e} distinct networks"
        )
    return 0


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from snn_nas.space import SpaceError, load_space

    if not 0 <= args.sample <= MAX_SAMPLES:
        raise SpaceError(
            f"--sample: {args.sample} is out of range; give a number of samples in [0, {MAX_SAMPLES:,}] "
            "(each is decoded and printed)"
        )
    if args.file is None:
        return _list_shipped(args.json)
    space = load_space(args.file)
    from snn_nas.errors import SnnNasError

    if not 0 <= args.seed <= 2**32 - 1:
        raise SnnNasError(f"--seed: {args.seed} is out of range; expected an integer in [0, {2**32 - 1}]")
    rng = np.random.default_rng(args.seed)
    samples = []
    for _ in range(args.sample):
        sample = space.sample(rng)
        genotype = space.decode(sample)
        samples.append({"sample": sample, "key": genotype.key(), "summary": genotype.summary(), "genotype": genotype})
    if args.json:
        info = space.to_dict()
        info["seed"] = args.seed
        info["samples"] = [{**s, "genotype": s["genotype"].to_dict()} for s in samples]
        print(json.dumps(info, indent=2))
        return 0

    print(f"space {space.name}  ({space.source})")
    if space.description:
        print(f"  {space.description}")
    print(f"  family {space.family}, image size {space.image_size} px")
    raw, canonical = space.size(), space.canonical_size()
    print(f"  size: {raw:,} valid configurations ({raw:.3e}, raw)")
    print(
        f"        {canonical:,} distinct networks ({canonical:.3e}, canonical; "
        f"{_percent(1 - canonical / raw)} of the configurations repeat another's network)"
    )
    dims = space.dimensions
    print(f"\ndimensions ({len(dims)} searchable):")
    width = max((len(d.label) for d in dims), default=5)
    choice_width = min(max((len(", ".join(map(_format, d.choices))) for d in dims), default=7), 48)
    for d in dims:
        choices = ", ".join(map(_format, d.choices))
        condition = "" if not d.condition else f"if {d.condition_text}"
        print(f"  {d.label:<{width}}  {choices:<{choice_width}}  {condition}".rstrip())
    fixed = space.fixed
    if fixed:
        print(f"\nfixed ({len(fixed)}):")
        text = ", ".join(f"{label}={_format(value)}" for label, value in fixed.items())
        print("  " + text)
    if samples:
        print(f"\nsamples (seed {args.seed}):")
        for i, s in enumerate(samples, start=1):
            print(f"  #{i} key {s['key']}  {s['summary']}")
            print(f"     {json.dumps(s['sample'])}")
    return 0
