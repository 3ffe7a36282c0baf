"""Ray Tune runs the trials, Optuna samples them: with ``cluster`` (the Ray session),
``searcher``, ``study`` and ``scheduler``, the only modules of snn-nas importing ray or optuna.

The folder a search writes is described in ``snn_nas.search.layout``; what the samplers' study
and the user's study hold, and why they are two, in ``snn_nas.search.searcher`` and
``snn_nas.search.study``.

Order of a search: the experiment's baselines (unless ``baselines=False``) are evaluated at the
search's fidelity; then the sampled trials run. Before the sampler's own draws, the samplers'
study is seeded with enqueued trials, handed out first and trained as normal trials: the seed
designs that are members of the space (``warm_start``), then the best of a training-free
pre-screen (``prescreen``, ``snn_nas.search.prescreen``).

A baseline and a search trial of the same architecture (the warm-start trial of a seed design)
are trained once: the search trial reuses the baseline's result (``reuse_records``: its curve
reported epoch by epoch, so the scheduler sees the rungs), counts in the trial budget, and its
row names the baseline trial in ``reused_from``. Baselines are handed out by a small searcher
(``searcher.PresetSearcher``), so that every trial id has one form.

How a killed search resumes: the driver writes every finished trial to the table at once.
``--resume`` restores Ray's experiment (trial states and the searcher with its Optuna trials);
trials Ray's last snapshot still shows running but the table holds are *replayed*: their
trainable reports the stored record instead of training again. Unfinished trials start over.
The scheduler's rungs are rebuilt from the ``curve`` column of the finished rows. Without a Ray
snapshot (killed within the first seconds) a new Ray run draws the missing trials from the same
samplers' study.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler, TrialScheduler
from ray.tune.search import ConcurrencyLimiter

from snn_nas.search.cluster import check_gpu_share, check_resources, environment, gpus_for_trials, ray_session
from snn_nas.search.experiment import Experiment
from snn_nas.search.layout import (
    BASELINE_RUN,
    RAY_DIR,
    SEARCH_RUN,
    SearchRun,
    prepare_directory,
    ran_without_baselines,
    search_directory,
)
from snn_nas.search.preflight import check_before_ray
from snn_nas.search.prescreen import warm_start_keys
from snn_nas.search.progress import SearchProgress
from snn_nas.search.results import ResultStore, parse_curve
from snn_nas.search.searcher import (
    PresetSearcher,
    SnnOptunaSearch,
    check_sampler_study,
    close_sampler_study,
    enqueue_first,
    make_sampler,
    open_sampler_study,
    sampler_storage,
    sampler_study_name,
    warnings_quiet,
)
from snn_nas.search.study import UserStudy, close_user_study
from snn_nas.search.trial import (
    RECORD_KEYS,
    TrialSpec,
    error_line,
    make_row,
    reusable_baselines,
    reuse_records,
    run_trial,
    seen_keys,
)

logger = logging.getLogger(__name__)

BASELINE_PARAM = "_baseline"
SEED_PARAM = "_seed"  # a trial's own training seed (stage 2 of a one-shot search)


# ---------------------------------------------------------------------- helpers
def _node_name() -> str:
    try:
        return f"{ray.util.get_node_ip_address()}/{ray.get_runtime_context().get_node_id()[:8]}"
    except Exception:
        return ""


def search_trainable(
    config: dict, *, space: Any, spec: TrialSpec, replay: Mapping[str, dict], reuse: Mapping[str, dict] | None = None
) -> None:
    """Ray function trainable: one trial (or the replay of a trial finished before a resume, or
    the reuse of a baseline's result for a search trial of the same architecture)."""
    import torch

    from snn_nas.perf import tune_cpu_allocator

    torch.set_num_threads(max(1, int(spec.cpus)))  # this worker process trains with its CPU share
    tune_cpu_allocator()  # keep activation buffers in the heap between steps (see snn_nas/perf.py)
    node = _node_name()
    trial_id = tune.get_context().get_trial_id()
    if trial_id in replay:
        tune.report({**replay[trial_id], "node": node, "replayed": True})
        return
    sample = dict(config)
    baseline = str(sample.pop(BASELINE_PARAM, "") or "")
    seed = sample.pop(SEED_PARAM, None)
    if seed is not None:  # a one-shot search's stage 2 trains some architectures with several seeds
        spec = spec.with_seed(int(seed))
    reused = reuse.get(_sample_key(space, sample) or "") if reuse and not baseline else None
    if reused is not None:  # the warm-start trial of a seed design trained as a baseline
        for record in reuse_records(reused):
            tune.report({**record, "node": node})
        return
    assigned = _gpu_assignment(spec.gpus)

    def report(rec: dict) -> None:
        device = f"{rec['device']}; {assigned}" if assigned and rec.get("device") else rec.get("device")
        tune.report({**rec, "node": node, "device": device})

    run_trial(sample, space=space, spec=spec, baseline=baseline, report=report)


def _gpu_assignment(gpus: float) -> str:
    """Ray's GPU ids for this worker and its ``CUDA_VISIBLE_DEVICES`` ("" when no GPU was asked for)."""
    if gpus <= 0:
        return ""
    ids = ",".join(str(i) for i in ray.get_gpu_ids()) or "none"
    return f"Ray GPU {ids}, CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}"


def _sample_key(space: Any, sample: Mapping[str, Any]) -> str | None:
    try:
        return space.decode(dict(sample)).key()
    except Exception:  # an invalid sample is evaluated (and recorded as invalid) by run_trial
        return None


def _trial_dirname(trial: Any) -> str:
    return f"trial_{trial.trial_id}"


def _trainable(space: Any, spec: TrialSpec, replay: Mapping[str, dict], reuse: Mapping[str, dict] | None = None) -> Any:
    trainable = tune.with_parameters(
        search_trainable, space=space, spec=spec, replay=dict(replay), reuse=dict(reuse or {})
    )
    return tune.with_resources(trainable, {"cpu": spec.cpus, "gpu": spec.gpus})


# ---------------------------------------------------------------------- the driver's callback
class _RecordTrials(tune.Callback):
    """Driver side: writes a row per finished trial and drives the terminal progress.

    Picklable (Ray stores it with the experiment): the store and the progress display are
    opened in ``setup`` and left out of the pickled state.
    """

    def __init__(self, directory: Path, space: Any, spec: TrialSpec, title: str, total: int,
                 experiment: Experiment, show: bool, baselines: bool) -> None:  # fmt: skip
        self.directory, self.space, self.spec, self.title, self.total = str(directory), space, spec, title, total
        self.metrics, self.modes, self.show, self.baselines = experiment.metrics, experiment.modes, show, baselines
        self.name, self.constraints = experiment.name, experiment.constraints
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
        self._store = ResultStore(self.directory)
        self._study = open_user_study(Path(self.directory), self.name, self.metrics, self.modes, self.space,
                                      self.constraints, self._store.rows())  # fmt: skip
        self._progress = SearchProgress(
            self.title, self.total, self.metrics, self.modes, enabled=self.show, baselines=self.baselines
        )
        rows = self._store.rows()
        ours = self.include or (lambda r: bool(r.get("baseline")) == self.baselines)
        self._progress.add_existing([r for r in rows if ours(r)])
        self._progress.add_existing([r for r in rows if not ours(r)], context=True)
        self._progress.__enter__()

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._started.setdefault(trial.trial_id, time.time())
        if self._study is not None and trial.trial_id not in self._study:
            sample = dict(trial.config or {})
            baseline = str(sample.pop(BASELINE_PARAM, "") or "")
            sample.pop(SEED_PARAM, None)
            if baseline or _sample_key(self.space, sample) not in self.reuse:  # a reuse is the baseline's trial
                try:
                    self._study.start(trial.trial_id, None if baseline else sample, self._started[trial.trial_id],
                                      baseline=baseline)  # fmt: skip
                except Exception as exc:
                    logger.warning("could not add trial %s to the Optuna study: %s", trial.trial_id, exc)
        if self._progress is not None:
            self._progress.trial_started(trial.trial_id)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if self._progress is not None and not result.get("replayed"):
            self._progress.trial_result(trial.trial_id, result)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._record(trial, error=None)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        text = None
        with contextlib.suppress(Exception):
            text = trial.get_error()
        self._record(trial, error=error_line(text))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)
            self._progress = None

    def _record(self, trial: Any, error: str | None) -> None:
        if self._store is None:  # pragma: no cover - Ray calls setup first
            self.setup()
        assert self._store is not None
        result = dict(trial.last_result or {})
        sample = dict(trial.config or {})
        baseline = str(sample.pop(BASELINE_PARAM, "") or "")
        seed = sample.pop(SEED_PARAM, None)
        spec = self.spec.with_seed(int(seed)) if seed is not None else self.spec
        if result.get("replayed") and trial.trial_id in self._store:
            row = self._store.get(trial.trial_id)
        else:
            row = make_row(trial.trial_id, sample, result, space=self.space, spec=spec, baseline=baseline, error=error)
            started = self._started.get(trial.trial_id)
            row = self._store.record({**row, "finished_at": time.time(), "started_at": started})
        if self._study is not None and row is not None:
            note = ""
            if baseline and str(row.get("key")) in self.warm_keys and reusable_baselines([row], self.spec):
                note = "also the search's warm-start trial: its result is reused there, not trained twice"
            try:
                self._study.add(row, None if baseline else sample, note=note)
            except Exception as exc:  # the table holds the row; the study is re-synced on resume
                logger.warning("could not add trial %s to the Optuna study: %s", trial.trial_id, exc)
        if self._progress is not None and row is not None:
            self._progress.trial_finished(row)


@contextlib.contextmanager
def _quiet(verbose: bool) -> Iterator[None]:
    """Ray's and Optuna's loggers at ERROR and Ray's own console reporter off, unless ``verbose``."""
    names = ("ray.tune", "ray.train", "ray.air", "optuna")
    previous = {name: logging.getLogger(name).level for name in names}
    if not verbose:
        for name in names:
            logging.getLogger(name).setLevel(logging.ERROR)
    try:  # the legacy reporter at verbose=0 prints nothing; SearchProgress draws the progress
        with warnings_quiet(), environment(**({} if verbose else {"RAY_AIR_NEW_OUTPUT": "0"})):
            yield
    finally:
        for name, level in previous.items():
            logging.getLogger(name).setLevel(level)


# ---------------------------------------------------------------------- the search
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


def _run_config(directory: Path, name: str, callback: _RecordTrials, experiment: Experiment) -> tune.RunConfig:
    return tune.RunConfig(
        name=name,
        storage_path=str(directory / RAY_DIR),
        failure_config=tune.FailureConfig(max_failures=experiment.max_failures),
        callbacks=[callback],
        verbose=0,
    )


def _run_baselines(experiment: Experiment, directory: Path, space: Any, spec: TrialSpec, show: bool) -> bool:
    """Evaluate the presets not yet in the table; True when all of them finished."""
    done = {r["baseline"] for r in ResultStore(directory).rows() if r.get("baseline")}
    todo = [name for name in experiment.baselines if name not in done]
    if not todo:
        return True
    title = f"{experiment.name} baselines"
    callback = _RecordTrials(directory, space, spec, title, len(experiment.baselines), experiment, show, baselines=True)
    callback.warm_keys = warm_start_keys(experiment, space)
    tuner = tune.Tuner(
        _trainable(space, spec, {}),
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(
                PresetSearcher(BASELINE_PARAM, todo), max_concurrent=experiment.max_concurrent
            ),
            num_samples=len(todo),
            reuse_actors=True,
            trial_dirname_creator=_trial_dirname,
        ),
        run_config=_run_config(directory, BASELINE_RUN, callback, experiment),
    )
    grid = tuner.fit()
    return grid.num_terminated + grid.num_errors >= len(todo)


def _scheduler(experiment: Experiment, finished: list[dict[str, Any]]) -> TrialScheduler | None:
    """The experiment's scheduler; ``moasha``'s rungs hold the curves of ``finished`` rows (a
    resumed search decides like the uninterrupted one). Rungs count epochs (``epoch``), which a
    replayed trial reports too."""
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

    history = [(str(row["trial_id"]), _history_curve(row)) for row in finished]
    return MOASHAScheduler(
        experiment.metrics,
        experiment.modes,
        max_t=max_t,
        grace_period=experiment.scheduler.grace_period,
        reduction_factor=experiment.scheduler.reduction_factor,
        time_attr="epoch",
        history=[(tid, curve) for tid, curve in history if curve],
    )


def _history_curve(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-epoch values of a finished row, with its constant objectives (params, T) filled in."""
    constant = {k: row.get(k) for k in ("params", "time_steps", "macs_per_step") if row.get(k) is not None}
    return [{**constant, **point} for point in parse_curve(row.get("curve"))]


def _first_trials(experiment: Experiment, directory: Path, space: Any, spec: TrialSpec, show: bool) -> None:
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


def _search_row(row: Mapping[str, Any]) -> bool:
    return not row.get("baseline")


def _run_trials(
    experiment: Experiment,
    directory: Path,
    space: Any,
    spec: TrialSpec,
    resume: bool,
    show: bool,
    *,
    run: str = SEARCH_RUN,
    include: Callable[[Mapping[str, Any]], bool] = _search_row,
) -> bool:
    """Run (or resume) the sampled trials; True when every trial finished. ``run``: the Ray
    experiment's folder under ``ray/``; ``include``: which table rows are this run's trials
    (a one-shot search's first stage runs here too, ``snn_nas.search.oneshot``)."""
    stored = ResultStore(directory).rows()
    finished = {r["trial_id"]: r for r in stored if include(r)}
    reuse = reusable_baselines(stored, spec)
    path = directory / RAY_DIR / run
    callback = _RecordTrials(
        directory, space, spec, experiment.name, experiment.trials, experiment, show, baselines=False
    )
    callback.reuse = reuse
    callback.include = include
    restored = resume and tune.Tuner.can_restore(str(path)) and any(path.glob("experiment_state-*.json"))
    if restored:
        replay = {tid: {k: v for k, v in row.items() if k in RECORD_KEYS} for tid, row in finished.items()}
        trainable = _trainable(space, spec, replay, reuse)
        tuner = tune.Tuner.restore(str(path), trainable=trainable, resume_unfinished=True, resume_errored=False)
        _reseed_scheduler(tuner, experiment, list(finished.values()))
    else:
        remaining = experiment.trials - len(finished)
        if remaining <= 0:
            return True
        _first_trials(experiment, directory, space, spec, show)
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
        )
        tuner = tune.Tuner(
            _trainable(space, spec, {}, reuse),
            tune_config=tune.TuneConfig(
                search_alg=ConcurrencyLimiter(searcher, max_concurrent=experiment.max_concurrent),
                scheduler=_scheduler(experiment, list(finished.values())),
                num_samples=remaining,
                reuse_actors=True,
                trial_dirname_creator=_trial_dirname,
            ),
            run_config=_run_config(directory, run, callback, experiment),
        )
    grid = tuner.fit()
    recorded = [r for r in ResultStore(directory).rows() if include(r)]
    finished_all = grid.num_terminated + grid.num_errors == len(grid)
    if finished_all and restored and len(recorded) < experiment.trials:
        # Ray finished every trial it knew, but the table is short (rows lost with a damaged journal
        # and table): draw the missing trials in a fresh run instead of reporting an interruption.
        return _run_trials(experiment, directory, space, spec, False, show, run=run, include=include)
    return finished_all and len(recorded) >= experiment.trials


def _reseed_scheduler(tuner: Any, experiment: Experiment, finished: list[dict[str, Any]]) -> None:
    """Ray restores the scheduler from its pickle at the start of the search: give it the rungs
    of the trials that finished since (from their curves)."""
    scheduler = _scheduler(experiment, finished)
    internal = getattr(tuner, "_local_tuner", None)
    config = getattr(internal, "_tune_config", None) if internal is not None else None
    if scheduler is not None and config is not None:
        config.scheduler = scheduler


def run_search(
    experiment: Experiment,
    *,
    results_dir: str | Path = "results",
    address: str | None = None,
    resume: bool = False,
    baselines: bool = True,
    progress: bool = True,
    num_cpus: int | None = None,
    verbose: bool = False,
    space: Any = None,
    num_gpus: int | None = None,
) -> SearchRun:
    """Run ``experiment`` with Ray Tune and Optuna; rows go to ``<results_dir>/<name>/``.

    ``address``: an existing Ray cluster (``"auto"``, ``"HOST:6379"``, ``"ray://HOST:10001"``);
    None starts a local Ray instance with ``num_cpus`` (default: all). ``resume``: continue the
    search in that folder (finished trials are kept and not run again). ``baselines``: evaluate
    the experiment's seed presets at the same fidelity first (rows with ``baseline`` set).
    ``space``: a ``SearchSpace`` to use instead of loading ``experiment.space`` (pickled to the
    workers). Returns a ``SearchRun``; ``complete`` is False when the search was interrupted.
    ``num_gpus``: GPUs of the local Ray instance (default: Ray's count; a number declares
    logical GPUs). Trials ask for ``resources.gpus`` each (``snn_nas.training.devices``); on a
    local instance without GPUs they run on the CPU after one warning.
    """
    started = time.perf_counter()
    directory = search_directory(results_dir, experiment.name)
    if space is None:
        from snn_nas.space import load_space

        space = load_space(experiment.space)
    spec = TrialSpec.from_experiment(experiment)
    make_sampler(experiment)  # bad sampler options and unknown presets fail before Ray starts
    from snn_nas.presets import get_preset

    warm = experiment.warm_start if isinstance(experiment.warm_start, tuple) else ()
    for name in (*(experiment.baselines if baselines else ()), *warm):
        get_preset(name)  # an unknown preset fails here, listing the known ones
    check_before_ray(experiment, space, address=address)  # data, image size: what would fail every trial
    share_note = check_gpu_share(spec.gpus)  # e.g. 0.3: no whole number of trials per GPU
    if share_note:
        logger.warning("warning: %s", share_note)
    prepare_directory(experiment, directory, resume, space)
    if resume:
        check_sampler_study(directory, experiment.name)
    from snn_nas.search.prescreen import warm_start_outside

    for name, reason in warm_start_outside(experiment, space):  # said before anything trains
        print(f"warm start: {name} skipped ({reason})", file=sys.stderr, flush=True)
    if resume and baselines and experiment.baselines and ran_without_baselines(directory):
        baselines = False
        if progress:
            print("resume: the search was started with --no-baselines; the baselines stay out", file=sys.stderr)
    with _quiet(verbose), ray_session(address, num_cpus, verbose, num_gpus=num_gpus):
        gpus, fallback = gpus_for_trials(spec.gpus, address)
        if fallback:
            logger.warning("warning: %s", fallback)
            spec = replace(spec, gpus=gpus)
        check_resources(experiment, gpus)
        complete = True
        if baselines and experiment.baselines:
            complete = _run_baselines(experiment, directory, space, spec, progress)
        if complete and experiment.oneshot is not None:  # supernet, stage 1 on it, stage 2 standalone
            from snn_nas.search.oneshot import run_two_stages

            complete = run_two_stages(experiment, directory, space, spec, resume, progress)
            if complete:
                close_sampler_study(directory, f"{experiment.name}.stage1")
        elif complete:  # not after Ctrl-C during the baselines
            complete = _run_trials(experiment, directory, space, spec, resume, progress)
        if complete:
            close_sampler_study(directory, experiment.name)
            close_user_study(directory, experiment.name, ResultStore(directory).rows())
    table = ResultStore(directory).frame()
    return SearchRun(directory=directory, table=table, complete=complete, wall_s=time.perf_counter() - started)
