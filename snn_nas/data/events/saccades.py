"""A simulated N-MNIST: event streams of static digits seen by a moving event camera.

How N-MNIST was recorded (Orchard et al. 2015, "Converting static image datasets to spiking
neuromorphic datasets using saccades"): an ATIS sensor (34 x 34 pixels used) on a pan-tilt
mount looks at an MNIST digit on a monitor and makes three saccades of about 100 ms each, along
the sides of a triangle; every pixel whose log brightness changes by more than a contrast
threshold emits an event, ON where it brightens, OFF where it darkens. ``simulate_saccades``
does the same to the digits of an image tensor:

* **motion**: the digit's top-left corner moves over the 34 x 34 sensor along the triangle
  ``(0, 0) -> (3.5, 7) -> (7, 0) -> (0, 0)`` pixels (``PATH``, the saccades that tonic's
  ``nmnist.stabilize`` undoes), ``SACCADE_US`` = 105 ms per side, sampled ``STEPS`` times per
  side; between samples the image is shifted with bilinear interpolation;
* **pixels**: each pixel compares ``L = log(I + LOG_EPS)`` (``I`` the brightness in [0, 1])
  with its reference level ``L_ref`` (``L`` at t = 0); while ``L - L_ref >= C`` it emits an ON
  event and raises ``L_ref`` by ``C``; while ``L_ref - L >= C`` an OFF event, lowering it;
  ``C = THRESHOLD x (1 + MISMATCH x N(0, 1))`` per pixel and sample (the threshold mismatch of
  real sensors);
* **time**: the ``j``-th crossing between samples ``k - 1`` and ``k`` is stamped where the
  linearly interpolated ``L`` reaches its level, plus a latency jitter ``N(0, JITTER_US)`` kept
  within the step; time stamps are whole microseconds, each stream sorted by time.

What it is not: no background activity, no refractory period, no sensor noise besides the
threshold mismatch and jitter, and the digit moves over a black background as a perfect
bilinear image. Real N-MNIST streams are noisier. Everything is drawn from numpy generators
seeded by ``(seed, chunk)``: the same images and seed give the same events.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np

SENSOR = (34, 34)
PATH = ((0.0, 0.0), (3.5, 7.0), (7.0, 0.0), (0.0, 0.0))
SACCADE_US = 105_000
STEPS = 24
THRESHOLD = 0.5
MISMATCH = 0.05
LOG_EPS = 0.2
JITTER_US = 100.0
CHUNK = 500


@dataclass(frozen=True)
class EventArrays:
    """Many streams in one set of arrays: stream ``i`` is rows ``offsets[i]:offsets[i + 1]``,
    time-ordered; ``x``, ``y`` uint8, ``t`` int32 microseconds, ``p`` uint8 (1 = ON)."""

    offsets: np.ndarray
    x: np.ndarray
    y: np.ndarray
    t: np.ndarray
    p: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1


def _shift(images: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``[n, h, w]`` images placed at (``dx``, ``dy``) on the sensor, bilinear: ``[n, 34, 34]``."""
    n, h, w = images.shape
    width, height = SENSOR
    ix, iy = int(np.floor(dx)), int(np.floor(dy))
    fx, fy = np.float32(dx - ix), np.float32(dy - iy)
    # canvas[1 + Y, 1 + X] holds the image shifted by whole pixels; the row and column in front of
    # it let the value at (X, Y) blend the pixels at (X - 1 | X, Y - 1 | Y) of that shift
    canvas = np.zeros((n, height + 1, width + 1), dtype=np.float32)
    rows, cols = min(h, height - iy), min(w, width - ix)
    canvas[:, 1 + iy : 1 + iy + rows, 1 + ix : 1 + ix + cols] = images[:, :rows, :cols]
    a, b = canvas[:, 1:, 1:], canvas[:, 1:, :-1]
    c, d = canvas[:, :-1, 1:], canvas[:, :-1, :-1]
    return (1 - fy) * ((1 - fx) * a + fx * b) + fy * ((1 - fx) * c + fx * d)


def _positions() -> list[tuple[float, float, float]]:
    """``(t_us, dx, dy)`` at every sample of the three saccades, t = 0 first."""
    out = [(0.0, *PATH[0])]
    for side in range(3):
        (x0, y0), (x1, y1) = PATH[side], PATH[side + 1]
        for k in range(1, STEPS + 1):
            f = k / STEPS
            out.append((SACCADE_US * (side + f), x0 + f * (x1 - x0), y0 + f * (y1 - y0)))
    return out


def _simulate_chunk(images: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """(sample, x, y, t, p) of the events of ``images [n, h, w]`` (float in [0, 1]), unsorted."""
    n = len(images)
    width, height = SENSOR
    threshold = (THRESHOLD * (1.0 + MISMATCH * rng.standard_normal((n, height, width)))).astype(np.float32)
    threshold = np.maximum(threshold, 0.05)
    positions = _positions()
    level = np.log(_shift(images, *positions[0][1:]) + LOG_EPS)
    reference = level.copy()
    parts: list[tuple[np.ndarray, ...]] = []
    plane = height * width
    flat_threshold = threshold.ravel()
    for (t0, _, _), (t1, dx, dy) in pairwise(positions):
        new = np.log(_shift(images, dx, dy) + LOG_EPS)
        diff = new - reference
        count = (np.abs(diff) / threshold).astype(np.int32)  # whole crossings (floor of a non-negative)
        where = np.flatnonzero(count).astype(np.int32)
        if len(where):
            reps = count.ravel()[where]
            pixel = np.repeat(where, reps)
            first = np.repeat(np.cumsum(reps, dtype=np.int32) - reps, reps)
            j = (np.arange(len(pixel), dtype=np.int32) - first + 1).astype(np.float32)  # 1..count per pixel
            up = diff.ravel()[pixel] > 0
            step = np.where(up, flat_threshold[pixel], -flat_threshold[pixel])
            before = level.ravel()[pixel]
            change = new.ravel()[pixel] - before
            frac = (reference.ravel()[pixel] + j * step - before) / np.where(change == 0, 1, change)
            stamp = t0 + np.clip(frac, 0, 1) * (t1 - t0) + rng.normal(0, JITTER_US, len(pixel)).astype(np.float32)
            stamp = np.rint(np.clip(stamp, t0, t1)).astype(np.int32)  # the jitter never leaves the step
            order = np.argsort(stamp, kind="stable")
            pixel, stamp, up = pixel[order], stamp[order], up[order]
            sample, rest = np.divmod(pixel, plane)
            y, x = np.divmod(rest, width)
            parts.append((sample, x, y, stamp, up.astype(np.uint8)))
            reference = reference + np.sign(diff) * count * threshold
        level = new
    return tuple(np.concatenate([p[i] for p in parts]) if parts else np.zeros(0) for i in range(5))


def simulate_saccades(images: np.ndarray, seed: int) -> EventArrays:
    """Event streams of ``images`` (uint8 ``[N, h, w]``, h, w <= 28) seen in three saccades by a
    34 x 34 event sensor (see the module docstring). Deterministic given ``images`` and ``seed``."""
    if images.ndim != 3 or images.shape[1] > 28 or images.shape[2] > 28:
        raise ValueError(f"simulate_saccades: expected uint8 images [N, h, w] with h, w <= 28, got {images.shape}")
    samples, xs, ys, ts, ps = [], [], [], [], []
    for start in range(0, len(images), CHUNK):
        rng = np.random.default_rng([seed, start])
        chunk = images[start : start + CHUNK].astype(np.float32) / 255.0
        sample, x, y, t, p = _simulate_chunk(chunk, rng)
        samples.append(sample + start)
        xs.append(x), ys.append(y), ts.append(t), ps.append(p)
    sample = np.concatenate(samples).astype(np.uint16)
    t = np.concatenate(ts)
    order = np.argsort(sample, kind="stable")  # keeps the time order of each stream (a radix sort)
    counts = np.bincount(sample, minlength=len(images))
    assert len(images) <= np.iinfo(np.uint16).max
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return EventArrays(
        offsets=offsets,
        x=np.concatenate(xs)[order].astype(np.uint8),
        y=np.concatenate(ys)[order].astype(np.uint8),
        t=t[order].astype(np.int32),
        p=np.concatenate(ps)[order].astype(np.uint8),
    )
