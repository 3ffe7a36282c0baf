"""Supernet checkpoints: the store, the bounds it was built with, and what a resume needs.

File ``supernet.pt`` (written atomically after every epoch), read with ``weights_only`` (tensors
and primitives; nothing in the file can run code):

* ``format`` ``"snn-nas-supernet"``, ``format_version``, ``version`` (of snn-nas);
* ``bounds`` (``SupernetBounds.to_dict()``), ``config`` (``SupernetConfig.to_dict()``),
  ``metadata`` (what the caller fixes the run by: the space's fingerprint, the data, the image
  size; a resume or a search refuses a checkpoint whose metadata differ);
* ``weights`` (the ``Supernet`` state dict), ``epoch`` (finished epochs), ``history`` (one
  dict per epoch: losses, the largest's and smallest's validation accuracy, times);
* ``resumed_from``: the finished epochs each resume continued from, oldest first (empty for a
  run trained in one go; absent in files of snn-nas before it): after a killed run, or a Ray
  Train worker group restarted because a worker or its node died, it says where the training
  picked up, so the epochs before it were not trained again;
* for a resume: ``optimizer``, ``scheduler``, ``rng``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from snn_nas.supernet.bounds import SupernetBounds, SupernetError
from snn_nas.supernet.config import SupernetConfig
from snn_nas.supernet.model import Supernet

FORMAT = "snn-nas-supernet"
FORMAT_VERSION = 2  # 2: stream channels after a patch-encoding cell in node slots (supernet.layout)
CHECKPOINT = "supernet.pt"
REQUIRED = ("bounds", "config", "metadata", "weights", "epoch", "history")


def save_supernet(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` (see the module docstring) atomically to ``path``."""
    from snn_nas.version import __version__

    missing = [key for key in REQUIRED if key not in state]
    if missing:
        raise ValueError(f"supernet checkpoint state lacks {missing}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": FORMAT, "format_version": FORMAT_VERSION, "version": __version__, **state}, tmp)
    os.replace(tmp, path)
    return path


def read_supernet_state(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint dict at ``path`` (a file, or a folder holding ``supernet.pt``), checked to be
    a whole snn-nas supernet checkpoint; ``SupernetError`` otherwise (one line naming the file)."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.is_file():
        raise SupernetError(f"supernet checkpoint {path} not found; train one with 'snn-nas supernet train'")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # unpickling errors have many types
        detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else "the file ends early"
        raise SupernetError(
            f"supernet checkpoint {path} is damaged or not a torch file ({type(exc).__name__}: {detail}); "
            "delete it and train again"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise SupernetError(f"{path} is not an snn-nas supernet checkpoint (no '{FORMAT}' marker)")
    if state.get("format_version") == 1:
        raise SupernetError(
            f"{path}: supernet checkpoint of format 1, whose weights after a patch-encoding cell are laid "
            "out differently from this snn-nas's; train the supernet again (delete the file, or another "
            "--results-dir)"
        )
    if state.get("format_version") != FORMAT_VERSION:
        raise SupernetError(
            f"{path}: supernet checkpoint format {state.get('format_version')!r} is not supported "
            f"(this snn-nas reads {FORMAT_VERSION})"
        )
    missing = [key for key in REQUIRED if key not in state]
    if missing:
        raise SupernetError(f"{path}: the supernet checkpoint lacks {missing}; it is damaged")
    check_progress(state, path)
    return state


HISTORY_NUMBERS = ("loss_largest", "loss_others", "val_acc_largest", "val_acc_smallest", "epoch_s")


def check_progress(state: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Refuse a checkpoint whose progress cannot be trusted: ``epoch`` must be a whole number
    >= 0 and ``history`` one dict of numbers per finished epoch, numbered 1, 2, ...
    (``SupernetError`` naming the file and the entry)."""
    import math

    epoch, history = state["epoch"], state["history"]
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise SupernetError(f"{path}: epoch: expected a whole number >= 0, got {epoch!r}; the file is damaged")
    if not isinstance(history, list) or len(history) != epoch:
        size = len(history) if isinstance(history, list) else type(history).__name__
        raise SupernetError(f"{path}: history: expected one entry per finished epoch ({epoch}), got {size}; damaged")
    for number, point in enumerate(history, start=1):
        if not isinstance(point, dict) or point.get("epoch") != number:
            raise SupernetError(f"{path}: history entry {number} is not the record of epoch {number}; damaged")
        for key in HISTORY_NUMBERS:
            value = point.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
                raise SupernetError(f"{path}: history entry {number}: {key}: not a number ({value!r}); damaged")


def load_supernet(
    path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu", metadata: dict[str, Any] | None = None
) -> tuple[Supernet, dict[str, Any]]:
    """The supernet stored at ``path`` and its checkpoint dict.

    ``metadata``: what the caller needs the supernet to have been trained for (e.g. the space's
    fingerprint and the image size); any difference is a ``SupernetError`` naming the entries.
    Also refused: weights that do not fit the bounds' layout, or that hold NaN or inf.
    """
    state = read_supernet_state(path, map_location)
    if metadata is not None:
        check_metadata(state.get("metadata"), metadata, path)
    try:
        bounds = SupernetBounds.from_dict(state["bounds"])
    except SupernetError as exc:
        raise SupernetError(f"{path}: {exc}; the file is damaged") from None
    SupernetConfig.from_dict(state["config"], where=f"{path}: config")
    with torch.device("meta"):
        net = Supernet(bounds, meta=True)
    weights = state["weights"]
    expected = net.state_dict()
    if not isinstance(weights, dict) or set(weights) != set(expected):
        raise SupernetError(f"{path}: the stored weights do not match the supernet's layout; the file is damaged")
    for name, tensor in weights.items():
        if not torch.is_tensor(tensor) or tuple(tensor.shape) != tuple(expected[name].shape):
            raise SupernetError(f"{path}: stored tensor {name!r} has the wrong shape; the file is damaged")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise SupernetError(f"{path}: stored tensor {name!r} holds NaN or inf; the training diverged")
    net.load_state_dict(weights, assign=True)
    return net, state


def check_metadata(stored: Any, wanted: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Refuse a checkpoint trained for something else: every key of ``wanted`` must match."""
    stored = stored if isinstance(stored, dict) else {}
    differ = [key for key, value in wanted.items() if stored.get(key) != value]
    if differ:
        details = "; ".join(f"{key}: checkpoint {stored.get(key)!r}, wanted {wanted[key]!r}" for key in differ)
        raise SupernetError(
            f"supernet checkpoint {path} was trained for another setting ({details}); "
            "train a new one (another --results-dir, or delete it)"
        )
