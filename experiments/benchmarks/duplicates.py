"""Duplicate check: which single-label changes of a space's samples build the same network.

    python experiments/benchmarks/duplicates.py                     # every shipped space, shrunk
    python experiments/benchmarks/duplicates.py quick --samples 20 --full
    python experiments/benchmarks/duplicates.py spiking_mlp --samples 4 --max-changes 60 --all

For seeded samples of a space, every active label is changed to each of its other choices
(labels that the change activates get seeded random values; labels it deactivates are
dropped). For every change that still decodes, both *raw* genotypes
(``space.decode(sample, canonical=False)``) are built from seed 0 and compared:

* the parameters: the same names, shapes and initial values;
* the forward pass: the same logits in train mode and in eval mode on one random batch;
* the backward pass: the same gradients of a cross-entropy loss w.r.t. every parameter and the
  input (a surrogate-gradient change alters only these: a different trained network).

A pair that agrees is probed again ``CONFIRM_PROBES`` times with random parameter values (the
same for both: they have the same parameters) and a 4x larger batch: the same network must agree
for every value of its parameters, and at initialisation a spiking net can be so quiet (no spike
reaches a layer) that a real difference does not show.

Two genotypes are the same network only if all three agree. The table sets what the keys say
(``space.decode`` returns canonical genotypes, ``Genotype.canonical``) against what the networks
say, per label and change of value (``stage*`` pools the stages)::

    merged   canonical keys equal      same     networks equal
    bug      merged but the networks differ (a rewrite of canonical() that is not exact)
    missed   the networks are equal but the keys differ (an equivalence canonical() lacks)

and lists, for the equal pairs, the context (stage depth, token-grid side) in which they occur.
The exit status is 1 when there is a bug or a missed equivalence.

Shrinking (the default; ``--full`` turns it off) keeps a space's structure, image size, token-grid
sides and every choice that can shape an equivalence (groups, scans, skips, cells, neuron), but
sets ``base_dim`` to ``[6, 12]`` and keeps the first two choices of every depth and of
``time_steps``, so that the 224-px spaces run on a CPU. ``tests/test_space_canonical.py`` runs
``check_space`` on a few samples of each shipped space.
"""

from __future__ import annotations

import argparse
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from snn_nas.builder import build_model
from snn_nas.genotype import Genotype
from snn_nas.space import SearchSpace, SpaceError, load_space, shipped_spaces
from snn_nas.space.dimension import format_value, same_value
from snn_nas.space.loading import REPO_SPACES_DIR

SHRUNK_BASE_DIMS = [6, 12]  # every node count 1-4 divides 2 x base, as in the shipped spaces
CONFIRM_PROBES = 2  # further probes (random parameters, 4x the batch) two networks must agree on
RANDOM_SCALE = 3.0  # standard deviation of the random parameter values of those probes


# ---------------------------------------------------------------------------- spaces
def space_data(name: str) -> dict[str, Any]:
    """The raw mapping of a space file (a path, or the name of a shipped space)."""
    path = Path(name)
    if path.is_file():
        text = path.read_text(encoding="utf-8")
    elif (REPO_SPACES_DIR / f"{name}.yaml").is_file():
        text = (REPO_SPACES_DIR / f"{name}.yaml").read_text(encoding="utf-8")
    else:
        text = resources.files("snn_nas.space").joinpath("builtin", f"{name}.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def _first_two(spec: Any) -> Any:
    if isinstance(spec, Mapping) and "choice" in spec:
        return {"choice": list(spec["choice"])[:2]}
    return spec


def shrink(data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a space mapping with small widths, the first two depth and time-step choices."""
    out = {key: (dict(value) if isinstance(value, Mapping) else value) for key, value in data.items()}
    out["name"] = f"{data.get('name', 'space')}_shrunk"
    if "base_dim" in out:
        out["base_dim"] = {"choice": SHRUNK_BASE_DIMS} if isinstance(out["base_dim"], Mapping) else SHRUNK_BASE_DIMS[0]
    if "time_steps" in out:
        out["time_steps"] = _first_two(out["time_steps"])
    for section in ("stage_defaults", "stage1", "stage2", "stage3", "stage4"):
        if isinstance(out.get(section), dict) and "depth" in out[section]:
            out[section]["depth"] = _first_two(out[section]["depth"])
    return out


def checked_space(name: str, *, full: bool = False) -> SearchSpace:
    """The space ``name`` as shipped (``full``) or shrunk (see the module docstring)."""
    if full:
        return load_space(name)
    return SearchSpace.from_dict(shrink(space_data(name)), source=f"{name} (shrunk)")


# ---------------------------------------------------------------------------- changes
def single_changes(
    space: SearchSpace, sample: Mapping[str, Any], rng: np.random.Generator
) -> Iterator[tuple[str, Any, Any, dict[str, Any]]]:
    """``(label, old, new, changed sample)`` for every active label and every other choice of it."""
    for label in space.active_labels(sample):
        dim = space.by_label[label]
        for choice in dim.choices:
            if same_value(choice, sample[label]):
                continue
            changed: dict[str, Any] = {}
            for d in space.dimensions:
                if not d.is_active({**space.fixed, **changed}):
                    continue
                if d.label == label:
                    changed[label] = choice
                elif d.label in sample:
                    changed[d.label] = sample[d.label]
                else:
                    changed[d.label] = d.choices[int(rng.integers(len(d.choices)))]
            yield label, sample[label], choice, changed


# ---------------------------------------------------------------------------- networks
@dataclass
class Probe:
    """What a built network does on one batch: initial parameters, logits, gradients."""

    params: dict[str, torch.Tensor]
    train_logits: torch.Tensor
    eval_logits: torch.Tensor
    grads: dict[str, torch.Tensor | None] = field(default_factory=dict)


def probe(
    genotype: Genotype,
    image_size: int,
    *,
    in_chans: int = 3,
    batch: int = 2,
    seed: int = 0,
    randomize: bool = False,
) -> Probe:
    """Build ``genotype`` from ``seed``; one train-mode forward + backward, one eval-mode forward.

    ``randomize``: replace every parameter by seeded random values (in name order, so networks
    with the same parameters get the same values): ``RANDOM_SCALE x N(0, 1)``, loud enough that
    many neurons fire (at initialisation a spiking net can be nearly silent), except the group
    LIF's ``tau`` ~ U(0.3, 0.9) and ``v_th`` ~ U(0.5, 1.5). (At its initial ``tau = 0.25``,
    ``v_th = 0.1`` a group LIF on 0/1 spikes fires on every 1 and never holds a membrane: its
    group and scan do not show in the forward pass.)
    """
    model = build_model(genotype, num_classes=10, image_size=image_size, in_chans=in_chans, seed=seed)
    if randomize:
        draws = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in sorted(model.named_parameters()):
                if name.endswith(".tau"):  # GroupLIF (the spiking LIF has no parameters)
                    p.copy_(0.3 + 0.6 * torch.rand(p.shape, generator=draws))
                elif name.endswith(".v_th"):
                    p.copy_(0.5 + torch.rand(p.shape, generator=draws))
                else:
                    p.copy_(torch.randn(p.shape, generator=draws) * RANDOM_SCALE)
    params = {name: p.detach().clone() for name, p in model.named_parameters()}
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, in_chans, image_size, image_size, generator=gen) * 2.0 + 0.5
    y = torch.randint(0, 10, (batch,), generator=gen)
    leaf = x.clone().requires_grad_()
    model.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # drop path draws
        logits = model(leaf)
    F.cross_entropy(logits, y).backward()
    grads: dict[str, torch.Tensor | None] = {name: p.grad for name, p in model.named_parameters()}
    grads["<input>"] = leaf.grad
    model.eval()
    with torch.no_grad():
        eval_logits = model(x)
    return Probe(params, logits.detach(), eval_logits, grads)


def _close(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and torch.allclose(a, b, rtol=1e-5, atol=1e-7)


def verdict(a: Probe, b: Probe) -> str:
    """``same``, or the first difference: ``params`` (names/shapes), ``init`` (initial values),
    ``forward`` (logits in train or eval mode) or ``backward`` (gradients)."""
    if {k: v.shape for k, v in a.params.items()} != {k: v.shape for k, v in b.params.items()}:
        return "params"
    if not all(torch.equal(v, b.params[k]) for k, v in a.params.items()):
        return "init"
    if not (_close(a.train_logits, b.train_logits) and _close(a.eval_logits, b.eval_logits)):
        return "forward"
    if not all(_close(g, b.grads[k]) for k, g in a.grads.items()):
        return "backward"
    return "same"


# ---------------------------------------------------------------------------- the check
@dataclass(frozen=True)
class Change:
    """One single-label change of a sample and what the keys and networks say about it."""

    space: str
    seed: int
    label: str
    old: Any
    new: Any
    merged: bool  # canonical keys equal
    verdict: str  # "same", "params", "init", "forward", "backward"
    context: str  # the stage's depth and side for stage labels

    @property
    def same(self) -> bool:
        return self.verdict == "same"

    @property
    def bug(self) -> bool:
        return self.merged and not self.same

    @property
    def missed(self) -> bool:
        return self.same and not self.merged

    @property
    def pooled_label(self) -> str:
        return re.sub(r"^stage\d", "stage*", self.label)


def _context(space: SearchSpace, genotype: Genotype, label: str) -> str:
    match = re.match(r"^stage(\d)\.", label)
    if not match:
        return f"blocks {sum(genotype.depths)}"
    s = int(match.group(1))
    side = genotype.resolutions(space.image_size)[s - 1]
    return f"depth {genotype.stages[s - 1].depth}, side {side}"


def check_space(
    space: SearchSpace,
    seeds: range | list[int],
    *,
    max_changes: int | None = None,
    in_chans: int = 3,
    batch: int = 2,
) -> tuple[list[Change], int]:
    """Run the single-label change check on ``space.sample(seed)`` for every seed.

    ``max_changes``: check at most this many changes per sample (a seeded random subset).
    Returns the checked changes and the number of changes that did not decode (skipped).
    """
    changes: list[Change] = []
    invalid = 0
    for seed in seeds:
        rng = np.random.default_rng(seed)
        sample = space.sample(seed)
        raw = space.decode(sample, canonical=False)
        key = space.decode(sample).key()
        base: Probe | None = None
        candidates = list(single_changes(space, sample, rng))
        if max_changes is not None and len(candidates) > max_changes:
            picked = rng.choice(len(candidates), size=max_changes, replace=False)
            candidates = [candidates[i] for i in sorted(picked)]
        for label, old, new, changed in candidates:
            try:
                other_raw = space.decode(changed, canonical=False)
            except SpaceError:
                invalid += 1
                continue
            other_key = space.decode(changed).key()
            if other_raw == raw:
                outcome = "same"
            else:
                base = base or probe(raw, space.image_size, in_chans=in_chans, batch=batch)
                outcome = verdict(base, probe(other_raw, space.image_size, in_chans=in_chans, batch=batch))
                for again in range(1, CONFIRM_PROBES + 1) if outcome == "same" else ():
                    # a quiet network (few spikes reach a layer) can hide a difference: try again with
                    # random parameter values and a larger batch before calling two networks equal
                    settings = dict(in_chans=in_chans, batch=batch * 4, seed=again, randomize=True)
                    outcome = verdict(
                        probe(raw, space.image_size, **settings), probe(other_raw, space.image_size, **settings)
                    )
                    if outcome != "same":
                        break
            changes.append(
                Change(space.name, seed, label, old, new, other_key == key, outcome, _context(space, raw, label))
            )
    return changes, invalid


# ---------------------------------------------------------------------------- report
def table(changes: list[Change], *, show_all: bool = False) -> str:
    """Per pooled label and change of value: changes, merged, same networks, bugs, missed."""
    rows: dict[tuple[str, str, str], Counter] = defaultdict(Counter)
    contexts: dict[tuple[str, str, str], Counter] = defaultdict(Counter)
    for c in changes:
        key = (c.pooled_label, format_value(c.old), format_value(c.new))
        rows[key].update(changes=1, merged=c.merged, same=c.same, bug=c.bug, missed=c.missed)
        rows[key]["by " + c.verdict] += 1
        if c.same:
            contexts[key][c.context] += 1
    width = max([len(k[0]) for k in rows] + [5])
    lines = [
        f"{'label':<{width}}  {'from':>9} -> {'to':<9} {'changes':>7} {'merged':>6} {'same':>5} {'bug':>4} "
        f"{'missed':>6}  differ by (params/init/forward/backward); same networks in"
    ]
    for key in sorted(rows):
        r = rows[key]
        if not (show_all or r["merged"] or r["same"]):
            continue
        differ = "/".join(str(r["by " + v]) for v in ("params", "init", "forward", "backward"))
        where = ", ".join(f"{ctx} ({n})" for ctx, n in contexts[key].most_common(3))
        lines.append(
            f"{key[0]:<{width}}  {key[1]:>9} -> {key[2]:<9} {r['changes']:>7} {r['merged']:>6} {r['same']:>5} "
            f"{r['bug']:>4} {r['missed']:>6}  {differ}; {where}".rstrip("; ")
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spaces", nargs="*", help="space files or shipped names (default: every shipped space)")
    parser.add_argument("--samples", type=int, default=5, help="seeded samples per space (default: 5)")
    parser.add_argument("--seed", type=int, default=0, help="first sample seed (default: 0)")
    parser.add_argument("--max-changes", type=int, default=None, help="changes checked per sample (default: all)")
    parser.add_argument("--full", action="store_true", help="check the spaces as shipped, not shrunk")
    parser.add_argument("--batch", type=int, default=2, help="images in the probe batch (default: 2)")
    parser.add_argument("--in-chans", type=int, default=3, help="image channels (default: 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default: 1)")
    parser.add_argument("--all", action="store_true", help="print every row, not only merged or equal ones")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    failed = False
    for name in args.spaces or shipped_spaces():
        space = checked_space(name, full=args.full)
        start = time.perf_counter()
        seeds = range(args.seed, args.seed + args.samples)
        changes, invalid = check_space(
            space, seeds, max_changes=args.max_changes, in_chans=args.in_chans, batch=args.batch
        )
        wall = time.perf_counter() - start
        bugs, missed = sum(c.bug for c in changes), sum(c.missed for c in changes)
        merged, same = sum(c.merged for c in changes), sum(c.same for c in changes)
        print(
            f"\n== {space.name} ({space.image_size} px): {len(changes)} changes of {args.samples} samples "
            f"({invalid} invalid skipped), {merged} merged by canonical keys, {same} equal networks, "
            f"{bugs} bugs, {missed} missed; {wall:.1f} s"
        )
        print(f"   size {space.size():.4e} raw, {space.canonical_size():.4e} canonical")
        print(table(changes, show_all=args.all))
        for c in [c for c in changes if c.bug or c.missed][:10]:
            kind = "BUG" if c.bug else "MISSED"
            print(f"   {kind}: seed {c.seed} {c.label}: {format_value(c.old)} -> {format_value(c.new)} ({c.context})")
        failed |= bool(bugs or missed)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
