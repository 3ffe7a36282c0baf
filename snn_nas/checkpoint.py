"""Checkpoints: save, load, resume, and rebuild a trained model from a file.

A checkpoint is a ``torch.save``'d dict of tensors and primitives (loadable with
``weights_only=True``)::

    format, format_version, version        # "snn-nas-checkpoint", 1, snn_nas.__version__
    epoch                                  # completed epochs
    model, optimizer, scheduler, scaler    # state dicts (scaler None without AMP)
    best_val_acc, history                  # float, list of per-epoch metric dicts
    config                                 # TrainConfig.to_dict()
    genotype                               # Genotype.to_dict() (None for a foreign module)
    model_args                             # num_classes, image_size, in_chans, time_steps
    rng                                    # torch CPU / CUDA generator states, data-loader generator

The training engine keeps ``<out>/last.pt`` (after every epoch) and ``<out>/best.pt`` (the epoch
with the best validation accuracy so far).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from snn_nas.errors import SnnNasError

FORMAT = "snn-nas-checkpoint"
FORMAT_VERSION = 1
LAST = "last.pt"
BEST = "best.pt"
_REQUIRED = ("epoch", "model", "config", "model_args")


class CheckpointError(SnnNasError, ValueError):
    """A checkpoint that is missing, unreadable, or does not fit the run that wants it."""


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` (see the module docstring) atomically to ``path``; returns the path.

    ``format``, ``format_version`` and ``version`` are added.
    """
    from snn_nas import __version__

    missing = [key for key in _REQUIRED if key not in state]
    if missing:
        raise ValueError(f"checkpoint state lacks {missing}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "version": __version__, **state}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def copy_checkpoint(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Atomically copy a checkpoint file (used to keep ``best.pt`` beside ``last.pt``)."""
    target = Path(target)
    tmp = target.with_name(target.name + ".tmp")
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)
    return target


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint dict (tensors on ``map_location``); ``CheckpointError`` if it is not one."""
    path = Path(path)
    if path.is_dir():
        path = path / LAST
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {path} not found; expected a .pt file written by 'snn-nas train' or its out folder"
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # unpickling errors have many types
        raise CheckpointError(f"checkpoint {path} cannot be read: {type(exc).__name__}: {exc}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an snn-nas checkpoint (no '{FORMAT}' marker)")
    if state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {state.get('format_version')!r} is not supported "
            f"(this snn-nas reads {FORMAT_VERSION})"
        )
    missing = [key for key in _REQUIRED if key not in state]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {missing}")
    return state


def load_model(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model stored in a checkpoint (file or out folder) and return it in eval mode.

    The model is built from the stored genotype with the stored ``num_classes``, ``image_size``
    and ``in_chans``, its ``time_steps`` set as trained (a proxy's cap included), and the weights
    loaded. Input ``[B, C, H, W]`` -> logits ``[B, num_classes]``.
    """
    from snn_nas.builder import build_model
    from snn_nas.genotype import Genotype

    state = load_checkpoint(path, map_location=map_location)
    if state.get("genotype") is None:
        raise CheckpointError(f"{path}: the checkpoint holds no genotype, so its model cannot be rebuilt")
    genotype = Genotype.from_dict(state["genotype"])
    args = state["model_args"]
    with torch.random.fork_rng(devices=[]):  # initial weights are overwritten; keep the caller's RNG untouched
        model = build_model(
            genotype, num_classes=args["num_classes"], image_size=args["image_size"], in_chans=args["in_chans"]
        )
    model.load_state_dict(state["model"])
    if args.get("time_steps") is not None:
        model.time_steps = int(args["time_steps"])
    return model.to(map_location).eval()
