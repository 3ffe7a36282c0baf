"""Event-camera datasets: streams of (x, y, t, p) events read through tonic, binned into frames.

* ``stream``: one stream's checks, resize and frames (tonic's ``Downsample`` and ``ToFrame``);
* ``frames``: ``EventSplits`` (``DataSplits`` binned per the model's T by ``at_time_steps``),
  the per-set index and the frame cache;
* ``saccades``: the simulation of N-MNIST's recording (three saccades over a static image);
* ``nmnist5k``: the bundled MNIST subset as simulated N-MNIST (offline default for event data);
* ``recorded``: N-MNIST, DVS128 Gesture and CIFAR10-DVS from ``--data-root`` (tonic's layouts);
* ``cache``: where simulated streams and binned frames are kept (``$SNN_NAS_CACHE``).
"""

from __future__ import annotations

from snn_nas.data.events import nmnist5k, recorded  # noqa: F401  (registration)
from snn_nas.data.events.frames import EventSplits

__all__ = ["EventSplits"]
