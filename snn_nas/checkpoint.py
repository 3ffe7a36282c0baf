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

The training engine keeps ``<out>/last.pt`` (after every epoch) and, when it trains on ``train``
with ``val`` held out, ``<out>/best.pt`` (the epoch with the best validation accuracy so far); a
run on ``train+val`` (``snn-nas retrain``) holds nothing out and writes no ``best.pt``.
"""

from __future__ import annotations

import os
import re
import shutil
import zipfile
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
    from snn_nas.version import __version__

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


def _unreadable(path: Path, exc: BaseException) -> CheckpointError:
    """Our message for a ``torch.load`` failure. Torch's own text is not passed on when it advises
    loading with ``weights_only=False``: that would let the file run code."""
    text = str(exc)
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; random bytes are no pickle of objects
        return CheckpointError(
            f"checkpoint {path} cannot be read: not a PyTorch checkpoint (torch.save writes a zip archive; this file "
            "is not one); expected a .pt file written by 'snn-nas train' or 'snn-nas retrain'"
        )
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if found or "weights_only" in text or "Weights only" in text:
        what = f" of type {found.group(1)}" if found else ""
        return CheckpointError(
            f"checkpoint {path} cannot be read safely: it holds a Python object{what}, and snn-nas loads only "
            "tensors and plain values (loading other objects could run code from the file)"
        )
    detail = text.strip().splitlines()[0].split(". ")[0][:160] if text.strip() else "the file ends early"
    return CheckpointError(
        f"checkpoint {path} cannot be read: not a complete torch checkpoint ({type(exc).__name__}: {detail})"
    )


def _non_finite(weights: Any) -> str | None:
    """Name of the first floating-point tensor of ``weights`` holding NaN or inf, else None."""
    for name, tensor in weights.items():
        if torch.is_tensor(tensor) and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return str(name)
    return None


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint dict (tensors on ``map_location``); ``CheckpointError`` if it is not one.

    Loading is always ``weights_only`` (tensors and primitives; no code from the file runs).
    Also refused: a ``model`` entry that is not a state dict, and weights holding NaN or inf
    (the tensor is named).
    """
    if not isinstance(path, (str, os.PathLike)):
        raise CheckpointError(f"checkpoint: expected a file path, got {type(path).__name__}")
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
        raise _unreadable(path, exc) from None
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
    weights = state["model"]
    if not isinstance(weights, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in weights.items()):
        raise CheckpointError(f"{path}: the checkpoint's 'model' entry is not a state dict of named tensors")
    bad = _non_finite(weights)
    if bad is not None:
        raise CheckpointError(
            f"{path}: the weights are not finite (tensor {bad!r} holds NaN or inf), so the model would output NaN; "
            "the training diverged or the file is damaged: retrain it"
        )
    return state


def load_weights(model: nn.Module, weights: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """``model.load_state_dict(weights)``, or ``CheckpointError`` naming the first tensors that do
    not fit (missing, unexpected, or of another shape) instead of torch's list of every one."""
    own = model.state_dict()
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    shapes = [
        f"{k} is {list(weights[k].shape)} in the file but {list(own[k].shape)} in the model"
        for k in own
        if k in weights and tuple(weights[k].shape) != tuple(own[k].shape)
    ]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected)):
        if items:
            more = f" and {len(items) - 2} more" if len(items) > 2 else ""
            problems.append(f"{label} {', '.join(items[:2])}{more}")
    if shapes:
        problems.append(shapes[0] + (f" ({len(shapes) - 1} more shapes differ)" if len(shapes) > 1 else ""))
    if problems:
        raise CheckpointError(
            f"{path}: the stored weights do not fit the model its genotype builds ({'; '.join(problems)}); "
            "the file is damaged or was edited"
        )
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:  # e.g. a dtype torch cannot copy
        raise CheckpointError(f"{path}: the stored weights cannot be loaded: {str(exc).splitlines()[0]}") from None


def _model_args(path: Path, state: dict[str, Any]) -> dict[str, Any]:
    args = state["model_args"]
    if not isinstance(args, dict):
        raise CheckpointError(f"{path}: the checkpoint's model_args is not a mapping")
    for key in ("num_classes", "image_size", "in_chans"):
        value = args.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise CheckpointError(f"{path}: model_args.{key} must be an integer >= 1, got {value!r}")
    steps = args.get("time_steps")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise CheckpointError(f"{path}: model_args.time_steps must be an integer >= 1 or null, got {steps!r}")
    return args


def load_model(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model stored in a checkpoint (file or out folder) and return it in eval mode.

    The model is built from the stored genotype with the stored ``num_classes``, ``image_size``
    and ``in_chans``, its ``time_steps`` set as trained (a proxy's cap included), and the weights
    loaded. Input ``[B, C, H, W]`` -> logits ``[B, num_classes]``. A checkpoint whose genotype,
    model arguments or weights do not fit together raises ``CheckpointError`` naming the part.
    """
    from snn_nas.builder import build_model
    from snn_nas.genotype import Genotype

    state = load_checkpoint(path, map_location=map_location)
    path = Path(path) / LAST if Path(path).is_dir() else Path(path)
    if state.get("genotype") is None:
        raise CheckpointError(f"{path}: the checkpoint holds no genotype, so its model cannot be rebuilt")
    args = _model_args(path, state)
    try:
        genotype = Genotype.from_dict(state["genotype"])
        with torch.random.fork_rng(devices=[]):  # initial weights are overwritten; keep the caller's RNG untouched
            model = build_model(
                genotype, num_classes=args["num_classes"], image_size=args["image_size"], in_chans=args["in_chans"]
            )
    except SnnNasError as exc:
        raise CheckpointError(f"{path}: the stored architecture cannot be rebuilt: {exc}") from None
    load_weights(model, state["model"], path)
    if args.get("time_steps") is not None:
        model.time_steps = int(args["time_steps"])
    return model.to(map_location).eval()
