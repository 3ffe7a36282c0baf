"""The Ray session of a search: start a local Ray instance, or connect to a cluster.

Connecting to a cluster is where a new user meets Ray's token authentication (on by default
for clusters from Ray 2.61; ``ray start --head`` turns it on when it finds a token): every node
and the driver must share one token, and Ray uses the local one on its own only for
``--address auto`` (a cluster found on this machine), never for an explicit ``HOST:PORT``.
Ray's own failure is 20 s of native ``InvalidAuthToken`` log lines, then "Failed to connect to
Ray cluster at <node ip>:<port>". Here a connection fails within ``CONNECT_ATTEMPTS`` seconds
with one line that says what to try (``connection_advice``), and the native lines written
while connecting stay out of the terminal unless ``verbose``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import ray

from snn_nas.search.experiment import Experiment
from snn_nas.search.layout import SearchError, check_address

LOCAL_OBJECT_STORE_BYTES = 256 * 1024**2


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
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


@contextlib.contextmanager
def ray_session(
    address: str | None, num_cpus: int | None, verbose: bool, num_gpus: int | None = None
) -> Iterator[None]:
    """Connect to the cluster at ``address``, or start a local Ray instance; shut down what we started.

    A local instance has ``num_cpus`` CPUs (default: all) and ``num_gpus`` GPUs (default: Ray's
    count of this machine's GPUs; a number declares logical GPUs, e.g. 4 on a machine without
    CUDA to see how fractional ``resources.gpus`` are assigned).

    Ray's usage statistics stay off unless ``RAY_USAGE_STATS_ENABLED`` says otherwise. Connecting
    to a cluster fails within ``CONNECT_ATTEMPTS`` seconds (Ray alone retries for 20 s), with a
    ``SearchError`` of one line that says what to try (``connection_advice``); Ray's native log
    lines written while connecting stay out of the terminal unless ``verbose``.
    """
    if ray.is_initialized():
        yield
        return
    if address:
        check_address(address)
    kwargs: dict[str, Any] = dict(
        include_dashboard=False, log_to_driver=verbose, logging_level=logging.INFO if verbose else logging.ERROR
    )
    connect: dict[str, str] = {}
    if address:  # an existing cluster's GCS is up: retrying for 20 s only delays the error
        connect[CONNECT_WAIT_VARIABLE] = os.environ.get(CONNECT_WAIT_VARIABLE, str(CONNECT_ATTEMPTS))
    else:
        cpus = num_cpus or os.cpu_count() or 1
        kwargs.update(address="local", num_cpus=cpus, object_store_memory=LOCAL_OBJECT_STORE_BYTES)
        if num_gpus is not None:
            kwargs["num_gpus"] = num_gpus
    with environment(RAY_USAGE_STATS_ENABLED=os.environ.get("RAY_USAGE_STATS_ENABLED", "0")):
        native: list[str] = []
        try:
            with environment(**connect), _native_stderr(native, hide=bool(address) and not verbose):
                ray.init(**({"address": address} if address else {}), **kwargs)
        except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as exc:
            if address:
                raise SearchError(connection_advice(address, exc, "".join(native))) from None
            raise SearchError(f"cannot start a local Ray instance: {_first_line(exc)}") from None
        try:
            yield
        finally:
            ray.shutdown()


CONNECT_WAIT_VARIABLE = "RAY_gcs_server_port_wait_time_s"  # Ray's budget (s) for reaching the GCS
CONNECT_ATTEMPTS = 3
AUTH_FAILURE_MARKS = ("InvalidAuthToken", "AuthenticationError", "Unauthenticated", "authentication token")


@contextlib.contextmanager
def _native_stderr(lines: list[str], hide: bool) -> Iterator[None]:
    """While the block runs, file descriptor 2 (where Ray's C++ code logs) goes to a temporary
    file whose text is appended to ``lines`` afterwards; nothing changes unless ``hide``."""
    if not hide:
        yield
        return
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.append(sink.read().decode("utf-8", "replace"))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def connection_advice(address: str, exc: BaseException, native_log: str = "") -> str:
    """One line for a failed connection to the cluster at ``address``: what Ray said, and what to
    try (``auto`` on a node of the cluster, the head's address, the cluster's token)."""
    chain, cause = [], exc
    while cause is not None and len(chain) < 5:
        chain.append(f"{type(cause).__name__}: {cause}")
        cause = cause.__cause__ or cause.__context__
    text = "\n".join(chain) + "\n" + native_log
    token = (
        "set RAY_AUTH_MODE=token and give this machine the cluster's token ('ray get-auth-token' on the head "
        "prints it) in RAY_AUTH_TOKEN or ~/.ray/auth_token"
    )
    if any(mark in text for mark in AUTH_FAILURE_MARKS):
        if address == "auto":
            return (
                "--address auto: the Ray cluster on this machine uses token authentication and refused this "
                f"driver's token; {token}"
            )
        return (
            f"--address {address}: the Ray cluster there uses token authentication and this driver sent no token "
            f"or another one; on a node of the cluster pass --address auto (it finds the cluster and the node's "
            f"token), or {token}"
        )
    if address == "auto":
        return (
            f"--address auto: no Ray cluster to connect to on this machine ({_first_line(exc)}); 'auto' finds a "
            "cluster started here with 'ray start'; start one with 'ray start --head', or pass the head node's "
            "address HOST:PORT"
        )
    return (
        f"--address {address}: cannot connect to the Ray cluster there ({_first_line(exc)}); on a node of the "
        "cluster pass --address auto, else the head node's address as 'ray start --head' printed it (HOST:PORT), "
        f"and if the cluster uses token authentication, {token}"
    )


def check_resources(experiment: Experiment, gpus: float | None = None) -> None:
    """``SearchError`` when no node of the Ray cluster can hold one trial: ``check_node_resources``
    with the experiment's ``resources.cpus`` and ``gpus`` (default its ``resources.gpus``)."""
    check_node_resources(experiment.resources.cpus, experiment.resources.gpus if gpus is None else gpus)


def check_node_resources(cpus: float, gpus: float, nodes: Sequence[Mapping[str, Any]] | None = None) -> None:
    """``SearchError`` when no alive node can hold one trial of ``cpus`` CPUs and ``gpus`` GPUs.

    Ray places a trial on one node, so the whole cluster's total says nothing: 3 nodes of 2 CPUs
    have 6, and a trial of 4 CPUs waits for ever. ``nodes`` are ``ray.nodes()`` (the default);
    the dead ones are left out. The message is ``node_resource_refusal``'s. Only the nodes alive
    now count: an autoscaling cluster whose large enough nodes are not up yet is refused too.
    """
    capacity = node_capacity(ray.nodes() if nodes is None else nodes)
    refusal = node_resource_refusal(cpus, gpus, capacity)
    if refusal:
        raise SearchError(refusal)


def node_capacity(nodes: Sequence[Mapping[str, Any]]) -> list[tuple[float, float]]:
    """(CPUs, GPUs) of each alive node in ``nodes`` (entries of ``ray.nodes()``)."""
    alive = [node for node in nodes if node.get("Alive", node.get("alive", False))]
    resources = [node.get("Resources") or {} for node in alive]
    return [(float(r.get("CPU", 0)), float(r.get("GPU", 0))) for r in resources]


def node_resource_refusal(cpus: float, gpus: float, capacity: Sequence[tuple[float, float]]) -> str | None:
    """Why no node of ``capacity`` ((CPUs, GPUs) per node) holds a trial of ``cpus`` CPUs and
    ``gpus`` GPUs, in one line naming the resource and what the nodes have; None when one does.

    A fraction of a GPU (``0 < gpus < 1``) needs a node with a GPU. On a single node the line
    speaks of the Ray cluster's total, which is then that node's.
    """
    if any(have_cpus >= cpus and have_gpus >= gpus for have_cpus, have_gpus in capacity):
        return None
    most_cpus = max((c for c, _ in capacity), default=0.0)
    most_gpus = max((g for _, g in capacity), default=0.0)
    single = len(capacity) <= 1
    if cpus > most_cpus:
        if single:
            return f"resources.cpus: a trial asks for {_amount(cpus, 'CPU')}; the Ray cluster has {most_cpus:g}"
        return (
            f"resources.cpus: a trial asks for {_amount(cpus, 'CPU')}; the largest node has {most_cpus:g} "
            f"({_per_node([c for c, _ in capacity], 'CPUs')}); a trial runs on one node: ask for at most "
            f"{_amount(most_cpus, 'CPU')} per trial, or add a node with {cpus:g}"
        )
    if gpus > most_gpus:
        if single:
            return (
                f"resources.gpus: a trial asks for {_amount(gpus, 'GPU')}; the Ray cluster has {most_gpus:g} "
                "(set resources.gpus to 0 to search on CPUs)"
            )
        if most_gpus == 0:
            return (
                f"resources.gpus: a trial asks for {_amount(gpus, 'GPU')}; the cluster has no GPU "
                f"({len(capacity)} nodes); set resources.gpus to 0 to search on CPUs"
            )
        return (
            f"resources.gpus: a trial asks for {_amount(gpus, 'GPU')}; the largest node has {most_gpus:g} "
            f"({_per_node([g for _, g in capacity], 'GPUs')}); a trial runs on one node: ask for at most "
            f"{_amount(most_gpus, 'GPU')} per trial, or add a node with {gpus:g}"
        )
    cpus_beside_gpus = max(c for c, g in capacity if g >= gpus)
    pairs = [f"{c:g}/{g:g}" for c, g in sorted(capacity)]
    listed = ", ".join(pairs) if len(pairs) <= NODES_LISTED else _grouped(pairs)
    return (
        f"resources: a trial asks for {_amount(cpus, 'CPU')} and {_amount(gpus, 'GPU')} on one node; no node has "
        f"both: the nodes with {_amount(gpus, 'GPU')} or more have at most {_amount(cpus_beside_gpus, 'CPU')} "
        f"({len(capacity)} nodes, CPUs/GPUs: {listed}); ask for at most {_amount(cpus_beside_gpus, 'CPU')} per trial"
    )


def _amount(count: float, unit: str) -> str:
    """'1 GPU', '0.25 GPU', '2 GPUs'."""
    return f"{count:g} {unit}" if count <= 1 else f"{count:g} {unit}s"


NODES_LISTED = 8  # a message lists each node's count up to this many nodes, then groups equal counts


def _per_node(counts: list[float], unit: str) -> str:
    """'3 nodes: 0, 2, 2 CPUs'; beyond ``NODES_LISTED`` nodes '300 nodes: 0 CPUs x1, 2 CPUs x299'."""
    counts = sorted(counts)
    if len(counts) <= NODES_LISTED:
        return f"{len(counts)} nodes: {', '.join(f'{c:g}' for c in counts)} {unit}"
    return f"{len(counts)} nodes: {_grouped([f'{c:g} {unit}' for c in counts])}"


def _grouped(labels: list[str]) -> str:
    """Equal labels of a sorted list as 'label xN', in order."""
    groups: dict[str, int] = {}
    for label in labels:
        groups[label] = groups.get(label, 0) + 1
    return ", ".join(f"{label} x{n}" for label, n in groups.items())


def check_gpu_share(gpus: float) -> str | None:
    """Before Ray starts: a warning when ``resources.gpus`` gives no whole number of trials per
    GPU (e.g. 0.3: three trials share a GPU and a tenth of it stays unused), else None.
    ``SearchError`` for a share above 1 that is not a whole number of GPUs (Ray refuses it)."""
    if gpus <= 0 or gpus == int(gpus):
        return None
    if gpus > 1:
        raise SearchError(
            f"resources.gpus: {gpus:g} is not allowed; a trial takes a fraction of one GPU (0 < gpus <= 1, "
            "e.g. 0.25 for 4 trials per GPU) or a whole number of GPUs"
        )
    per_gpu = round(1.0 / gpus)
    if abs(per_gpu * gpus - 1.0) <= 1e-6:
        return None
    whole = int(1.0 / gpus)
    return (
        f"resources.gpus: {gpus:g} gives no whole number of trials per GPU (1 / {gpus:g} = {1 / gpus:.2f}): "
        f"{whole} trials share a GPU and {1 - whole * gpus:.0%} of it stays unused; use 1/k, e.g. "
        f"{1 / whole:.4g} for {whole} or {1 / (whole + 1):.4g} for {whole + 1} trials per GPU"
    )


def gpus_for_trials(requested: float, address: str | None) -> tuple[float, str | None]:
    """The GPU share a trial asks Ray for, and a warning: on a local Ray instance without GPUs
    (no CUDA here) a request falls back to the CPU (share 0); elsewhere it stands."""
    if requested <= 0 or address is not None:
        return requested, None
    if float(ray.cluster_resources().get("GPU", 0)) > 0:
        return requested, None
    return 0.0, (
        f"resources.gpus: {requested:g} GPU per trial asked for, but this machine has no CUDA GPU "
        "(torch sees none and Ray counted none); the trials run on the CPU"
    )
