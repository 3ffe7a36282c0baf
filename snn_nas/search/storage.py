"""Does every node of a Ray cluster see the results folder? One probe before the first trial.

A search's folder is read and written from every node: Ray Tune's trial folders under ``ray/``
are written by the node that runs the trial, and a two-stage search's trials read the
supernet's checkpoint from it. So a cluster needs the results folder on a filesystem that every
node shares and mounts at the same path (NFS, a cloud file share). A node with a local folder of
the same name writes where nobody reads, and a node without one fails every trial it runs, late.

``check_storage(directory)`` asks each node that can run a trial (an alive node with CPUs or
GPUs), before any trial starts:

1. the driver writes ``.storage-probe-<token>`` holding a random token into ``directory``;
2. one task per node, pinned to it (hard node affinity) and asking for no CPU (so that it runs
   beside busy trials), reads the token back from that file and writes
   ``.storage-probe-<token>.<node id>`` beside it;
3. the driver reads every node's file back, then removes the probes.

A node whose task finds no folder, no probe file or another token, cannot write, writes a file
the driver does not see, or does not answer within ``timeout_s`` is named (IP and short node
id) in a ``SearchError``. Its cost is one worker process start per node, in parallel: about a
second on an idle cluster.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from snn_nas.search.layout import SearchError

PROBE_PREFIX = ".storage-probe-"
STORAGE_TIMEOUT_S = 30.0  # a probe task waits for a worker process on its node; a loaded node is slow
SHORT_ID = 8  # characters of a node id in messages, as `ray status` prints them
NODES_NAMED = 8  # a refusal names this many nodes, then counts the rest
SHARED_STORAGE = (
    "a search on a Ray cluster needs its results folder on a filesystem that every node shares, mounted at the "
    "same path on each (NFS, a cloud file share): pass --results-dir on it"
)


@dataclass(frozen=True)
class StorageCheck:
    """A passed check: the results folder, how many nodes see it, and what the check took (s)."""

    directory: Path
    nodes: int
    seconds: float


def check_storage(directory: Path, timeout_s: float = STORAGE_TIMEOUT_S) -> StorageCheck:
    """``SearchError`` naming each node of the connected Ray cluster that cannot read and write
    ``directory`` as the driver does (see the module's docstring); the probe files are removed
    whatever happens. A search on a local Ray instance it started itself has nothing to check.
    """
    started = time.perf_counter()
    folder = Path(directory).absolute()
    nodes = [node for node in ray.nodes() if node.get("Alive") and _runs_trials(node)]
    token = secrets.token_hex(8)
    probe = folder / f"{PROBE_PREFIX}{token}"
    problems: list[tuple[dict[str, Any], str]] = []
    try:
        try:
            probe.write_text(token)
        except OSError as exc:
            raise SearchError(f"{folder}: the search cannot write to its results folder ({exc})") from None
        answer = ray.remote(answer_probe)
        tasks = {
            answer.options(
                num_cpus=0,
                max_retries=0,
                name="snn-nas storage probe",
                scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False),
            ).remote(str(folder), token, _short_id(node)): node
            for node in nodes
        }
        ready, late = ray.wait(list(tasks), num_returns=len(tasks), timeout=timeout_s)
        for ref in ready:
            node = tasks[ref]
            try:
                why = ray.get(ref)
            except ray.exceptions.RayError as exc:
                why = f"the probe task failed there ({_first_line(exc)})"
            if not why:
                why = _unseen(probe, token, _short_id(node))
            if why:
                problems.append((node, why))
        for ref in late:
            problems.append((tasks[ref], f"did not answer within {timeout_s:g} s (the probe task could not run there)"))
            with contextlib.suppress(Exception):  # a task that runs after all finds no probe file
                ray.cancel(ref)
    finally:  # by name: a directory listing on a network filesystem may lag behind
        for path in (probe, *(probe.with_name(f"{probe.name}.{_short_id(node)}") for node in nodes)):
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
    if problems:
        raise SearchError(storage_refusal(folder, problems, len(nodes)))
    return StorageCheck(directory=folder, nodes=len(nodes), seconds=time.perf_counter() - started)


def answer_probe(directory: str, token: str, name: str) -> str:
    """On a node: read the driver's token from ``directory``'s probe file and write the file
    ``<probe>.<name>`` holding ``"<token> <name>"``; what went wrong, or "" when nothing did."""
    folder = Path(directory)
    probe = folder / f"{PROBE_PREFIX}{token}"
    if not folder.is_dir():
        return f"it has no folder {folder}"
    try:
        seen = probe.read_text()
    except FileNotFoundError:
        return f"its {folder} is another folder (the driver's probe file is not in it)"
    except OSError as exc:
        return f"it cannot read {probe} ({exc.strerror or exc})"
    if seen != token:
        return f"it reads another token from {probe} (a stale or different copy of the folder)"
    try:
        (folder / f"{probe.name}.{name}").write_text(f"{token} {name}")
    except OSError as exc:
        return f"it cannot write to {folder} ({exc.strerror or exc})"
    return ""


def storage_refusal(folder: Path, problems: list[tuple[dict[str, Any], str]], nodes: int) -> str:
    """One line: the folder, each node that cannot use it and why (the first ``NODES_NAMED``),
    and what storage a cluster needs."""
    named = [f"node {_label(node)}: {why}" for node, why in problems[:NODES_NAMED]]
    if len(problems) > NODES_NAMED:
        named.append(f"and {len(problems) - NODES_NAMED} more")
    listed = "; ".join(named)
    return f"results folder {folder}: {len(problems)} of {nodes} nodes cannot use it ({listed}); {SHARED_STORAGE}"


def _unseen(probe: Path, token: str, name: str) -> str:
    """Empty when the driver reads the node's answer file back, else why not."""
    answer = probe.with_name(f"{probe.name}.{name}")
    try:
        if answer.read_text() == f"{token} {name}":
            return ""
    except FileNotFoundError:
        pass
    except OSError as exc:
        return f"the driver cannot read the file it wrote to {probe.parent} ({exc.strerror or exc})"
    return f"it wrote to its {probe.parent}, and the driver does not see that file (another folder of the same name)"


def _runs_trials(node: dict[str, Any]) -> bool:
    resources = node.get("Resources") or {}
    return float(resources.get("CPU", 0)) > 0 or float(resources.get("GPU", 0)) > 0


def _short_id(node: dict[str, Any]) -> str:
    return str(node["NodeID"])[:SHORT_ID]


def _label(node: dict[str, Any]) -> str:
    return f"{node.get('NodeManagerAddress', '?')} (id {_short_id(node)})"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
