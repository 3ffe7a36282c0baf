"""The on-disk cache of event data: simulated streams and binned frames.

Files live under ``$SNN_NAS_CACHE`` (default ``$XDG_CACHE_HOME/snn-nas``, else
``~/.cache/snn-nas``), in ``events/``. Each file is a numpy ``.npz`` written to a temporary name
and renamed into place, so trials that build the same file at once never read a half-written
one (the last writer wins; the contents are the same). A file that cannot be read is rebuilt.
Binary frames are stored bit-packed (``np.packbits``): 1 bit per pixel, polarity and bin.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

CACHE_ENV = "SNN_NAS_CACHE"


def cache_dir() -> Path:
    """``$SNN_NAS_CACHE/events`` (see the module docstring); created on first use."""
    root = os.environ.get(CACHE_ENV, "").strip()
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
        root = str(Path(xdg) / "snn-nas") if xdg else str(Path.home() / ".cache" / "snn-nas")
    return Path(root).expanduser() / "events"


def cache_path(*parts: object) -> Path:
    """The file for a key made of ``parts`` (readable prefix, hashed rest)."""
    text = "|".join(str(p) for p in parts)
    digest = hashlib.sha256(text.encode()).hexdigest()[:20]
    return cache_dir() / f"{parts[0]}-{digest}.npz"


def load(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of ``path``, or None when it is missing or unreadable (then it is rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None


def save(path: Path, **arrays: np.ndarray) -> None:
    """Write ``arrays`` to ``path`` atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".npz")
    try:
        with os.fdopen(handle, "wb") as out:
            np.savez(out, **arrays)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def pack(frames: np.ndarray) -> np.ndarray:
    """Bool frames ``[N, ...]`` -> bit-packed uint8 (``unpack`` restores them given the shape)."""
    return np.packbits(frames.reshape(len(frames), -1), axis=1)


def unpack(packed: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The uint8 0/1 frames of ``shape`` ``[N, ...]`` from ``pack``'s output."""
    count = int(np.prod(shape[1:]))
    return np.unpackbits(packed, axis=1, count=count).reshape(shape)
