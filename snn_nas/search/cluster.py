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
from collections.abc import Iterator
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
def ray_session(address: str | None, num_cpus: int | None, verbose: bool) -> Iterator[None]:
    """Connect to the cluster at ``address``, or start a local Ray instance; shut down what we started.

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


def check_resources(experiment: Experiment) -> None:
    """``SearchError`` when one trial asks for more CPUs or GPUs than the whole cluster has."""
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
