"""Learning-rate schedule: linear warm-up, then cosine decay to zero, stepped once per batch."""

from __future__ import annotations

import math

import torch


class WarmupCosine:
    """LR factor at optimizer step ``step`` (0-based) of ``total_steps``.

    Warm-up ``(step + 1) / warmup_steps`` for the first ``warmup_steps`` steps, then
    ``0.5 * (1 + cos(pi * progress))`` with ``progress`` running from 0 (first step after the
    warm-up) to 1 (after the last step).
    """

    def __init__(self, total_steps: int, warmup_steps: int = 0) -> None:
        self.total_steps = max(int(total_steps), 1)
        self.warmup_steps = min(max(int(warmup_steps), 0), self.total_steps)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        decay_steps = self.total_steps - self.warmup_steps
        progress = min((step - self.warmup_steps) / max(decay_steps, 1), 1.0)
        return 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` following ``WarmupCosine``; its state dict restores the step count."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(total_steps, warmup_steps))
