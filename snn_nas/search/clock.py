"""Where the driver's time goes, per finished trial: a pure clock, no Ray.

The driver is the one process that suggests, schedules, records, mirrors and displays every
trial of a search; with hundreds of slots it must finish each of these in milliseconds. A
``DriverClock`` sums the seconds spent in each ``PART`` and, at every finished trial, notes the
running sums. The driver's time for trials ``a`` (exclusive) to ``b`` (inclusive) is then::

    ms_per_trial(a, b) = 1000 * (S[b] - S[a]) / (b - a),   S[k] = the sums noted at trial k

so ``window_ms(100, 200)`` is the cost per trial around trial 150 and ``window_ms(n - 100, n)``
at the end: how each part grows with the history (``experiments/benchmarks/scale.py``).

Objects that Ray pickles with the experiment (the searcher, the scheduler, the callback) hold a
clock's *name*; ``clock(name)`` finds it in this process, so every copy of them adds to the same
sums. A name nobody opened is a clock like any other (cheap; measuring is always on).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

PARTS = ("suggest", "scheduler", "table", "study", "display")
"""``suggest``: the samplers (suggest a configuration, tell a result); ``scheduler``: the
trial scheduler's decisions; ``table``: the result table (journal line, compaction);
``study``: the user's Optuna study; ``display``: the progress lines and live panel."""


class DriverClock:
    """Seconds per part, and their running sums at every finished trial (``mark``)."""

    def __init__(self) -> None:
        self.totals = dict.fromkeys(PARTS, 0.0)
        self.marks: list[tuple[float, ...]] = [tuple(0.0 for _ in PARTS)]  # S[0] = 0

    @contextlib.contextmanager
    def part(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.totals[name] += time.perf_counter() - start

    def mark(self) -> None:
        """One more trial finished: note the running sums."""
        self.marks.append(tuple(self.totals[p] for p in PARTS))

    @property
    def trials(self) -> int:
        return len(self.marks) - 1

    def window_ms(self, start: int, end: int) -> dict[str, float]:
        """Milliseconds per trial of each part (and ``total``) over finished trials ``start``
        (exclusive) to ``end`` (inclusive), clipped to the trials marked; {} when none."""
        end = min(end, self.trials)
        start = max(0, min(start, end))
        if end <= start:
            return {}
        first, last = self.marks[start], self.marks[end]
        out = {p: 1000.0 * (b - a) / (end - start) for p, a, b in zip(PARTS, first, last, strict=True)}
        out["total"] = sum(out[p] for p in PARTS)
        return out


_CLOCKS: dict[str, DriverClock] = {}


def clock(name: str) -> DriverClock:
    """The clock called ``name`` in this process (made on first use)."""
    if name not in _CLOCKS:
        _CLOCKS[name] = DriverClock()
    return _CLOCKS[name]


def reset_clock(name: str) -> DriverClock:
    """A fresh clock under ``name`` (a new search in the same process)."""
    _CLOCKS[name] = DriverClock()
    return _CLOCKS[name]
