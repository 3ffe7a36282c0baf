"""The search end to end with the real Ray Tune and Optuna (tiny space, synthetic data).

One trial without Ray; then three Ray runs: a CLI smoke run (with baselines), a search killed
with SIGKILL and resumed, and a search on a two-node Ray cluster with a trial that raises and a
Ray worker that dies once.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path

import pytest
import yaml
from file_tools import folder_digest

from snn_nas.search.experiment import load_experiment
from snn_nas.search.results import STATUSES, load_results
from snn_nas.search.trial import TrialSpec, _reason, run_trial
from snn_nas.space import SearchSpace, load_space

REPO = Path(__file__).resolve().parents[1]

TINY_SPACE = """\
name: tiny
image_size: 8
family: spiking
time_steps: {choice: [1, 2]}
patch_size: {choice: [2, 4]}
mlp_ratio: 2
num_stages: {choice: [1, 2]}
base_dim: {choice: [6, 12]}
stage_defaults:
  depth: 1
  identity: x
  skip_source: {choice: [stage, block]}
  skip_paths: both
  token_h: {op: {choice: [mlp, none]}}
  token_w: {op: mlp}
  cell: {nodes: 1, in: conv2x2, from: none}
stage1: {width_mult: 1}
stage2: {width_mult: 2}
"""


FIDELITY = {"epochs": 2, "batch_size": 16, "image_size": 8, "max_batches_per_epoch": 2, "eval_batch_size": 64}


def write_experiment(tmp_path: Path, name: str, **overrides) -> Path:
    (tmp_path / "tiny_space.yaml").write_text(TINY_SPACE)
    data = {
        "name": name,
        "space": "tiny_space.yaml",
        "dataset": "synthetic:train=64,val=32,classes=4,channels=1",
        "fidelity": FIDELITY,
        "trials": 4,
        "max_concurrent": 2,
        "costs": {"calibration_images": 16},
        "seed": 1,
        **overrides,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def ray_env(monkeypatch):
    """Keep Ray offline and small; make sure no Ray session outlives the test."""
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    yield
    import ray

    if ray.is_initialized():
        ray.shutdown()


# ---------------------------------------------------------------------- one trial, no Ray
def test_run_trial_reports_every_epoch_and_never_raises(tmp_path, monkeypatch):
    exp = load_experiment(write_experiment(tmp_path, "single", constraints={"max_sops": 1e12}))
    spec = TrialSpec.from_experiment(exp)
    space = load_space(exp.space)
    reports = []
    final = run_trial(space.sample(3), space=space, spec=spec, report=reports.append)
    assert [r["status"] for r in reports] == ["running", "ok"] and [r["epoch"] for r in reports] == [1, 2]
    assert final["status"] == "ok" and final["error"] is None and final["epochs"] == 2
    assert final["key"] == space.decode(space.sample(3)).key() and final["feasible"] is True
    for record in reports:  # costs measured on the trained model at every epoch
        assert 0.0 <= record["val_acc"] <= 1.0 and record["sops"] >= 0 and record["params"] > 0
        assert record["energy_uj"] == pytest.approx(0.9e-6 * record["sops"] + 4.6e-6 * record["macs"])

    invalid = run_trial({"no_such_label": 1}, space=space, spec=spec, report=reports.append)
    assert invalid["status"] == "invalid" and "unknown label 'no_such_label'" in invalid["error"]
    assert math.isnan(invalid["val_acc"]) and reports[-1]["status"] == "invalid"  # reported once, at once

    tight = TrialSpec.from_experiment(
        load_experiment(write_experiment(tmp_path, "tight", constraints={"max_params": 10}))
    )
    over = run_trial(space.sample(3), space=space, spec=tight)
    assert over["status"] == "invalid" and "exceed constraints.max_params (10); not trained" in over["error"]
    assert over["params"] == final["params"] and over["feasible"] is False and over["epochs"] == 0
    # a baseline is a reference point: trained even when it breaks a constraint, marked infeasible
    preset = run_trial({}, space=space, spec=tight, baseline="mlp_spe_micro")
    assert (preset["status"], preset["feasible"], preset["baseline"], preset["epochs"]) == (
        "ok",
        False,
        "mlp_spe_micro",
        2,
    )

    import snn_nas.training.config as training_config

    # a learning rate no file may set (lr is bounded to (0, 10]) is what makes this tiny net diverge
    monkeypatch.setattr(training_config, "MAX_LR", 1e31)
    wild = load_experiment(write_experiment(tmp_path, "wild", fidelity={**FIDELITY, "lr": 1e30, "optimizer": "sgd"}))
    diverged = run_trial(space.sample(3), space=space, spec=TrialSpec.from_experiment(wild))
    assert diverged["status"] == "diverged" and "loss became nan" in diverged["error"]


def test_out_of_memory_reasons():
    assert _reason(MemoryError()) == "out of memory"
    assert _reason(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB")).startswith(
        "out of memory: RuntimeError: CUDA"
    )
    assert _reason(ValueError("bad")) == "ValueError: bad"


# ---------------------------------------------------------------------- CLI smoke run
def test_cli_search_smoke(tmp_path, ray_env, capsys):
    import optuna

    from snn_nas.builder import build_model
    from snn_nas.cli.main import main
    from snn_nas.genotype import Genotype
    from snn_nas.presets import get_preset
    from snn_nas.training import TrainConfig

    path = write_experiment(tmp_path, "smoke")
    results = tmp_path / "results"
    args = ["search", str(path), "--results-dir", str(results), "--num-samples", "5", "--baselines", "--num-cpus", "2"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "[5/5]" in out and "smoke: 5 search trials (" in out and "+ 2 baselines (2 ok)" in out
    assert "front of" in out and "optuna-dashboard sqlite:///" in out

    folder = results / "smoke"
    table = load_results(folder)
    search = table[table["baseline"] == ""]
    assert len(search) == 5 and set(table["status"]) <= set(STATUSES)
    assert list(search["status"]) == ["ok"] * 5
    assert search["key"].is_unique and search["trial_id"].is_unique
    assert len((folder / "trials.jsonl").read_text().splitlines()) == len(table)  # one journal line per trial

    config = load_experiment(path).with_overrides(trials=5).train_config()
    for row in search.to_dict("records"):
        assert 0.0 <= row["val_acc"] <= 1.0 and math.isfinite(row["sops"]) and row["sops"] >= 0
        assert row["energy_uj"] == pytest.approx(0.9e-6 * row["sops"] + 4.6e-6 * row["macs"])
        assert row["epochs"] == 2 and row["wall_s"] > 0 and row["feasible"] and row["node"]
        assert TrainConfig.from_dict(json.loads(row["fidelity"])) == config and row["seed"] == 1
        genotype = Genotype.from_json(row["genotype"])  # every row rebuilds its model
        assert genotype.key() == row["key"] and genotype.summary() == row["summary"]
        model = build_model(genotype, num_classes=4, image_size=8, in_chans=1)
        assert sum(p.numel() for p in model.parameters()) == row["params"]

    # the samplers' study holds both objectives of every search trial, and nothing is left running
    from snn_nas.search.searcher import sampler_storage

    study = optuna.load_study(study_name=None, storage=sampler_storage(folder))
    told = {t.user_attrs["ray_trial_id"]: t for t in study.trials if "ray_trial_id" in t.user_attrs}
    assert set(told) == set(search["trial_id"])
    for row in search.to_dict("records"):
        trial = told[row["trial_id"]]
        assert trial.state == optuna.trial.TrialState.COMPLETE and trial.values == [row["val_acc"], row["sops"]]
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    # the user's study mirrors the table, one trial per row (tests/test_search_strategies.py has more)
    user = optuna.load_study(study_name="smoke", storage=f"sqlite:///{folder / 'optuna.db'}")
    comparable = table[table["baseline"] != "snn_mlp_micro"]  # non-spiking: 0 SOPs, compared on energy instead
    assert {t.user_attrs["trial_id"] for t in user.trials} == set(comparable["trial_id"])

    # the seed presets ran at the same fidelity, marked as baselines
    baselines = table[table["baseline"] != ""].set_index("baseline")
    assert set(baselines.index) == {"mlp_spe_micro", "snn_mlp_micro"}
    assert baselines.loc["mlp_spe_micro", "status"] == "ok"
    assert baselines.loc["mlp_spe_micro", "key"] == get_preset("mlp_spe_micro").key()
    # at 8 px its groups (4, 4, 2) exceed the sides (2, 1, 1): every position passes through, as published
    assert baselines.loc["snn_mlp_micro", "status"] == "ok"
    assert baselines.loc["snn_mlp_micro", "key"] == get_preset("snn_mlp_micro").key()

    # the folder is not overwritten by accident
    assert main(args) == 2
    assert "already holds a search" in capsys.readouterr().err

    # the user's loop goes on from the same folder: pareto writes the front, retrain its best point
    assert main(["pareto", str(folder), "--json"]) == 0
    front = json.loads(capsys.readouterr().out)["front"]
    assert front and all(row["key"] in set(table["key"]) for row in front)
    for name in ("pareto.csv", "pareto.png", "pareto.html"):
        assert (folder / name).stat().st_size > 0
    assert main(["retrain", str(folder), "--rank", "0", "--epochs", "1", "--no-progress", "--json", "--no-export"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["key"] == front[0]["key"] and 0.0 <= report["test_acc"] <= 1.0
    from snn_nas import load_model

    model = load_model(folder / "retrain" / report["key"] / report["checkpoint"])
    assert not model.training and model.genotype.key() == report["key"]


# ---------------------------------------------------------------------- kill -9 and --resume


def test_killed_search_resumes_without_rerunning_finished_trials(tmp_path, ray_env):
    from snn_nas.cli.main import main

    moasha = {"type": "moasha", "grace_period": 1, "reduction_factor": 2}  # its rungs are rebuilt on resume
    path = write_experiment(tmp_path, "killed", trials=6, max_concurrent=1, scheduler=moasha)
    results = tmp_path / "results"
    journal = results / "killed" / "trials.jsonl"
    command = [sys.executable, "-m", "snn_nas.cli.main", "search", str(path), "--results-dir", str(results)]
    process = subprocess.Popen(
        [*command, "--num-cpus", "2", "--no-progress"],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and process.poll() is None:
            if journal.is_file() and journal.read_text().count("\n") >= 1:
                break
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the driver and the Ray processes it started
        process.wait()
    killed_at = time.time()
    before = {row["trial_id"]: row for row in load_results(results / "killed").to_dict("records")}
    assert 1 <= len(before) < 6, "the search must be killed mid-way"

    # the folder is relocatable: a copy of it, resumed, reads and writes only itself
    shutil.copytree(results / "killed", results / "killed-copy")
    original = folder_digest(results / "killed")
    assert main(["search", "--resume", "--name", "killed-copy", "--results-dir", str(results), "--no-progress"]) == 0
    assert folder_digest(results / "killed") == original
    after = load_results(results / "killed-copy")
    assert len(after) >= 6 and after["trial_id"].is_unique and after["key"].is_unique
    assert set(after["status"]) <= {"ok", "stopped"} and "ok" in set(after["status"])
    rows = {row["trial_id"]: row for row in after.to_dict("records")}
    for trial_id, row in before.items():  # finished trials are kept as they were ...
        assert json.dumps(rows[trial_id], default=str) == json.dumps(row, default=str)
        # ... and not trained again: Ray saw at most a replay of the stored record after the kill
        result_file = results / "killed-copy" / "ray" / "search" / f"trial_{trial_id}" / "result.json"
        lines = [json.loads(line) for line in result_file.read_text().splitlines()] if result_file.is_file() else []
        assert all(line.get("replayed") for line in lines if line["timestamp"] >= int(killed_at))


# ---------------------------------------------------------------------- two-node cluster, faults
@dataclass(frozen=True)
class FaultySpace(SearchSpace):
    """The tiny space, but inside a Ray worker the first decode raises and the second kills the
    worker process (once each, across processes, via marker files naming the node)."""

    marker_dir: str = ""
    driver_pid: int = 0

    def decode(self, sample):  # type: ignore[override]
        genotype = super().decode(sample)
        if os.getpid() != self.driver_pid:
            for marker in ("raised", "crashed"):
                try:
                    fd = os.open(os.path.join(self.marker_dir, marker), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                except FileExistsError:
                    continue
                import ray

                os.write(fd, ray.get_runtime_context().get_node_id()[:8].encode())  # where it happened
                os.close(fd)
                if marker == "raised":
                    raise RuntimeError("injected failure")
                os._exit(1)  # the Ray worker dies; Ray retries the trial (max_failures)
        return genotype


def test_search_on_a_two_node_cluster_records_failures_and_retries_dead_workers(tmp_path, ray_env):
    import ray.cloudpickle
    from ray.cluster_utils import Cluster

    from snn_nas.search.tune import run_search

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # FaultySpace travels to the workers
    experiment = load_experiment(write_experiment(tmp_path, "cluster", max_failures=1))
    base = load_space(experiment.space)
    space = FaultySpace(**{f.name: getattr(base, f.name) for f in fields(SearchSpace)}, marker_dir=str(tmp_path),
                        driver_pid=os.getpid())  # fmt: skip
    node = {"num_cpus": 1, "object_store_memory": 80 * 1024**2}
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    try:
        cluster.add_node(**node)
        cluster.wait_for_nodes()
        outcome = run_search(
            experiment,
            results_dir=tmp_path / "results",
            address=cluster.address,
            space=space,
            progress=False,
            baselines=False,
        )
    finally:
        cluster.shutdown()
    assert outcome.complete and (tmp_path / "raised").exists() and (tmp_path / "crashed").exists()
    table = outcome.table
    assert len(table) == 4 and table["trial_id"].is_unique and table["key"].is_unique
    failed = table[table["status"] == "failed"]
    # the trial that raised is recorded with its reason; the search went on
    assert len(failed) == 1 and failed.iloc[0]["error"] == "RuntimeError: injected failure"
    assert failed.iloc[0]["key"]  # decoded by the driver, so the row still names its architecture
    # the trial whose worker died was retried and finished
    assert (table["status"] == "ok").sum() == 3
    # trials ran on both nodes (a node that only ran the crashed attempt has no row; its marker names it)
    nodes = {node.split("/")[-1] for node in table["node"]}
    nodes |= {(tmp_path / marker).read_text() for marker in ("raised", "crashed")}
    assert len(nodes) == 2


# ---------------------------------------------------------------------- the searcher, without a cluster
FOUR_ARCHITECTURES = """\
name: four
image_size: 8
time_steps: {choice: [1, 2]}
patch_size: {choice: [2, 4]}
num_stages: 1
stage1: {dim: 6, depth: 1}
"""


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_searcher_draws_each_architecture_once_and_tells_optuna_each_status(tmp_path):
    import optuna

    from snn_nas.search.searcher import SnnOptunaSearch

    (tmp_path / "four.yaml").write_text(FOUR_ARCHITECTURES)
    space = load_space(tmp_path / "four.yaml")
    assert space.size() == 4
    searcher = SnnOptunaSearch(
        space=space.suggest,
        decode=space.decode,
        metric=["val_acc", "sops"],
        mode=["max", "min"],
        sampler=optuna.samplers.RandomSampler(seed=0),
        constraints=(("params", 1000.0),),
    )
    configs = [searcher.suggest(f"t{i}") for i in range(4)]
    assert len({space.decode(c).key() for c in configs}) == 4  # no architecture twice
    study = searcher._ot_study
    duplicates = [t for t in study.trials if "duplicate_of" in t.user_attrs]
    assert all(t.state == optuna.trial.TrialState.FAIL for t in duplicates)

    # a sampler stuck on one architecture: after a few duplicate draws the searcher explores at random
    stuck = optuna.samplers.PartialFixedSampler(configs[0], optuna.samplers.RandomSampler(seed=1))
    stuck_searcher = SnnOptunaSearch(
        space=space.suggest, decode=space.decode, metric=["val_acc", "sops"], mode=["max", "min"], sampler=stuck
    )
    drawn = [stuck_searcher.suggest(f"s{i}") for i in range(4)]
    assert len({space.decode(c).key() for c in drawn}) == 4
    # an invalid architecture is told as worse than everything seen, so the sampler avoids it
    stuck_searcher.on_trial_complete("s0", {"status": "ok", "val_acc": 0.8, "sops": 100.0})
    stuck_searcher.on_trial_complete("s1", {"status": "invalid", "error": "too many parameters"})
    told = {t.user_attrs.get("ray_trial_id"): t for t in stuck_searcher._ot_study.trials}
    assert told["s1"].state == optuna.trial.TrialState.COMPLETE and told["s1"].values == [0.0, 1001.0]

    searcher.on_trial_complete("t0", {"status": "ok", "val_acc": 0.5, "sops": 10.0, "params": 500, "key": "k0"})
    searcher.on_trial_complete("t1", {"status": "running", "val_acc": 0.1, "sops": 5.0})  # stopped by ASHA
    searcher.on_trial_complete("t2", {"status": "failed", "error": "RuntimeError: boom"})
    searcher.on_trial_complete("t3", None, error=True)  # the Ray trial errored
    states = {t.user_attrs.get("ray_trial_id"): t for t in study.trials if "ray_trial_id" in t.user_attrs}
    assert states["t0"].state == optuna.trial.TrialState.COMPLETE and states["t0"].values == [0.5, 10.0]
    assert states["t0"].user_attrs["constraints"] == [-0.5]  # params 500 of at most 1000
    assert states["t0"].system_attrs["constraints:max_params"] == -0.5  # where the samplers read it
    assert states["t1"].state == optuna.trial.TrialState.PRUNED and states["t1"].user_attrs["status"] == "stopped"
    assert states["t2"].state == optuna.trial.TrialState.FAIL
    assert states["t2"].user_attrs["error"] == "RuntimeError: boom"
    assert states["t3"].state == optuna.trial.TrialState.FAIL and states["t3"].user_attrs["status"] == "failed"
