"""Which device a trial trains on, and how several trials share one GPU.

Ray gives a trial that asks for ``resources.gpus = g`` (``0 < g <= 1``) a share of one GPU and
sets ``CUDA_VISIBLE_DEVICES`` in its worker to that GPU alone, so the trial sees it as
``cuda:0``; with ``g = 1 / k``, ``k`` trials share each GPU. Ray's share is bookkeeping, not a
limit: here each trial also caps its CUDA caching allocator at ``g`` of the GPU's memory
(``torch.cuda.set_per_process_memory_fraction``), so a trial that needs more fails with "out of
memory" (recorded, the search goes on) instead of starving the other ``k - 1``; its resident
data may take ``RESIDENT_FRACTION`` of that share (``snn_nas.data.resident``).

A trial that asked for a GPU but finds no CUDA (a Ray cluster whose GPUs are logical only, a
node without drivers) trains on the CPU and says so once per worker process.
"""

from __future__ import annotations

import logging
import os

import torch

logger = logging.getLogger(__name__)

_SAID: set[str] = set()


def trial_device(gpus: float) -> torch.device:
    """``cuda`` (the first visible GPU: Ray's assignment) when the trial asked for ``gpus > 0``
    and CUDA is available; else the CPU, with a once-per-process warning when a GPU was asked
    for."""
    if gpus <= 0:
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda", 0)
    message = (
        f"resources.gpus: the trial asked for {gpus:g} GPU, but CUDA is not available in this worker "
        f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')!s}); it trains on the CPU"
    )
    if message not in _SAID:
        _SAID.add(message)
        logger.warning(message)
    return torch.device("cpu")


def share_gpu(device: torch.device, gpus: float) -> float:
    """Cap this process's CUDA memory at its share ``gpus`` of the GPU (``0 < gpus < 1``) and
    return the share resident data is sized by (1.0 on the CPU or a whole GPU)."""
    if device.type != "cuda" or not 0.0 < gpus < 1.0:
        return 1.0
    torch.cuda.set_per_process_memory_fraction(float(gpus), device)
    return float(gpus)


def describe_device(device: torch.device, gpus: float = 0.0) -> str:
    """What a result row says about where a trial trained: ``"cpu"``, ``"cpu (asked for 0.25
    GPU, no CUDA)"``, or e.g. ``"cuda:0 NVIDIA H200 (CUDA_VISIBLE_DEVICES=3)"`` (which physical
    GPU Ray assigned)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if device.type != "cuda":
        return f"cpu (asked for {gpus:g} GPU, no CUDA)" if gpus > 0 else "cpu"
    name = torch.cuda.get_device_name(device)
    return f"{device} {name}" + (f" (CUDA_VISIBLE_DEVICES={visible})" if visible is not None else "")
