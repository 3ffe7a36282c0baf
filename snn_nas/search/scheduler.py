"""Multi-objective asynchronous successive halving (MOASHA) as a Ray Tune scheduler.

Rungs (one bracket, as Ray's ``ASHAScheduler(brackets=1)``), in units of ``time_attr`` (epochs)::

    r_k = grace_period * reduction_factor**k,    k = 0, 1, ...,  r_k <= max_t

A result at time ``t < max_t`` belongs to the rung of the largest milestone ``r_k <= t``. A trial is
judged at a rung once, by its first result there, and its loss vector ``y`` (the objectives, with
maximised metrics negated, as ``snn_nas.pareto.to_minimization``) is recorded at the rung whatever
the decision. Asynchronous: trial ``x`` arriving at rung ``k`` is judged against the set ``R`` of
finite loss vectors recorded at rung ``k`` so far; with ``n = |R| + 1`` and ``rf`` the reduction
factor, it continues when::

    y_x has a NaN or inf entry           -> STOP; recorded as non-finite, left out of R for later trials
    R is empty                           -> CONTINUE (the first trial at a rung always continues)
    one objective (m = 1)                -> CONTINUE iff  -y_x >= percentile({-y_r : r in R}, 100 (1 - 1/rf))
    two or more objectives (m >= 2)      -> CONTINUE iff  p_x < max(1, ceil(n / rf))

The one-objective cutoff is Ray ASHA's (``np.nanpercentile``, linear interpolation, ties continue),
so with one objective this scheduler makes exactly ``ASHAScheduler``'s decisions on finite values.
For ``m >= 2``, ``p_x`` is the number of points of ``R + [y_x]`` strictly ahead of ``x``
(``snn_nas.pareto.points_ahead``): with a lower non-domination rank, or the same rank and a larger
crowding distance within that front. Ties continue, as in ASHA: a point no other point is strictly
ahead of has position 0. So a trial that dominates every recorded one (alone on the first front)
always continues, and so do the two ends of the rung's first front (the most accurate and the
cheapest trial recorded there, both at infinite crowding distance): the search never stops the
trial that is best on one objective at its rung.
(Syne Tune's MOASHA feeds the sorted index list, an order, where a rank per point is expected, so it
judges the newcomer by the index of the worst point and can stop a trial that dominates its rung.)

The crowding tie-break prefers spread along the front: the ends of a front (the most accurate and
the cheapest trial) have infinite crowding distance and come first, so when a front is wider than
the quota ``ceil(n / rf)`` its cheap end is not starved in favour of a cluster of accurate trials.
The distance treats equal values alike, so a decision depends on the set ``R``, not on the order
trials reached the rung.

Other rules, as ``ASHAScheduler``: a result lacking ``time_attr`` or any objective -> CONTINUE
(nothing recorded); ``t >= max_t`` -> STOP; ``on_trial_complete`` records the final result at the
rung of its time if the trial has no value there yet (so trials finishing at ``max_t`` fill the top
rung). Differences from Ray's ASHA, all on inputs ASHA mishandles:

- NaN: ASHA continues a trial whose metric is NaN (``nan < cutoff`` is false); here it stops.
  ASHA records inf and lets it shift the cutoff; here inf is non-finite and left out.
- A result whose time jumps over a rung: ASHA judges the trial at the highest milestone it has not
  been recorded at, so a later result can be judged at the skipped lower rung; here a trial is
  judged only at the rung of its current time. With one result per epoch both agree.
- ASHA counts its rungs as ``int(log(max_t / grace) / log(rf) + 1)`` in floating point, which drops
  the ``max_t`` rung for e.g. ``max_t=1000, rf=10``; harmless (results at ``max_t`` are stopped
  before any rung is consulted), and here the milestones are computed by repeated multiplication.

Resume: ``Tuner.restore`` rebuilds the scheduler from the pickle made when the run started, so its
rungs are empty. ``history`` (or ``record_history``) replays the per-epoch curves of trials seen
before the resume, recording each trial at every rung its curve reached, as the live scheduler did.
"""

from __future__ import annotations

import math
import numbers
import pickle
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from snn_nas.errors import SnnNasError
from snn_nas.pareto import points_ahead, points_ahead_of_last_2d

if TYPE_CHECKING:  # pragma: no cover
    from ray.tune.execution.tune_controller import TuneController

MODES = ("min", "max")
HISTORY_TIME_KEY = "epoch"


class SchedulerError(SnnNasError, ValueError):
    """Bad scheduler settings or history; the message names what is wrong."""


def rung_milestones(grace_period: float, reduction_factor: float, max_t: float) -> tuple[float, ...]:
    """Milestones ``grace_period * reduction_factor**k`` for ``k = 0, 1, ...`` while ``<= max_t``, ascending."""
    milestones = []
    k = 0
    while (milestone := grace_period * reduction_factor**k) <= max_t:
        milestones.append(milestone.item() if isinstance(milestone, np.generic) else milestone)
        k += 1
    return tuple(milestones)


def rung_continues(recorded: np.ndarray, loss: np.ndarray, reduction_factor: float) -> bool:
    """Whether a trial with finite loss vector ``loss`` (``[m]``) continues past a rung holding ``recorded``.

    ``recorded`` is ``[r, m]``: the finite loss vectors already recorded at the rung. The rule of the
    module docstring: ``r == 0`` -> True; ``m == 1`` -> ``-loss >= nanpercentile(-recorded, 100 (1 - 1/rf))``
    (Ray ASHA's cutoff); ``m >= 2`` -> the number ``p`` of points of ``recorded + [loss]`` strictly
    ahead of ``loss`` (``points_ahead``) satisfies ``p < max(1, ceil((r + 1) / rf))``.
    """
    recorded = np.asarray(recorded, dtype=float)
    loss = np.asarray(loss, dtype=float)
    if recorded.shape[0] == 0:
        return True
    if loss.shape[0] == 1:
        cutoff = np.nanpercentile(-recorded[:, 0], (1 - 1 / reduction_factor) * 100)
        return bool(-loss[0] >= cutoff)
    points = np.vstack([recorded, loss[None, :]])
    quota = max(1, math.ceil(points.shape[0] / reduction_factor))
    if points.shape[1] == 2:  # the same count, without the [n, n] matrix (a rung of 10,000 trials)
        return points_ahead_of_last_2d(points, quota) < quota
    return bool(points_ahead(points)[-1] < quota)


def _check_objectives(metrics: Sequence[str], modes: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if isinstance(metrics, str) or isinstance(modes, str):
        raise SchedulerError("metrics and modes: expected lists (one entry per objective), got a string")
    metrics, modes = tuple(metrics), tuple(modes)
    if not metrics:
        raise SchedulerError("metrics: expected at least one objective metric, got none")
    if len(set(metrics)) != len(metrics):
        raise SchedulerError(f"metrics: each metric may appear once, got {list(metrics)}")
    if len(modes) != len(metrics):
        raise SchedulerError(f"modes: expected {len(metrics)} (one per metric), got {len(modes)}")
    for i, mode in enumerate(modes):
        if mode not in MODES:
            raise SchedulerError(f"modes[{i}]: {mode!r} is not allowed; choose one of {list(MODES)}")
    return metrics, modes


def _check_budget(max_t: float, grace_period: float, reduction_factor: float) -> None:
    for name, value in (("max_t", max_t), ("grace_period", grace_period), ("reduction_factor", reduction_factor)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise SchedulerError(f"{name}: expected a finite number, got {value!r}")
    if grace_period <= 0:
        raise SchedulerError(f"grace_period: must be > 0, got {grace_period}")
    if max_t < grace_period:
        raise SchedulerError(f"max_t: must be >= grace_period ({grace_period}), got {max_t}")
    if reduction_factor <= 1:
        raise SchedulerError(f"reduction_factor: must be > 1, got {reduction_factor}")


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan  # None or a non-number: treated as a failed (non-finite) value


class MOASHAScheduler(FIFOScheduler):
    """Asynchronous successive halving over several objectives (the rule is in the module docstring).

    ``metrics`` and ``modes`` (``"min"`` or ``"max"``, one per metric) name the objectives; the
    Tuner's own ``metric``/``mode`` are not needed and ignored (``set_search_properties``).
    ``history``: ``(trial_id, curve)`` pairs, ``curve`` a list of per-epoch result dicts
    (``{"epoch": 3, "val_acc": ..., "sops": ...}``), replayed by ``record_history`` in the given order.
    ``decisions`` counts results judged at a rung (``continued``, ``stopped``, of which ``nonfinite``)
    and trials stopped at ``max_t`` (``finished``).
    """

    def __init__(
        self,
        metrics: Sequence[str],
        modes: Sequence[str],
        *,
        max_t: float,
        grace_period: float = 1,
        reduction_factor: float = 2,
        time_attr: str = "training_iteration",
        history: Iterable[tuple[str, Sequence[Mapping[str, Any]]]] | Mapping[str, Sequence[Mapping[str, Any]]] = (),
        clock_name: str = "",
    ):
        super().__init__()
        self._clock_name = clock_name  # decisions are timed on this DriverClock (snn_nas.search.clock)
        self._metrics, self._modes = _check_objectives(metrics, modes)
        _check_budget(max_t, grace_period, reduction_factor)
        if not isinstance(time_attr, str) or not time_attr:
            raise SchedulerError(f"time_attr: expected the name of a result key, got {time_attr!r}")
        self._signs = np.array([-1.0 if mode == "max" else 1.0 for mode in self._modes])
        self._max_t = max_t
        self._grace_period = grace_period
        self._reduction_factor = reduction_factor
        self._time_attr = time_attr
        self._milestones = rung_milestones(grace_period, reduction_factor, max_t)
        # one dict per milestone: trial id -> loss vector [m], or None for a non-finite report
        self._rungs: list[dict[str, np.ndarray | None]] = [{} for _ in self._milestones]
        self._live: set[str] = set()
        self.decisions: dict[str, int] = {"continued": 0, "stopped": 0, "nonfinite": 0, "finished": 0}
        if isinstance(history, Mapping):
            history = history.items()
        for trial_id, curve in history:
            self.record_history(trial_id, curve)

    # ------------------------------------------------------------------ read-only views
    @property
    def objectives(self) -> tuple[tuple[str, str], ...]:
        """The ``(metric, mode)`` pairs, in order."""
        return tuple(zip(self._metrics, self._modes, strict=True))

    @property
    def milestones(self) -> tuple[float, ...]:
        """The rung milestones, ascending, in units of ``time_attr``."""
        return self._milestones

    @property
    def recorded(self) -> dict[float, dict[str, tuple[float, ...] | None]]:
        """Milestone -> {trial id: raw objective values (in ``metrics`` order), or None if non-finite}."""
        return {
            milestone: {tid: None if loss is None else self._raw(loss) for tid, loss in rung.items()}
            for milestone, rung in zip(self._milestones, self._rungs, strict=True)
        }

    # ------------------------------------------------------------------ helpers
    def _loss(self, result: Mapping[str, Any]) -> np.ndarray | None:
        """Loss vector ``[m]`` of a result (NaN for a non-number), or None when an objective is missing."""
        if any(metric not in result for metric in self._metrics):
            return None
        return np.array([_as_float(result[metric]) for metric in self._metrics]) * self._signs

    def _raw(self, loss: np.ndarray) -> tuple[float, ...]:
        return tuple((loss * self._signs).tolist())

    def _rung_of(self, t: float) -> int | None:
        """Index of the largest milestone ``<= t``, or None below the first one."""
        index = None
        for k, milestone in enumerate(self._milestones):
            if milestone <= t:
                index = k
        return index

    def _record(self, trial_id: str, k: int, loss: np.ndarray) -> None:
        self._rungs[k][trial_id] = loss.copy() if np.isfinite(loss).all() else None

    def _finite_at(self, k: int) -> np.ndarray:
        values = [loss for loss in self._rungs[k].values() if loss is not None]
        return np.array(values).reshape(len(values), len(self._metrics))

    # ------------------------------------------------------------------ history (resume)
    def record_history(self, trial_id: str, curve: Sequence[Mapping[str, Any]]) -> None:
        """Record a trial seen before a resume: at every rung its ``curve`` reached, the value there.

        ``curve`` is a list of per-epoch results; the time of an entry is ``entry[time_attr]`` if present,
        else ``entry["epoch"]``. Entries are replayed in time order: each is recorded at the rung of its
        time unless the trial already has a value there (the value at ``epoch == milestone`` when every
        epoch is present), exactly what the live scheduler recorded. Entries lacking an objective are
        skipped, non-finite ones are recorded as such. A trial with values already recorded keeps them.
        """
        timed = []
        for i, entry in enumerate(curve):
            key = self._time_attr if self._time_attr in entry else HISTORY_TIME_KEY
            t = _as_float(entry.get(key))
            if not math.isfinite(t):
                raise SchedulerError(
                    f"history of trial {trial_id!r}, entry {i}: needs a numeric {HISTORY_TIME_KEY!r} "
                    f"(or {self._time_attr!r}), got {entry.get(key)!r}"
                )
            timed.append((t, i, entry))
        for t, _, entry in sorted(timed, key=lambda item: item[:2]):
            loss = self._loss(entry)
            k = self._rung_of(t)
            if loss is not None and k is not None and trial_id not in self._rungs[k]:
                self._record(trial_id, k, loss)

    # ------------------------------------------------------------------ Ray Tune interface
    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        """Accept the Tuner's ``metric``/``mode`` without using them: the objectives are set here."""
        return True

    def on_trial_add(self, tune_controller: TuneController | None, trial: Trial) -> None:
        self._live.add(trial.trial_id)

    def on_trial_result(self, tune_controller: TuneController | None, trial: Trial, result: dict) -> str:
        from snn_nas.search.clock import clock

        with clock(getattr(self, "_clock_name", "")).part("scheduler"):  # older pickles lack it
            return self._decide(trial, result)

    def _decide(self, trial: Trial, result: dict) -> str:
        loss = self._loss(result)
        if loss is None or result.get(self._time_attr) is None:
            return TrialScheduler.CONTINUE
        t = result[self._time_attr]
        if t >= self._max_t:
            self.decisions["finished"] += 1
            return TrialScheduler.STOP
        k = self._rung_of(t)
        if k is None or trial.trial_id in self._rungs[k]:
            return TrialScheduler.CONTINUE
        finite = bool(np.isfinite(loss).all())
        keep = finite and rung_continues(self._finite_at(k), loss, self._reduction_factor)
        self._record(trial.trial_id, k, loss)
        self.decisions["continued" if keep else "stopped"] += 1
        if not finite:
            self.decisions["nonfinite"] += 1
        return TrialScheduler.CONTINUE if keep else TrialScheduler.STOP

    def on_trial_complete(self, tune_controller: TuneController | None, trial: Trial, result: dict) -> None:
        self._live.discard(trial.trial_id)
        loss = self._loss(result)
        if loss is None or result.get(self._time_attr) is None:
            return
        k = self._rung_of(result[self._time_attr])
        if k is not None and trial.trial_id not in self._rungs[k]:
            self._record(trial.trial_id, k, loss)

    def on_trial_remove(self, tune_controller: TuneController | None, trial: Trial) -> None:
        self._live.discard(trial.trial_id)

    # choose_trial_to_run and on_trial_error: FIFOScheduler's (pending trials first, in order)

    def debug_string(self) -> str:
        objectives = ", ".join(f"{metric} {mode}" for metric, mode in self.objectives)
        d = self.decisions
        parts = []
        for milestone, rung in zip(self._milestones, self._rungs, strict=True):
            failed = sum(loss is None for loss in rung.values())
            note = f" (+{failed} non-finite)" if failed else ""
            parts.append(f"rung {milestone:g}: {len(rung) - failed} recorded{note}")
        rungs = " | ".join(parts)
        return (
            f"Using MOASHA ({objectives}; reduction_factor={self._reduction_factor:g}, max_t={self._max_t:g}): "
            f"continued={d['continued']} stopped={d['stopped']} (non-finite {d['nonfinite']}) "
            f"finished={d['finished']}\n{rungs}"
        )

    def save(self, checkpoint_path: str) -> None:
        """Pickle the scheduler's state to ``checkpoint_path`` (as Ray's ASHA does)."""
        with open(checkpoint_path, "wb") as handle:
            pickle.dump(self.__dict__, handle)

    def restore(self, checkpoint_path: str) -> None:
        """Load the state written by ``save``."""
        with open(checkpoint_path, "rb") as handle:
            self.__dict__.update(pickle.load(handle))
