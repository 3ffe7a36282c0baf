"""Recorded event datasets from ``--data-root``, in the layouts tonic downloads and extracts.

=============  ==========================================================  ======  ========
name           files under ``data_root``                                   sensor  classes
=============  ==========================================================  ======  ========
``nmnist``     ``NMNIST/Train/<digit>/*.bin``, ``NMNIST/Test/<digit>/*.bin``  34x34   10
``dvsgesture`` ``DVSGesture/ibmGestureTrain/user<NN>_<light>/<label>.npy``,   128x128 11
               ``DVSGesture/ibmGestureTest/...``
``cifar10dvs`` ``CIFAR10DVS/<class>/*.aedat4``                              128x128 10
=============  ==========================================================  ======  ========

Each file is read with tonic's reader for its format (``tonic.io.read_mnist_file`` for N-MNIST's
5-byte binary events; ``numpy.load`` of the preprocessed gesture arrays, time in ms turned into
us as ``tonic.datasets.DVSGesture`` does; ``tonic.io.read_aedat4`` for CIFAR10-DVS, which needs
the ``aedat`` package). Nothing is downloaded unless ``download=True`` (``--download``), which
lets tonic's dataset class fetch and extract the archives into ``data_root``.

Parts: ``test`` is the official test set (N-MNIST, DVS128 Gesture) or, for CIFAR10-DVS, which has
none, a fixed stratified ``TEST_FRACTION`` of every class (``TEST_SEED``, whatever the split
seed); ``val`` is ``val_fraction`` (default 0.1) of the training streams, stratified and fixed by
the split seed. A file that is missing, unreadable or damaged (size, shape, events outside the
sensor, time going backwards) refuses the dataset with a message naming it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from snn_nas.data.base import DatasetError, check_image_size, check_val_fraction, stratified_split
from snn_nas.data.events.frames import EventSet, EventSplits, event_splits
from snn_nas.data.events.stream import as_tonic_layout
from snn_nas.data.registry import DATASETS

VAL_FRACTION = 0.1
TEST_FRACTION = 0.1
TEST_SEED = 20_231_129


@dataclass(frozen=True)
class _Format:
    name: str
    tonic_class: str
    folder: str  # under data_root (tonic's save_to / class name)
    sets: tuple[str, ...]  # sub-folders: (train, test), or () when the files have no official split
    suffix: str
    sensor: tuple[int, int]
    classes: tuple[str, ...]
    layout: str  # for messages


NMNIST = _Format(
    "nmnist", "NMNIST", "NMNIST", ("Train", "Test"), ".bin", (34, 34),
    tuple(str(i) for i in range(10)), "NMNIST/Train/<digit>/*.bin and NMNIST/Test/<digit>/*.bin",
)  # fmt: skip
DVSGESTURE = _Format(
    "dvsgesture", "DVSGesture", "DVSGesture", ("ibmGestureTrain", "ibmGestureTest"), ".npy", (128, 128),
    ("hand clap", "right hand wave", "left hand wave", "right arm cw", "right arm ccw", "left arm cw",
     "left arm ccw", "arm roll", "air drums", "air guitar", "other"),
    "DVSGesture/ibmGestureTrain/user<NN>_<lighting>/<label>.npy and DVSGesture/ibmGestureTest/...",
)  # fmt: skip
CIFAR10DVS = _Format(
    "cifar10dvs", "CIFAR10DVS", "CIFAR10DVS", (), ".aedat4", (128, 128),
    ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    "CIFAR10DVS/<class>/*.aedat4",
)  # fmt: skip


def _read_nmnist(path: Path) -> np.ndarray:
    from tonic.io import read_mnist_file

    size = path.stat().st_size
    if size % 5:
        raise DatasetError(f"nmnist: {path} is damaged: {size} bytes is not a whole number of 5-byte events")
    return read_mnist_file(str(path), dtype=np.dtype([("x", int), ("y", int), ("t", int), ("p", int)]))


def _read_gesture(path: Path) -> np.ndarray:
    from numpy.lib.recfunctions import unstructured_to_structured
    from tonic.datasets import DVSGesture

    raw = np.load(path, allow_pickle=False)
    if raw.ndim != 2 or raw.shape[1] != 4 or raw.dtype.kind not in "iuf":
        raise DatasetError(
            f"dvsgesture: {path} is damaged: expected a numeric array [N, 4] (x, y, p, t in ms), got {raw.dtype} "
            f"{list(raw.shape)}"
        )
    raw = raw.astype(np.float64)
    raw[:, 3] *= 1000  # ms -> us, as tonic's DVSGesture does
    return unstructured_to_structured(raw, DVSGesture.dtype)


def _read_aedat4(path: Path) -> np.ndarray:
    try:
        from tonic.io import read_aedat4

        events = read_aedat4(str(path))
    except ImportError:
        raise DatasetError(
            "cifar10dvs: reading .aedat4 files needs the 'aedat' package; install it with 'pip install aedat'"
        ) from None
    events.dtype.names = ["t", "x", "y", "p"]
    return events


READERS: dict[str, Callable[[Path], np.ndarray]] = {
    "nmnist": _read_nmnist,
    "dvsgesture": _read_gesture,
    "cifar10dvs": _read_aedat4,
}


def _label(fmt: _Format, path: Path) -> int:
    if fmt is NMNIST:
        return int(path.parent.name)
    if fmt is DVSGESTURE:
        return int(path.stem)
    return fmt.classes.index(path.parent.name)


def _files(fmt: _Format, folder: Path) -> tuple[list[Path], np.ndarray]:
    """The files of one set, sorted, with their labels; refuses a missing or empty folder."""
    if not folder.is_dir():
        raise DatasetError(f"{fmt.name}: folder {folder} not found; expected {fmt.layout} under --data-root")
    files = sorted(p for p in folder.rglob(f"*{fmt.suffix}") if p.is_file())
    if not files:
        raise DatasetError(f"{fmt.name}: no {fmt.suffix} files under {folder}; expected {fmt.layout}")
    labels = []
    for path in files:
        try:
            label = _label(fmt, path)
        except ValueError:
            label = -1
        if not 0 <= label < len(fmt.classes):
            raise DatasetError(f"{fmt.name}: cannot tell the class of {path} from its name; expected {fmt.layout}")
        labels.append(label)
    return files, np.asarray(labels, dtype=np.int64)


def _event_set(fmt: _Format, files: list[Path], labels: np.ndarray, name: str) -> EventSet:
    stats = [p.stat() for p in files]
    key = (
        f"{fmt.name}|{files[0].parent.parent.resolve()}|{len(files)}|{sum(s.st_size for s in stats)}|"
        f"{max(s.st_mtime_ns for s in stats)}"
    )
    reader = READERS[fmt.name]

    def read(i: int) -> np.ndarray:
        path = files[i]
        try:
            return as_tonic_layout(reader(path), str(path))
        except DatasetError:
            raise
        except Exception as exc:  # a damaged file fails in many ways inside numpy and the readers
            text = str(exc).splitlines()[0] if str(exc) else ""
            raise DatasetError(f"{fmt.name}: cannot read {path}: {type(exc).__name__}: {text}") from None

    return EventSet(name, key, labels, fmt.sensor, read, lambda i: str(files[i]))


def _download(fmt: _Format, root: Path) -> None:
    import tonic.datasets

    cls = getattr(tonic.datasets, fmt.tonic_class)
    try:
        if fmt.sets:
            cls(save_to=str(root), train=True), cls(save_to=str(root), train=False)
        else:
            cls(save_to=str(root))
    except Exception as exc:  # network errors come in many types
        raise DatasetError(
            f"{fmt.name}: download into {root} failed ({type(exc).__name__}: {exc}); without a network, put the "
            f"extracted files ({fmt.layout}) under --data-root"
        ) from None


def _load(
    fmt: _Format,
    data_root: str | None,
    image_size: int | None,
    seed: int,
    download: bool,
    val_fraction: float | None,
) -> EventSplits:
    size = check_image_size(fmt.name, image_size, fmt.sensor[0])
    fraction = check_val_fraction(fmt.name, val_fraction, VAL_FRACTION)
    if data_root is None:
        raise DatasetError(f"{fmt.name}: needs --data-root, the folder that holds {fmt.layout}")
    root = Path(data_root).expanduser()
    base = root / fmt.folder
    if download and not base.is_dir():
        _download(fmt, root)
    if fmt.sets:
        train_files, train_labels = _files(fmt, base / fmt.sets[0])
        test_files, test_labels = _files(fmt, base / fmt.sets[1])
        train_set = _event_set(fmt, train_files, train_labels, f"{fmt.name} {fmt.sets[0]}")
        test_set = _event_set(fmt, test_files, test_labels, f"{fmt.name} {fmt.sets[1]}")
        test_part = ("test", test_set, np.arange(len(test_set)))
        rest = np.arange(len(train_set))
    else:
        files, labels = _files(fmt, base)
        train_set = _event_set(fmt, files, labels, fmt.name)
        rest_t, test_t = stratified_split(torch.from_numpy(labels), TEST_FRACTION, TEST_SEED)
        test_part = ("test", train_set, test_t.numpy())
        rest = rest_t.numpy()
    train_pos, val_pos = stratified_split(torch.from_numpy(train_set.labels[rest]), fraction, seed)
    parts = (("train", train_set, rest[train_pos.numpy()]), ("val", train_set, rest[val_pos.numpy()]), test_part)
    for _, events, _ in parts:  # read and check every stream once (cached): a bad file stops the load here
        events.index()
    return event_splits(fmt.name, parts, classes=fmt.classes, image_size=size, sensor=fmt.sensor, val_fraction=fraction)


def _register(fmt: _Format, doc: str) -> None:
    def loader(
        *,
        data_root: str | None = None,
        image_size: int | None = None,
        seed: int = 0,
        download: bool = False,
        val_fraction: float | None = None,
    ) -> EventSplits:
        return _load(fmt, data_root, image_size, seed, download, val_fraction)

    loader.__name__ = f"load_{fmt.name}"
    loader.__doc__ = doc
    DATASETS.register(fmt.name, loader)


_register(
    NMNIST, "N-MNIST (Orchard et al. 2015), 2 x 34 x 34 event frames, 10 classes: 60,000 train + val / 10,000 test."
)
_register(DVSGESTURE, "DVS128 Gesture (Amir et al. 2017), 2 x 128 x 128, 11 classes: 1,077 train + val / 264 test.")
_register(
    CIFAR10DVS, "CIFAR10-DVS (Li et al. 2017), 2 x 128 x 128, 10 classes: 10,000 streams, 10 % a fixed test part."
)
