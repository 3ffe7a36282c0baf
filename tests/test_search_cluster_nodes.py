"""A search on a Ray cluster of several nodes: a trial must fit on one node, and every node must
see the results folder (``snn_nas.search.cluster.check_node_resources``,
``snn_nas.search.storage.check_storage``).

The cluster is real and lives on this machine (``ray.cluster_utils.Cluster``, one per module):
a head without CPUs, two worker nodes of 2 logical CPUs, and a third worker node of 1 CPU started
with ``ray start`` in a mount namespace of its own (``unshare -m``, as root), where a tmpfs is
mounted over ``<tmp>/hidden`` and an empty ``<tmp>/hidden/results`` is made in it. So that node
sees ``<tmp>/shared`` as every node does, but its ``<tmp>/hidden/results`` is another folder of
the same path, and ``<tmp>/hidden/other`` does not exist there: a node whose results folder is
not the shared one, simulated for real (its raylet and its workers see another filesystem), not
by an option of the check. Without ``unshare`` or the right to mount, those tests are skipped.

Ray's temp folder is a short path under /tmp (socket paths must stay short), usage statistics
are off, object stores 80 MB. Ray's authentication mode is left as the test process has it (Ray
reads it once per process, so a test that changed it would change it for every later test;
``test_search_cluster.py`` covers token authentication).
The Ray processes are stopped in finalizers whatever the tests do.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from cluster_tools import TINY_EXPERIMENT, TINY_SPACE, free_port, node_env, stop

from snn_nas.search.cluster import check_node_resources, node_resource_refusal
from snn_nas.search.layout import SearchError, check_address
from snn_nas.search.storage import PROBE_PREFIX, SHARED_STORAGE, check_storage

BIN = Path(sys.executable).parent
STORE = 80 * 1024**2


def can_mount_namespaces() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    with tempfile.TemporaryDirectory() as folder:
        done = subprocess.run(["unshare", "-m", "mount", "-t", "tmpfs", "tmpfs", folder], capture_output=True)
    return done.returncode == 0


def alive_nodes() -> list[dict]:
    import ray

    return [node for node in ray.nodes() if node["Alive"]]


def wait_for_nodes(count: int, processes: list[subprocess.Popen], log: Path) -> None:
    """Wait up to a minute for ``count`` live nodes; a namespaced node that exits on the way is
    dropped from ``processes`` (its tests then skip) and counted out."""
    deadline = time.monotonic() + 60
    while len(alive_nodes()) < count:
        assert time.monotonic() < deadline, log.read_text() if processes else ""
        if processes and processes[0].poll() is not None:  # the namespaced node could not join
            print(f"the node with a folder of its own did not start: {log.read_text().strip().splitlines()[-1:]}")
            processes.clear()
            count -= 1
        time.sleep(0.2)


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    """The cluster above, this process connected to it; yields its folders and nodes."""
    import ray
    from ray.cluster_utils import Cluster

    from snn_nas.search.cluster import ray_session

    base = tmp_path_factory.mktemp("nodes")
    shared, hidden = base / "shared", base / "hidden"
    shared.mkdir()
    (hidden / "results").mkdir(parents=True)
    ray_tmp = tempfile.mkdtemp(prefix="snnn", dir="/tmp")
    # Ray reads its authentication mode once per process: left as the other tests have it
    variables = dict(RAY_USAGE_STATS_ENABLED="0")
    processes: list[subprocess.Popen] = []
    log = (base / "isolated.log").open("w")
    with log, pytest.MonkeyPatch.context() as patch:
        patch.delenv("RAY_ADDRESS", raising=False)
        for name, value in variables.items():
            patch.setenv(name, value)
        cluster = Cluster(
            initialize_head=True,
            head_node_args=dict(num_cpus=0, object_store_memory=STORE, temp_dir=ray_tmp, include_dashboard=False),
        )
        try:
            isolated = None
            with ray_session(cluster.address, None, False):
                if can_mount_namespaces():
                    start = [BIN / "ray", "start", "--address", cluster.address, "--num-cpus", "1", "--block",
                             "--object-store-memory", str(STORE), "--resources", '{"own_folder": 1}',
                             "--disable-usage-stats", "--dashboard-agent-listen-port", str(free_port())]  # fmt: skip
                    script = f'mount -t tmpfs tmpfs "{hidden}" && mkdir "{hidden}/results" && exec "$@"'
                    processes.append(
                        subprocess.Popen(["unshare", "-m", "sh", "-c", script, "sh", *map(str, start)],
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=node_env())
                    )  # fmt: skip
                    # joined before the next node starts: nodes started at once on one machine race for
                    # the same socket names in Ray's session folder, and one of them fails to start
                    wait_for_nodes(2, processes, base / "isolated.log")
                for _ in range(2):
                    cluster.add_node(wait=False, num_cpus=2, object_store_memory=STORE)
                wait_for_nodes(3 + len(processes), processes, base / "isolated.log")
                if processes:
                    [isolated] = [n for n in alive_nodes() if "own_folder" in n["Resources"]]
                yield SimpleNamespace(shared=shared, hidden=hidden, isolated=isolated, process=processes)
        finally:
            for process in processes:
                stop(process)
            ray.shutdown()
            cluster.shutdown()
            shutil.rmtree(ray_tmp, ignore_errors=True)


def needs_isolated_node(nodes) -> None:
    if nodes.isolated is None:
        pytest.skip("no mount namespace here (needs root and unshare): no node with a folder of its own")


# resources: a trial runs on one node ------------------------------------------------------------


def test_a_trial_larger_than_every_node_is_refused_though_the_cluster_has_enough(nodes):
    import ray

    cpus = [n["Resources"].get("CPU", 0) for n in alive_nodes()]
    assert ray.cluster_resources()["CPU"] == sum(cpus) >= 3  # the whole cluster's total would hold it
    listed = ", ".join(f"{c:g}" for c in sorted(cpus))
    with pytest.raises(SearchError) as refused:
        check_node_resources(3, 0)
    assert str(refused.value).startswith(
        f"resources.cpus: a trial asks for 3 CPUs; the largest node has 2 ({len(cpus)} nodes: {listed} CPUs)"
    )
    check_node_resources(2, 0)  # fits on a node of 2 CPUs
    check_node_resources(0.5, 0)


def test_a_gpu_on_a_cluster_without_gpus_is_refused(nodes):
    with pytest.raises(SearchError, match=r"^resources\.gpus: a trial asks for 1 GPU; the cluster has no GPU \(\d "
                       r"nodes\); set resources\.gpus to 0 to search on CPUs$"):  # fmt: skip
        check_node_resources(1, 1)
    with pytest.raises(SearchError, match="the cluster has no GPU"):
        check_node_resources(1, 0.25)


def test_the_refusal_names_what_each_node_has():
    three = [(0.0, 0.0), (2.0, 0.0), (2.0, 0.0)]
    assert node_resource_refusal(4, 0, three) == (
        "resources.cpus: a trial asks for 4 CPUs; the largest node has 2 (3 nodes: 0, 2, 2 CPUs); a trial runs on "
        "one node: ask for at most 2 CPUs per trial, or add a node with 4"
    )
    assert node_resource_refusal(2, 0, three) is None
    # one node: the Ray cluster's total is that node's (a local Ray instance); the messages stay
    assert node_resource_refusal(4, 0, [(2.0, 0.0)]) == "resources.cpus: a trial asks for 4 CPUs; the Ray cluster has 2"
    assert node_resource_refusal(1, 1, [(2.0, 0.0)]) == (
        "resources.gpus: a trial asks for 1 GPU; the Ray cluster has 0 (set resources.gpus to 0 to search on CPUs)"
    )
    gpus = [(8.0, 0.0), (4.0, 2.0), (4.0, 2.0)]
    assert node_resource_refusal(1, 4, gpus).startswith(
        "resources.gpus: a trial asks for 4 GPUs; the largest node has 2 (3 nodes: 0, 2, 2 GPUs)"
    )
    assert node_resource_refusal(4, 0.5, gpus) is None
    assert node_resource_refusal(6, 1, gpus) == (
        "resources: a trial asks for 6 CPUs and 1 GPU on one node; no node has both: the nodes with 1 GPU or more "
        "have at most 4 CPUs (3 nodes, CPUs/GPUs: 4/2, 4/2, 8/0); ask for at most 4 CPUs per trial"
    )
    many = [(0.0, 0.0)] + [(2.0, 0.0)] * 299
    assert "the largest node has 2 (300 nodes: 0 CPUs x1, 2 CPUs x299)" in node_resource_refusal(4, 0, many)


# storage: every node sees the results folder ----------------------------------------------------


def probes(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob(f"{PROBE_PREFIX}*")) if folder.is_dir() else []


def test_nodes_that_share_the_folder_pass_and_the_probes_are_gone(nodes):
    folder = nodes.shared / "search"
    folder.mkdir()
    check = check_storage(folder)
    print(f"storage check: {check.nodes} nodes, {check.seconds:.2f} s", end=" ")
    assert check.nodes == len([n for n in alive_nodes() if n["Resources"].get("CPU", 0) > 0])
    assert check.seconds < 20  # a worker process starts on each node: 5-7 s on this shared 2-core machine
    assert probes(folder) == []
    again = check_storage(folder)  # the second time, a worker waits on each node
    print(f"then {again.seconds:.2f} s", end=" ")
    assert again.seconds < 5


def test_a_node_that_sees_another_folder_of_the_same_path_is_named(nodes):
    needs_isolated_node(nodes)
    folder = nodes.hidden / "results"  # on the isolated node: an empty folder on its tmpfs
    with pytest.raises(SearchError) as refused:
        check_storage(folder)
    message = str(refused.value)
    node = nodes.isolated
    assert message.startswith(f"results folder {folder}: 1 of 3 nodes cannot use it (node ")
    assert f"node {node['NodeManagerAddress']} (id {node['NodeID'][:8]}): its {folder} is another folder" in message
    assert message.endswith(SHARED_STORAGE) and "\n" not in message
    assert probes(folder) == []


def test_a_node_without_the_folder_is_named(nodes):
    needs_isolated_node(nodes)
    folder = nodes.hidden / "other"
    folder.mkdir()
    with pytest.raises(SearchError, match=rf"1 of 3 nodes cannot use it \(node .* \(id {nodes.isolated['NodeID'][:8]}\)"
                       rf": it has no folder {folder}\);"):  # fmt: skip
        check_storage(folder)
    assert probes(folder) == []


def test_a_node_that_does_not_answer_is_named_after_the_timeout(nodes):
    """The isolated node's processes stopped (SIGSTOP) for a moment: its probe task cannot run."""
    needs_isolated_node(nodes)
    folder = nodes.shared / "stalled"
    folder.mkdir()
    check_storage(folder)  # a worker waits on every node now: the other nodes answer at once below
    group = nodes.process[0].pid
    os.killpg(group, signal.SIGSTOP)
    try:
        started = time.monotonic()
        node_id = nodes.isolated["NodeID"][:8]
        stalled = rf"1 of 3 nodes cannot use it \(node .* \(id {node_id}\): did not answer within 2 s"
        with pytest.raises(SearchError, match=stalled):
            check_storage(folder, timeout_s=2)
        assert time.monotonic() - started < 5
    finally:
        os.killpg(group, signal.SIGCONT)
    assert probes(folder) == []
    time.sleep(2)  # the stalled task runs now, finds no probe file and writes nothing
    assert probes(folder) == []


# an address where nothing answers ----------------------------------------------------------------

EXPERIMENT = {**TINY_EXPERIMENT, "name": "nowhere"}


def test_an_address_where_nothing_answers_fails_at_once(tmp_path):
    (tmp_path / "space.yaml").write_text(TINY_SPACE)
    (tmp_path / "nowhere.yaml").write_text(yaml.safe_dump(EXPERIMENT, sort_keys=False))
    address = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "snn_nas.cli.main", "search", "nowhere.yaml", "--address", address,
         "--results-dir", str(tmp_path / "results"), "--no-progress"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert time.monotonic() - started < 20  # Ray alone retries for minutes
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"snn-nas search: error: --address {address}: no Ray cluster answers there")

    # a Ray Client address too (Ray alone: 30 s, then "ray client connection timeout")
    client = f"ray://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(SearchError, match=f"^--address {client}: no Ray cluster answers there"):
        check_address(client)
    assert time.monotonic() - started < 5
