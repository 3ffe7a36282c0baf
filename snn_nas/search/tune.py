"""The per-trial search, and ``run_search``: the entry point of every search strategy.

``run_search`` checks what would fail every trial (the data, the image size, the sampler's
options, unknown presets), connects to Ray (a local instance, or a cluster at ``address``: every
node must hold a trial and see the results folder, ``snn_nas.search.cluster`` and
``snn_nas.search.storage``), then runs the strategy on the driver (``snn_nas.search.driver``):

* the experiment's baselines (unless ``baselines=False``) are evaluated at the search's fidelity
  (``driver.run_fixed``);
* then the sampled trials (``driver.run_sampled``), or for a one-shot experiment the two-stage
  search (``snn_nas.search.oneshot.run_two_stages``).

Before the sampler's own draws, the samplers' study is seeded with enqueued trials, handed out
first and trained as normal trials: the seed designs that are members of the space
(``warm_start``), then the best of a training-free pre-screen (``prescreen``).

A baseline and a search trial of the same architecture (the warm-start trial of a seed design)
are trained once: the search trial reuses the baseline's result (``reuse_records``: its curve
reported epoch by epoch, so the scheduler sees the rungs), counts in the trial budget, and its
row names the baseline trial in ``reused_from``.

The folder a search writes is described in ``snn_nas.search.layout``; what the samplers' study
and the user's study hold, and why they are two, in ``snn_nas.search.searcher`` and
``snn_nas.search.study``; how a killed search resumes in ``snn_nas.search.driver.run``.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from snn_nas.search.clock import reset_clock
from snn_nas.search.cluster import check_gpu_share, check_resources, environment, gpus_for_trials, ray_session
from snn_nas.search.driver import BASELINE_PARAM, run_fixed, run_sampled
from snn_nas.search.driver.callback import open_user_study
from snn_nas.search.driver.run import Runner
from snn_nas.search.experiment import Experiment
from snn_nas.search.layout import (
    BASELINE_RUN,
    SearchRun,
    prepare_directory,
    ran_without_baselines,
    search_directory,
    stored_name,
)
from snn_nas.search.preflight import check_before_ray, check_presets
from snn_nas.search.prescreen import warm_start_keys
from snn_nas.search.results import ResultStore
from snn_nas.search.searcher import check_sampler_study, close_sampler_study, make_sampler, warnings_quiet
from snn_nas.search.storage import check_storage
from snn_nas.search.study import check_user_study, close_user_study
from snn_nas.search.trial import TrialSpec

logger = logging.getLogger(__name__)


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


def run_baselines(
    experiment: Experiment, directory: Path, space: Any, spec: TrialSpec, show: bool, runner: Runner | None = None
) -> bool:
    """Evaluate the presets not yet in the table; True when all of them finished."""
    done = {r["baseline"] for r in ResultStore(directory).rows() if r.get("baseline")}
    todo = [name for name in experiment.baselines if name not in done]
    if not todo:
        return True
    return run_fixed(
        experiment,
        directory,
        space,
        spec,
        [{BASELINE_PARAM: name} for name in todo],
        run=BASELINE_RUN,
        title=f"{experiment.name} baselines",
        total=len(experiment.baselines),
        show=show,
        baselines=True,
        warm_keys=warm_start_keys(experiment, space),
        runner=runner,
    )


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
    runner: Runner | None = None,
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
    local instance without GPUs they run on the CPU after one warning. ``runner``: what a trial
    runs instead of ``snn_nas.search.trial.run_trial`` (same signature; e.g. the stand-in trials
    of ``snn_nas.search.driver.standin`` that measure the driver without training).
    On a cluster (``address``), before any trial: one trial must fit on one node
    (``check_resources``) and every node must see and write the results folder
    (``check_storage``); else ``SearchError`` naming the resource or the node.
    """
    started = time.perf_counter()
    directory = search_directory(results_dir, experiment.name)
    if resume:  # a copied or renamed folder: its studies keep the name the search started with
        experiment = stored_name(experiment, directory)
    if space is None:
        from snn_nas.space import load_space

        space = load_space(experiment.space)
    spec = TrialSpec.from_experiment(experiment)
    make_sampler(experiment)  # bad sampler options fail before Ray starts
    check_presets(experiment, space, baselines=baselines)  # unknown presets, warm starts outside the space
    check_before_ray(experiment, space, address=address)  # data, image size: what would fail every trial
    share_note = check_gpu_share(spec.gpus)  # e.g. 0.3: no whole number of trials per GPU
    if share_note:
        logger.warning("warning: %s", share_note)
    prepare_directory(experiment, directory, resume, space)
    if resume:
        check_sampler_study(directory, experiment.name)
        check_user_study(directory)
    if resume and baselines and experiment.baselines and ran_without_baselines(directory):
        baselines = False
        if progress:
            print("resume: the search was started with --no-baselines; the baselines stay out", file=sys.stderr)
    with _quiet(verbose), ray_session(address, num_cpus, verbose, num_gpus=num_gpus):
        gpus, fallback = gpus_for_trials(spec.gpus, address)
        if fallback:
            logger.warning("warning: %s", fallback)
            spec = replace(spec, gpus=gpus)
        check_resources(experiment, gpus)  # a trial fits on one node
        if address is not None:  # a local Ray started here shares this machine's disk
            checked = check_storage(directory)
            logger.info("storage: %d nodes see %s (%.1f s)", checked.nodes, checked.directory, checked.seconds)
        reset_clock(str(directory))
        complete = True
        if baselines and experiment.baselines:
            complete = run_baselines(experiment, directory, space, spec, progress, runner)
        if complete and experiment.oneshot is not None:  # supernet, stage 1 on it, stage 2 standalone
            from snn_nas.search.oneshot import run_two_stages

            complete = run_two_stages(experiment, directory, space, spec, resume, progress)
            if complete:
                close_sampler_study(directory, f"{experiment.name}.stage1")
        elif complete:  # not after Ctrl-C during the baselines
            complete = run_sampled(experiment, directory, space, spec, resume, progress, runner=runner)
        if complete:
            close_sampler_study(directory, experiment.name)
            rows = ResultStore(directory).rows()  # a study moved away is rebuilt even when no trial was left
            open_user_study(directory, experiment.name, experiment.metrics, experiment.modes, space,
                            experiment.constraints, rows)  # fmt: skip
            close_user_study(directory, experiment.name, rows)
    table = ResultStore(directory).frame()
    return SearchRun(directory=directory, table=table, complete=complete, wall_s=time.perf_counter() - started)
