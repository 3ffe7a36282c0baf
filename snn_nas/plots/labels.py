"""Where point labels go so that they do not overlap: a pure placement in display pixels."""

from __future__ import annotations

import math
from collections.abc import Sequence


def label_offsets(
    points: Sequence[tuple[float, float]],
    *,
    width: float = 48.0,
    height: float = 8.0,
    start: tuple[float, float] = (4.0, 3.0),
    ceiling: float = math.inf,
) -> list[tuple[float, float]]:
    """Offsets (points from each anchor, as ``annotate``'s ``xytext``) of labels of ``width`` by
    ``height`` anchored at ``points`` (display coordinates, y up), so that no two labels overlap:
    labels are placed bottom-up, each at ``start``, moved up one label height at a time until its
    box is clear of every box placed before, or, where that would cross ``ceiling`` (the top of
    the axes), down instead. A lone label keeps ``start``."""
    order = sorted(range(len(points)), key=lambda i: (points[i][1], points[i][0]))
    placed: list[tuple[float, float]] = []  # lower-left corners of the boxes placed
    offsets: list[tuple[float, float]] = [start] * len(points)

    def clear(x: float, y: float) -> bool:
        return not any(abs(x - px) < width and abs(y - py) < height for px, py in placed)

    for i in order:
        x, y0 = points[i][0] + start[0], points[i][1] + start[1]
        y = y0
        while not clear(x, y) and y + 2 * height <= ceiling:
            y += height
        if not clear(x, y) or y + height > ceiling:
            y = y0 - height
            while not clear(x, y):
                y -= height
        placed.append((x, y))
        offsets[i] = (start[0], y - points[i][1])
    return offsets
