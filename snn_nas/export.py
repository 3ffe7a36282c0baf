"""A trained network as a ``torch.export`` program (``model.pt2``) that runs without snn-nas.

``export_program(model, example, path)`` traces the model in eval mode at its own time steps T
(inference: batch norm from its running statistics, membranes reset at the start of the call)
for ``example``'s shape with the batch dimension dynamic, and saves the program. Anyone with
torch (the same or a newer version) loads it::

    import torch
    program = torch.export.load("model.pt2")
    logits = program.module()(images)   # [B, C, H, W] float, normalised as in training -> [B, classes]

Event data (``[T, B, C, H, W]`` frames, T the architecture's) keep ``T`` fixed and the batch
(dimension 1) dynamic. The program holds the weights; it is an inference graph only.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

PROGRAM = "model.pt2"
MAX_BATCH = 65_536


def export_program(model: nn.Module, example: torch.Tensor, path: str | Path) -> Path:
    """Export ``model`` (a copy, on the CPU, gradients off) for inputs shaped like ``example``
    (``[B, C, H, W]``, or ``[T, B, C, H, W]`` frames) with a dynamic batch; returns ``path``."""
    net = copy.deepcopy(model).cpu().eval()
    for param in net.parameters():
        param.requires_grad_(False)
    example = example.detach().cpu()
    if example.shape[example.ndim - 4] < 2:  # a batch of 1 would be specialised to 1
        example = torch.cat([example, example], dim=example.ndim - 4)
    batch_dim = example.ndim - 4
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with torch.no_grad():
        program = torch.export.export(net, (example,), dynamic_shapes=({batch_dim: batch},))
    path = Path(path)
    tmp = path.with_name(path.stem + ".tmp.pt2")
    torch.export.save(program, tmp)
    tmp.replace(path)
    return path


def load_program(path: str | Path) -> nn.Module:
    """The exported program of ``path`` as a callable module (what users without snn-nas do by
    hand: ``torch.export.load(path).module()``)."""
    return torch.export.load(str(path)).module()
