"""Run trials on Ray Tune: the one loop every strategy of snn-nas drives.

* ``run_sampled``: trials drawn by the experiment's Optuna sampler (through
  ``snn_nas.search.searcher.SnnOptunaSearch``), scheduled by its scheduler (MOASHA by default),
  until ``experiment.trials`` rows are in the table; resumable (below). The per-trial search and
  a one-shot search's first stage run here.
* ``run_fixed``: a fixed list of configurations (the seed presets, a one-shot search's stage 2),
  each trained once.

Both write every finished trial through ``RecordTrials`` (table, user's study, display) and time
their work on the search's ``DriverClock``. Strategies (``snn_nas.search.tune`` for the
per-trial search, ``snn_nas.search.oneshot`` for the two-stage one) call these; this package
imports neither.

How a killed search resumes: the driver writes every finished trial to the table at once, and
the table is the record. ``--resume`` starts a new Ray run for the trials the table lacks
(``experiment.trials`` minus its rows), drawn from the same samplers' study (which keeps
everything it was told; the trials it was told were running are closed as failed), with the
architectures of the table's rows never drawn again and the scheduler's rungs rebuilt from their
``curve`` column. Trials that were running when the driver died start over. (Restoring Ray's own
snapshot instead ran extra trials: Ray writes it every few seconds, not per trial, so trials that
finished after the last one were in the table but unknown to the restored run.)
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.schedulers import ASHAScheduler, TrialScheduler
from ray.tune.search import ConcurrencyLimiter

from snn_nas.search.driver.callback import RecordTrials
from snn_nas.search.driver.trainable import make_trainable, trial_dirname
from snn_nas.search.layout import RAY_DIR, SEARCH_RUN
from snn_nas.search.results import ResultStore, parse_curve
from snn_nas.search.searcher import (
    FixedSearcher,
    SnnOptunaSearch,
    close_sampler_study,
    enqueue_first,
    make_sampler,
    open_sampler_study,
    sampler_storage,
    sampler_study_name,
)

Runner = Callable[..., Any]


def run_config(directory: Path, name: str, callback: RecordTrials, experiment: Any) -> tune.RunConfig:
    return tune.RunConfig(
        name=name,
        storage_path=str(directory / RAY_DIR),
        failure_config=tune.FailureConfig(max_failures=experiment.max_failures),
        callbacks=[callback],
        verbose=0,
    )


def run_fixed(
    experiment: Any,
    directory: Path,
    space: Any,
    spec: Any,
    configs: list[dict[str, Any]],
    *,
    run: str,
    title: str,
    total: int,
    show: bool,
    baselines: bool = False,
    include: Callable[[Mapping[str, Any]], bool] | None = None,
    reuse: Mapping[str, dict[str, Any]] | None = None,
    warm_keys: set[str] | None = None,
    runner: Runner | None = None,
) -> bool:
    """Train each of ``configs`` once (Ray configs: a sample, ``{BASELINE_PARAM: name}``, with
    ``SEED_PARAM`` for a trial's own seed); True when every one finished. ``total``: the count
    the progress shows (done ones included); ``include``: which table rows are this run's."""
    callback = RecordTrials(directory, space, spec, title, total, experiment, show, baselines=baselines)
    callback.include = include
    callback.reuse = dict(reuse or {})
    callback.warm_keys = set(warm_keys or ())
    tuner = tune.Tuner(
        make_trainable(space, spec, reuse, runner),
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(FixedSearcher(configs), max_concurrent=experiment.max_concurrent),
            num_samples=len(configs),
            reuse_actors=True,
            trial_dirname_creator=trial_dirname,
        ),
        run_config=run_config(directory, run, callback, experiment),
    )
    grid = tuner.fit()
    return grid.num_terminated + grid.num_errors >= len(configs)


def make_scheduler(experiment: Any, finished: list[dict[str, Any]], clock_name: str = "") -> TrialScheduler | None:
    """The experiment's scheduler; ``moasha``'s rungs hold the curves of ``finished`` rows (a
    resumed search decides like the uninterrupted one). Rungs count epochs (``epoch``)."""
    kind = experiment.scheduler.kind
    if kind == "none":
        return None
    max_t = experiment.train_config().epochs
    if kind == "asha":
        return ASHAScheduler(
            time_attr="epoch",
            metric="val_acc",
            mode="max",
            max_t=max_t,
            grace_period=experiment.scheduler.grace_period,
            reduction_factor=experiment.scheduler.reduction_factor,
        )
    from snn_nas.search.scheduler import MOASHAScheduler

    history = [(str(row["trial_id"]), history_curve(row)) for row in finished]
    return MOASHAScheduler(
        experiment.metrics,
        experiment.modes,
        max_t=max_t,
        grace_period=experiment.scheduler.grace_period,
        reduction_factor=experiment.scheduler.reduction_factor,
        time_attr="epoch",
        history=[(tid, curve) for tid, curve in history if curve],
        clock_name=clock_name,
    )


def history_curve(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-epoch values of a finished row, with its constant objectives (params, T) filled in."""
    constant = {k: row.get(k) for k in ("params", "time_steps", "macs_per_step") if row.get(k) is not None}
    return [{**constant, **point} for point in parse_curve(row.get("curve"))]


def first_trials(experiment: Any, directory: Path, space: Any, spec: Any, show: bool) -> None:
    """Enqueue the warm-start designs, then the pre-screen's pick, into a fresh samplers' study."""
    study = open_sampler_study(directory, experiment)
    if study.get_trials(deepcopy=False):
        return  # a restart: what was enqueued is there (handed out or still waiting)
    from snn_nas.search.prescreen import prescreen_samples, warm_start_samples

    image = None
    if experiment.warm_mutants:  # mutants are priced at the size and channels the trials train at
        from snn_nas.training import load_config_data

        data = load_config_data(spec.config())
        image = (data.image_size, data.in_chans)
    warm = warm_start_samples(experiment, space, image)
    enqueue_first(study, [sample for _, sample in warm], "warm_start")
    if show and warm:
        print(f"warm start: {', '.join(name for name, _ in warm)} first", file=sys.stderr, flush=True)
    if experiment.prescreen.enabled:
        picked = prescreen_samples(experiment, space, spec, exclude={space.decode(s).key() for _, s in warm}, show=show)
        enqueue_first(study, picked, "prescreen")


def search_row(row: Mapping[str, Any]) -> bool:
    return not row.get("baseline")


def run_sampled(
    experiment: Any,
    directory: Path,
    space: Any,
    spec: Any,
    resume: bool,
    show: bool,
    *,
    run: str = SEARCH_RUN,
    include: Callable[[Mapping[str, Any]], bool] = search_row,
    runner: Runner | None = None,
) -> bool:
    """Run (or resume) the sampled trials; True when every trial finished. ``run``: the Ray
    experiment's folder under ``ray/``; ``include``: which table rows are this run's trials
    (a one-shot search's first stage runs here too, ``snn_nas.search.oneshot``); ``runner``:
    what a trial runs (default ``snn_nas.search.trial.run_trial``)."""
    from snn_nas.search.trial import reusable_baselines, seen_keys

    stored = ResultStore(directory).rows()
    finished = {r["trial_id"]: r for r in stored if include(r)}
    reuse = reusable_baselines(stored, spec)
    remaining = experiment.trials - len(finished)
    if remaining <= 0:
        return True
    clock_name = str(directory)
    callback = RecordTrials(
        directory, space, spec, experiment.name, experiment.trials, experiment, show, baselines=False
    )
    callback.reuse = reuse
    callback.include = include
    if resume:  # trials the samplers were told were running died with the driver
        close_sampler_study(directory, experiment.name)
    first_trials(experiment, directory, space, spec, show)
    searcher = SnnOptunaSearch(
        space=space.suggest,
        decode=space.decode,
        seen=seen_keys(list(finished.values())),
        results_dir=str(directory),
        metric=experiment.metrics,
        mode=experiment.modes,
        sampler=make_sampler(experiment),
        storage=sampler_storage(directory),
        study_name=sampler_study_name(directory, experiment.name),
        constraints=experiment.constraints,
        random_seed=experiment.seed,
        clock_name=clock_name,
    )
    tuner = tune.Tuner(
        make_trainable(space, spec, reuse, runner),
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=experiment.max_concurrent),
            scheduler=make_scheduler(experiment, list(finished.values()), clock_name),
            num_samples=remaining,
            reuse_actors=True,
            trial_dirname_creator=trial_dirname,
        ),
        run_config=run_config(directory, run, callback, experiment),
    )
    grid = tuner.fit()
    from snn_nas.search.samplers import flush_journals

    flush_journals()
    recorded = [r for r in ResultStore(directory).rows() if include(r)]
    return grid.num_terminated + grid.num_errors == len(grid) and len(recorded) >= experiment.trials
