"""The search folder ``<results-dir>/<name>/``: its files, and preparing it for a new or resumed run.

::

    experiment.yaml     the experiment as run (``--resume`` reads it back; ``pareto`` reads
                        its reference_point)
    trials.parquet      one row per finished trial (``snn_nas.search.results``)
    trials.jsonl        the journal of the same rows
    optuna.db           the Optuna study (sqlite): ``optuna-dashboard sqlite:///<dir>/optuna.db``
    ray/search/         Ray Tune's experiment directory (restored by ``--resume``)
    ray/baselines/      the seed presets' runs (``--baselines``)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snn_nas.errors import SnnNasError
from snn_nas.search.experiment import Experiment, load_experiment
from snn_nas.search.results import JOURNAL_FILE, TABLE_FILE

EXPERIMENT_FILE = "experiment.yaml"
STUDY_FILE = "optuna.db"
RAY_DIR = "ray"
SEARCH_RUN = "search"
BASELINE_RUN = "baselines"
RESUME_MUST_MATCH = (
    "space",
    "dataset",
    "fidelity",
    "objectives",
    "sampler",
    "seed",
    "trials",
    "constraints",
    "scheduler",
)


class SearchError(SnnNasError, ValueError):
    """A search that cannot start: a results folder in the way, nothing to resume, no cluster."""


@dataclass(frozen=True)
class SearchRun:
    """Outcome of ``run_search``: the search folder, its table (a DataFrame), whether every
    trial finished (False after Ctrl-C), and the wall time in seconds."""

    directory: Path
    table: Any
    complete: bool
    wall_s: float


def search_directory(results_dir: str | Path, name: str) -> Path:
    return Path(results_dir).expanduser().resolve() / name


def prepare_directory(experiment: Experiment, directory: Path, resume: bool) -> None:
    """Check that ``directory`` can hold a new search (or holds the one to resume); write
    ``experiment.yaml`` for a new one.

    A new search refuses a folder that already holds trials or a Ray experiment. A resumed one
    needs the stored experiment to agree with ``experiment`` on everything that defines the
    search (``RESUME_MUST_MATCH``).
    """
    saved = directory / EXPERIMENT_FILE
    if resume:
        if not saved.is_file():
            raise SearchError(f"{directory}: nothing to resume (no {EXPERIMENT_FILE}); run without --resume first")
        stored = load_experiment(saved)
        mismatched = [k for k in RESUME_MUST_MATCH if getattr(stored, k) != getattr(experiment, k)]
        if mismatched:
            raise SearchError(
                f"{directory}: --resume needs the experiment the search was started with; {mismatched} differ "
                f"(resume with 'snn-nas search --resume --name {directory.name}' to use the stored one)"
            )
        return
    taken = [p.name for p in (directory / TABLE_FILE, directory / JOURNAL_FILE, directory / RAY_DIR) if p.exists()]
    if taken:
        raise SearchError(
            f"{directory} already holds a search ({', '.join(taken)}); pass --resume to continue it, "
            "--name to start another one, or delete the folder"
        )
    directory.mkdir(parents=True, exist_ok=True)
    tmp = saved.with_suffix(".yaml.tmp")
    tmp.write_text(experiment.to_yaml())
    os.replace(tmp, saved)


def check_address(address: str, timeout_s: float = 10.0) -> None:
    """Fail fast (Ray itself retries for minutes) when a ``HOST:PORT`` address does not answer."""
    import socket

    host, sep, port = address.rpartition(":")
    if address.startswith(("ray://", "auto", "local")) or not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise SearchError(
            f"--address {address}: no Ray cluster answers there ({exc}); start one with 'ray start --head' "
            "or pass the address 'ray status' prints on the head node"
        ) from None
