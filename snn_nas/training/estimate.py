"""What a run costs, from a measured step rate (``--dry-run``): never a guess.

``measure_step(genotype, ...)`` times ``steps`` training steps (forward, backward, SGD update) of
the model on random images of the run's shape at a probe batch of ``b`` images, after one
warm-up step, on the given device; ``estimate_seconds(plan, seconds_per_image)`` turns it into
the run's time::

    t_step  = s_img x B_w                  seconds per step of one worker (B_w images)
    t_run   = t_step x steps_per_epoch x epochs

assuming the step time grows linearly with the batch (compute-bound; measured here at the
probe batch), every worker on a device as fast as the one measured, and gradient all-reduce and
data loading hidden behind the computation (not measured: the docs say how to check them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from snn_nas.training.parallel import ParallelPlan


@dataclass(frozen=True)
class StepRate:
    """A measured training step: ``seconds`` per step of ``batch`` images on ``device``."""

    seconds: float
    batch: int
    device: str
    time_steps: int | None

    @property
    def seconds_per_image(self) -> float:
        return self.seconds / self.batch


def measure_step(
    genotype: Any,
    *,
    num_classes: int,
    image_size: int,
    in_chans: int,
    batch: int,
    device: torch.device,
    steps: int = 2,
    max_time_steps: int | None = None,
    seed: int = 0,
) -> StepRate:
    """Time ``steps`` training steps at ``batch`` images (module docstring)."""
    from snn_nas.builder import build_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(genotype, num_classes=num_classes, image_size=image_size, in_chans=in_chans).to(device)
        if max_time_steps is not None and hasattr(model, "time_steps"):
            model.time_steps = min(int(model.time_steps), max_time_steps)
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        x = torch.randn(batch, in_chans, image_size, image_size, device=device)
        y = torch.randint(0, num_classes, (batch,), device=device)

        def step() -> None:
            loss = F.cross_entropy(model(x).float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        step()  # warm-up: allocator, kernels
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        for _ in range(steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = (time.perf_counter() - started) / steps
    return StepRate(seconds=seconds, batch=batch, device=str(device), time_steps=getattr(model, "time_steps", None))


def estimate_seconds(plan: ParallelPlan, seconds_per_image: float) -> float:
    """The run's time from the measured ``seconds_per_image`` (module docstring)."""
    return seconds_per_image * plan.per_worker_batch * plan.total_steps


def format_duration(seconds: float) -> str:
    """``'3.2 s'``, ``'14 min'``, ``'5.1 h'``, ``'12.3 days'``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def estimate_lines(plan: ParallelPlan, rate: StepRate) -> list[str]:
    """The estimate in words."""
    total = estimate_seconds(plan, rate.seconds_per_image)
    per_epoch = total / max(plan.epochs, 1)
    return [
        f"measured on {rate.device}: {rate.seconds:.3g} s per training step of {rate.batch} images "
        f"(T={rate.time_steps}; {1 / rate.seconds_per_image:.1f} images/s per worker)",
        f"estimate: {format_duration(per_epoch)} per epoch, {format_duration(total)} in all, with each of the "
        f"{plan.workers} worker(s) as fast as this {rate.device} (step time linear in the batch; all-reduce and "
        "data loading assumed hidden)",
    ]
