"""The driver: the one room of snn-nas that runs trials on Ray Tune.

``run_sampled`` (trials drawn by the experiment's sampler) and ``run_fixed`` (a fixed list of
configurations) run trials through ``trainable.search_trainable``; ``callback.RecordTrials``
writes each finished trial to the table, the user's Optuna study and the display; ``snn_nas.search.clock``
measures what each part costs per trial. The strategies call it: the per-trial search
(``snn_nas.search.tune.run_search``) and the two-stage one-shot search
(``snn_nas.search.oneshot.run_two_stages``); nothing here imports them.
"""

from __future__ import annotations

from snn_nas.search.clock import DriverClock, clock
from snn_nas.search.driver.run import first_trials, make_scheduler, run_fixed, run_sampled
from snn_nas.search.driver.trainable import BASELINE_PARAM, NODE_DIED, SEED_PARAM

__all__ = [
    "BASELINE_PARAM",
    "NODE_DIED",
    "SEED_PARAM",
    "DriverClock",
    "clock",
    "first_trials",
    "make_scheduler",
    "run_fixed",
    "run_sampled",
]
