"""Retraining at scale: 2 gloo workers through the real Ray Train (a worker killed mid-run, the
group restarted, the run resumed from its last epoch), the ``torch.export`` program loaded where
snn-nas cannot be imported, and the bad input refused in one line before training."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from test_bad_input import cli_error
from test_retrain import DATASET, results_dir, tiny  # noqa: F401  (results_dir: the module's fixture)

from snn_nas.checkpoint import load_checkpoint, load_model

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY = tiny(8, 2).key()  # the most accurate architecture of the fixture's search, T = 2
BIG = "synthetic:train=160,val=24,test=30,classes=3,channels=1"  # 10 steps of 16 per epoch


def _ray_workers(pid: int) -> list:
    """The Ray Train worker processes started under the process ``pid`` (our own driver's)."""
    import ray

    assert ray  # importing ray puts its copy of psutil on the path
    import psutil

    return [p for p in psutil.Process(pid).children(recursive=True) if "RayTrainWorker" in " ".join(p.cmdline())]


def test_retrain_on_two_workers_survives_a_killed_worker_and_writes_a_program(results_dir, tmp_path):  # noqa: F811
    """``snn-nas retrain --workers 2 --sync-bn`` on this machine's CPUs (gloo). Once epoch 1 is
    written, one Ray Train worker is killed (SIGKILL, by process id); Ray Train restarts the group
    (``--max-failures 1``), which resumes from ``last.pt``: the epochs before the kill are kept as
    they were, every epoch appears once, the test part is evaluated once on the final model, and
    the report says how the run was spread."""
    out = results_dir / "retrain" / KEY
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1"}
    env["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"] = "0.5"  # the controller sees the dead worker sooner
    command = [sys.executable, "-m", "snn_nas.cli.main", "retrain", str(results_dir), "--key", KEY, "--workers", "2",
               "--sync-bn", "--epochs", "4", "--dataset", BIG, "--batch-size", "16", "--no-resume",
               "--no-export"]  # fmt: skip
    with (tmp_path / "out.txt").open("w") as stdout, (tmp_path / "err.txt").open("w") as stderr:
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=stdout, stderr=stderr, text=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None and not (out / "last.pt").is_file():
            time.sleep(0.05)
        assert (out / "last.pt").is_file(), (tmp_path / "err.txt").read_text()[-3000:]
        before = load_checkpoint(out / "last.pt")
        victims = _ray_workers(proc.pid)
        assert len(victims) == 2, [p.cmdline() for p in victims]
        os.kill(victims[-1].pid, signal.SIGKILL)
        returncode = proc.wait(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = (tmp_path / "err.txt").read_text()
    assert returncode == 0, err[-3000:]
    assert "global batch 16 = 2 x 8" in err and "synchronised batch norm" in err
    state = load_checkpoint(out / "last.pt")
    killed_at, (resumed_at,) = before["epoch"], state["parallel"]["resumed_from"]
    assert killed_at <= resumed_at <= killed_at + 1 < 4
    # nothing before the kill was lost or trained again (NaN val_acc: compared as JSON text)
    assert json.dumps(state["history"][:killed_at]) == json.dumps(before["history"])
    assert [h["epoch"] for h in state["history"]] == [1, 2, 3, 4] and state["parallel"]["workers"] == 2
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "ok" and 0.0 <= report["test_acc"] <= 1.0 and report["epochs"] == 4
    assert report["at_scale"]["settings"]["workers"] == 2 and "2 worker(s)" in (out / "report.md").read_text()
    assert report["history"][-1]["train_images"] == 176  # train + val: 184 images, 11 steps of 16


def test_the_program_runs_where_snn_nas_cannot_be_imported(results_dir, tmp_path):  # noqa: F811
    """``retrain`` writes ``model.pt2``; a fresh Python in which ``import snn_nas`` fails loads it
    with ``torch.export`` alone and gives the logits of ``snn_nas.load_model`` on the same images."""
    from snn_nas.retrain import retrain

    result = retrain(results_dir, key=KEY, epochs=1, progress=False, resume=False)
    folder = results_dir / "retrain" / KEY
    report = json.loads((folder / "report.json").read_text())
    assert report["program"]["file"] == "model.pt2" and "torch.export.load" in (folder / "report.md").read_text()
    images = torch.randn(5, 1, 8, 8)
    torch.save(images, tmp_path / "images.pt")
    script = (
        "import sys; sys.modules['snn_nas'] = None\n"
        "try:\n    import snn_nas\nexcept ImportError:\n    pass\nelse:\n    raise SystemExit('snn_nas importable')\n"
        "import torch\n"
        f"model = torch.export.load({str(folder / 'model.pt2')!r}).module()\n"
        f"images = torch.load({str(tmp_path / 'images.pt')!r})\n"
        f"torch.save((model(images), model(images[:1])), {str(tmp_path / 'logits.pt')!r})\n"
    )
    command = [sys.executable, "-c", script]
    done = subprocess.run(command, cwd=str(tmp_path), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    logits, single = torch.load(tmp_path / "logits.pt")
    with torch.no_grad():
        expected = load_model(result.checkpoint)(images)
    assert logits.shape == (5, 3) and torch.allclose(logits, expected, atol=1e-5)
    assert torch.allclose(single, expected[:1], atol=1e-5)  # any batch size


def test_bad_input_is_refused_before_training(capsys, results_dir, tmp_path):  # noqa: F811
    base = ["retrain", str(results_dir), "--key", KEY, "--epochs", "1", "--no-progress", "--no-resume"]
    assert "--workers: 0 must be an integer >= 1" in cli_error(capsys, *base, "--workers", "0")
    line = cli_error(capsys, *base, "--workers", "2", "--batch-size", "15")
    assert "the global batch 15 does not divide by 2 workers" in line
    workers = (os.cpu_count() or 1) + 1
    line = cli_error(capsys, *base, "--workers", str(workers), "--batch-size", str(4 * workers))
    assert "this machine can place" in line and "missing: room for 1 more" in line
    line = cli_error(capsys, *base, "--workers", "2", "--gpus-per-worker", "1")
    assert ("has no GPU" in line) if not torch.cuda.is_available() else line
    assert "unknown recipe 'nope'" in cli_error(capsys, *base, "--recipe", "nope")
    assert "--lr-rule" in cli_error(capsys, *base, "--lr-rule", "sqrt")
    arch = ["train", "mlp_spe_micro", "--dataset", DATASET, "--image-size", "8", "--epochs", "1", "--no-progress"]
    assert "image folders" in cli_error(capsys, *arch, "--recipe", "mixer_snn_imagenet", "--out", str(tmp_path / "a"))


def test_a_resume_says_what_changed_or_refuses_another_recipe(tmp_path, capsys):
    from snn_nas.checkpoint import CheckpointError
    from snn_nas.cli.scale import check_resume
    from snn_nas.training import TrainConfig, train_model
    from snn_nas.training.parallel import ParallelSettings

    config = TrainConfig(dataset=DATASET, image_size=8, epochs=1, batch_size=16, max_batches_per_epoch=1, amp=False)
    train_model(tiny(4, 1), config, out_dir=tmp_path, progress=False)
    assert not check_resume(tmp_path, config, ParallelSettings(), tiny(4, 1), resume=True)  # the engine's own
    assert check_resume(tmp_path, config, ParallelSettings(workers=2, sync_bn=True), tiny(4, 1), resume=True)
    err = capsys.readouterr().err
    assert "written by the single-process trainer" in err and "workers 1 -> 2 (global batch kept)" in err
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    state["parallel"] = ParallelSettings(workers=2, recipe="mixer_snn_imagenet").to_dict()
    torch.save(state, tmp_path / "last.pt")
    with pytest.raises(CheckpointError, match=r"recipe 'mixer_snn_imagenet'.*this run asks for '\(none\)'"):
        check_resume(tmp_path, config, ParallelSettings(workers=4), tiny(4, 1), resume=True)
    with pytest.raises(CheckpointError, match="batch_size: 16 -> 32"):
        check_resume(tmp_path, TrainConfig(**{**config.to_dict(), "batch_size": 32}), ParallelSettings(workers=2),
                     tiny(4, 1), resume=True)  # fmt: skip


def test_dry_run_prints_the_plan_and_a_measured_estimate_and_trains_nothing(tmp_path, capsys):
    from snn_nas.cli.main import main

    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps(tiny(4, 1).to_dict()))
    out = tmp_path / "run"
    argv = ["train", str(arch), "--dataset", DATASET, "--image-size", "8", "--batch-size", "8", "--epochs", "3",
            "--workers", "2", "--lr-rule", "linear:16", "--out", str(out), "--dry-run"]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "global batch 8 = 2 x 4; lr 0.0015 (rule linear:16: 0.003 x 8 / 16)" in text
    assert "steps per epoch x 3 epochs" in text and "measured on cpu:" in text and "s per training step of 4" in text
    assert "estimate:" in text and not out.exists()
