"""The driver's bookkeeping of finished trials: the table, the user's study, the display.

``RecordTrials`` is a Ray Tune callback: at every finished trial it writes one row to the result
table (``ResultStore``: one journal line; the parquet table compacted every few seconds), mirrors
it into the user's Optuna study (``UserStudy``) and prints its line (``SearchProgress``). Each of
the three is timed on the search's ``DriverClock`` (``snn_nas.search.clock``), and the
clock is marked once per finished trial. None of them rereads the history per trial: a search of
10,000 trials costs the driver what one of 100 does (``experiments/benchmarks/scale.py``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ray import tune

from snn_nas.search.clock import clock
from snn_nas.search.driver.trainable import failure_reason, sample_key, split_config
from snn_nas.search.progress import SearchProgress
from snn_nas.search.results import COMPACT_EVERY_S, ResultStore
from snn_nas.search.study import UserStudy

logger = logging.getLogger(__name__)


def open_user_study(
    directory: Path,
    name: str,
    metrics: list[str],
    modes: list[str],
    space: Any,
    constraints: tuple[tuple[str, float], ...],
    rows: list[dict[str, Any]],
) -> UserStudy | None:
    """The user's study, with every table row mirrored (rows recorded before a crash included)."""
    try:
        study = UserStudy(directory, name, metrics, modes, space, constraints)
        study.sync(rows)
    except Exception as exc:  # never lose a search over its mirror; the table is the record
        logger.warning("the Optuna study %s cannot be written: %s", directory, exc)
        return None
    return study


class RecordTrials(tune.Callback):
    """Driver side: writes a row per finished trial and drives the terminal progress.

    Picklable (Ray stores it with the experiment): the store, the study and the progress display
    are opened in ``setup`` and left out of the pickled state. ``clock_name``: the
    ``DriverClock`` its work is timed on (the searcher and scheduler use the same name).
    """

    def __init__(self, directory: Path, space: Any, spec: Any, title: str, total: int,
                 experiment: Any, show: bool, baselines: bool, *, clock_name: str = "") -> None:  # fmt: skip
        self.directory, self.space, self.spec, self.title, self.total = str(directory), space, spec, title, total
        self.metrics, self.modes, self.show, self.baselines = experiment.metrics, experiment.modes, show, baselines
        self.name, self.constraints = experiment.name, experiment.constraints
        self.clock_name = clock_name or str(directory)
        self._store: ResultStore | None = None
        self._progress: SearchProgress | None = None
        self._study: UserStudy | None = None
        self._started: dict[str, float] = {}  # trial id -> Unix time Ray started it
        self.reuse: dict[str, dict[str, Any]] = {}  # key -> baseline row a search trial reuses
        self.warm_keys: set[str] = set()  # keys of the warm-start designs (a baseline of one is reused)
        self.include: Callable[[Mapping[str, Any]], bool] | None = None  # this run's rows (else: by baseline)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_store": None, "_progress": None, "_study": None}

    def setup(self, **info: Any) -> None:
        self._store = ResultStore(self.directory, compact_every_s=COMPACT_EVERY_S)
        rows = self._store.rows()
        self._study = open_user_study(Path(self.directory), self.name, self.metrics, self.modes, self.space,
                                      self.constraints, rows)  # fmt: skip
        self._progress = SearchProgress(
            self.title, self.total, self.metrics, self.modes, enabled=self.show, baselines=self.baselines
        )
        ours = self.include or (lambda r: bool(r.get("baseline")) == self.baselines)
        self._progress.add_existing([r for r in rows if ours(r)])
        self._progress.add_existing([r for r in rows if not ours(r)], context=True)
        self._progress.__enter__()

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        timer = clock(self.clock_name)
        self._started.setdefault(trial.trial_id, time.time())
        if self._study is not None and trial.trial_id not in self._study:
            sample, baseline, _ = split_config(trial.config or {})
            if baseline or sample_key(self.space, sample) not in self.reuse:  # a reuse is the baseline's trial
                with timer.part("study"):
                    try:
                        self._study.start(trial.trial_id, None if baseline else sample,
                                          self._started[trial.trial_id], baseline=baseline)  # fmt: skip
                    except Exception as exc:
                        logger.warning("could not add trial %s to the Optuna study: %s", trial.trial_id, exc)
        if self._progress is not None:
            with timer.part("display"):
                self._progress.trial_started(trial.trial_id)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if self._progress is not None:
            with clock(self.clock_name).part("display"):
                self._progress.trial_result(trial.trial_id, result)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._record(trial, error=None)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        text = None
        with contextlib.suppress(Exception):
            text = trial.get_error()
        self._record(trial, error=failure_reason(text))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self._store is not None:
            with clock(self.clock_name).part("table"):
                self._store.close()
        if self._progress is not None:
            self._progress.__exit__(None, None, None)
            self._progress = None

    def _record(self, trial: Any, error: str | None) -> None:
        from snn_nas.search.trial import make_row, reusable_baselines

        if self._store is None:  # pragma: no cover - Ray calls setup first
            self.setup()
        assert self._store is not None
        timer = clock(self.clock_name)
        result = dict(trial.last_result or {})
        sample, baseline, seed = split_config(trial.config or {})
        spec = self.spec.with_seed(seed) if seed is not None else self.spec
        with timer.part("table"):
            row = make_row(trial.trial_id, sample, result, space=self.space, spec=spec, baseline=baseline, error=error)
            started = self._started.get(trial.trial_id)
            row = self._store.record({**row, "finished_at": time.time(), "started_at": started})
        if self._study is not None and row is not None:
            note = ""
            if baseline and str(row.get("key")) in self.warm_keys and reusable_baselines([row], self.spec):
                note = "also the search's warm-start trial: its result is reused there, not trained twice"
            with timer.part("study"):
                try:
                    self._study.add(row, None if baseline else sample, note=note)
                except Exception as exc:  # the table holds the row; the study is re-synced on resume
                    logger.warning("could not add trial %s to the Optuna study: %s", trial.trial_id, exc)
        if self._progress is not None and row is not None:
            with timer.part("display"):
                self._progress.trial_finished(row)
        timer.mark()
