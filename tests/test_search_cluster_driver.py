"""Searches on a real multi-node Ray cluster on this machine (issue 26): trials on the worker
nodes, a node that dies under running trials, a node that joins mid-search, and a driver killed
with SIGKILL that ``--resume`` continues on the cluster.

One ``ray.cluster_utils.Cluster`` serves the module: a head without CPUs (it runs no trial) and
worker nodes of 1 logical CPU each, added as each test needs them. The first test trains real
(tiny) networks; the others run the real driver (sampler, MOASHA, table, study, display, Ray's
snapshots) with stand-in trials (``snn_nas.search.driver.standin``) that sleep a few seconds, so
that a node can be killed, or join, while trials run. A node is killed as a machine dies: its
raylet and every process the raylet started, by process id.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster_tools import kill_node, node_env, stop

from snn_nas.search.driver.standin import CurveModel, standin_runner
from snn_nas.search.experiment import load_experiment
from snn_nas.search.results import load_results

STORE = 80 * 1024**2
ray_cloudpickle = pytest.importorskip("ray.cloudpickle")
ray_cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this file
SPACE = """\
name: tiny
image_size: 8
family: spiking
time_steps: {choice: [1, 2]}
patch_size: 4
mlp_ratio: {choice: [1, 2]}
num_stages: 1
stage_defaults: {depth: {choice: [1, 2]}, dim: {choice: [8, 12, 16]}, token_h: {op: mlp}, token_w: {op: mlp}}
"""
EXPERIMENT = {
    "name": "cluster",
    "space": "space.yaml",
    "dataset": "synthetic:train=32,val=16,classes=4,channels=1",
    "fidelity": {"epochs": 2, "batch_size": 16, "image_size": 8, "max_batches_per_epoch": 1, "eval_batch_size": 16},
    "trials": 4,
    "max_concurrent": 2,
    "max_failures": 1,
    "scheduler": {"type": "moasha", "grace_period": 1, "reduction_factor": 2},
    "costs": {"calibration_images": 8},
    "baselines": [],
    "warm_start": "none",
}
MODEL = CurveModel(
    sops_intercept=12.0,
    sops_weights=(("stage_defaults.dim=16", 0.5),),
    sops_sd=0.2,
    acc_intercept=0.5,
    acc_weights=(),
    acc_sd=0.3,
    ratios=(0.8, 1.0),
)


def write_experiment(folder: Path, **overrides) -> Path:
    (folder / "space.yaml").write_text(SPACE)
    path = folder / "experiment.yaml"
    path.write_text(yaml.safe_dump({**EXPERIMENT, **overrides}))
    return path


def node_tag(node) -> str:
    """The ``node`` column's form: ``<ip>/<node id[:8]>``."""
    return f"{node.node_ip_address}/{node.node_id[:8]}"


def wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def journal_rows(directory: Path) -> list[dict]:
    path = directory / "trials.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip().endswith("}")]


@dataclass(frozen=True)
class MarkedTrial:
    """A stand-in trial that leaves ``<folder>/<node id>.<pid>`` while it runs (so the test sees
    where trials run without Ray's state API, which needs the dashboard)."""

    inner: Any
    folder: str

    def __call__(self, sample, **kwargs):
        import ray

        marker = Path(self.folder) / f"{ray.get_runtime_context().get_node_id()}.{os.getpid()}"
        marker.write_text("")
        try:
            return self.inner(sample, **kwargs)
        finally:
            marker.unlink(missing_ok=True)


class Nodes:
    """The module's cluster: ``workers(n)`` makes sure ``n`` worker nodes are alive."""

    def __init__(self, cluster) -> None:
        self.cluster = cluster
        self.alive: list = []

    def workers(self, count: int) -> list:
        import ray

        while len(self.alive) < count:
            self.alive.append(self.cluster.add_node(num_cpus=1, object_store_memory=STORE))
        wait_for(lambda: sum(n["Alive"] and n["Resources"].get("CPU", 0) > 0 for n in ray.nodes()) >= count, 60,
                 f"{count} worker nodes")  # fmt: skip
        return self.alive[:count]

    def kill(self, node) -> None:
        kill_node(node)
        self.alive.remove(node)
        with contextlib.suppress(Exception):
            self.cluster.remove_node(node, allow_graceful=False)


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    import ray
    from ray.cluster_utils import Cluster

    ray_tmp = tempfile.mkdtemp(prefix="snnd", dir="/tmp")  # Ray's socket paths must stay short
    # Ray's authentication mode is read once per process: it is left as the other tests have it
    # (setting RAY_AUTH_MODE here would stay in force for every later test of this process)
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("RAY_ADDRESS", raising=False)
        patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
        cluster = Cluster(
            initialize_head=True,
            head_node_args=dict(
                num_cpus=0, object_store_memory=STORE, temp_dir=ray_tmp, include_dashboard=False,
                _system_config={"health_check_period_ms": 500, "health_check_failure_threshold": 4},
            ),  # a dead node is declared dead within seconds
        )  # fmt: skip
        try:
            ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
            yield Nodes(cluster)
        finally:
            ray.shutdown()
            cluster.shutdown()
            shutil.rmtree(ray_tmp, ignore_errors=True)


def search(tmp_path: Path, nodes, *, runner=None, name: str = "cluster", **overrides):
    from snn_nas.search.tune import run_search

    experiment = replace(load_experiment(write_experiment(tmp_path, **overrides)), name=name)
    return run_search(
        experiment, results_dir=tmp_path / "results", address=nodes.cluster.address, progress=False, runner=runner
    )


def test_a_search_runs_its_trials_on_the_worker_nodes(tmp_path, nodes):
    """Real training, 4 trials on two worker nodes of 1 CPU: the head runs none, the table names
    the node of every trial, and the summary counts the nodes."""
    from snn_nas.cli.search import summary_lines

    workers = nodes.workers(2)
    result = search(tmp_path, nodes)
    assert result.complete
    rows = result.table.to_dict("records")
    assert len(rows) == 4 and {r["status"] for r in rows} <= {"ok", "stopped", "invalid"}
    trained = {r["node"] for r in rows if r["status"] != "invalid"}
    assert trained <= {node_tag(n) for n in workers}  # never the head (no CPU)
    assert len(trained) == 2, trained  # both nodes took trials
    assert ", on 2 Ray nodes" in summary_lines(load_experiment(tmp_path / "experiment.yaml"), rows, 1.0)[0]


def test_a_node_that_dies_under_running_trials_loses_no_finished_row(tmp_path, nodes):
    """Stand-in trials of 6 s on two nodes; one node is killed while a trial runs on it. Its trial
    is retried on the surviving node (``max_failures`` 1) or recorded as failed with "node died";
    every trial is in the table once, the rows finished before the kill are unchanged, and the
    user's Optuna study holds exactly the table's trials."""
    import optuna
    import ray

    victim, _ = nodes.workers(2)
    directory = tmp_path / "results" / "dies"
    killed: dict = {}

    markers = tmp_path / "running"
    markers.mkdir()

    def kill_when_running() -> None:
        wait_for(lambda: any(markers.glob(f"{victim.node_id}.*")), 90, "a trial on the node to kill")
        time.sleep(1.0)  # its trial is well under way
        killed["rows_before"] = {r["trial_id"]: r for r in journal_rows(directory)}
        nodes.kill(victim)
        killed["at"] = time.time()

    killer = threading.Thread(target=kill_when_running, daemon=True)
    killer.start()
    runner = MarkedTrial(standin_runner(MODEL, 6.0), str(markers))
    result = search(tmp_path, nodes, runner=runner, name="dies", trials=6)
    killer.join(timeout=5)
    assert "at" in killed, "the node was never killed"
    assert result.complete
    rows = {r["trial_id"]: r for r in result.table.to_dict("records")}
    assert len(rows) == 6  # every trial accounted for
    for trial_id, before in killed["rows_before"].items():  # nothing finished was lost or changed
        assert rows[trial_id]["finished_at"] == pytest.approx(before["finished_at"])
    for row in rows.values():
        assert row["status"] in ("ok", "stopped", "invalid") or str(row["error"]).startswith("node died"), row
    after = [r for r in rows.values() if r["finished_at"] > killed["at"] + 1]
    assert after and all(r["node"] != node_tag(victim) for r in after)  # later trials ran on the survivor
    study = optuna.load_study(study_name="dies", storage=f"sqlite:///{directory / 'optuna.db'}")
    assert sorted(t.user_attrs["trial_id"] for t in study.trials) == sorted(rows)
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    assert sum(n["Alive"] and n["Resources"].get("CPU", 0) > 0 for n in ray.nodes()) == 1


def test_a_node_that_joins_mid_search_takes_trials(tmp_path, nodes):
    """One worker node at the start; a second joins once the search runs: trials spread to it."""
    import ray

    (first,) = nodes.workers(1)
    directory = tmp_path / "results" / "joins"
    joined: dict = {}
    log = (tmp_path / "joined.log").open("w")

    def join_later() -> None:  # as a user would: 'ray start --address' on a new machine
        wait_for(lambda: (directory / "ray").is_dir(), 90, "the search to start")  # trials are running
        before = {n["NodeID"] for n in ray.nodes()}
        ray_cli = str(Path(sys.executable).parent / "ray")
        command = [ray_cli, "start", "--address", nodes.cluster.address, "--num-cpus", "1",
                   "--object-store-memory", str(STORE), "--block", "--disable-usage-stats"]  # fmt: skip
        joined["process"] = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=node_env()
        )
        wait_for(lambda: any(n["Alive"] and n["NodeID"] not in before for n in ray.nodes()), 60, "the new node")
        joined["node"] = next(n for n in ray.nodes() if n["Alive"] and n["NodeID"] not in before)

    helper = threading.Thread(target=join_later, daemon=True)
    helper.start()
    try:
        # 24 trials of 2 s on one 1-CPU node: 48 s or more, time enough for a node to join (10-20 s here)
        result = search(tmp_path, nodes, runner=standin_runner(MODEL, 2.0), name="joins", trials=24, max_concurrent=4)
        helper.join(timeout=60)
        assert result.complete and len(result.table) == 24
        used = set(result.table["node"].dropna())
        new = joined["node"]
        assert f"{new['NodeManagerAddress']}/{new['NodeID'][:8]}" in used and node_tag(first) in used
    finally:
        if "process" in joined:
            stop(joined["process"])
        log.close()


DRIVER = """\
import sys
from dataclasses import dataclass, replace
from snn_nas.search.driver.standin import CurveModel, standin_runner
from snn_nas.search.experiment import load_experiment
from snn_nas.search.tune import run_search
import json
model = CurveModel.from_dict(json.loads(sys.argv[4]))
experiment = replace(load_experiment(sys.argv[1]), name="killed")
run = run_search(experiment, results_dir=sys.argv[2], address=sys.argv[3], resume=sys.argv[5] == "resume",
                 progress=False, runner=standin_runner(model, 2.0))
print("complete" if run.complete else "interrupted", len(run.table))
"""


def test_a_driver_killed_mid_search_resumes_on_the_cluster(tmp_path, nodes):
    """The driver (a process of its own, as ``snn-nas search --address``) is killed with SIGKILL
    after a few trials finished; the same search with ``resume`` continues on the cluster: every
    trial finishes, none is in the table twice, the rows written before the kill are kept."""
    nodes.workers(2)
    path = write_experiment(tmp_path, trials=12)
    results = tmp_path / "results"
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    model = json.dumps(MODEL.to_dict())
    args = [sys.executable, str(script), str(path), str(results), nodes.cluster.address, model]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    first = subprocess.Popen([*args, "new"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: len(journal_rows(results / "killed")) >= 3 or first.poll() is not None, 120, "3 rows")
        assert first.poll() is None, first.stdout.read().decode()[-2000:]
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    before = {r["trial_id"]: r for r in journal_rows(results / "killed")}
    done = subprocess.run([*args, "resume"], env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["complete", "12"], done.stdout[-500:]
    table = load_results(results / "killed")
    assert len(table) == 12 and table["trial_id"].is_unique
    rows = {r["trial_id"]: r for r in table.to_dict("records")}
    for trial_id, row in before.items():
        assert rows[trial_id]["finished_at"] == pytest.approx(row["finished_at"])
