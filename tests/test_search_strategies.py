"""Search strategies end to end, with the real Ray Tune, Optuna and optuna-dashboard.

One small search (module fixture) runs with everything the quick experiment can ask for: the
seed baseline evaluated first, a warm start from the seed design, a training-free pre-screen and
the multi-objective ASHA scheduler. The tests then read what it wrote: the order of the first
trials, the per-epoch curves, the two Optuna studies (the dashboard's HTTP API included), and an
audit of it run through the command line, killed and resumed.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from snn_nas.search.results import load_results, parse_curve

REPO = Path(__file__).resolve().parents[1]

# 3 stages of widths 24 / 48 / 96 with patch-encoding cells: mlp_spe_micro is a member. A node
# input of 'none' makes some samples invalid (a node without input), as in real spaces.
SEEDED_SPACE = """\
name: seeded
image_size: 32
time_steps: {choice: [1, 4]}
patch_size: 4
mlp_ratio: 3
num_stages: 3
base_dim: 24
stage_defaults:
  depth: 1
  identity: x
  skip_source: {choice: [stage, none]}
  skip_paths: both
  token_h: {op: mlp}
  token_w: {op: {choice: [mlp, none]}}
  cell: {nodes: {choice: [1, 3]}, in: {choice: [conv2x2, conv3x3, none]}, from: {choice: [none, identity, conv3x3]}}
stage1: {width_mult: 1}
stage2: {width_mult: 2}
stage3: {width_mult: 4}
"""
EPOCHS = 3


def write_seeded(folder: Path, name: str, **overrides) -> Path:
    (folder / "seeded_space.yaml").write_text(SEEDED_SPACE)
    data = {
        "name": name,
        "space": "seeded_space.yaml",
        "dataset": "synthetic:train=64,val=48,test=32,classes=4,channels=1,noise=0.6",
        "fidelity": {"epochs": EPOCHS, "batch_size": 16, "lr": 0.01, "image_size": 8, "eval_batch_size": 64},
        "trials": 6,
        "max_concurrent": 2,
        "scheduler": {"type": "moasha", "grace_period": 1, "reduction_factor": 2},
        "prescreen": {"pool": 8, "keep": 2},
        "baselines": ["mlp_spe_micro"],
        "costs": {"calibration_images": 16},
        "seed": 1,
        **overrides,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_in_a_terminal(argv: list[str], timeout: float = 600) -> tuple[int, str]:
    """Run ``argv`` with stdout and stderr on a real pseudo-terminal (what a user at a terminal
    sees: ``isatty()`` is true, rich draws its live panel); returns (exit code, output)."""
    import pty
    import threading

    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "160", "LINES": "50", "TERM": "xterm"}
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, cwd=REPO, env=env)
    os.close(slave)
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        code = process.wait(timeout=timeout)
    finally:
        reader.join(timeout=30)
        os.close(master)
    return code, b"".join(chunks).decode("utf-8", "replace")


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """(results folder, experiment path, terminal output) of one finished search, run in a real
    terminal as a user would."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    folder = tmp_path_factory.mktemp("strategies")
    path = write_seeded(folder, "seeded")
    results = folder / "results"
    argv = [sys.executable, "-m", "snn_nas.cli.main", "search", str(path), "--results-dir", str(results),
            "--num-cpus", "2"]  # fmt: skip
    code, output = run_in_a_terminal(argv)
    assert code == 0, output[-3000:]
    return results / "seeded", path, output


def _sampler_trials(directory: Path):
    import optuna

    from snn_nas.search.searcher import SAMPLER_STUDY_SUFFIX, sampler_storage

    storage = sampler_storage(directory)
    study = optuna.load_study(study_name="seeded" + SAMPLER_STUDY_SUFFIX, storage=storage)
    return sorted(study.trials, key=lambda t: t.number)


def test_warm_start_and_prescreen_candidates_are_the_first_trials(searched):
    from snn_nas.presets import get_preset
    from snn_nas.search.experiment import load_experiment
    from snn_nas.search.prescreen import prescreen_samples
    from snn_nas.search.trial import TrialSpec
    from snn_nas.space import load_space

    directory, path, _ = searched
    table = load_results(directory)
    seed_key = get_preset("mlp_spe_micro").key()
    # the baseline ran first, at the search's fidelity ...
    baseline = table[table["baseline"] == "mlp_spe_micro"]
    assert len(baseline) == 1 and baseline.iloc[0]["key"] == seed_key and baseline.iloc[0]["status"] == "ok"
    # ... and the samplers handed out the seed design, then the pre-screen's pick, before drawing their own
    experiment = load_experiment(path)
    space = load_space(experiment.space)
    picked = prescreen_samples(experiment, space, TrialSpec.from_experiment(experiment), exclude={seed_key})
    expected = [seed_key, *[space.decode(sample).key() for sample in picked]]
    first = _sampler_trials(directory)[:3]
    assert [t.user_attrs.get("enqueued_by") for t in first] == ["warm_start", "prescreen", "prescreen"]
    assert [t.user_attrs.get("key") for t in first] == expected
    search = table[table["baseline"] == ""]
    assert set(expected) <= set(search["key"])  # normal trials of the search, within its budget of 6
    assert len(search) == 6 and search["trial_id"].is_unique
    # the warm-start trial is the baseline's architecture at the same fidelity: its result is reused,
    # not trained twice, and says so
    warm = search[search["key"] == seed_key].iloc[0]
    assert warm["reused_from"] == baseline.iloc[0]["trial_id"] and warm["status"] == "ok"
    for column in ("val_acc", "sops", "energy_uj", "params", "epochs", "curve"):
        assert warm[column] == baseline.iloc[0][column]
    assert search[search["key"] != seed_key]["reused_from"].isna().all()
    # one trial-id format for baselines and sampled trials
    assert all(len(t) == 8 and set(t) <= set("0123456789abcdef") for t in table["trial_id"])


def test_a_terminal_shows_every_trial_its_reason_and_the_same_front_as_pareto(searched):
    """Under a real terminal, as piped: a line per finished trial with the reason of every trial
    that did not train; the live front follows the rule of 'snn-nas pareto'."""
    import re

    from snn_nas.report import front_for_dir

    directory, _, output = searched
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output).replace("\r", "")
    table = load_results(directory)
    for row in table.to_dict("records"):
        assert f"] {row['trial_id']} {row['status']}" in text, row["trial_id"]
        if row["error"]:
            assert row["error"][:60] in text.replace("\n", ""), row["error"]
    assert "result of baseline trial" in text and "reused, not trained again" in text
    assert "current front" in text
    # the summary counts trials as pareto does, and lists pareto's front
    analysis = front_for_dir(directory)
    assert "seeded: 6 search trials (" in text and "+ 1 baseline (1 ok)" in text
    assert f"front of {len(analysis.front)}:" in text
    for key in analysis.front["key"].head(5):
        assert f"  {key}  val_acc" in text


def test_every_row_has_its_curve_and_the_scheduler_stopped_at_rungs(searched):
    directory, _, _ = searched
    table = load_results(directory)
    for row in table.to_dict("records"):
        curve = parse_curve(row["curve"])
        if row["status"] == "invalid":
            assert curve == []
            continue
        assert [point["epoch"] for point in curve] == list(range(1, len(curve) + 1))
        assert len(curve) == row["epochs"] and curve[-1]["val_acc"] == pytest.approx(row["val_acc"])
        assert curve[-1]["sops"] == pytest.approx(row["sops"])
        if row["status"] == "ok":
            assert len(curve) == EPOCHS
        if row["status"] == "stopped":  # moasha stops at a rung: epoch 1 or 2 (grace 1, factor 2)
            assert len(curve) in (1, 2)


def test_the_users_study_holds_real_results_only(searched):
    import optuna

    directory, _, _ = searched
    table = load_results(directory)
    from snn_nas.report import front_exclusion

    study = optuna.load_study(study_name="seeded", storage=f"sqlite:///{directory / 'optuna.db'}")
    assert study.metric_names == ["val_acc", "sops"]
    by_id = {t.user_attrs["trial_id"]: t for t in study.trials}
    reused = table[table["reused_from"].notna()]
    assert len(reused) == 1  # the warm-start trial is its baseline's trial: one architecture, one trial
    assert set(by_id) == set(table["trial_id"]) - set(reused["trial_id"])
    assert "warm-start trial" in by_id[reused.iloc[0]["reused_from"]].user_attrs["note"]
    for row in table[table["reused_from"].isna()].to_dict("records"):
        trial = by_id[row["trial_id"]]
        assert trial.user_attrs["status"] == row["status"]
        if row["status"] == "ok" and front_exclusion(row) is None:
            assert trial.state == optuna.trial.TrialState.COMPLETE
            assert trial.values == [row["val_acc"], row["sops"]]  # the table's values, nothing else
            assert trial.user_attrs["key"] == row["key"] and trial.user_attrs["summary"] == row["summary"]
        elif row["status"] == "ok":  # chance level: trained, but never among the dashboard's best trials
            assert trial.state == optuna.trial.TrialState.PRUNED and "chance" in trial.user_attrs["not_on_front"]
        else:
            assert trial.values is None and trial.state != optuna.trial.TrialState.COMPLETE
        # real durations: the trial's own start and finish, as the driver saw them
        assert trial.datetime_start.timestamp() == pytest.approx(row["started_at"], abs=1e-3)
        assert trial.datetime_complete.timestamp() == pytest.approx(row["finished_at"], abs=2.0)
        assert trial.datetime_complete > trial.datetime_start
    # numbered in the order the trials started: the baseline (whose result is the warm-start trial's) first
    ordered = sorted(study.trials, key=lambda t: t.number)
    assert [t.datetime_start for t in ordered] == sorted(t.datetime_start for t in ordered)
    assert ordered[0].user_attrs.get("baseline") == "mlp_spe_micro"
    # the samplers' study cannot be opened by mistake: not *.db, a name that says what it is, metric names
    assert sorted(p.name for p in directory.glob("*.db")) == ["optuna.db"]
    from snn_nas.search.searcher import sampler_storage

    sampler = optuna.load_study(study_name=None, storage=sampler_storage(directory))
    assert "not results" in sampler.study_name and sampler.metric_names == ["val_acc", "sops"]
    assert "invalid" in set(table["status"])  # a ruled-out draw: FAIL here, a placeholder only for the samplers
    sampler = _sampler_trials(directory)
    placeholders = [t for t in sampler if t.user_attrs.get("status") == "invalid"]
    assert placeholders and all(
        t.state == optuna.trial.TrialState.COMPLETE and t.values[0] == 0.0 for t in placeholders
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def test_optuna_dashboard_shows_names_trials_and_real_values(searched):
    directory, _, _ = searched
    table = load_results(directory)
    port = _free_port()
    program = str(Path(sys.executable).parent / "optuna-dashboard")  # the dev dependency's command
    dashboard = subprocess.Popen(
        [program, f"sqlite:///{directory / 'optuna.db'}", "--port", str(port),
         "--host", "127.0.0.1", "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                studies = _get(f"http://127.0.0.1:{port}/api/studies")
                break
            except OSError:
                if time.monotonic() > deadline or dashboard.poll() is not None:
                    raise
                time.sleep(0.3)
        [summary] = studies["study_summaries"]
        detail = _get(f"http://127.0.0.1:{port}/api/studies/{summary['study_id']}")
    finally:
        dashboard.terminate()
        dashboard.wait(timeout=30)
    from snn_nas.report import front_exclusion

    assert summary["study_name"] == "seeded" and summary["directions"] == ["maximize", "minimize"]
    assert detail["objective_names"] == ["val_acc", "sops"]
    assert len(detail["trials"]) == len(table) - table["reused_from"].notna().sum()
    rows = {row["trial_id"]: row for row in table.to_dict("records")}
    for trial in detail["trials"]:
        attrs = {a["key"]: a["value"] for a in trial["user_attrs"]}
        row = rows[attrs["trial_id"]]
        if trial["state"] == "Complete":
            assert row["status"] == "ok" and trial["values"] == [row["val_acc"], row["sops"]]
        else:
            assert (row["status"] != "ok" or front_exclusion(row) is not None) and not trial.get("values")
    # the dashboard's best trials hold no chance-level model
    for best in detail["best_trials"]:
        attrs = {a["key"]: a["value"] for a in best["user_attrs"]}
        assert front_exclusion(rows[attrs["trial_id"]]) is None


# ---------------------------------------------------------------------- the audit of that search
def _audit_command(directory: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "snn_nas.cli.main", "audit", str(directory), "--sample", "4", "--epochs", "2",
            "--num-cpus", "2", *extra]  # fmt: skip


def test_audit_resumes_after_a_kill_and_reports_scipys_tau(searched):
    import pandas as pd
    from scipy import stats

    directory, _, _ = searched
    journal = directory / "audit" / "audit.jsonl"
    process = subprocess.Popen(
        [*_audit_command(directory), "--no-progress"],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and process.poll() is None:
            if journal.is_file() and journal.read_text().count("\n") >= 1:
                break
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the audit and the Ray processes it started
        process.wait()
    before = {row["key"]: row for row in map(json.loads, journal.read_text().splitlines())}
    assert 1 <= len(before) < 4, "the audit must be killed mid-way"

    done = subprocess.run([*_audit_command(directory), "--json"], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert f"{len(before)} already done, {4 - len(before)} to train" in done.stderr
    after = {row["key"]: row for row in map(json.loads, journal.read_text().splitlines())}
    assert len(journal.read_text().splitlines()) == 4  # the finished ones were not trained again
    for key, row in before.items():
        assert after[key] == row

    table = pd.read_parquet(directory / "audit" / "audit.parquet")
    assert len(table) == 4
    # its search-front members are by the front rule every view uses (a chance-level trial is not one)
    from snn_nas.report import dataset_classes, declared_dataset, front_exclusion, load_trials

    classes = dataset_classes(declared_dataset(directory))
    kept_off = {r["key"] for r in load_trials(directory).to_dict("records") if front_exclusion(r, num_classes=classes)}
    assert not set(table.loc[table["on_front"].astype(bool), "key"]) & kept_off
    ok = table[table["status"] == "ok"]
    expected = stats.kendalltau(ok["proxy_val_acc"], ok["val_acc"]).statistic
    assert (report["kendall_tau"] is None and math.isnan(expected)) or report["kendall_tau"] == pytest.approx(expected)
    for name in ("kendall_tau", "spearman_rho", "kendall_tau_sops", "kendall_tau_params", "kendall_tau_top",
                 "sops_drift_median", "sops_drift_max", "front_recall", "top1_regret", "n"):  # fmt: skip
        assert name in report
    assert report["n"] == len(ok) and report["high_fidelity"]["train_on"] == "train"
    assert ((ok["test_acc"] >= 0) & (ok["test_acc"] <= 1)).all()
    assert (directory / "audit" / "audit.png").stat().st_size > 0


def test_audit_bad_input_is_one_line(searched, tmp_path):
    directory, _, _ = searched

    def audit(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "snn_nas.cli.main", "audit", *argv], capture_output=True,
                              text=True, cwd=REPO)  # fmt: skip

    for argv, message in (
        ([str(directory), "--sample", "1"], "--sample: 1; an audit needs at least 3"),
        ([str(tmp_path / "nowhere")], "no such results folder"),
        ([str(directory / "audit")], "audit"),  # a folder of another kind
    ):
        result = audit(*argv)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    from snn_nas.search.results import ResultStore

    ResultStore(empty).record({"trial_id": "t0", "status": "invalid", "error": "ruled out"})
    result = audit(str(empty))
    assert result.returncode == 2 and "has 0 finished ('ok') trial(s)" in result.stderr


# ---------------------------------------------------------------------- a search never reads test
def test_search_never_reads_the_test_part_and_honours_no_baselines(tmp_path):
    """CIFAR-10 files whose test batch is not a pickle at all: a search through Ray trains, ranks
    on val and finishes, because nothing in it reads the test part (it is loaded lazily, and each
    trial gets the splits with test withheld). --no-baselines leaves the baselines out."""
    import pickle

    import numpy as np

    from snn_nas.cli.main import main
    from snn_nas.data import load_dataset

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(1, 6):
        labels = [(j + i) % 10 for j in range(8)]
        data = rng.integers(0, 256, (8, 3072), dtype=np.uint8)
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps({b"data": data, b"labels": labels}))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [f"c{i}".encode() for i in range(10)]}))
    (folder / "test_batch").write_bytes(b"reading this file fails")
    with pytest.raises(Exception, match="cannot read"):
        len(load_dataset("cifar10:verify=0", data_root=str(tmp_path)).test)  # reading test does fail

    (tmp_path / "tiny.yaml").write_text(
        "name: tiny\nimage_size: 8\ntime_steps: {choice: [1, 2]}\npatch_size: 4\nnum_stages: 1\n"
        "stage1: {dim: 6, depth: 1, token_h: {op: {choice: [mlp, none]}}}\n"
    )
    experiment = {
        "name": "cifar", "space": "tiny.yaml", "dataset": "cifar10:verify=0", "data_root": str(tmp_path),
        "fidelity": {"epochs": 1, "batch_size": 8, "image_size": 8, "eval_batch_size": 64},
        "trials": 2, "max_concurrent": 2, "costs": {"calibration_images": 8}, "baselines": ["mlp_spe_micro"],
    }  # fmt: skip
    (tmp_path / "cifar.yaml").write_text(yaml.safe_dump(experiment))
    argv = ["search", str(tmp_path / "cifar.yaml"), "--results-dir", str(tmp_path / "results"), "--num-cpus", "2",
            "--no-progress", "--no-baselines"]  # fmt: skip
    assert main(argv) == 0
    table = load_results(tmp_path / "results" / "cifar")
    assert len(table) == 2 and set(table["baseline"]) == {""}
    # trained to the end ('silent': random pixels, one epoch, no spike left; a read of test would be 'failed')
    assert set(table["status"]) <= {"ok", "silent"} and set(table["epochs"]) == {1}
