"""What keeps the samplers' cost per trial flat as a search grows to thousands of trials.

Two pieces, both behind ``snn_nas.search.searcher`` (the only other module that builds samplers):

**A TPE whose history is bounded** (``BoundedTPESampler``). Optuna's TPE reads the whole history
at every suggestion, and for every label of a define-by-run space (26 in the quick space) it
splits the history into a "below" and an "above" set and fits a Parzen estimator to each:
measured on this machine, about 40 ms per suggestion at 100 trials, 140 ms at 1,000, and
growing linearly. This sampler computes the split once per suggestion (not once per label), and
above ``max_history`` finished trials it fits the two estimators on a *window* of the history::

    window = elite  U  the most recent (max_history - |elite|) finished trials

where ``elite`` holds every feasible completed trial of the best non-domination fronts of the
*whole* history, whole fronts, until at least ``ELITE_SIZE`` trials (kept up to date
incrementally: ``elite <- best fronts of (elite U new trials)``, exact because a point's rank
depends only on the points that dominate it, which have lower ranks and so are in the elite).
Within the window every elite trial keeps its rank, and every other trial is dominated by a chain
through all elite fronts, so it ranks behind them. TPE's "below" set on the window, the best
``ceil(0.1 |window|)`` trials (50 at the default ``max_history``; ``ELITE_SIZE`` is larger), is
therefore exactly the best 50 trials of the whole history, ranks and HSSP tie-break included.
What changes at the switch-over: Optuna takes the best 10 % of the whole history as "below" (1,000
trials at 10,000) and fits "above" on all the rest; here "below" stays the best 50 and "above"
is fitted on recent trials. The good density narrows to the very best trials. Up to
``max_history`` the sampler *is* Optuna's TPE: the same suggestions for the same seed
(``tests/test_search_samplers.py``).

**A samplers' study that appends** (``BufferedJournal``). The samplers' study was an SQLite file:
each suggestion committed every label separately (an ``fsync`` each, about 400 ms per trial
here). It is now an Optuna journal (``optuna.storages.JournalStorage``): an append-only file of
JSON operations, kept in memory and written in batches at most every ``FLUSH_EVERY_S`` seconds,
when pickled (Ray's snapshot of the searcher) and at the end of a run. Only the driver writes it.
A killed driver may lose the last second of sampler operations, never a result: the table is the
record, and a resume re-reads it. The file is what Optuna's own ``JournalFileBackend`` writes and
reads, so Optuna's tools open it.
"""

from __future__ import annotations

import atexit
import copy
import heapq
import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.samplers._tpe.sampler import _split_trials
from optuna.storages.journal import BaseJournalBackend
from optuna.study._constrained_optimization import _get_feasible_trials
from optuna.trial import FrozenTrial, TrialState

from snn_nas.pareto import non_domination_ranks

MAX_HISTORY = 500
"""Finished trials above which ``BoundedTPESampler`` fits on a window (the switch-over point)."""
ELITE_SIZE = 100
"""At least this many of the best completed trials are always in the window (more than TPE's
below set of the window, ``ceil(0.1 * max_history)`` for several objectives)."""
FLUSH_EVERY_S = 1.0
"""Seconds between two writes of the samplers' journal while a search runs."""
KEEP_IN_MEMORY = 50_000
"""Journal operations kept in memory after they were written (older ones are read from the file)."""

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class BoundedTPESampler(optuna.samplers.TPESampler):
    """Optuna's TPE with the split computed once per suggestion and, above ``max_history``
    finished trials, fitted on the window of the module docstring. Every other option is
    ``TPESampler``'s (``constant_liar``, on by default in Optuna 5, included)."""

    def __init__(self, *args: Any, max_history: int = MAX_HISTORY, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if isinstance(max_history, bool) or not isinstance(max_history, int) or max_history < ELITE_SIZE:
            raise ValueError(f"max_history: expected a whole number >= {ELITE_SIZE}, got {max_history!r}")
        self._max_history = max_history
        self._elite: list[FrozenTrial] = []
        self._archived: set[int] = set()  # numbers of finished trials already offered to the elite
        self._split_key: int | None = None  # the trial number the cached split serves
        self._split_state: tuple[int, ...] | None = None  # the history it was made from (``_history``)
        self._split: tuple[list[FrozenTrial], list[FrozenTrial]] = ([], [])
        self._column_cache: dict[int, dict[str, list[float]]] = {}  # id(below or above) -> label -> values
        self._estimators: dict[tuple, tuple[Any, Any]] = {}  # (label, distribution) -> (below, above) Parzen
        self._reprs: dict[int, dict[str, float]] = {}  # trial number -> label -> internal value
        self._log_seen = 0  # finished trials of the journal's log offered to the elite so far
        self._count_seen = self._finished_count = 0  # entries of that log counted, and how many COMPLETE or PRUNED
        self._started_up = False  # n_startup_trials finished: TPE from now on

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_split_key"], state["_split_state"], state["_split"] = None, None, ([], [])  # rebuilt when needed
        state["_column_cache"], state["_estimators"] = {}, {}
        return state

    # ------------------------------------------------------------------ the window
    def window(self, study: optuna.Study, trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
        """The trials the estimators are fitted on: all of ``trials`` (the finished ones) up to
        ``max_history``, else the elite and the most recent, in trial-number order."""
        self._update_elite(study, trials)
        if len(trials) <= self._max_history:
            return list(trials)
        chosen = {t.number: t for t in self._elite}
        recent = sorted(trials, key=lambda t: t.number, reverse=True)
        for trial in recent:
            if len(chosen) >= self._max_history:
                break
            chosen.setdefault(trial.number, trial)
        return [chosen[number] for number in sorted(chosen)]

    def _update_elite(self, study: optuna.Study, trials: Sequence[FrozenTrial]) -> None:
        new = [t for t in trials if t.number not in self._archived]
        if not new:
            return
        self._archived.update(t.number for t in new)
        complete = [t for t in new if t.state == TrialState.COMPLETE and t.values is not None]
        pool = self._elite + _get_feasible_trials(complete)
        if len(pool) <= ELITE_SIZE:
            self._elite = pool
            return
        signs = np.array([-1.0 if d == optuna.study.StudyDirection.MAXIMIZE else 1.0 for d in study.directions])
        loss = np.array([t.values for t in pool], dtype=float) * signs
        finite = np.isfinite(loss).all(axis=1)
        pool = [t for t, keep in zip(pool, finite.tolist(), strict=True) if keep]
        ranks = non_domination_ranks(loss[finite])
        kept: list[FrozenTrial] = []
        for rank in np.unique(ranks):  # whole fronts, best first, until ELITE_SIZE are held
            if len(kept) >= ELITE_SIZE:
                break
            kept.extend(t for t, r in zip(pool, ranks.tolist(), strict=True) if r == rank)
        self._elite = kept

    # ------------------------------------------------------------------ TPE with a cached split
    def _sample(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, Any]) -> dict[str, Any]:
        if trial.number != self._split_key:  # once per suggestion, not once per label
            window, running, state = self._history(study, trial)
            if state != self._split_state:  # a redraw after a duplicate sees the same history: kept
                self._split = self._split_for(study, window, running)
                self._split_state = state
                self._column_cache, self._estimators = {}, {}
            self._split_key = trial.number
        below, above = self._split
        key = tuple((name, repr(dist)) for name, dist in search_space.items())
        if key not in self._estimators:  # a redraw after a duplicate fits on the same split: reused
            self._estimators[key] = (
                self._build_parzen_estimator(study, search_space, below, handle_below=True),
                self._build_parzen_estimator(study, search_space, above, handle_below=False),
            )
        mpe_below, mpe_above = self._estimators[key]
        samples = mpe_below.sample(self._rng.rng, self._n_ei_candidates)
        scores = self._compute_acquisition_func(samples, mpe_below, mpe_above)
        chosen = optuna.samplers.TPESampler._compare(samples, scores)
        return {name: dist.to_external_repr(chosen[name]) for name, dist in search_space.items()}

    def _get_internal_repr(
        self, trials: list[FrozenTrial], search_space: dict[str, Any], study: optuna.Study
    ) -> dict[str, np.ndarray]:
        """Optuna's per-label observations of ``trials``; for the cached ``below`` and ``above``
        lists and one label (independent sampling) read from columns built once per suggestion
        (``_columns``), instead of a pass over every trial for every label."""
        if len(search_space) != 1 or self._is_multivariate(study) or not any(trials is part for part in self._split):
            return super()._get_internal_repr(trials, search_space, study)
        (name,) = search_space
        return {name: np.asarray(self._columns(trials).get(name, []), dtype=float)}

    def _columns(self, trials: list[FrozenTrial]) -> dict[str, list[float]]:
        key = id(trials)
        if key not in self._column_cache:
            columns: dict[str, list[float]] = {}
            for trial in trials:
                for label, value in self._internal(trial).items():
                    columns.setdefault(label, []).append(value)
            self._column_cache[key] = columns
        return self._column_cache[key]

    def _internal(self, trial: FrozenTrial) -> dict[str, float]:
        """A trial's parameters in Optuna's internal form, computed once per trial (a finished or
        fully suggested trial does not change)."""
        held = self._reprs.get(trial.number)
        if held is None or len(held) != len(trial.params):
            held = {label: trial.distributions[label].to_internal_repr(v) for label, v in trial.params.items()}
            self._reprs[trial.number] = held
        return held

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: Any
    ) -> Any:
        """Optuna's, except that the history is not re-read for every label: the labels after the
        first of a suggestion use the cached split, and the start-up count (``n_startup_trials``
        finished trials), once reached, is not counted again."""
        if self._is_multivariate(study):
            return super().sample_independent(study, trial, param_name, param_distribution)
        if trial.number != self._split_key and not self._started_up:
            finished = study._get_trials(deepcopy=False, states=_FINISHED, use_cache=True)
            self._started_up = len(finished) >= self._n_startup_trials  # only grows: counted until reached
            if not self._started_up:
                return self._random_sampler.sample_independent(study, trial, param_name, param_distribution)
        return self._sample(study, trial, {param_name: param_distribution})[param_name]

    def _history(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> tuple[list[FrozenTrial], list[FrozenTrial], tuple[int, ...]]:
        """What TPE looks at for the suggestion of ``trial``: the window of the finished trials,
        the other running trials (with ``constant_liar``, Optuna's default; else none), and a key
        of that history: the count of finished trials and the running trials' numbers. A redraw
        after a duplicate (the duplicate told FAIL) sees the same key."""
        storage = study._storage
        if isinstance(storage, IndexedJournalStorage):  # no scan of the history
            log, unfinished = storage.progress(study._study_id)
            finished = self._count_finished(log)  # the log files FAIL trials (duplicate draws) too
            if finished > self._max_history:
                self._update_elite_from_log(study, log)
                window = self._recent_window(log)
            else:
                window = self.window(study, sorted((t for t in log if t.state in _FINISHED), key=lambda t: t.number))
            running = [t for t in unfinished if t.state == TrialState.RUNNING and t.number != trial.number]
            running = running if self._constant_liar else []
            return window, running, (finished, *(t.number for t in running))
        states = (*_FINISHED, TrialState.RUNNING) if self._constant_liar else _FINISHED
        trials = [
            t
            for t in study._get_trials(deepcopy=False, states=states, use_cache=not self._constant_liar)
            if t.number != trial.number
        ]
        finished = [t for t in trials if t.state != TrialState.RUNNING]
        running = [t for t in trials if t.state == TrialState.RUNNING]
        return self.window(study, finished), running, (len(finished), *(t.number for t in running))

    def _count_finished(self, log: list[FrozenTrial]) -> int:
        """Completed and pruned trials in the journal's finish log (which only grows), counted
        incrementally: what the split depends on, and the switch-over to the window."""
        for trial in log[self._count_seen :]:
            self._finished_count += trial.state in _FINISHED
        self._count_seen = len(log)
        return self._finished_count

    def _update_elite_from_log(self, study: optuna.Study, log: list[FrozenTrial]) -> None:
        """``_update_elite`` with the trials filed since the last call (the log only grows)."""
        new = [t for t in log[self._log_seen :] if t.state in _FINISHED]
        self._log_seen = len(log)
        self._update_elite(study, new)

    def _recent_window(self, log: list[FrozenTrial]) -> list[FrozenTrial]:
        """The window of the module docstring, with "recent" the latest filed finished trials
        (the journal's finish log is in that order)."""
        chosen = {t.number: t for t in self._elite}
        for trial in reversed(log):
            if len(chosen) >= self._max_history:
                break
            if trial.state in _FINISHED:
                chosen.setdefault(trial.number, trial)
        return [chosen[number] for number in sorted(chosen)]

    def _split_for(
        self, study: optuna.Study, window: list[FrozenTrial], running: list[FrozenTrial]
    ) -> tuple[list[FrozenTrial], list[FrozenTrial]]:
        """TPE's ``(below, above)`` over the window of finished trials plus the running ones, which
        TPE counts in ``above``. The driver suggests one trial at a time, so the trials do not
        change while one is suggested."""
        if self._gamma is None:
            multi = len(study.directions) > 1
            self._gamma = (
                optuna.samplers._tpe.sampler.default_gamma_multiobjective
                if multi
                else optuna.samplers._tpe.sampler.default_gamma
            )
        return _split_trials(study, sorted(window + running, key=lambda t: t.number), self._gamma(len(window)))


# ---------------------------------------------------------------------- the journal file
class IndexedJournalStorage(optuna.storages.JournalStorage):
    """Optuna's ``JournalStorage`` whose ``get_all_trials(states=...)`` costs O(new + unfinished
    trials), not O(all trials): Optuna's ``ask`` looks for WAITING trials and TPE for the finished
    and running ones at every suggestion, and a search's study holds several trials per
    architecture (every duplicate draw is one, told FAIL). A finished trial never changes, so
    finished trials are filed by state once, in the order of their numbers; only the unfinished
    ones (running, waiting: at most the slots and the queue) are looked at again."""

    def __init__(self, log_storage: BaseJournalBackend) -> None:
        super().__init__(log_storage)
        self._index: dict[int, dict[str, Any]] = {}

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        state.pop("_index", None)
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        self._index = {}

    def get_all_trials(self, study_id: int, deepcopy: bool = True, states: Any = None) -> list[FrozenTrial]:
        if states is None or study_id not in self._replay_result._studies:
            return super().get_all_trials(study_id, deepcopy=deepcopy, states=states)
        with self._thread_lock:
            self._sync_with_backend()
            trials = self._by_state(study_id, states)
        return copy.deepcopy(trials) if deepcopy else trials

    def progress(self, study_id: int) -> tuple[list[FrozenTrial], list[FrozenTrial]]:
        """``(finished, unfinished)``: every finished trial in the order it was filed (append-only;
        not a copy: do not change it) and the running and waiting ones, without a scan of the
        history (what ``BoundedTPESampler`` reads at every suggestion)."""
        with self._thread_lock:
            self._sync_with_backend()
            self._by_state(study_id, ())
            entry = self._index[study_id]
            return entry["log"], list(entry["open_trials"])

    def _by_state(self, study_id: int, states: Any) -> list[FrozenTrial]:
        replay = self._replay_result
        ids = replay._study_id_to_trial_ids[study_id]
        entry = self._index.setdefault(study_id, {"scanned": 0, "open": [], "finished": {}, "log": []})
        entry["open"].extend(ids[entry["scanned"] :])
        entry["scanned"] = len(ids)
        still, out = [], []
        for trial_id in entry["open"]:
            trial = replay._trials[trial_id]
            if trial.state.is_finished():
                entry["log"].append(trial)
                filed = entry["finished"].setdefault(trial.state, [])
                filed.append(trial)
                if len(filed) > 1 and filed[-2].number > trial.number:  # finished out of order
                    filed.sort(key=lambda t: t.number)
            else:
                still.append(trial_id)
                if trial.state in states:
                    out.append(trial)
        entry["open"] = still
        entry["open_trials"] = [replay._trials[trial_id] for trial_id in still]
        parts = [entry["finished"][state] for state in entry["finished"] if state in states]
        if not parts:
            return out
        if len(parts) == 1 and not out:
            return list(parts[0])
        return list(heapq.merge(*parts, out, key=lambda t: t.number))


_OPEN: dict[str, BufferedJournal] = {}


def journal_backend(path: str | Path) -> BufferedJournal:
    """The one ``BufferedJournal`` of ``path`` in this process (every Optuna storage opened on the
    file shares it, so none reads a stale copy)."""
    key = os.path.abspath(os.fspath(path))
    held = _OPEN.get(key)
    if held is None or held.changed_on_disk():
        _OPEN[key] = BufferedJournal(key)
    return _OPEN[key]


def flush_journals() -> None:
    """Write every journal's buffered operations (at the end of a run, and at exit)."""
    for backend in list(_OPEN.values()):
        backend.flush()


atexit.register(flush_journals)


class JournalError(ValueError):
    """A samplers' journal that cannot be read (a damaged line other than a torn last one)."""


class BufferedJournal(BaseJournalBackend):
    """Optuna's journal backend on one file, single writer: the operations live in memory,
    appended to the file in batches (``flush``, at most every ``FLUSH_EVERY_S`` seconds when
    operations arrive, ``fsync``'ed). A torn last line (a crash while writing it) is cut off
    when the file is read. Pickles as its path (flushed first); unpickled, it is the process's
    backend of that path (``journal_backend``)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._logs: list[dict[str, Any]] | None = None
        self._pending: list[dict[str, Any]] = []
        self._flushed_at = time.monotonic()
        self._size = -1  # bytes of the file as last read or written here (-1: not read yet)
        self._base = 0  # number of the first operation held in memory (older ones: in the file)

    def changed_on_disk(self) -> bool:
        """The file was replaced, damaged or removed by someone else since this backend read or
        wrote it (then it is read again; buffered operations are written first)."""
        if self._logs is None or self._pending:
            return False
        size = os.path.getsize(self.path) if os.path.isfile(self.path) else 0
        return size != self._size

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        self.flush()
        return journal_backend, (self.path,)

    def _loaded(self) -> list[dict[str, Any]]:
        if self._logs is None:
            self._logs = _read_journal(Path(self.path))
            self._size = os.path.getsize(self.path) if os.path.isfile(self.path) else 0
        return self._logs

    def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
        """Operations from number ``log_number_from`` on: from memory, or for an old number (a
        storage opened late, e.g. to close the study) from the file, then memory."""
        logs = self._loaded()
        if log_number_from < self._base:
            with open(self.path, "rb") as handle:
                for number, raw in enumerate(handle):
                    if number >= self._base:
                        break
                    if number >= log_number_from:
                        yield json.loads(raw)
            log_number_from = self._base
        yield from logs[log_number_from - self._base :]

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        self._loaded().extend(logs)
        self._pending.extend(logs)
        if time.monotonic() - self._flushed_at >= FLUSH_EVERY_S:
            self.flush()

    def _trim(self) -> None:
        """Keep the newest ``KEEP_IN_MEMORY`` written operations in memory (each storage on the
        file has replayed them; a 10,000-trial search writes about a million)."""
        assert self._logs is not None
        if not self._pending and len(self._logs) > 2 * KEEP_IN_MEMORY:
            dropped = len(self._logs) - KEEP_IN_MEMORY
            del self._logs[:dropped]
            self._base += dropped

    def flush(self) -> None:
        self._flushed_at = time.monotonic()
        if not self._pending:
            return
        text = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in self._pending)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        self._pending = []
        self._size = os.path.getsize(self.path)
        self._trim()


def _read_journal(path: Path) -> list[dict[str, Any]]:
    """The operations of a journal file; a torn last line is cut off the file (so that the next
    append starts on a line of its own), any other unreadable line is a ``JournalError``."""
    if not path.is_file():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    tail = lines.pop()
    logs = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            logs.append(json.loads(raw))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise JournalError(f"{path}: line {number} is not an Optuna journal operation") from None
    if tail.strip():
        try:
            logs.append(json.loads(tail))
            with open(path, "ab") as handle:
                handle.write(b"\n")
        except (UnicodeDecodeError, json.JSONDecodeError):
            with open(path, "rb+") as handle:
                handle.truncate(len(data) - len(tail))
    return logs


def sqlite_storage(path: Path) -> optuna.storages.RDBStorage:
    """An Optuna storage on the SQLite file ``path``, in write-ahead-log mode with
    ``synchronous=NORMAL``: a commit appends to ``<file>-wal`` without an ``fsync`` (about 0.1 ms
    instead of several: a search commits a dozen times per trial), a killed process loses nothing
    committed, a power cut at most the last commits, never the file's consistency. Readers
    (optuna-dashboard) see every commit; SQLite folds the log into the file when the last
    connection closes."""
    from sqlalchemy import event

    storage = optuna.storages.RDBStorage(f"sqlite:///{path}", engine_kwargs={"connect_args": {"timeout": 60}})

    @event.listens_for(storage.engine, "connect")
    def _write_ahead(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    storage.engine.dispose()  # the connection RDBStorage opened to set up its tables predates the listener
    return storage
