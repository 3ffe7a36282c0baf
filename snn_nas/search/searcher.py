"""The samplers' side of a search: Optuna samplers behind Ray's ``OptunaSearch``, and their study.

Two Optuna studies sit beside every search (``snn_nas.search.layout``):

* ``samplers.journal``, the **samplers' study** (this module; an append-only Optuna journal,
  ``snn_nas.search.samplers``; ``samplers.sqlite3`` in searches from before issue 26 and
  ``sampler.db`` before issue 16), named ``<name> (samplers' working study: placeholder values, not results)``
  and kept out of ``optuna-dashboard <dir>/*.db``. It is what TPE, NSGA-II and GP learn
  from, so it holds what they need and a person should not read as results: an architecture
  ruled out by the space or the constraints (status ``invalid``) or one that trained but never
  fired (``silent``) is told as COMPLETE with *placeholder* values worse than every result so
  far (a FAIL would be ignored by TPE and GP, which would then keep proposing the region), and
  a draw of an architecture already suggested is told as FAIL (``duplicate_of``) and drawn
  again, so that no architecture is trained twice. ``ok`` trials are COMPLETE with their
  objective values; trials stopped early by the scheduler are PRUNED (their values are of a
  lower fidelity); ``failed`` and ``diverged`` trials are FAIL. Enqueued trials (warm start,
  pre-screening) wait here until the sampler hands them out, first in, first out.
* ``optuna.db``, the **user's study** (``snn_nas.search.study``): one trial per trained or
  ruled-out architecture, real values only, metric names, constraints in the form
  optuna-dashboard shows.

Why not one study: placeholders on COMPLETE trials and duplicate FAILs are the price of a sampler
that avoids invalid regions and never retrains an architecture; a user opening the study in
optuna-dashboard must not pay it.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import optuna
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from snn_nas.search.experiment import Experiment, ExperimentError
from snn_nas.search.layout import LEGACY_SAMPLER_STUDY_FILE, SAMPLER_STUDY_FILE, SQLITE_SAMPLER_STUDY_FILE
from snn_nas.search.results import ResultStore
from snn_nas.search.samplers import ELITE_SIZE
from snn_nas.search.trial import finite_or_none, seen_keys, violations

logger = logging.getLogger(__name__)

DUPLICATE_RETRIES = 50
PENALTY_COST = 1e12  # cost told to the samplers for a ruled-out architecture before any trial completed
RANDOM_AFTER_DUPLICATES = 0
"""TPE redraws after a duplicate draw before drawing at random. Measured on the quick space
(``experiments/benchmarks/sampler_cost.py``, 300 trials): once TPE has ~100 results, 92 % of its
draws are architectures already drawn, and 92 % of its redraws too, at ~25 ms each; so a
duplicate is replaced by a random draw at once (about 40 ms per trial instead of 80 ms with one
redraw and ~190 ms with three, in CPU time at 600-700 trials)."""
RULED_OUT = ("invalid", "silent")  # told to the samplers as worst-case results


class PicklableNSGAII(optuna.samplers.NSGAIISampler):
    """Optuna's NSGA-II sampler, picklable: Optuna 5 gives it a ``threading.Lock``, and Ray Tune
    pickles its searcher (with the sampler) into the experiment state. The lock is dropped when
    pickled and a new one made when unpickled."""

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_thread_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        import threading

        self.__dict__.update(state)
        self._thread_lock = threading.Lock()


# sampler_options an experiment file may set, with the values each takes: (type, low, high);
# None: no bound. Options of a sampler's signature that are not here take Python objects
# (gamma, weights, crossover, independent_sampler...): a YAML file cannot give them.
BOOLEAN_OPTIONS = ("consider_prior", "consider_magic_clip", "consider_endpoints", "multivariate", "group",
                   "warn_independent_sampling", "constant_liar", "deterministic_objective")  # fmt: skip
OPTION_RULES: dict[str, tuple[type, float | None, float | None]] = {
    "n_startup_trials": (int, 0, None),
    "n_ei_candidates": (int, 1, None),
    "population_size": (int, 2, None),
    "max_history": (int, ELITE_SIZE, None),
    "prior_weight": (float, 0.0, None),
    "mutation_prob": (float, 0.0, 1.0),
    "crossover_prob": (float, 0.0, 1.0),
    "swapping_prob": (float, 0.0, 1.0),
    **dict.fromkeys(BOOLEAN_OPTIONS, (bool, None, None)),
}


def check_sampler_options(experiment: Experiment, cls: type) -> None:
    """Each of the experiment's ``sampler_options`` must be a keyword of the sampler ``cls`` and
    hold a value it can mean (``OPTION_RULES``); else an ``ExperimentError`` naming the file,
    the option and what it takes."""
    import inspect

    where = f"{experiment.source or experiment.name}: sampler_options"
    accepted: set[str] = set()
    for klass in cls.__mro__:  # BoundedTPESampler passes **kwargs on to Optuna's TPESampler
        if klass.__module__.startswith(("optuna", "snn_nas")) and "__init__" in vars(klass):
            params = inspect.signature(klass.__init__).parameters.values()
            accepted |= {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    accepted -= {"self", "seed", "constraints_func"}
    for name, value in experiment.sampler_options:
        if name not in accepted:
            raise ExperimentError(
                f"{where}: {name!r} is not an option of the {experiment.sampler} sampler; it takes "
                f"{', '.join(sorted(accepted)) or 'none'}"
            )
        if name not in OPTION_RULES:
            raise ExperimentError(f"{where}: {name} takes a Python object, which an experiment file cannot give")
        kind, low, high = OPTION_RULES[name]
        if name == "mutation_prob" and value is None:
            continue
        if kind is bool:
            if not isinstance(value, bool):
                raise ExperimentError(f"{where}: {name}: expected true or false, got {value!r}")
            continue
        wrong_type = isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int)
        outside = wrong_type or not math.isfinite(value) or value < (low or 0) or (high is not None and value > high)
        if outside:
            words = "a whole number" if kind is int else "a number"
            span = f">= {low:g}" if high is None else f"in [{low:g}, {high:g}]"
            raise ExperimentError(f"{where}: {name}: expected {words} {span}, got {value!r}")


def make_sampler(experiment: Experiment) -> optuna.samplers.BaseSampler:
    """The Optuna sampler of the experiment, seeded (constraints reach it through the trials)."""
    options: dict[str, Any] = dict(experiment.sampler_options)
    if experiment.sampler == "nsga2":
        options.setdefault("population_size", max(4, min(50, experiment.trials // 4)))
    from snn_nas.search.samplers import BoundedTPESampler

    classes = {
        "tpe": BoundedTPESampler,
        "nsga2": PicklableNSGAII,
        "gp": optuna.samplers.GPSampler,
        "random": optuna.samplers.RandomSampler,
    }
    check_sampler_options(experiment, classes[experiment.sampler])
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


SAMPLER_STUDY_SUFFIX = " (samplers' working study: placeholder values, not results)"


def sampler_path(directory: Path) -> Path:
    """The samplers' study file: ``samplers.journal`` (an Optuna journal,
    ``snn_nas.search.samplers``), or in a folder of an older search the SQLite file it has
    (``samplers.sqlite3``, or ``sampler.db`` from before issue 16; ``--resume`` reads it there)."""
    for name in (LEGACY_SAMPLER_STUDY_FILE, SQLITE_SAMPLER_STUDY_FILE):
        legacy = Path(directory) / name
        if legacy.is_file():
            return legacy
    return Path(directory) / SAMPLER_STUDY_FILE


def sampler_study_name(directory: Path, name: str) -> str:
    """The samplers' study name: says what it is (an older search's ``sampler.db`` keeps ``name``)."""
    return name if sampler_path(directory).name == LEGACY_SAMPLER_STUDY_FILE else name + SAMPLER_STUDY_SUFFIX


def sampler_storage(directory: Path) -> optuna.storages.BaseStorage:
    """The samplers' study storage: the buffered journal (one per file and process), or an older
    search's SQLite file."""
    path = sampler_path(directory)
    if path.name == SAMPLER_STUDY_FILE:
        from snn_nas.search.samplers import IndexedJournalStorage, journal_backend

        return IndexedJournalStorage(journal_backend(path))
    from snn_nas.search.samplers import sqlite_storage

    return sqlite_storage(path)


def open_sampler_study(directory: Path, experiment: Experiment) -> optuna.Study:
    """The samplers' study of the search in ``directory`` (created when missing), with the
    objectives' names."""
    with warnings_quiet():
        study = optuna.create_study(
            storage=sampler_storage(directory),
            study_name=sampler_study_name(directory, experiment.name),
            directions=["maximize" if mode == "max" else "minimize" for mode in experiment.modes],
            load_if_exists=True,
        )
        if study.metric_names is None:
            study.set_metric_names(list(experiment.metrics))
        return study


def check_sampler_study(directory: Path, name: str) -> None:
    """Before a resumed search starts Ray: the samplers' study must be a readable Optuna storage
    (a damaged file is a ``SearchError`` naming it and what to do, not an SQL traceback)."""
    from snn_nas.search.layout import SearchError

    path = sampler_path(directory)
    if not path.exists():
        return
    try:
        with warnings_quiet():
            storage = sampler_storage(directory)
            names = list(optuna.get_all_study_names(storage))
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise SearchError(
            f"{path}: the samplers' study of this search cannot be read ({type(exc).__name__}: {reason}); move the "
            "file away to resume with fresh samplers (finished trials are kept), or start a new search with --name"
        ) from None
    ours = {sampler_study_name(directory, n) for n in (name, f"{name}.stage1")}  # .stage1: a one-shot search
    if names and not ours & set(names):
        raise SearchError(f"{path}: holds no samplers' study of search {name!r} (it has {names[:3]})")


def enqueue_first(study: optuna.Study, samples: Iterable[Mapping[str, Any]], source: str) -> int:
    """Enqueue ``samples`` (flat ``{label: value}`` dicts) so that the sampler hands them out
    before drawing its own, in order; ``source`` (``warm_start``, ``prescreen``) is kept as a
    user attribute. Returns how many were enqueued."""
    count = 0
    with warnings_quiet():
        for sample in samples:
            study.enqueue_trial(dict(sample), user_attrs={"enqueued_by": source}, skip_if_exists=True)
            count += 1
    return count


class FixedSearcher(Searcher):
    """Hands out ``configs`` in order, then says it is finished: the seed presets
    (``{BASELINE_PARAM: name}``, so that baseline trials get trial ids of the same form as the
    sampled trials; Ray's grid search would name them ``<hash>_00000``) and a one-shot search's
    stage 2 (samples with their seeds)."""

    def __init__(self, configs: Iterable[Mapping[str, Any]]) -> None:
        super().__init__()
        self._todo = [dict(c) for c in configs]

    def suggest(self, trial_id: str) -> dict | None:
        return self._todo.pop(0) if self._todo else Searcher.FINISHED

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        pass


class SnnOptunaSearch(OptunaSearch):
    """Ray's ``OptunaSearch`` on the samplers' study (see the module docstring for what it tells).

    The trial's key, status, error, costs and constraint violations are stored as user
    attributes of the samplers' trial; constraint violations are set with
    ``Trial.set_constraint``, where the constrained samplers read them.
    """

    def __init__(
        self,
        *args: Any,
        decode: Any = None,
        constraints: tuple[tuple[str, float], ...] = (),
        seen: set[str] | None = None,
        results_dir: str = "",
        random_seed: int = 0,
        clock_name: str = "",
        **kwargs: Any,
    ) -> None:
        self._clock_name = clock_name  # the search's DriverClock (snn_nas.search.clock)
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
        draws). A duplicate draw is told to the samplers' study at once as FAIL (user attribute
        ``duplicate_of``), so the samplers learn from each architecture once."""
        from snn_nas.search.clock import clock

        with clock(self._clock_name or self._results_dir).part("suggest"):
            return self._suggest_new(trial_id)

    def _suggest_new(self, trial_id: str) -> dict | None:
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
        seed = (self._seed_base + len(self._ot_study.get_trials(deepcopy=False)) * 1009 + attempt) % 2**32
        self._ot_study.sampler = optuna.samplers.RandomSampler(seed=seed)
        try:
            return super().suggest(trial_id)
        finally:
            self._ot_study.sampler = sampler

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        from snn_nas.search.clock import clock

        with clock(self._clock_name or self._results_dir).part("suggest"):
            self._tell(trial_id, result, error)

    def _tell(self, trial_id: str, result: dict | None, error: bool) -> None:
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
        elif not error and status in RULED_OUT:
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


def close_sampler_study(directory: Path, name: str) -> None:
    """After a complete search, samplers' trials still RUNNING were orphaned by a kill: mark them
    FAIL (enqueued trials never handed out stay WAITING)."""
    with contextlib.suppress(KeyError):
        study = optuna.load_study(study_name=sampler_study_name(directory, name), storage=sampler_storage(directory))
        for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            with contextlib.suppress(Exception):
                study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
