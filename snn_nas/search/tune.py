"""Ray Tune runs the trials, Optuna samples them: the only module of snn-nas importing ray or optuna.

The folder a search writes is described in ``snn_nas.search.layout``.

How Optuna stays consistent: trials never raise for a bad candidate (``run_trial`` reports a
final record with a status). The searcher, a thin subclass of Ray's ``OptunaSearch``, tells
Optuna COMPLETE with the objective values for ``ok`` trials, PRUNED for trials stopped by ASHA
(their accuracy is of a lower fidelity) and FAIL for ``failed``, ``diverged`` and ``invalid``
trials and for trials whose Ray worker died beyond ``max_failures`` retries, so samplers learn
only from complete evaluations. Constraint violations are set on the Optuna trial
(``Trial.set_constraint``) where the samplers read them. An architecture is trained once: a
draw that decodes to an already suggested key is told to Optuna at once and drawn again.

How a killed search resumes: the driver writes every finished trial to the table at once.
``--resume`` restores Ray's experiment (trial states and the searcher with its Optuna trials);
trials Ray's last snapshot still shows running but the table holds are *replayed*: their
trainable reports the stored record instead of training again. Unfinished trials start over.
Without a Ray snapshot (killed within the first seconds) a new Ray run draws the missing trials
from the same Optuna study.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import optuna
import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from snn_nas.search.experiment import Experiment, ExperimentError
from snn_nas.search.layout import (
    BASELINE_RUN,
    RAY_DIR,
    SEARCH_RUN,
    STUDY_FILE,
    SearchError,
    SearchRun,
    check_address,
    prepare_directory,
    search_directory,
)
from snn_nas.search.progress import SearchProgress
from snn_nas.search.results import ResultStore
from snn_nas.search.trial import (
    RECORD_KEYS,
    TrialSpec,
    error_line,
    finite_or_none,
    make_row,
    run_trial,
    seen_keys,
    violations,
)

logger = logging.getLogger(__name__)

BASELINE_PARAM = "_baseline"
DUPLICATE_RETRIES = 50
PENALTY_COST = 1e12  # cost told to Optuna for an invalid architecture before any trial completed
RANDOM_AFTER_DUPLICATES = 3  # after this many duplicate draws of the sampler, draw at random
LOCAL_OBJECT_STORE_BYTES = 256 * 1024**2


# ---------------------------------------------------------------------- Optuna side
def make_sampler(experiment: Experiment) -> optuna.samplers.BaseSampler:
    """The Optuna sampler of the experiment, seeded (constraints reach it through the trials)."""
    options: dict[str, Any] = dict(experiment.sampler_options)
    if experiment.sampler == "nsga2":
        options.setdefault("population_size", max(4, min(50, experiment.trials // 4)))
    classes = {
        "tpe": optuna.samplers.TPESampler,
        "nsga2": optuna.samplers.NSGAIISampler,
        "gp": optuna.samplers.GPSampler,
        "random": optuna.samplers.RandomSampler,
    }
    try:
        with warnings_quiet():
            return classes[experiment.sampler](seed=experiment.seed, **options)
    except (TypeError, ValueError) as exc:
        raise ExperimentError(
            f"{experiment.source or experiment.name}: sampler_options: "
            f"not accepted by the {experiment.sampler} sampler ({exc})"
        ) from None


@contextlib.contextmanager
def warnings_quiet() -> Iterator[None]:
    """Silence Optuna's experimental-feature warnings and Ray's define-by-run timing warning
    (the space's ``suggest`` talks to the study's sqlite storage once per label)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", message="Define-by-run function passed")
        warnings.filterwarnings("ignore", message="All-NaN slice encountered")  # ASHA on a failed trial
        yield


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Set environment variables for the duration of the block (Ray reads some at call time)."""
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class SnnOptunaSearch(OptunaSearch):
    """Ray's ``OptunaSearch`` that tells Optuna each trial's state from its ``status``.

    ``ok`` -> COMPLETE with the objectives (FAIL when one is not finite); ``running`` (stopped by
    the scheduler) -> PRUNED; ``invalid`` (ruled out by the space or the constraints, not trained)
    -> COMPLETE with penalty values worse than every result so far, so that the samplers learn to
    avoid it; anything else, or a trial that errored -> FAIL. The trial's key,
    status, error, costs and constraint violations are stored as user attributes.
    """

    def __init__(
        self,
        *args: Any,
        decode: Any = None,
        constraints: tuple[tuple[str, float], ...] = (),
        seen: set[str] | None = None,
        results_dir: str = "",
        random_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        self._decode = decode
        self._results_dir = results_dir
        self._constraint_limits = tuple(constraints)
        self._seen: set[str] = set(seen or ())  # keys of the architectures suggested so far
        self._worst: dict[str, float] = {}  # worst objective values of completed trials
        self._seed_base = int(random_seed)  # seeds the random draws that replace repeated duplicates
        super().__init__(*args, **kwargs)

    def restore(self, checkpoint_path: str) -> None:
        """Ray's snapshot of the searcher, plus the keys of every trial in the result table (some
        may have finished after the snapshot), so that a resumed search draws no duplicate."""
        super().restore(checkpoint_path)
        if self._results_dir:
            self._seen |= seen_keys(ResultStore(self._results_dir).rows())

    def _key(self, config: dict) -> str | None:
        if self._decode is None:
            return None
        try:
            return self._decode(config).key()
        except Exception:  # invalid samples are evaluated (quickly) and recorded as invalid
            return None

    def suggest(self, trial_id: str) -> dict | None:
        """A sample whose architecture has not been suggested before (up to ``DUPLICATE_RETRIES``
        draws). A duplicate draw is told to Optuna at once as FAIL (user attribute
        ``duplicate_of``), so the samplers learn from each architecture once."""
        config = super().suggest(trial_id)
        for attempt in range(DUPLICATE_RETRIES):
            key = self._key(config) if config is not None else None
            if key is None or key not in self._seen:
                break
            ot_trial = self._ot_trials.pop(trial_id)
            try:
                ot_trial.set_user_attr("duplicate_of", key)
                self._ot_study.tell(ot_trial, None, state=optuna.trial.TrialState.FAIL)
            except Exception as exc:
                logger.debug("optuna: could not tell duplicate draw: %s", exc)
            if attempt < RANDOM_AFTER_DUPLICATES:
                config = super().suggest(trial_id)
            else:  # the model sampler keeps proposing known architectures: explore at random instead
                config = self._suggest_at_random(trial_id, attempt)
        key = self._key(config) if config is not None else None
        if key is not None:
            self._seen.add(key)
        return config

    def _worst_seen(self, values: list[float]) -> None:
        for metric, mode, value in zip(self._metric, self._mode, values, strict=True):
            worst = self._worst.get(metric, value)
            self._worst[metric] = max(worst, value) if mode == "min" else min(worst, value)

    def _penalty_values(self) -> list[float]:
        """Objective values worse than every completed trial's (accuracy 0, costs 10x + 1)."""
        values = []
        for metric, mode in zip(self._metric, self._mode, strict=True):
            worst = self._worst.get(metric)
            if mode == "max":
                values.append(0.0 if worst is None else min(0.0, worst))
            else:
                values.append(PENALTY_COST if worst is None else 10.0 * worst + 1.0)
        return values

    def _suggest_at_random(self, trial_id: str, attempt: int) -> dict | None:
        sampler = self._ot_study.sampler
        seed = (self._seed_base + len(self._ot_study.trials) * 1009 + attempt) % 2**32
        self._ot_study.sampler = optuna.samplers.RandomSampler(seed=seed)
        try:
            return super().suggest(trial_id)
        finally:
            self._ot_study.sampler = sampler

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        ot_trial = self._ot_trials[trial_id]
        result = result or {}
        status = result.get("status")
        state, values = optuna.trial.TrialState.FAIL, None
        if not error and status == "ok":
            values = [finite_or_none(result.get(m)) for m in self._metric]
            if all(v is not None for v in values):
                state = optuna.trial.TrialState.COMPLETE
            else:
                values = None
        elif not error and status in ("running", "stopped"):
            state = optuna.trial.TrialState.PRUNED
        elif not error and status == "invalid":
            # An architecture the space or the constraints rule out: told as a worst-case result so
            # that the sampler learns to avoid that region (a FAIL would be ignored by TPE and GP).
            state, values = optuna.trial.TrialState.COMPLETE, self._penalty_values()
        if state == optuna.trial.TrialState.COMPLETE and status == "ok":
            self._worst_seen(values)
        attrs = {
            "ray_trial_id": trial_id,
            "status": "failed" if error else ("stopped" if status == "running" else status),
            "key": result.get("key"),
            "error": result.get("error"),
        }
        for metric in ("sops", "macs", "energy_uj", "params", "firing_rate", "epochs"):
            attrs[metric] = finite_or_none(result.get(metric))
        if self._constraint_limits:
            attrs["constraints"] = violations(result, self._constraint_limits)
        try:
            for name, value in attrs.items():
                if value is not None:
                    ot_trial.set_user_attr(name, value)
            if self._constraint_limits:
                for (metric, _), value in zip(self._constraint_limits, attrs["constraints"], strict=True):
                    ot_trial.set_constraint(f"max_{metric}", value)
            self._ot_study.tell(ot_trial, values, state=state)
        except Exception as exc:  # e.g. the trial was told before the search was killed
            logger.debug("optuna: could not tell trial %s: %s", trial_id, exc)
        self._completed_trials.add(trial_id)


# ---------------------------------------------------------------------- the trainable
def _node_name() -> str:
    try:
        return f"{ray.util.get_node_ip_address()}/{ray.get_runtime_context().get_node_id()[:8]}"
    except Exception:
        return ""


def search_trainable(config: dict, *, space: Any, spec: TrialSpec, replay: Mapping[str, dict]) -> None:
    """Ray function trainable: one trial (or the replay of a trial finished before a resume)."""
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
    run_trial(sample, space=space, spec=spec, baseline=baseline, report=lambda rec: tune.report({**rec, "node": node}))


def _trial_dirname(trial: Any) -> str:
    return f"trial_{trial.trial_id}"


def _trainable(space: Any, spec: TrialSpec, replay: Mapping[str, dict]) -> Any:
    trainable = tune.with_parameters(search_trainable, space=space, spec=spec, replay=dict(replay))
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
        self._store: ResultStore | None = None
        self._progress: SearchProgress | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_store": None, "_progress": None}

    def setup(self, **info: Any) -> None:
        self._store = ResultStore(self.directory)
        self._progress = SearchProgress(
            self.title, self.total, self.metrics, self.modes, enabled=self.show, baselines=self.baselines
        )
        self._progress.add_existing([r for r in self._store.rows() if bool(r.get("baseline")) == self.baselines])
        self._progress.__enter__()

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
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
        if result.get("replayed") and trial.trial_id in self._store:
            row = self._store.get(trial.trial_id)
        else:
            sample = dict(trial.config or {})
            baseline = str(sample.pop(BASELINE_PARAM, "") or "")
            row = make_row(
                trial.trial_id, sample, result, space=self.space, spec=self.spec, baseline=baseline, error=error
            )
            row = self._store.record(row)
        if self._progress is not None and row is not None:
            self._progress.trial_finished(row)


# ---------------------------------------------------------------------- Ray session
@contextlib.contextmanager
def ray_session(address: str | None, num_cpus: int | None, verbose: bool) -> Iterator[None]:
    """Connect to the cluster at ``address``, or start a local Ray instance; shut down what we started.

    Ray's usage statistics stay off unless ``RAY_USAGE_STATS_ENABLED`` says otherwise.
    """
    if ray.is_initialized():
        yield
        return
    if address:
        check_address(address)
    kwargs: dict[str, Any] = dict(
        include_dashboard=False, log_to_driver=verbose, logging_level=logging.INFO if verbose else logging.ERROR
    )
    if not address:
        cpus = num_cpus or os.cpu_count() or 1
        kwargs.update(address="local", num_cpus=cpus, object_store_memory=LOCAL_OBJECT_STORE_BYTES)
    with _environment(RAY_USAGE_STATS_ENABLED=os.environ.get("RAY_USAGE_STATS_ENABLED", "0")):
        try:
            ray.init(**({"address": address} if address else {}), **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {address!r}" if address else "a local Ray instance"
            raise SearchError(f"cannot start or reach {where}: {exc}") from None
        try:
            yield
        finally:
            ray.shutdown()


@contextlib.contextmanager
def _quiet(verbose: bool) -> Iterator[None]:
    """Ray's and Optuna's loggers at ERROR and Ray's own console reporter off, unless ``verbose``."""
    names = ("ray.tune", "ray.train", "ray.air", "optuna")
    previous = {name: logging.getLogger(name).level for name in names}
    if not verbose:
        for name in names:
            logging.getLogger(name).setLevel(logging.ERROR)
    try:  # the legacy reporter at verbose=0 prints nothing; SearchProgress draws the progress
        with warnings_quiet(), _environment(**({} if verbose else {"RAY_AIR_NEW_OUTPUT": "0"})):
            yield
    finally:
        for name, level in previous.items():
            logging.getLogger(name).setLevel(level)


def _check_resources(experiment: Experiment) -> None:
    resources = ray.cluster_resources()
    cpus, gpus = float(resources.get("CPU", 0)), float(resources.get("GPU", 0))
    if experiment.resources.cpus > cpus:
        raise SearchError(
            f"resources.cpus: a trial asks for {experiment.resources.cpus:g} CPUs; the Ray cluster has {cpus:g}"
        )
    if experiment.resources.gpus > gpus:
        raise SearchError(
            f"resources.gpus: a trial asks for {experiment.resources.gpus:g} GPUs; the Ray cluster has {gpus:g} "
            "(set resources.gpus to 0 to search on CPUs)"
        )


# ---------------------------------------------------------------------- the search
def _study_storage(directory: Path) -> optuna.storages.RDBStorage:
    return optuna.storages.RDBStorage(
        f"sqlite:///{directory / STUDY_FILE}", engine_kwargs={"connect_args": {"timeout": 60}}
    )


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
    tuner = tune.Tuner(
        _trainable(space, spec, {}),
        param_space={BASELINE_PARAM: tune.grid_search(todo)},
        tune_config=tune.TuneConfig(
            num_samples=1,
            max_concurrent_trials=experiment.max_concurrent,
            reuse_actors=True,
            trial_dirname_creator=_trial_dirname,
        ),
        run_config=_run_config(directory, BASELINE_RUN, callback, experiment),
    )
    grid = tuner.fit()
    return grid.num_terminated + grid.num_errors >= len(todo)


def _scheduler(experiment: Experiment) -> ASHAScheduler | None:
    if experiment.scheduler.kind != "asha":
        return None
    return ASHAScheduler(
        time_attr="training_iteration",
        metric="val_acc",
        mode="max",
        max_t=experiment.train_config().epochs,
        grace_period=experiment.scheduler.grace_period,
        reduction_factor=experiment.scheduler.reduction_factor,
    )


def _run_trials(experiment: Experiment, directory: Path, space: Any, spec: TrialSpec, resume: bool, show: bool) -> bool:
    """Run (or resume) the sampled trials; True when every trial finished."""
    finished = {r["trial_id"]: r for r in ResultStore(directory).rows() if not r.get("baseline")}
    path = directory / RAY_DIR / SEARCH_RUN
    callback = _RecordTrials(
        directory, space, spec, experiment.name, experiment.trials, experiment, show, baselines=False
    )
    if resume and tune.Tuner.can_restore(str(path)) and any(path.glob("experiment_state-*.json")):
        replay = {tid: {k: v for k, v in row.items() if k in RECORD_KEYS} for tid, row in finished.items()}
        trainable = _trainable(space, spec, replay)
        tuner = tune.Tuner.restore(str(path), trainable=trainable, resume_unfinished=True, resume_errored=False)
    else:
        remaining = experiment.trials - len(finished)
        if remaining <= 0:
            return True
        searcher = SnnOptunaSearch(
            space=space.suggest,
            decode=space.decode,
            seen=seen_keys(list(finished.values())),
            results_dir=str(directory),
            metric=experiment.metrics,
            mode=experiment.modes,
            sampler=make_sampler(experiment),
            storage=_study_storage(directory),
            study_name=experiment.name,
            constraints=experiment.constraints,
            random_seed=experiment.seed,
        )
        tuner = tune.Tuner(
            _trainable(space, spec, {}),
            tune_config=tune.TuneConfig(
                search_alg=ConcurrencyLimiter(searcher, max_concurrent=experiment.max_concurrent),
                scheduler=_scheduler(experiment),
                num_samples=remaining,
                reuse_actors=True,
                trial_dirname_creator=_trial_dirname,
            ),
            run_config=_run_config(directory, SEARCH_RUN, callback, experiment),
        )
    grid = tuner.fit()
    recorded = [r for r in ResultStore(directory).rows() if not r.get("baseline")]
    return grid.num_terminated + grid.num_errors == len(grid) and len(recorded) >= experiment.trials


def _close_study(directory: Path, name: str) -> None:
    """After a complete search, Optuna trials still RUNNING were orphaned by a kill: mark them FAIL."""
    with contextlib.suppress(KeyError):
        study = optuna.load_study(study_name=name, storage=_study_storage(directory))
        for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            with contextlib.suppress(Exception):
                study.tell(trial.number, state=optuna.trial.TrialState.FAIL)


def run_search(
    experiment: Experiment,
    *,
    results_dir: str | Path = "results",
    address: str | None = None,
    resume: bool = False,
    baselines: bool = False,
    progress: bool = True,
    num_cpus: int | None = None,
    verbose: bool = False,
    space: Any = None,
) -> SearchRun:
    """Run ``experiment`` with Ray Tune and Optuna; rows go to ``<results_dir>/<name>/``.

    ``address``: an existing Ray cluster (``"auto"``, ``"HOST:6379"``, ``"ray://HOST:10001"``);
    None starts a local Ray instance with ``num_cpus`` (default: all). ``resume``: continue the
    search in that folder (finished trials are kept and not run again). ``baselines``: also
    evaluate the experiment's seed presets at the same fidelity (rows with ``baseline`` set).
    ``space``: a ``SearchSpace`` to use instead of loading ``experiment.space`` (pickled to the
    workers). Returns a ``SearchRun``; ``complete`` is False when the search was interrupted.
    """
    started = time.perf_counter()
    directory = search_directory(results_dir, experiment.name)
    if space is None:
        from snn_nas.space import load_space

        space = load_space(experiment.space)
    spec = TrialSpec.from_experiment(experiment)
    make_sampler(experiment)  # bad sampler options and unknown presets fail before Ray starts
    if baselines:
        from snn_nas.presets import get_preset

        for name in experiment.baselines:
            get_preset(name)
    prepare_directory(experiment, directory, resume)
    with _quiet(verbose), ray_session(address, num_cpus, verbose):
        _check_resources(experiment)
        complete = True
        if baselines and experiment.baselines:
            complete = _run_baselines(experiment, directory, space, spec, progress)
        if complete:  # not after Ctrl-C during the baselines
            complete = _run_trials(experiment, directory, space, spec, resume, progress)
        if complete:
            _close_study(directory, experiment.name)
    table = ResultStore(directory).frame()
    return SearchRun(directory=directory, table=table, complete=complete, wall_s=time.perf_counter() - started)
