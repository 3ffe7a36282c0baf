"""The search folder ``<results-dir>/<name>/``: its files, and preparing it for a new or resumed run.

::

    experiment.yaml     the experiment as run (``--resume`` reads it back; ``pareto`` reads
                        its reference_point)
    fingerprint.json    sha256 and content of the resolved space and of the trials' fidelity
                        (``snn_nas.search.fingerprint``): ``--resume`` refuses a changed one
    trials.parquet      one row per finished trial (``snn_nas.search.results``)
    trials.jsonl        the journal of the same rows
    optuna.db           the user's Optuna study (sqlite): ``optuna-dashboard sqlite:///<dir>/optuna.db``
                        (``snn_nas.search.study``: real values only, one trial per row)
    samplers.journal    the samplers' own study, an Optuna journal (``snn_nas.search.searcher``,
                        ``snn_nas.search.samplers``; ``samplers.sqlite3`` before issue 26): placeholders for
                        ruled-out draws, duplicate draws, enqueued warm-start/pre-screen trials),
                        study name ``<name> (samplers' working study: placeholder values, not
                        results)``; not named ``*.db`` so that ``optuna-dashboard <dir>/*.db``
                        never opens it (older searches: ``sampler.db``, read there on --resume)
    ray/search/         Ray Tune's experiment directory (``--resume`` does not read it: it starts a
                        new Ray run over the table, ``snn_nas.search.driver.run``)
    ray/baselines/      the seed presets' runs (``--baselines``)

The folder is self-contained and relocatable: nothing in it names the folder itself (a one-shot
search's supernet is ``supernet/supernet.pt`` relative to it), so a copy or a moved folder,
resumed, reads and writes only itself; the studies keep the name the search started with
(``stored_name``), whatever the folder is called now.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snn_nas.errors import SnnNasError
from snn_nas.search import fingerprint as fp
from snn_nas.search.experiment import Experiment, load_experiment
from snn_nas.search.results import JOURNAL_FILE, TABLE_FILE, ResultStore

logger = logging.getLogger(__name__)

EXPERIMENT_FILE = "experiment.yaml"
FINGERPRINT_FILE = "fingerprint.json"
STUDY_FILE = "optuna.db"
SAMPLER_STUDY_FILE = "samplers.journal"
SQLITE_SAMPLER_STUDY_FILE = "samplers.sqlite3"  # searches before issue 26
"""Not ``*.db``: ``optuna-dashboard results/<name>/*.db`` must open the user's study only."""
LEGACY_SAMPLER_STUDY_FILE = "sampler.db"
"""Where searches before issue 16 kept the samplers' study; a resumed older search reads it there."""
RAY_DIR = "ray"
SEARCH_RUN = "search"
BASELINE_RUN = "baselines"
NOT_RUN_STATUSES = ("failed", "invalid")
"""Statuses of a trial that never trained to a result (it raised, or was ruled out before training)."""
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
    "oneshot",
)


class SearchError(SnnNasError, ValueError):
    """A search that cannot start: a results folder in the way, nothing to resume, no cluster."""


@dataclass(frozen=True)
class SearchRun:
    """Outcome of ``run_search``: the search folder, its table (a DataFrame), whether every
    trial finished (False after Ctrl-C), and the wall time in seconds.

    ``none_ran`` is True when the table holds search trials (baselines aside) and every one of
    them is ``failed`` or ``invalid``: the search ran, but no trial could train to a result.
    """

    directory: Path
    table: Any
    complete: bool
    wall_s: float

    def search_rows(self) -> list[dict[str, Any]]:
        """The rows of the sampled trials (baselines left out)."""
        return [row for row in self.table.to_dict("records") if not row.get("baseline")]

    @property
    def none_ran(self) -> bool:
        rows = self.search_rows()
        return bool(rows) and all(row["status"] in NOT_RUN_STATUSES for row in rows)


def search_directory(results_dir: str | Path, name: str) -> Path:
    return Path(results_dir).expanduser().resolve() / name


def stored_name(experiment: Experiment, directory: Path) -> Experiment:
    """``experiment`` under the name the search in ``directory`` was started with (its
    ``experiment.yaml``), when that folder holds one: a copied or renamed results folder
    (``cp -r results/os results/os-copy``, resumed with ``--name os-copy``) keeps the names of
    its studies, and reads and writes only itself. Without a readable stored experiment,
    ``experiment`` as it is (``prepare_directory`` reports the folder's problems)."""
    saved = directory / EXPERIMENT_FILE
    try:
        stored = load_experiment(saved).name if saved.is_file() else None
    except SnnNasError:
        return experiment
    return experiment if not stored or stored == experiment.name else experiment.with_overrides(name=stored)


def prepare_directory(experiment: Experiment, directory: Path, resume: bool, space: Any = None) -> None:
    """Check that ``directory`` can hold a new search (or holds the one to resume); write
    ``experiment.yaml`` and ``fingerprint.json`` for a new one.

    A new search refuses a folder that already holds trials or a Ray experiment. A resumed one
    needs the stored experiment to agree with ``experiment`` on everything that defines the
    search (``RESUME_MUST_MATCH``), the space and the fidelity to have the stored fingerprint
    (an edited space file is refused, naming what changed), and a readable table: journal lines
    that cannot be read are reported, and the journal is rewritten without them (the original is
    kept as ``trials.jsonl.damaged``). ``space``: the resolved space (default: loaded from
    ``experiment.space``).
    """
    if space is None:
        from snn_nas.space import load_space

        space = load_space(experiment.space)
    current = fp.fingerprint(space, experiment.train_config())
    saved = directory / EXPERIMENT_FILE
    if resume:
        if not saved.is_file():
            raise SearchError(f"{directory}: nothing to resume (no {EXPERIMENT_FILE}); run without --resume first")
        stored = load_experiment(saved)
        mismatched = [k for k in RESUME_MUST_MATCH if getattr(stored, k) != getattr(experiment, k)]
        if mismatched:
            changes = [_experiment_change(k, getattr(stored, k), getattr(experiment, k)) for k in mismatched]
            raise SearchError(
                f"{directory}: --resume needs the experiment the search was started with; "
                f"{fp.summary(changes)} (resume with 'snn-nas search --resume --name {directory.name}' to use the "
                "stored one)"
            )
        check_fingerprint(directory, current, experiment, space)
        store = ResultStore(directory)
        if store.skipped:
            skipped = len(store.skipped)
            kept = store.rewrite_journal()
            logger.warning(
                "warning: %s: continuing with the %d trial(s) read; the journal was rewritten without its %d "
                "unreadable line(s), the original is kept as %s",
                directory,
                len(store),
                skipped,
                kept,
            )
        return
    taken = [p.name for p in (directory / TABLE_FILE, directory / JOURNAL_FILE, directory / RAY_DIR) if p.exists()]
    if taken:
        raise SearchError(
            f"{directory} already holds a search ({', '.join(taken)}); pass --resume to continue it, "
            "--name to start another one, or delete the folder"
        )
    directory.mkdir(parents=True, exist_ok=True)
    _write_atomic(saved, experiment.to_yaml())
    _write_atomic(directory / FINGERPRINT_FILE, json.dumps(current, indent=1, sort_keys=True) + "\n")


def _experiment_change(key: str, old: Any, new: Any) -> str:
    if key == "fidelity":
        from snn_nas.training.config import TrainConfig

        defaults = fp.fidelity_content(TrainConfig())
        return f"fidelity ({fp.summary(fp.fidelity_changes(dict(old), dict(new), defaults))})"
    old_text, new_text = repr(old), repr(new)
    if len(old_text) + len(new_text) > 120:
        return f"{key} differs"
    return f"{key} {old_text} -> {new_text}"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def check_fingerprint(directory: Path, current: dict[str, Any], experiment: Experiment, space: Any = None) -> None:
    """Refuse to resume when the space or the fidelity differs from the stored fingerprint.

    Without a fingerprint (deleted, or a folder from before fingerprints were kept) the finished
    rows are the evidence: every search row must be trained at the current fidelity and its
    architecture must be a member of the current ``space``; then the current fingerprint is
    written, with a warning.
    """
    path = directory / FINGERPRINT_FILE
    if not path.is_file():
        _check_rows_fit(directory, experiment, space)
        if ResultStore(directory).rows():
            logger.warning(
                "warning: %s: no %s; the finished trials fit the current space and fidelity, so the search goes on "
                "and the current fingerprint is written", directory, FINGERPRINT_FILE,
            )  # fmt: skip
        _write_atomic(path, json.dumps(current, indent=1, sort_keys=True) + "\n")
        return
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        stored_space, stored_fidelity = stored["space"], stored["fidelity"]
        space_sha, fidelity_sha = stored_space["sha256"], stored_fidelity["sha256"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise SearchError(
            f"{path}: unreadable fingerprint of the search ({type(exc).__name__}: {exc}); restore it, or delete it "
            "to resume without checking the space and the fidelity"
        ) from None
    refusal = "a resumed search must sample the same space and train at the same fidelity"
    if space_sha != current["space"]["sha256"]:
        changes = fp.space_changes(stored_space.get("content", {}), current["space"]["content"])
        raise SearchError(
            f"{directory}: --resume: the search space {experiment.space} changed since the search started "
            f"({fp.summary(changes) or 'content differs'}); {refusal}: undo the edit, or start a new search "
            "with --name"
        )
    if fidelity_sha != current["fidelity"]["sha256"]:
        from snn_nas.training.config import TrainConfig

        defaults = fp.fidelity_content(TrainConfig())
        changes = fp.fidelity_changes(stored_fidelity.get("content", {}), current["fidelity"]["content"], defaults)
        if changes:
            raise SearchError(
                f"{directory}: --resume: the fidelity changed since the search started ({fp.summary(changes)}); "
                f"{refusal}: undo the edit, or start a new search with --name"
            )


def _check_rows_fit(directory: Path, experiment: Experiment, space: Any) -> None:
    """Without a fingerprint: a search row trained at another fidelity, or whose architecture the
    space no longer holds, means the space or the fidelity changed: ``SearchError``."""
    from snn_nas.genotype import Genotype
    from snn_nas.training.config import TrainConfig

    fidelity = fp.fidelity_content(experiment.train_config())
    refusal = (
        f"{directory}: --resume without {FINGERPRINT_FILE} (deleted?): the finished trials show that the "
        "{what} changed since the search started; undo the edit, restore the file, or start a new search with --name"
    )
    for row in ResultStore(directory).rows():
        if row.get("baseline") or not row.get("genotype"):
            continue
        try:
            same = fp.fidelity_content(TrainConfig.from_dict(json.loads(str(row.get("fidelity"))))) == fidelity
        except (ValueError, TypeError):
            same = False
        if not same:
            raise SearchError(refusal.format(what=f"fidelity (trial {row['trial_id']})"))
        if space is not None and not space.contains(Genotype.from_json(str(row["genotype"]))):
            where = f"space {experiment.space} (trial {row['trial_id']}, key {row['key']}, is not in it)"
            raise SearchError(refusal.format(what=where))


def check_address(address: str, timeout_s: float = 10.0) -> None:
    """Fail fast (Ray itself retries for minutes, a Ray Client for 30 s) when a ``HOST:PORT`` or
    ``ray://HOST:PORT`` address does not answer."""
    import socket

    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if address.startswith(("auto", "local")) or not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise SearchError(
            f"--address {address}: no Ray cluster answers there ({exc}); on a node of the cluster pass --address "
            "auto, else the head node's address as 'ray start --head' printed it, or start one with 'ray start --head'"
        ) from None


def ran_without_baselines(directory: Path) -> bool:
    """A folder whose search began with its sampled trials (a Ray run or search rows) without ever
    starting the baselines' run: it was started with ``--no-baselines``, and a ``--resume`` keeps
    them out."""
    if (directory / RAY_DIR / BASELINE_RUN).exists():
        return False
    rows = ResultStore(directory).rows()
    if any(r.get("baseline") for r in rows):
        return False
    return bool(rows) or (directory / RAY_DIR / SEARCH_RUN).exists()
