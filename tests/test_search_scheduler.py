"""MOASHA (snn_nas.search.scheduler) through Ray Tune's scheduler interface, with real Trial objects.

No Ray cluster: ``Trial(..., stub=True)`` needs none, and the scheduler hooks take the controller as
an argument they do not use, so ``None`` is passed, as in Ray's own scheduler tests.
"""

from __future__ import annotations

import math
import pickle
from types import SimpleNamespace

import numpy as np
import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from snn_nas.errors import SnnNasError
from snn_nas.pareto import nondominated_order
from snn_nas.search.scheduler import MOASHAScheduler, SchedulerError, rung_continues, rung_milestones

CONTINUE, STOP = TrialScheduler.CONTINUE, TrialScheduler.STOP


def new_trial() -> Trial:
    return Trial("snn_nas_test_trainable", stub=True)


def moasha(**kwargs) -> MOASHAScheduler:
    settings = {"max_t": 8, "grace_period": 1, "reduction_factor": 2, **kwargs}
    return MOASHAScheduler(["val_acc", "sops"], ["max", "min"], **settings)


def arrive(scheduler: MOASHAScheduler, epoch: int, val_acc: float, sops: float) -> str:
    """A new trial that reports ``(val_acc, sops)`` at ``epoch`` (a rung milestone); its decision there."""
    trial = new_trial()
    scheduler.on_trial_add(None, trial)
    return scheduler.on_trial_result(None, trial, {"training_iteration": epoch, "val_acc": val_acc, "sops": sops})


# ----------------------------------------------------------------------------- pure pieces
def test_rung_milestones():
    assert rung_milestones(1, 2, 8) == (1, 2, 4, 8)
    assert rung_milestones(2, 3, 20) == (2, 6, 18)
    assert rung_milestones(1, 10, 1000) == (1, 10, 100, 1000)  # Ray's float count drops 1000 here
    assert rung_milestones(3, 2, 3) == (3,)
    assert moasha(max_t=12, grace_period=1, reduction_factor=3).milestones == (1, 3, 9)


def test_rung_continues_hand_computed():
    empty = np.zeros((0, 2))
    assert rung_continues(empty, np.array([5.0, 5.0]), 2)
    # one objective, loss = -acc: recorded acc 0.2, 0.4, 0.6, 0.8 -> median cutoff 0.5 (rf = 2)
    recorded = -np.array([[0.2], [0.4], [0.6], [0.8]])
    assert rung_continues(recorded, np.array([-0.5]), 2)  # tie with the cutoff continues
    assert not rung_continues(recorded, np.array([-0.49]), 2)
    # rf = 4: cutoff at the 75th percentile 0.65
    assert rung_continues(recorded, np.array([-0.65]), 4)
    assert not rung_continues(recorded, np.array([-0.64]), 4)
    # two objectives, n = 3, quota ceil(3 / 2) = 2: (1, 1) dominated by (0, 0) only -> position 1
    two = np.array([[0.0, 0.0], [2.0, 2.0]])
    assert rung_continues(two, np.array([1.0, 1.0]), 2)
    assert not rung_continues(two, np.array([3.0, 3.0]), 2)  # position 2
    # quota max(1, ceil(3 / 4)) = 1: only position 0 continues
    assert not rung_continues(two, np.array([1.0, 1.0]), 4)
    # ties continue, as in ASHA: an exact copy of the only recorded point has nobody strictly ahead
    assert rung_continues(np.array([[1.0, 1.0]]), np.array([1.0, 1.0]), 2)
    # the ends of the first front continue (infinite crowding); an interior front point may not.
    # Front (0, 3), (1, 1), (3, 0), quota ceil(3 / 2) = 2: the two ends are ahead of the middle one
    ends = np.array([[0.0, 3.0], [3.0, 0.0]])
    assert not rung_continues(ends, np.array([1.0, 1.0]), 2)
    assert rung_continues(np.array([[0.0, 3.0], [1.0, 1.0]]), np.array([3.0, 0.0]), 2)  # a new cheapest end
    # a wider front: a point filling a gap is ahead of one in a crowded region
    front = np.array([[0.0, 3.0], [3.0, 0.0], [1.0, 2.0], [2.0, 1.0], [1.5, 1.5]])
    # new (1.1, 1.9): crowding 0.5/3 + 0.5/3, behind every other point (0.73, 1.0, 0.6, 2 x inf): 5 ahead
    assert not rung_continues(front, np.array([1.1, 1.9]), 2)  # quota ceil(6 / 2) = 3
    assert rung_continues(front, np.array([-0.1, 4.0]), 2)  # a new most-accurate end: nobody ahead


# ----------------------------------------------------------------------------- multi-objective rule
def test_first_trial_at_a_rung_continues():
    scheduler = moasha()
    assert arrive(scheduler, 1, 0.01, 1e12) == CONTINUE  # terrible, but alone at rung 1
    assert arrive(scheduler, 2, 0.01, 1e12) == CONTINUE  # and alone at rung 2
    assert scheduler.decisions["continued"] == 2


def test_trial_dominating_its_rung_continues_where_order_rank_confusion_stops_it():
    scheduler = moasha()
    # a dominance chain r0 > r2 > r1 > r3, the worst one recorded last
    rung = [(0.60, 200.0), (0.50, 300.0), (0.55, 250.0), (0.30, 400.0)]
    for acc, sops in rung:
        arrive(scheduler, 1, acc, sops)
    newcomer = (0.70, 100.0)  # dominates all four
    loss = np.array([[-acc, sops] for acc, sops in [*rung, newcomer]])
    order = nondominated_order(loss)
    np.testing.assert_array_equal(order, [4, 0, 2, 1, 3])
    # Syne Tune's MOASHA reads the order as ranks: the newcomer gets order[-1] / n = 3 / 5 > 1 / rf -> STOP
    assert order[-1] / len(loss) > 1 / 2
    assert arrive(scheduler, 1, *newcomer) == CONTINUE


def test_trial_dominating_its_rung_always_continues_random():
    rng = np.random.default_rng(3)
    for rf in (2, 3, 4):
        scheduler = moasha(reduction_factor=rf)
        for k in range(30):
            for _ in range(3):
                arrive(scheduler, 1, rng.uniform(0.1, 0.9), rng.uniform(10, 1000))
            # better than every random trial and than every earlier dominating one
            assert arrive(scheduler, 1, 0.9 + 0.001 * (k + 1), 10 - 0.1 * (k + 1)) == CONTINUE


def test_trial_dominated_by_most_of_its_rung_stops():
    scheduler = moasha()
    for acc, sops in [(0.9, 100.0), (0.8, 50.0), (0.7, 20.0), (0.2, 1000.0)]:
        arrive(scheduler, 1, acc, sops)
    # (0.6, 200) is dominated by the first three: rank 1, position 3 >= quota ceil(5 / 2) = 3
    assert arrive(scheduler, 1, 0.6, 200.0) == STOP


def test_crowding_keeps_the_cheap_end_of_a_wide_front():
    # a front of four accurate, expensive trials; quota for the fifth: ceil(5 / 2) = 3
    rung = [(0.90, 1000.0), (0.88, 900.0), (0.86, 800.0), (0.85, 700.0)]
    cheap, crowded = moasha(), moasha()
    for acc, sops in rung:
        arrive(cheap, 1, acc, sops)
        arrive(crowded, 1, acc, sops)
    # the cheapest (and least accurate) point is an end of the front: infinite crowding, position 1
    assert arrive(cheap, 1, 0.50, 10.0) == CONTINUE
    # a point squeezed between (0.88, 900) and (0.86, 800): crowding 0.4 + 1/3 below every other, position 4
    assert arrive(crowded, 1, 0.87, 850.0) == STOP


def test_three_objectives():
    scheduler = MOASHAScheduler(["val_acc", "sops", "params"], ["max", "min", "min"], max_t=4)
    assert arrive_three(scheduler, (0.5, 100.0, 10.0)) == CONTINUE
    assert arrive_three(scheduler, (0.4, 200.0, 20.0)) == STOP  # dominated, position 1 >= quota 1
    assert arrive_three(scheduler, (0.4, 200.0, 5.0)) == CONTINUE  # on the front, an end in params
    assert scheduler.recorded[1][next(iter(scheduler.recorded[1]))] == (0.5, 100.0, 10.0)


def arrive_three(scheduler: MOASHAScheduler, values: tuple[float, float, float]) -> str:
    trial = new_trial()
    scheduler.on_trial_add(None, trial)
    result = {"training_iteration": 1, **dict(zip(["val_acc", "sops", "params"], values, strict=True))}
    return scheduler.on_trial_result(None, trial, result)


# ----------------------------------------------------------------------------- Ray ASHA equivalence
def simulate(schedulers, seed: int, max_t: int, metric: str, n_trials: int = 30) -> list[str]:
    """Drive every scheduler with the same asynchronous event stream; return the (shared) decisions.

    Trials start at random times, report one result per epoch in a random interleaving, take values
    from a coarse grid (ties), and end by a STOP, by reaching ``max_t``, or by their trainable
    returning early (Ray then re-sends the last result, then calls on_trial_complete). Some queued
    trials are removed before they run.
    """
    rng = np.random.default_rng(seed)
    queued = [new_trial() for _ in range(n_trials)]
    running: dict[str, list] = {}  # trial id -> [trial, epoch, last epoch of its trainable]
    decisions = []

    def every(method, *args):
        return [getattr(s, method)(None, *args) for s in schedulers]

    while queued or running:
        if queued and (not running or rng.random() < 0.3):
            trial = queued.pop(0)
            every("on_trial_add", trial)
            if rng.random() < 0.05:
                every("on_trial_remove", trial)
                continue
            running[trial.trial_id] = [trial, 0, int(rng.integers(1, max_t + 3))]
            continue
        trial_id = list(running)[rng.integers(len(running))]
        state = running[trial_id]
        trial, state[1] = state[0], state[1] + 1
        value = float(rng.integers(0, 6)) / 5 if metric == "val_acc" else float(rng.integers(1, 7)) * 100
        result = {"training_iteration": state[1], metric: value}
        outs = every("on_trial_result", trial, result)
        assert len(set(outs)) == 1, (seed, trial_id, result, outs)
        decisions.append(outs[0])
        if outs[0] == STOP or state[1] >= state[2]:
            if outs[0] != STOP:  # trainable returned: Ray re-sends the last result, then completes it
                outs = every("on_trial_result", trial, {**result, "done": True})
                assert len(set(outs)) == 1, (seed, trial_id, result, outs)
            every("on_trial_complete", trial, result)
            del running[trial_id]
    return decisions


@pytest.mark.parametrize("reduction_factor", [2, 3])
@pytest.mark.parametrize("grace_period", [1, 2])
@pytest.mark.parametrize(("metric", "mode"), [("val_acc", "max"), ("sops", "min")])
def test_one_objective_decides_like_ray_asha(reduction_factor, grace_period, metric, mode):
    max_t = 9
    stops = 0
    for seed in range(6):
        ours = MOASHAScheduler(
            [metric], [mode], max_t=max_t, grace_period=grace_period, reduction_factor=reduction_factor
        )
        ray_asha = ASHAScheduler(
            time_attr="training_iteration",
            metric=metric,
            mode=mode,
            max_t=max_t,
            grace_period=grace_period,
            reduction_factor=reduction_factor,
        )
        decisions = simulate([ours, ray_asha], seed, max_t, metric)
        stops += ours.decisions["stopped"]
        assert CONTINUE in decisions
    assert stops > 10  # the rule was exercised, not only the max_t stop


# ----------------------------------------------------------------------------- resume
def run_trials(scheduler, rng, n: int, max_t: int, curves: dict | None = None) -> list[str]:
    """Run ``n`` trials one after another (each to its STOP), random (val_acc, sops) per epoch."""
    decisions = []
    for _ in range(n):
        trial = new_trial()
        scheduler.on_trial_add(None, trial)
        curve = []
        for epoch in range(1, max_t + 1):
            row = {"epoch": epoch, "val_acc": float(rng.integers(0, 11)) / 10, "sops": float(rng.integers(1, 9))}
            curve.append(row)
            result = {"training_iteration": epoch, "val_acc": row["val_acc"], "sops": row["sops"]}
            decision = scheduler.on_trial_result(None, trial, result)
            decisions.append(decision)
            if decision == STOP:
                scheduler.on_trial_complete(None, trial, result)
                break
        if curves is not None:
            curves[trial.trial_id] = curve
    return decisions


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_resume_from_history_decides_like_the_uninterrupted_scheduler(seed):
    max_t, settings = 8, {"max_t": 8, "grace_period": 1, "reduction_factor": 2}
    uninterrupted = moasha(**settings)
    curves: dict[str, list] = {}
    run_trials(uninterrupted, np.random.default_rng(seed), 25, max_t, curves)

    resumed = moasha(**settings, history=list(curves.items()))
    assert resumed.recorded == uninterrupted.recorded
    shuffled = list(curves.items())
    np.random.default_rng(seed).shuffle(shuffled)
    resumed_shuffled = moasha(**settings)
    for trial_id, curve in shuffled:
        resumed_shuffled.record_history(trial_id, curve)
    empty = moasha(**settings)

    after = [run_trials(s, np.random.default_rng(100 + seed), 25, max_t) for s in (uninterrupted, resumed)]
    assert after[0] == after[1]
    assert run_trials(resumed_shuffled, np.random.default_rng(100 + seed), 25, max_t) == after[0]
    # without the history the decisions differ: the test can tell
    assert run_trials(empty, np.random.default_rng(100 + seed), 25, max_t) != after[0]


def test_history_takes_the_value_at_each_milestone_and_checks_entries():
    curve = [{"epoch": e, "val_acc": e / 10, "sops": 100.0 * e} for e in (3, 1, 2, 4, 5)]  # any order
    scheduler = moasha(history={"a": curve})
    recorded = scheduler.recorded
    assert recorded[1] == {"a": (0.1, 100.0)}
    assert recorded[2] == {"a": (0.2, 200.0)}
    assert recorded[4] == {"a": (0.4, 400.0)}
    assert recorded[8] == {}
    with pytest.raises(SchedulerError, match="entry 0"):
        scheduler.record_history("b", [{"val_acc": 0.5, "sops": 1.0}])


# ----------------------------------------------------------------------------- edge cases
def test_non_finite_values_stop_and_are_left_out():
    scheduler = moasha()
    assert arrive(scheduler, 1, math.nan, 100.0) == STOP  # even as the first trial at its rung
    assert arrive(scheduler, 1, 0.5, math.inf) == STOP
    assert arrive(scheduler, 1, None, 100.0) == STOP  # not a number: a failed epoch
    # the failed trials are not in R: this one is the first finite trial, so it continues
    assert arrive(scheduler, 1, 0.01, 1e12) == CONTINUE
    assert scheduler.decisions == {"continued": 1, "stopped": 3, "nonfinite": 3, "finished": 0}
    assert sorted(scheduler.recorded[1].values(), key=str) == [(0.01, 1e12), None, None, None]

    # between rungs nothing is judged, NaN included (rungs 1, 2, 4)
    trial = new_trial()
    scheduler.on_trial_add(None, trial)
    for epoch in (1, 2):
        scheduler.on_trial_result(None, trial, {"training_iteration": epoch, "val_acc": 0.99, "sops": 1.0})
    nan_result = {"training_iteration": 3, "val_acc": math.nan, "sops": 1.0}
    assert scheduler.on_trial_result(None, trial, nan_result) == CONTINUE

    # one objective: Ray's ASHA continues a NaN trial (nan < cutoff is false); MOASHA stops it
    one = MOASHAScheduler(["val_acc"], ["max"], max_t=8)
    assert one.on_trial_result(None, new_trial(), {"training_iteration": 1, "val_acc": math.nan}) == STOP


def test_missing_metric_or_time_continues_and_records_nothing():
    scheduler = moasha()
    trial = new_trial()
    scheduler.on_trial_add(None, trial)
    assert scheduler.on_trial_result(None, trial, {"training_iteration": 1, "val_acc": 0.5}) == CONTINUE
    assert scheduler.on_trial_result(None, trial, {"val_acc": 0.5, "sops": 1.0}) == CONTINUE
    assert scheduler.on_trial_result(None, trial, {"training_iteration": 9, "val_acc": 0.5}) == CONTINUE
    assert scheduler.recorded[1] == {}


def test_max_t_stops_and_completion_records_the_top_rung():
    scheduler = moasha(max_t=4)  # rungs 1, 2, 4
    trial = new_trial()
    scheduler.on_trial_add(None, trial)
    for epoch in (1, 2, 3):
        result = {"training_iteration": epoch, "val_acc": 0.5, "sops": 10.0}
        assert scheduler.on_trial_result(None, trial, result) == CONTINUE
    last = {"training_iteration": 4, "val_acc": 0.6, "sops": 10.0}
    assert scheduler.on_trial_result(None, trial, last) == STOP
    assert scheduler.recorded[4] == {}
    scheduler.on_trial_complete(None, trial, last)
    assert scheduler.recorded[4] == {trial.trial_id: (0.6, 10.0)}
    assert scheduler.decisions["finished"] == 1


def test_a_result_is_judged_once_per_rung():
    scheduler = moasha()
    arrive(scheduler, 1, 0.9, 1.0)
    trial = new_trial()
    scheduler.on_trial_add(None, trial)
    result = {"training_iteration": 1, "val_acc": 0.1, "sops": 100.0}
    assert scheduler.on_trial_result(None, trial, result) == STOP
    # Ray re-sends the last result with done=True when a trainable returns: not judged again
    assert scheduler.on_trial_result(None, trial, {**result, "done": True}) == CONTINUE
    scheduler.on_trial_complete(None, trial, result)
    assert scheduler.recorded[1][trial.trial_id] == (0.1, 100.0)
    assert scheduler.decisions["stopped"] == 1


def test_pickle_round_trip_and_save_restore(tmp_path):
    scheduler = moasha()
    for acc, sops in [(0.9, 100.0), (0.8, 50.0), (0.7, 20.0)]:
        arrive(scheduler, 1, acc, sops)
    copy = pickle.loads(pickle.dumps(scheduler))
    assert copy.recorded == scheduler.recorded and copy.decisions == scheduler.decisions
    assert arrive(copy, 1, 0.5, 500.0) == arrive(scheduler, 1, 0.5, 500.0) == STOP
    assert arrive(copy, 1, 0.95, 10.0) == arrive(scheduler, 1, 0.95, 10.0) == CONTINUE

    scheduler.save(str(tmp_path / "moasha.pkl"))
    restored = moasha()
    restored.restore(str(tmp_path / "moasha.pkl"))
    assert restored.recorded == scheduler.recorded


def test_ray_hooks_search_properties_fifo_and_debug_string():
    scheduler = moasha()
    assert scheduler.set_search_properties("val_acc", "max") is True
    assert scheduler.set_search_properties(None, None, config={}) is True
    assert scheduler.objectives == (("val_acc", "max"), ("sops", "min"))
    assert scheduler.metric is None  # Ray's strict metric check then looks for no single metric

    first, second = new_trial(), new_trial()
    controller = SimpleNamespace(get_trials=lambda: [first, second])
    assert scheduler.choose_trial_to_run(controller) is first

    arrive(scheduler, 1, 0.5, 1.0)
    arrive(scheduler, 1, math.nan, 1.0)
    text = scheduler.debug_string()
    assert "val_acc max, sops min" in text
    assert "continued=1 stopped=1 (non-finite 1)" in text
    assert "rung 1: 1 recorded (+1 non-finite)" in text


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"metrics": "val_acc", "modes": "max"}, "expected lists"),
        ({"metrics": [], "modes": []}, "at least one"),
        ({"metrics": ["val_acc", "val_acc"], "modes": ["max", "max"]}, "once"),
        ({"metrics": ["val_acc", "sops"], "modes": ["max"]}, "one per metric"),
        ({"modes": ["max", "minimize"]}, "choose one of"),
        ({"grace_period": 0}, "grace_period"),
        ({"max_t": 1, "grace_period": 2}, "max_t"),
        ({"reduction_factor": 1}, "reduction_factor"),
        ({"max_t": math.inf}, "finite number"),
        ({"time_attr": ""}, "time_attr"),
    ],
)
def test_bad_settings_raise_a_named_error(kwargs, match):
    settings = {"metrics": ["val_acc", "sops"], "modes": ["max", "min"], "max_t": 8, **kwargs}
    with pytest.raises(SchedulerError, match=match) as info:
        MOASHAScheduler(settings.pop("metrics"), settings.pop("modes"), **settings)
    assert isinstance(info.value, SnnNasError)
