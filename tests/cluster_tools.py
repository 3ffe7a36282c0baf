"""What the multi-node cluster tests share: a tiny space and experiment, a free port, and the two
ways a test stops Ray processes (a ``ray start --block`` process group; a node killed as its
machine dies)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time

TINY_SPACE = """\
name: tiny
image_size: 8
family: spiking
time_steps: 1
patch_size: 4
mlp_ratio: 2
num_stages: 1
stage_defaults: {depth: 1, dim: {choice: [8, 12]}, token_h: {op: mlp}, token_w: {op: mlp}}
"""
TINY_EXPERIMENT = {
    "space": "space.yaml",
    "dataset": "synthetic:train=32,val=16,classes=4,channels=1",
    "fidelity": {"epochs": 1, "batch_size": 16, "image_size": 8, "max_batches_per_epoch": 1, "eval_batch_size": 16},
    "trials": 1,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the process group of ``ray start --block`` (and the Ray processes it started),
    SIGKILL to what is left after a few seconds."""
    for sig, wait_s in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                process.wait()
                return
            process.poll()  # reap the leader so that only live members keep the group
            time.sleep(0.2)


def kill_node(node) -> None:
    """Kill a Ray node (of ``ray.cluster_utils.Cluster``) as a machine dies: SIGKILL its raylet and
    every process the raylet started (the Ray workers running its tasks and actors, Ray's agents),
    all at once, by process id. Killing the raylet alone is not enough: its workers outlive it."""
    import psutil  # Ray's own copy: importing ray puts its third-party folder on the path
    from ray._private import ray_constants

    (raylet,) = node.all_processes[ray_constants.PROCESS_TYPE_RAYLET]
    root = psutil.Process(raylet.process.pid)
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGKILL)


def node_env() -> dict[str, str]:
    """The environment for a ``ray start --address`` subprocess that joins a cluster this test
    process started: the same authentication mode (Ray fixes it once per process; a cluster with
    token authentication accepts a node only with ``RAY_AUTH_MODE=token``, and the node then reads
    the same ``~/.ray/auth_token``)."""
    from ray._private.authentication.authentication_utils import is_token_auth_enabled

    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    if is_token_auth_enabled():
        env["RAY_AUTH_MODE"] = "token"
    return env
