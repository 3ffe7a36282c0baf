"""Data-parallel supernet training through Ray Train on a multi-node Ray cluster simulated on this
machine (``ray.cluster_utils.Cluster``): a worker node dies mid-run, a replacement joins, and the
training finishes from its last checkpoint instead of starting over."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest
from cluster_tools import kill_node
from test_supernet_training import REPO, write_experiment

from snn_nas.supernet.checkpoint import load_supernet, read_supernet_state

EPOCHS = 6
NODE = {"num_cpus": 1, "object_store_memory": 80 * 1024**2}
# the GCS declares a node whose raylet stopped answering dead after 3 missed checks 1 s apart
# (Ray's default: 5 checks 3 s apart after a 5 s grace), so a restart does not wait for it long
HEALTH_CHECKS = {
    "health_check_initial_delay_ms": 1000,
    "health_check_period_ms": 1000,
    "health_check_timeout_ms": 5000,
    "health_check_failure_threshold": 3,
}


@pytest.fixture
def cluster(monkeypatch):
    """The head node of a Ray cluster, without CPUs (the driver and Ray Train's controller live
    there; the test adds worker nodes of ``NODE``), under a short temporary folder of its own (Ray's
    socket paths must stay short); shut down and removed whatever happens."""
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    from ray.cluster_utils import Cluster

    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    head = {**NODE, "num_cpus": 0, "include_dashboard": False, "temp_dir": temp_dir, "_system_config": HEALTH_CHECKS}
    try:
        cluster = Cluster(initialize_head=True, head_node_args=head)
    except Exception as exc:  # whatever keeps Ray from starting here, there is no cluster to test on
        shutil.rmtree(temp_dir, ignore_errors=True)
        pytest.skip(f"cannot start a Ray cluster on this machine: {type(exc).__name__}: {exc}")
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_supernet_training_survives_a_worker_node_dying(tmp_path, cluster):
    """Two Ray Train workers (one per worker node, gloo on the CPU) train the supernet of a tiny
    space through ``snn-nas supernet train --workers 2 --address``. Once the first epoch is written,
    one worker node is killed (``kill_node``: by the process ids of its raylet and everything the
    raylet started) and a replacement node joins, as an autoscaler would add one. Ray Train
    restarts its worker group (``max_failures`` 1) on the surviving and the new node, and the
    training loop continues from ``supernet.pt``: its ``resumed_from`` records the epoch it picked
    up at, the epochs finished before the kill are kept as they were, and the run ends with every
    epoch in a valid checkpoint."""
    path = write_experiment(tmp_path, epochs=EPOCHS)
    results = tmp_path / "results"
    checkpoint = results / "os" / "supernet" / "supernet.pt"
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    # the controller polls the workers every 0.5 s instead of 2 s: the failure and the end are seen sooner
    env = {
        **os.environ,
        "RAY_USAGE_STATS_ENABLED": "0",
        "OMP_NUM_THREADS": "1",
        "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5",
    }
    command = [sys.executable, "-m", "snn_nas.cli.main", "supernet", "train", str(path), "--results-dir", str(results),
               "--workers", "2", "--address", cluster.address, "--no-progress"]  # fmt: skip
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=stdout, stderr=stderr, text=True)
    try:
        for _ in range(2):  # the worker nodes join while the driver starts (Ray Train waits for them)
            cluster.add_node(**NODE)
        cluster.wait_for_nodes()
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None and not checkpoint.is_file():
            time.sleep(0.05)
        assert checkpoint.is_file(), f"no epoch written (exit {proc.poll()}): {err.read_text()[-3000:]}"
        before = read_supernet_state(checkpoint)
        victim = next(iter(cluster.worker_nodes))
        kill_node(victim)
        cluster.remove_node(victim, allow_graceful=False)  # reaps the killed raylet; the cluster forgets it
        cluster.add_node(**NODE)
        returncode = proc.wait(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert returncode == 0, err.read_text()[-3000:]
    assert f"supernet trained: {EPOCHS} epochs" in out.read_text()
    net, state = load_supernet(checkpoint)  # whole, finite, and of the supernet's layout
    killed_at = before["epoch"]
    assert 1 <= killed_at < EPOCHS
    # one restart, which picked up where the last checkpoint left off: the epoch written when the
    # node died, or the next one when rank 0 (on the surviving node) was saving it at that moment
    assert len(state["resumed_from"]) == 1, f"killed at epoch {killed_at}, resumed from {state['resumed_from']}"
    (resumed_at,) = state["resumed_from"]
    assert killed_at <= resumed_at <= killed_at + 1
    # the epochs before the kill were not trained again: their curve points, times included, are
    # the ones written before it; every later epoch was trained once, in order
    history = state["history"]
    assert history[:killed_at] == before["history"]
    assert [h["epoch"] for h in history] == list(range(1, EPOCHS + 1)) and state["epoch"] == EPOCHS
    assert net.parameter_count() > 0
