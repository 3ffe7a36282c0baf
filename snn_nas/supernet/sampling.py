"""Which sub-networks a supernet training step trains: the sandwich rule (BigNAS).

*Elastic* labels are the ones that make a network bigger or smaller along one axis: the number
of stages, stage depths, widths (``base_dim``, ``width_mult``, ``dim``), the channel-MLP ratio,
the number of cell nodes and the time steps. Per step:

* the **largest** sub-network takes the largest choice of every elastic label, the
  **smallest** the smallest (BigNAS's max/min child); the patch size is elastic the other way
  round (the largest takes the finest patch, the most tokens; the smallest the coarsest). Every
  other label (token-mixing op, skip wiring, cell edges, neuron settings) takes its first choice (``extremes:
  first``, the default: two fixed networks, as in BigNAS, so that the teacher learns steadily),
  or is drawn uniformly at every step (``extremes: random``), or the largest takes the first
  choice and the smallest the last (``extremes: opposite``: still two fixed networks, which
  together train both ends of every such label);
* ``anchors``: fixed genotypes (``supernet.anchors``, preset names such as the seed designs),
  trained at every step after the extremes, so that the weights of their choices are trained
  together and not only when a random draw happens to combine them;
* ``random_subnets`` sub-networks are drawn uniformly over the space (``SearchSpace.sample``).

With ``accept`` (the experiment's constraints), the smallest and the random ones are redrawn
until accepted. The largest is the teacher and may exceed them (``largest: max``), or is shrunk
until it meets them (``largest: feasible``: lower one elastic label a step at a time, keeping
the most parameters, until accepted; time steps carry no weights and stay). A draw that does
not decode is redrawn. Draws come from ``numpy.random.default_rng([seed, 0, epoch, step])``, so
every worker of a data-parallel run trains the same sub-networks at the same step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from snn_nas.genotype import Genotype
from snn_nas.supernet.bounds import SupernetError

GLOBAL_ELASTIC = ("num_stages", "base_dim", "mlp_ratio", "time_steps")
STAGE_ELASTIC = (".depth", ".width_mult", ".dim", ".cell.nodes")
MAX_TRIES = 500
EXTREMES = ("first", "random", "opposite")
LARGEST = ("max", "feasible")


def is_elastic(label: str) -> bool:
    """Whether ``label`` scales the network along one axis (see the module docstring)."""
    return label in GLOBAL_ELASTIC or label.endswith(STAGE_ELASTIC)


class SubnetSampler:
    """The sub-networks of each training step of a supernet over ``space``.

    ``accept(genotype) -> bool`` filters the smallest and random draws (None: all accepted).
    """

    def __init__(
        self,
        space: Any,
        *,
        accept: Callable[[Genotype], bool] | None = None,
        seed: int = 0,
        extremes: str = "first",
        largest: str = "max",
        anchors: tuple[Genotype, ...] = (),
    ) -> None:
        if extremes not in EXTREMES:
            raise SupernetError(f"supernet.extremes: {extremes!r} is not allowed; choose one of {list(EXTREMES)}")
        if largest not in LARGEST:
            raise SupernetError(f"supernet.largest: {largest!r} is not allowed; choose one of {list(LARGEST)}")
        self.space = space
        self.accept = accept
        self.seed = int(seed)
        self.extremes = extremes
        self.largest = largest
        self.anchors = tuple(anchors)

    def rng(self, epoch: int, step: int, stream: int = 0) -> np.random.Generator:
        """The generator of one step (``stream`` 1: draws outside the training steps)."""
        return np.random.default_rng([self.seed, int(stream), int(epoch), int(step)])

    def extreme(self, rng: np.random.Generator, which: str, *, accept: bool = False) -> Genotype:
        """The largest (``which="max"``) or smallest (``"min"``) sub-network (module docstring);
        with ``accept`` it must pass the filter."""
        pick = max if which == "max" else min
        first = [self.extremes in ("first", "opposite")]
        end = -1 if which == "min" and self.extremes == "opposite" else 0

        def choose(dim: Any) -> Any:
            if dim.label == "patch_size":  # a coarser patch: fewer tokens, a smaller network
                return (min if which == "max" else max)(dim.choices)
            if is_elastic(dim.label):
                return pick(dim.choices)
            if first[0]:
                return dim.choices[end]
            return dim.choices[int(rng.integers(len(dim.choices)))]

        def draw() -> dict[str, Any]:
            sample = self.space.sample_with(choose)
            first[0] = False  # the first choices did not decode (or were refused): draw the rest
            if which == "max" and self.largest == "feasible":
                sample = self._shrink(sample)
            return sample

        return self._draw(draw, f"the {which} sub-network", accept or (which == "max" and self.largest == "feasible"))

    def _shrink(self, sample: dict[str, Any]) -> dict[str, Any]:
        """Lower elastic labels one step at a time, keeping the most parameters, until accepted."""
        from snn_nas.layers.params import parameter_count
        from snn_nas.space import SpaceError

        if self.accept is None:
            return sample
        while True:
            try:
                if self.accept(self.space.decode(sample)):
                    return sample
            except SpaceError:
                return sample  # _draw redraws it
            best, best_params = None, -1
            for label, value in sample.items():
                choices = sorted(self.space.by_label[label].choices)
                if not is_elastic(label) or label == "time_steps" or choices.index(value) == 0:
                    continue
                candidate = {**sample, label: choices[choices.index(value) - 1]}
                try:
                    genotype = self.space.decode(candidate)
                except SpaceError:
                    continue
                params = parameter_count(genotype, 10, self.space.image_size, 3)
                if params > best_params:
                    best, best_params = candidate, params
            if best is None:
                return sample
            sample = {k: v for k, v in best.items() if k in self.space.active_labels(best)}

    def random(self, rng: np.random.Generator) -> Genotype:
        """A uniform random sub-network (accepted by the filter)."""
        return self._draw(lambda: self.space.sample(rng), "a random sub-network", True)

    def step(self, epoch: int, step: int, *, sandwich: bool, random_subnets: int) -> list[Genotype]:
        """The sub-networks of one step: ``[largest, smallest, *anchors, *random]`` with
        ``sandwich``, else ``[*anchors, *random]`` (``random_subnets`` random ones). The first is
        the teacher when distilling."""
        rng = self.rng(epoch, step)
        out = [self.extreme(rng, "max"), self.extreme(rng, "min", accept=True)] if sandwich else []
        return out + list(self.anchors) + [self.random(rng) for _ in range(random_subnets)]

    def _draw(self, draw: Callable[[], dict[str, Any]], what: str, accept: bool) -> Genotype:
        from snn_nas.space import SpaceError

        reason = "no draw decoded"
        for _ in range(MAX_TRIES):
            try:
                genotype = self.space.decode(draw())
            except SpaceError as exc:
                reason = str(exc)
                continue
            if accept and self.accept is not None and not self.accept(genotype):
                reason = "no draw met the experiment's constraints"
                continue
            return genotype
        raise SupernetError(f"space {self.space.name!r}: could not draw {what} in {MAX_TRIES} tries ({reason})")


def constraint_filter(constraints: tuple[tuple[str, float], ...], *, num_classes: int, image_size: int,
                      in_chans: int) -> Callable[[Genotype], bool] | None:  # fmt: skip
    """An ``accept`` function for the parameter-count constraint (``params``), the one an
    architecture can be checked against before training; None when there is none."""
    limit = dict(constraints).get("params")
    if limit is None:
        return None
    from snn_nas.layers.params import parameter_count

    def accept(genotype: Genotype) -> bool:
        return parameter_count(genotype, num_classes, image_size, in_chans) <= limit

    return accept
