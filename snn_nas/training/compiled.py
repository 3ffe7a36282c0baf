"""``torch.compile`` of a whole model, behind a flag (off unless asked for).

Compiling traces the model once per input shape and training mode and generates fused kernels
(C++/OpenMP on the CPU, Triton on CUDA). What it costs is paid again by every trial, since
every trial is a new architecture: ``experiments/benchmarks/throughput.py --compile`` measures
the compile time and the per-step gain, and the flag stays off by default because on the
machines measured the compile time of a trial exceeded what it saved (see ``docs/gpus.md``).
The LIF recurrences alone can be compiled instead (``snn_nas.lif_kernels.use_compile``,
``SNN_NAS_LIF_COMPILE=1``).

``compiled(model, flag)`` returns ``model`` itself, or a wrapper whose forward runs the compiled
model and falls back to ``model`` (with one warning) if compiling fails (no C++ compiler, an
unsupported operation). Both share the parameters; checkpoints and cost probes use ``model``.
"""

from __future__ import annotations

import os
import warnings

import torch
from torch import nn

COMPILE_ENV = "SNN_NAS_COMPILE"


def compile_requested(flag: bool | None) -> bool:
    """``flag``, or when it is None whether ``SNN_NAS_COMPILE`` is set to 1 / true / yes / on."""
    if flag is None:
        return os.environ.get(COMPILE_ENV, "0").strip().lower() in ("1", "true", "yes", "on")
    return bool(flag)


class CompiledModel(nn.Module):
    """``model`` run through ``torch.compile``; eager ``model`` from the first failure on.

    ``forward(x)``: as ``model`` (``[B, C, H, W] -> [B, K]``). ``train()`` / ``eval()`` reach
    ``model`` (its only submodule).
    """

    def __init__(self, model: nn.Module, **options: object) -> None:
        super().__init__()
        self.model = model
        object.__setattr__(self, "_compiled", torch.compile(model, **options))  # not a second submodule
        self.failed: str | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.failed is None:
            try:
                return self._compiled(x)
            except Exception as exc:  # backend failures come in many types
                self.failed = _reason(exc)
                warnings.warn(f"torch.compile failed ({self.failed}); the model runs eagerly", stacklevel=2)
        return self.model(x)


def _reason(exc: BaseException) -> str:
    """``Type: first line`` of ``exc`` and of its root cause (a compiler's own error)."""
    root = exc
    for _ in range(10):  # a chain, never a cycle, but stay bounded
        inner = root.__cause__ or getattr(root, "inner_exception", None)
        if inner is None:
            break
        root = inner
    lines = [f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}" for e in dict.fromkeys((exc, root))]
    return "; ".join(lines)


def compiled(model: nn.Module, flag: bool | None = None, **options: object) -> nn.Module:
    """``CompiledModel(model)`` when ``compile_requested(flag)``, else ``model``."""
    return CompiledModel(model, **options) if compile_requested(flag) else model
