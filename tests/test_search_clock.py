"""The driver's clock (``snn_nas.search.clock``): time per finished trial, by part."""

from __future__ import annotations

import pytest

from snn_nas.search.clock import PARTS, DriverClock, clock, reset_clock


def test_window_ms_is_the_time_per_trial_between_two_marks():
    timer = DriverClock()
    for trial in range(1, 5):
        timer.totals["suggest"] += 0.010 * trial  # the 4 trials cost 10, 20, 30 and 40 ms to suggest
        timer.totals["table"] += 0.001
        timer.mark()
    assert timer.trials == 4
    window = timer.window_ms(2, 4)  # trials 3 and 4
    assert window["suggest"] == pytest.approx(35.0) and window["table"] == pytest.approx(1.0)
    assert window["total"] == pytest.approx(36.0) and set(PARTS) <= set(window)
    assert timer.window_ms(0, 100)["suggest"] == pytest.approx(25.0)  # clipped to the trials marked
    assert timer.window_ms(3, 3) == {}


def test_a_part_adds_its_seconds_and_clocks_are_shared_by_name():
    timer = reset_clock("test-search")
    with timer.part("study"):
        pass
    assert timer.totals["study"] > 0 and clock("test-search") is timer
    assert reset_clock("test-search") is not timer
