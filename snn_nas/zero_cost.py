"""A training-free score of spiking networks (SAHD) and the candidate selection of pre-screening.

SAHD, the sparsity-aware Hamming distance score of SNASNet (Kim et al., ECCV 2022, "Neural
Architecture Search for Spiking Neural Networks"), scores an untrained network from one batch of
``B`` images. Every *layer call* gives binary codes ``x`` in ``{0, 1}^(B x N)``, one row per image;
here a call is one time step ``t`` of one ``snn_nas.neurons.LIF`` module, ``x = out[t].reshape(B, -1)
> 0`` of its ``[T, B, ...]`` spikes (SNASNet's single-step hooks see the same codes), so ``M`` LIF
modules run for ``T`` steps make ``L = M * T`` calls. Per call, with ``N`` that call's neurons::

    r_i   = |x_i| / N                                   firing rate of image i
    d_ij  = x_i . (1 - x_j) + (1 - x_i) . x_j           Hamming distance of the codes of i and j
    n_ij  = r_i (1 - r_j) + (1 - r_i) r_j               E[d_ij] / N for random codes with those rates
    K_ij += N - 0.5 / (n_ij + 1e-3) * d_ij              (eps = 1e-3)

and after the forward pass ``SAHD = log |det(K / L)|`` (``slogdet``). ``K`` is accumulated in
float64. ``d_ii = 0``, so ``K_ii = sum N``; two images whose codes differ as much as chance allows
(``d_ij ~ N n_ij``) add about ``N / 2``, identical codes add ``N``. A network whose spike patterns
tell the images of a batch apart at initialisation has a ``K`` closer to diagonal and a larger
log-determinant, and SNASNet finds that it tends to train to a higher accuracy.

``-inf`` when ``det(K / L) <= 0``: two images with the same code at every call (a silent network,
an input the network cannot see) give two equal rows and ``det K = 0``; the rate rescaling can also
make ``K`` indefinite (``det K < 0``) when codes are further apart than chance. Then ``log |det|``
no longer measures how well the batch is separated, so the network scores as the worst possible
(SNASNet's code takes ``log |det|`` whatever the sign).

Differences from SNASNet's reference code: one batch by default (``repeats`` splits it into equal
parts and averages their scores; SNASNet averages 2 batches of 256); BatchNorm uses the batch
statistics, as in SNASNet's untrained network in train mode, but every other module runs in eval
mode, so drop path stays off and the score is deterministic. (Some later copies of the code scale
``n_ij`` by ``N``; this module follows the original.)

What it is for: pre-screening. ``score_candidates`` builds each genotype untrained and measures its
SAHD and SOPs on a calibration batch; ``select_candidates`` picks the candidates to train first by
Pareto rank on (SAHD, maximised; cost, minimised).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from snn_nas.errors import SnnNasError
from snn_nas.genotype import Genotype
from snn_nas.neurons import LIF, spiking_neurons
from snn_nas.pareto import non_domination_ranks, to_minimization

if TYPE_CHECKING:  # pragma: no cover
    from snn_nas.costs import EnergyModel

EPS = 1e-3
#: float32 sums integers exactly up to 2**24; wider codes count their overlaps in float64
_EXACT_FLOAT32 = 2**24


class ZeroCostError(SnnNasError, ValueError):
    """Bad input to a zero-cost score; the message names what is wrong and what is allowed."""


# ---------------------------------------------------------------- the kernel (pure)
def sahd_kernel(codes: torch.Tensor) -> torch.Tensor:
    """Sum over calls of the SAHD kernel of binary codes ``[L, B, N]`` -> ``[B, B]`` float64.

    ``codes``: ``L`` layer calls of ``B`` images with ``N`` neurons each (bool or 0/1 values;
    anything > 0 counts as a spike). Returns ``sum_l (N - 0.5 / (n_ij + 1e-3) * d_ij)`` with
    ``d_ij = |x_i| + |x_j| - 2 x_i . x_j`` (the Hamming distance) and ``n_ij`` of the rates
    ``r = |x| / N`` (see the module docstring). The overlaps ``x_i . x_j`` are integers, counted
    exactly; the rest is float64.
    """
    if codes.ndim != 3:
        raise ZeroCostError(f"codes: expected [calls, batch, neurons], got shape {list(codes.shape)}")
    neurons = int(codes.shape[2])
    if neurons == 0:
        raise ZeroCostError("codes: a layer call has 0 neurons")
    x = (codes > 0).to(torch.float32 if neurons < _EXACT_FLOAT32 else torch.float64)
    overlap = (x @ x.transpose(1, 2)).double()  # [L, B, B], x_i . x_j
    count = x.sum(dim=2, dtype=torch.float64)  # [L, B], |x_i|
    distance = count[:, :, None] + count[:, None, :] - 2.0 * overlap  # d_ij
    rate = count / neurons
    expected = rate[:, :, None] * (1.0 - rate[:, None, :]) + (1.0 - rate[:, :, None]) * rate[:, None, :]  # n_ij
    return (neurons - 0.5 / (expected + EPS) * distance).sum(dim=0)


def logdet_score(kernel: torch.Tensor, calls: int) -> float:
    """``log |det(kernel / calls)|`` of a ``[B, B]`` kernel; ``-inf`` unless the determinant is > 0."""
    if calls < 1:
        raise ZeroCostError(f"calls: expected >= 1 layer call, got {calls}")
    sign, logabs = torch.linalg.slogdet(kernel / calls)
    if not float(sign) > 0:
        return -math.inf
    return float(logabs)


# ---------------------------------------------------------------- scoped side effects
class _KernelAccumulator:
    """Forward-hook target: adds each LIF call's kernel ``[B, B]`` to ``kernel``."""

    def __init__(self) -> None:
        self.batch = 0
        self.kernel: torch.Tensor | None = None
        self.calls = 0

    def reset(self, batch: int) -> None:
        self.batch, self.kernel, self.calls = batch, None, 0

    def hook(self, name: str) -> Any:
        def add(module: nn.Module, inputs: tuple, spikes: torch.Tensor) -> None:
            if not isinstance(spikes, torch.Tensor) or spikes.ndim < 2 or spikes.shape[1] != self.batch:
                shape = list(spikes.shape) if isinstance(spikes, torch.Tensor) else type(spikes).__name__
                raise ZeroCostError(
                    f"spiking neuron {name!r}: expected spikes [T, {self.batch}, ...] (multi-step, batch on "
                    f"axis 1), got {shape}"
                )
            steps = int(spikes.shape[0])
            kernel = sahd_kernel(spikes.detach().reshape(steps, self.batch, -1))
            self.kernel = kernel if self.kernel is None else self.kernel + kernel.to(self.kernel.device)
            self.calls += steps

        return add

    def score(self) -> float:
        if self.kernel is None or self.calls == 0:
            raise ZeroCostError("the forward pass called no spiking neuron (snn_nas.neurons.LIF); nothing to score")
        return logdet_score(self.kernel, self.calls)


@contextmanager
def _spike_kernel_hooks(neurons: Sequence[tuple[str, LIF]]) -> Iterator[_KernelAccumulator]:
    """Forward hooks on every LIF that accumulate the SAHD kernel; removed on exit, even on error."""
    accumulator = _KernelAccumulator()
    handles = []
    try:
        for name, module in neurons:
            handles.append(module.register_forward_hook(accumulator.hook(name)))
        yield accumulator
    finally:
        for handle in handles:
            handle.remove()


_BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


@contextmanager
def _batch_statistics(model: nn.Module) -> Iterator[None]:
    """Eval mode except BatchNorm, which uses batch statistics (train mode); restores every module's
    ``training`` flag and the BatchNorm running statistics on exit, even on error."""
    flags = {m: m.training for m in model.modules()}
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [
        {k: getattr(m, k).detach().clone() for k in _BN_BUFFERS if isinstance(getattr(m, k, None), torch.Tensor)}
        for m in norms
    ]
    try:
        model.eval()
        for m in norms:
            m.train()
        yield
    finally:
        with torch.no_grad():
            for m, buffers in zip(norms, saved, strict=True):
                for k, value in buffers.items():
                    getattr(m, k).copy_(value)
        for module, flag in flags.items():
            module.training = flag


def _check_images(images: object) -> torch.Tensor:
    if not isinstance(images, torch.Tensor):
        raise ZeroCostError(f"images: expected a tensor [B, C, H, W] or [T, B, C, H, W], got {type(images).__name__}")
    if images.ndim not in (4, 5):
        raise ZeroCostError(f"images: expected [B, C, H, W] or [T, B, C, H, W], got shape {list(images.shape)}")
    if not images.is_floating_point():
        raise ZeroCostError(f"images: expected a floating-point tensor (normalised images), got {images.dtype}")
    return images


# ---------------------------------------------------------------- the score
def sahd(model: nn.Module, images: torch.Tensor, *, repeats: int = 1) -> float:
    """SAHD score of ``model`` as it is (untrained) on ``images`` ``[B, C, H, W]`` (or ``[T, B, C, H, W]``).

    ``B >= 2``. ``repeats`` splits the batch into that many equal parts (each of >= 2 images; ``B``
    must divide) and returns the mean of their scores. Runs without gradients, BatchNorm on batch
    statistics and every other module in eval mode; afterwards every ``training`` flag and every
    BatchNorm running statistic is as before, and no parameter changes. Deterministic for a fixed
    model and batch. Returns ``-inf`` when ``det(K / L) <= 0`` (see the module docstring).
    Raises ``ZeroCostError`` for a model without ``snn_nas.neurons.LIF`` or a bad batch.
    """
    neurons = spiking_neurons(model)
    if not neurons:
        raise ZeroCostError(
            f"model: {type(model).__name__} has no spiking neurons (snn_nas.neurons.LIF); SAHD scores spiking "
            "networks only (a genotype of the 'spiking' family)"
        )
    images = _check_images(images)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ZeroCostError(f"repeats: expected an integer >= 1, got {repeats!r}")
    batch = int(images.shape[-4])
    if batch < 2:
        raise ZeroCostError(f"images: SAHD compares the images of a batch; expected B >= 2 images, got {batch}")
    if batch % repeats or batch // repeats < 2:
        raise ZeroCostError(f"repeats: {repeats} must divide the batch of {batch} images into parts of >= 2 images")
    reference = next(iter((*model.parameters(), *model.buffers())), None)
    if reference is not None and images.device != reference.device:
        images = images.to(reference.device)

    scores = []
    with _batch_statistics(model), torch.no_grad(), _spike_kernel_hooks(neurons) as accumulator:
        for part in images.split(batch // repeats, dim=-4):
            accumulator.reset(int(part.shape[-4]))
            model(part)
            scores.append(accumulator.score())
    return float(sum(scores) / len(scores))


# ---------------------------------------------------------------- selection (pure)
def select_candidates(
    scores: Sequence[float] | np.ndarray, costs: Sequence[float] | np.ndarray, keep: int
) -> list[int]:
    """Indices of the ``keep`` candidates to train first, in selection order.

    Rule: candidates with a finite score and a finite cost are sorted by non-domination rank on
    (score, maximised; cost, minimised) (``snn_nas.pareto``), rank 0 (the Pareto front) first;
    within a rank by score descending, ties by index. The others (a score of ``-inf``/NaN, e.g. a
    singular kernel or a failed build, or a non-finite cost) come after all of them, as the worst
    score: by cost ascending (NaN last), ties by index. Returns the first ``min(keep, n)``.

    ``scores``, ``costs``: ``[n]`` each; ``keep >= 0``.
    """
    if isinstance(keep, bool) or not isinstance(keep, (int, np.integer)) or keep < 0:
        raise ZeroCostError(f"keep: expected an integer >= 0, got {keep!r}")
    score = np.asarray(scores, dtype=float)
    cost = np.asarray(costs, dtype=float)
    if score.ndim != 1 or cost.ndim != 1:
        raise ZeroCostError(f"scores, costs: expected 1-D sequences, got shapes {score.shape} and {cost.shape}")
    if score.shape != cost.shape:
        raise ZeroCostError(
            f"scores, costs: expected one cost per score, got {score.size} scores and {cost.size} costs"
        )
    index = np.arange(score.size)
    valid = np.isfinite(score) & np.isfinite(cost)

    ok = index[valid]
    ranks = non_domination_ranks(to_minimization(np.column_stack([score[ok], cost[ok]]), ["maximize", "minimize"]))
    first = ok[np.lexsort((ok, -score[ok], ranks))]
    rest = index[~valid]
    rest_cost = np.where(np.isnan(cost[rest]), np.inf, cost[rest])
    last = rest[np.lexsort((rest, np.isnan(cost[rest]), rest_cost))]
    return [int(i) for i in np.concatenate([first, last])[:keep]]


# ---------------------------------------------------------------- scoring genotypes
@dataclass(frozen=True)
class CandidateScore:
    """Pre-screening figures of one untrained candidate.

    ``key``: the genotype's key; ``sahd``: SAHD score (``-inf`` when the build failed);
    ``sops``: synaptic operations per image on the calibration batch (``inf`` when the build
    failed); ``energy_uj``: energy per image of the same run (``inf`` when the build failed);
    ``params``: parameters (0 when the build failed); ``seconds``: wall time of build, SAHD and cost
    measurement; ``error``: the build error's message, or None; ``dense_ops``: dense synaptic
    operations per image, ``macs_per_step x T`` (what the SOPs would be if every neuron fired at
    every step: a bound on the trained network's SOPs that does not depend on the initial weights;
    ``inf`` when the build failed).
    """

    key: str
    sahd: float
    sops: float
    params: int
    seconds: float
    energy_uj: float = math.nan
    error: str | None = None
    dense_ops: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def score_candidates(
    genotypes: Sequence[Genotype],
    images: torch.Tensor,
    *,
    num_classes: int,
    image_size: int,
    in_chans: int,
    seed: int = 0,
    energy: EnergyModel | None = None,
) -> list[CandidateScore]:
    """Build every genotype untrained (``build_model(..., seed=seed)``) and score it on ``images``.

    ``images``: ``[B, C, H, W]`` calibration batch (``B >= 2``). Per genotype: SAHD (``sahd``) and
    the SOPs and energy per image of ``snn_nas.costs.measure_costs(model, images, energy=energy)``
    (eval mode, untrained weights). A genotype that fails to build (``SnnNasError``, e.g. a patch
    larger than ``image_size``) gets ``sahd=-inf, sops=inf`` and its error message, so that one bad
    candidate does not stop the screen; ``select_candidates`` ranks it last. Every other error is
    raised (a genotype of a non-spiking family raises ``ZeroCostError``).
    """
    from snn_nas.builder import build_model
    from snn_nas.costs import measure_costs

    results = []
    for i, genotype in enumerate(genotypes):
        if not isinstance(genotype, Genotype):
            raise ZeroCostError(f"genotypes[{i}]: expected a snn_nas.Genotype, got {type(genotype).__name__}")
        start = time.perf_counter()
        try:
            model = build_model(genotype, num_classes, image_size, in_chans, seed=seed)
        except SnnNasError as error:
            seconds = time.perf_counter() - start
            failed = CandidateScore(genotype.key(), -math.inf, math.inf, 0, seconds, math.inf, str(error), math.inf)
            results.append(failed)
            continue
        score = sahd(model, images)
        report = measure_costs(model, images, energy=energy)
        seconds = time.perf_counter() - start
        dense = float(report.macs_per_step) * int(report.time_steps)
        results.append(
            CandidateScore(genotype.key(), score, report.sops, report.params, seconds, report.energy_uj, None, dense)
        )
    return results


__all__ = [
    "EPS",
    "CandidateScore",
    "ZeroCostError",
    "logdet_score",
    "sahd",
    "sahd_kernel",
    "score_candidates",
    "select_candidates",
]
