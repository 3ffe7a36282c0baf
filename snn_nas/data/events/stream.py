"""One event stream: its checks, its resize to the model's size, its frames (pure functions).

A stream is a numpy structured array in tonic's layout: fields ``x``, ``y`` (pixel column and
row), ``t`` (time stamp, microseconds) and ``p`` (polarity, 0 = OFF, 1 = ON), one row per event,
in time order. ``sensor`` is the sensor's ``(width, height)``.

Frames (``to_frames``), with tonic's own transforms:

1. the sensor's ``W x H`` becomes the model's ``S x S``: for ``S <= W, H``
   ``tonic.transforms.Downsample(sensor_size, target_size=(S, S))`` maps a pixel to
   ``x' = floor(x * S / W)``, ``y' = floor(y * S / H)`` (several sensor pixels share a model
   pixel); for a larger ``S`` the sensor is centred on the ``S x S`` canvas (extra pixel
   right/bottom), as ``mnist5k`` pads a digit;
2. ``tonic.transforms.ToFrame(sensor_size=(S, S, 2), n_time_bins=T)`` cuts the stream's span
   into ``T`` bins of ``w = (t_last - t_first) // T`` microseconds, bin ``k`` holding the
   events with ``t_first + k w <= t < t_first + (k + 1) w``, and counts the events of each
   polarity per pixel: ``[T, 2, S, S]``;
3. a pixel spikes in a bin when it saw at least one event there: ``frame = count > 0``. The
   model's input is binary, so its first synaptic layer does accumulates (SOPs), not MACs.

What tonic's ``ToFrame`` makes of bad streams, and what this module does instead:

* **no event**: ``ToFrame`` returns ``T`` all-zero frames, a sample that shows nothing but still
  carries a label. ``check_stream`` reports it (``EMPTY``); the loaders drop such samples and say
  how many.
* **time stamps going backwards**: ``ToFrame`` slices with ``searchsorted``, which assumes sorted
  times; events out of order land in the wrong bin or in none, silently. Refused: the file is
  damaged (``DatasetError`` naming it and the first event out of order).
* **events outside the sensor**: ``ToFrame`` would index out of the frame (an ``IndexError``) or
  wrap negative coordinates round to the other side. Refused, naming the file and the event.
* **T larger than the span allows**: when ``t_last - t_first < T`` the bin width ``w`` is 0 and
  every frame is empty. Refused by ``check_time_bins``, naming the sample and its span.
"""

from __future__ import annotations

import numpy as np

from snn_nas.data.base import DatasetError

EVENT_DTYPE = np.dtype([("x", np.int64), ("y", np.int64), ("t", np.int64), ("p", np.int64)])
"""tonic's ``(x, y, t, p)`` layout (the dtype of ``tonic.datasets.NMNIST``)."""

EMPTY = "empty"
POLARITIES = 2


def make_events(x: np.ndarray, y: np.ndarray, t: np.ndarray, p: np.ndarray) -> np.ndarray:
    """A stream in tonic's layout from four equally long arrays."""
    events = np.empty(len(t), dtype=EVENT_DTYPE)
    events["x"], events["y"], events["t"], events["p"] = x, y, t, p
    return events


def as_tonic_layout(events: np.ndarray, where: str) -> np.ndarray:
    """``events`` (any structured array with fields x, y, t, p) in ``EVENT_DTYPE``."""
    names = events.dtype.names or ()
    missing = [f for f in ("x", "y", "t", "p") if f not in names]
    if missing:
        raise DatasetError(f"{where}: the events lack the field(s) {missing}; expected x, y, t, p (tonic's layout)")
    return make_events(events["x"], events["y"], events["t"], events["p"])


def check_stream(events: np.ndarray, sensor: tuple[int, int], where: str) -> str | None:
    """``EMPTY`` for a stream without events, None for a good one; raises ``DatasetError`` (naming
    ``where``) for events outside the ``sensor`` (``0 <= x < W``, ``0 <= y < H``, ``p`` in {0, 1})
    or time stamps that go backwards."""
    if len(events) == 0:
        return EMPTY
    width, height = sensor
    x, y, t, p = events["x"], events["y"], events["t"], events["p"]
    outside = (x < 0) | (x >= width) | (y < 0) | (y >= height) | ((p != 0) & (p != 1))
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise DatasetError(
            f"{where}: {int(outside.sum())} event(s) outside the {width}x{height} sensor, the first at index {i} "
            f"(x={int(x[i])}, y={int(y[i])}, p={int(p[i])}); expected 0 <= x < {width}, 0 <= y < {height}, p in "
            "{0, 1}; the file is damaged or belongs to another sensor"
        )
    back = np.flatnonzero(np.diff(t) < 0)
    if len(back):
        i = int(back[0]) + 1
        raise DatasetError(
            f"{where}: time stamps go backwards at event {i} (t={int(t[i])} after t={int(t[i - 1])}); tonic's "
            "ToFrame assumes time order and would bin such events wrongly; the file is damaged"
        )
    return None


def span(events: np.ndarray) -> int:
    """``t_last - t_first`` of a time-ordered stream (0 without events)."""
    return int(events["t"][-1] - events["t"][0]) if len(events) else 0


def check_time_bins(time_bins: int, shortest_span: int, where: str) -> None:
    """Refuse ``time_bins`` when the shortest stream's span (microseconds) gives bins of 0 us."""
    if isinstance(time_bins, bool) or not isinstance(time_bins, int) or time_bins < 1:
        raise DatasetError(f"{where}: time bins (T) must be an integer >= 1, got {time_bins!r}")
    if shortest_span < time_bins:
        raise DatasetError(
            f"{where}: T={time_bins} time bins is more than the events allow: the shortest sample spans "
            f"{shortest_span} us, so tonic's ToFrame(n_time_bins={time_bins}) would make bins of "
            f"{shortest_span // time_bins} us and every frame empty; use T <= {max(shortest_span, 1)}"
        )


def resize_events(events: np.ndarray, sensor: tuple[int, int], size: int) -> np.ndarray:
    """The stream on an ``size x size`` grid (step 1 of the module docstring)."""
    width, height = sensor
    if size <= width and size <= height:
        if (width, height) == (size, size):
            return events
        from tonic.transforms import Downsample

        return Downsample(sensor_size=(width, height, POLARITIES), target_size=(size, size))(events)
    if size < width or size < height:
        raise DatasetError(
            f"image size {size}: between the sensor's sides {width} and {height}; use at most {min(width, height)} "
            f"or at least {max(width, height)}"
        )
    out = events.copy()
    out["x"] += (size - width) // 2
    out["y"] += (size - height) // 2
    return out


def to_frames(events: np.ndarray, sensor: tuple[int, int], size: int, time_bins: int) -> np.ndarray:
    """Binary frames ``[time_bins, 2, size, size]`` (bool) of one checked, non-empty stream
    (steps 1-3 of the module docstring)."""
    from tonic.transforms import ToFrame

    resized = resize_events(events, sensor, size)
    counts = ToFrame(sensor_size=(size, size, POLARITIES), n_time_bins=time_bins)(resized)
    return np.asarray(counts) > 0
