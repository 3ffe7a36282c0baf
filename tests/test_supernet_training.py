"""Supernet training (sandwich rule, in-place distillation), evaluation and checkpoints."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from snn_nas.presets import get_preset
from snn_nas.space import SearchSpace
from snn_nas.supernet import SupernetError
from snn_nas.supernet.checkpoint import load_supernet, read_supernet_state
from snn_nas.supernet.config import SupernetConfig
from snn_nas.supernet.evaluate import recalibrate_batch_norm
from snn_nas.supernet.sampling import SubnetSampler, is_elastic
from snn_nas.supernet.training import distill_loss, train_supernet

REPO = Path(__file__).resolve().parents[1]

TINY = """\
name: tiny
image_size: 8
family: spiking
time_steps: {choice: [1, 2]}
patch_size: {choice: [2, 4]}
mlp_ratio: {choice: [1, 2]}
num_stages: {choice: [1, 2]}
base_dim: {choice: [4, 8]}
stage_defaults:
  depth: {choice: [1, 2]}
  identity: {choice: [x, lif_bn]}
  skip_source: {choice: [stage, bn_spike]}
  skip_paths: both
  token_h: {op: {choice: [mlp, group_lif, none]}, group: 0}
  token_w: {op: mlp}
  cell: {nodes: {choice: [1, 2]}, in: {choice: [conv2x2, conv3x3]}, from: {choice: [identity, conv1x1]}}
stage1: {width_mult: 1}
stage2: {width_mult: 2}
"""

DATASET = "synthetic:train=48,val=16,classes=3,channels=1"


@pytest.fixture(scope="module")
def space() -> SearchSpace:
    return SearchSpace.from_dict(yaml.safe_load(TINY), source="tiny")


@pytest.fixture(scope="module")
def data():
    from snn_nas.data import load_dataset

    return load_dataset(DATASET, image_size=8)


SETTINGS = dict(epochs=2, batch_size=12, random_subnets=1, bn_batches=2, bn_batch_size=8, warmup_epochs=0.0)


def test_distill_loss_is_the_scaled_kl_divergence():
    teacher = torch.tensor([[2.0, 0.0, -1.0]])
    student = torch.tensor([[0.5, 0.5, 0.0]], requires_grad=True)
    t = 2.0
    p, q = torch.softmax(teacher / t, 1), torch.softmax(student / t, 1)
    expected = (p * (p.log() - q.log())).sum() * t * t
    loss = distill_loss(student, teacher, t)
    assert math.isclose(float(loss.detach()), float(expected), rel_tol=1e-6)
    assert float(distill_loss(teacher, teacher, t)) == pytest.approx(0.0, abs=1e-7)
    loss.backward()
    assert student.grad is not None and student.grad.abs().sum() > 0


def test_sandwich_extremes_are_the_elastic_extremes(space):
    sampler = SubnetSampler(space, seed=0)
    largest, smallest = sampler.extreme(sampler.rng(0, 0), "max"), sampler.extreme(sampler.rng(0, 0), "min")
    assert len(largest.stages) == 2 and largest.time_steps == 2 and largest.mlp_ratio == 2.0
    assert [s.depth for s in largest.stages] == [2, 2] and largest.stages[0].dim == 8
    assert len(smallest.stages) == 1 and smallest.time_steps == 1 and smallest.stages[0].dim == 4
    # extremes: first -> the non-elastic labels take their first choice, so the pair is fixed
    assert sampler.extreme(sampler.rng(1, 5), "max") == largest
    assert {is_elastic(label) for label in ("num_stages", "stage2.depth", "stage1.cell.nodes")} == {True}
    assert not is_elastic("stage1.token_h.op") and not is_elastic("patch_size")
    # the patch size is elastic the other way round: the finest patch is the largest network
    assert largest.patch_size == 2 and smallest.patch_size == 4
    steps = {tuple(g.key() for g in sampler.step(0, s, sandwich=True, random_subnets=2)) for s in range(4)}
    assert len(steps) > 1  # the random ones differ from step to step, reproducibly:
    again = SubnetSampler(space, seed=0)
    assert [g.key() for g in again.step(0, 3, sandwich=True, random_subnets=2)] == [
        g.key() for g in sampler.step(0, 3, sandwich=True, random_subnets=2)
    ]


def test_opposite_extremes_train_both_ends_of_every_fixed_label(space):
    first, opposite = SubnetSampler(space, seed=0), SubnetSampler(space, seed=0, extremes="opposite")
    rng = first.rng(0, 0)
    assert opposite.extreme(rng, "max") == first.extreme(rng, "max")  # the teacher is unchanged
    smallest = space.encode(opposite.extreme(opposite.rng(0, 0), "min"))
    assert smallest == space.encode(opposite.extreme(opposite.rng(2, 9), "min"))  # still one fixed network
    fixed = [label for label in smallest if not is_elastic(label) and len(space.by_label[label].choices) > 1
             and label != "patch_size"]  # fmt: skip
    assert fixed and all(smallest[label] == space.by_label[label].choices[-1] for label in fixed)
    plain = space.encode(first.extreme(first.rng(0, 0), "min"))
    assert all(plain[label] == space.by_label[label].choices[0] for label in fixed if label in plain)
    with pytest.raises(SupernetError, match="extremes"):
        SubnetSampler(space, extremes="last")


def test_batch_norm_recalibration_is_the_exact_mean_over_the_batches():
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
    batches = [torch.randn(4, 1, 3, 3) for _ in range(3)]
    recalibrate_batch_norm(model, batches)
    with torch.no_grad():
        outputs = torch.cat([model[0](b) for b in batches])
    assert torch.allclose(model[1].running_mean, outputs.mean(dim=(0, 2, 3)), atol=1e-6)
    assert model[1].momentum == 0.1 and not model.training


def test_a_fine_tuned_estimate_is_measured_with_statistics_of_the_fine_tuned_weights(space, data, tmp_path):
    # fine-tuning runs the norms on batch statistics, so the estimate recalibrates once, after it:
    # the same numbers as inherit -> fine-tune -> recalibrate -> classify done by hand
    from snn_nas.supernet.evaluate import calibration_images, classify, evaluate_subnet, finetune, validation_tensors

    run = train_supernet(space, SupernetConfig(**{**SETTINGS, "epochs": 1}), data, out_dir=tmp_path, progress=False)
    config = SupernetConfig(**SETTINGS, finetune_steps=3, finetune_lr=0.05)
    genotype = SubnetSampler(space, seed=1).random(np.random.default_rng(3))
    calibration = calibration_images(data, config, torch.device("cpu"))
    estimate = evaluate_subnet(run.supernet, genotype, data, config, calibration=calibration)
    model = run.supernet.subnet(genotype)
    finetune(model, data, config, torch.device("cpu"))
    recalibrate_batch_norm(model, calibration)
    images, labels = validation_tensors(data, torch.device("cpu"))
    assert (estimate.val_acc, estimate.val_loss) == pytest.approx(classify(model, images, labels, 64), abs=1e-6)
    for mine, theirs in zip(estimate.model.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.allclose(mine.float(), theirs.float(), atol=1e-5)


def test_training_writes_every_epoch_and_a_resume_continues_bit_for_bit(space, data, tmp_path):
    config = SupernetConfig(**SETTINGS)
    meta = {"for": "this test"}
    full = train_supernet(space, config, data, out_dir=tmp_path / "full", progress=False, metadata=meta)
    assert full.status == "ok" and [h["epoch"] for h in full.history] == [1, 2]
    assert all(0.0 <= h["val_acc_largest"] <= 1.0 for h in full.history)

    class Killed(Exception):
        pass

    def kill(metrics, state):  # dies right after epoch 1 was written, as a kill -9 would leave it
        raise Killed

    with pytest.raises(Killed):
        train_supernet(space, config, data, out_dir=tmp_path / "cut", progress=False, metadata=meta, on_epoch=kill)
    assert read_supernet_state(tmp_path / "cut")["epoch"] == 1
    resumed = train_supernet(space, config, data, out_dir=tmp_path / "cut", resume=True, progress=False, metadata=meta)
    assert read_supernet_state(tmp_path / "cut")["resumed_from"] == [1]  # where it picked up, on record
    assert read_supernet_state(tmp_path / "full")["resumed_from"] == []
    assert resumed.resumed_from == 1 and resumed.history[0] == full.history[0] | {
        "wall_s": resumed.history[0]["wall_s"],
        "epoch_s": resumed.history[0]["epoch_s"],
    }
    for (name, a), b in zip(full.supernet.state_dict().items(), resumed.supernet.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    with pytest.raises(SupernetError, match="trained for another setting"):
        train_supernet(space, config, data, out_dir=tmp_path / "full", resume=True, progress=False,
                       metadata={"for": "another"})  # fmt: skip
    net, _ = load_supernet(tmp_path / "full" / "supernet.pt", metadata=meta)
    assert torch.equal(next(iter(net.weights.values())), next(iter(full.supernet.weights.values())))


def test_the_training_curve_follows_the_supernet_not_the_fine_tuned_estimates(space, data, tmp_path):
    # finetune_steps only changes how an architecture is estimated after training; the curve of
    # the largest and smallest networks is the supernet's own (it would rise with fine-tuning)
    plain = train_supernet(space, SupernetConfig(**SETTINGS), data, out_dir=tmp_path / "a", progress=False)
    tuned = SupernetConfig(**SETTINGS, finetune_steps=20, finetune_lr=0.05)
    adapted = train_supernet(space, tuned, data, out_dir=tmp_path / "b", progress=False)
    curve = [(h["val_acc_largest"], h["val_acc_smallest"]) for h in plain.history]
    assert curve == [(h["val_acc_largest"], h["val_acc_smallest"]) for h in adapted.history]


def write_experiment(tmp_path: Path, **supernet) -> Path:
    (tmp_path / "tiny_space.yaml").write_text(TINY)
    data = {
        "name": "os",
        "space": "tiny_space.yaml",
        "dataset": DATASET,
        "fidelity": {"epochs": 1, "batch_size": 12, "image_size": 8, "eval_batch_size": 64},
        "trials": 3,
        "baselines": [],
        "oneshot": {"supernet": {**SETTINGS, **supernet}},
    }
    path = tmp_path / "os.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def snn_nas(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "snn_nas.cli.main", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)  # fmt: skip


def test_the_cli_survives_kill_9_and_resumes_without_losing_an_epoch(tmp_path):
    path = write_experiment(tmp_path, epochs=12)
    results = tmp_path / "results"
    checkpoint = results / "os" / "supernet" / "supernet.pt"
    proc = snn_nas("supernet", "train", str(path), "--results-dir", str(results), "--no-progress")
    deadline = time.time() + 120
    while time.time() < deadline and not checkpoint.is_file():
        time.sleep(0.1)
    assert checkpoint.is_file(), proc.communicate()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = read_supernet_state(checkpoint)
    assert 1 <= before["epoch"] < 12
    # without --resume an interrupted supernet is refused; with other settings too; nothing is lost
    for extra, message in ((), "continue it with --resume"), (("--resume", "--epochs", "20"), "other settings"):
        again = snn_nas("supernet", "train", str(path), "--results-dir", str(results), *extra)
        _, err = again.communicate(timeout=120)
        assert again.returncode == 2 and message in err and len(err.strip().splitlines()) == 1
        assert read_supernet_state(checkpoint)["history"] == before["history"]
    proc = snn_nas("supernet", "train", str(path), "--results-dir", str(results), "--resume", "--no-progress")
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    history = read_supernet_state(checkpoint)["history"]
    assert [h["epoch"] for h in history] == list(range(1, 13))
    assert history[: before["epoch"]] == before["history"]  # the finished epochs are kept as they were
    assert "supernet trained: 12 epochs" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"\x00garbage" * 50, "is damaged or not a torch file"), (None, "trained for another setting")],
)
def test_a_damaged_or_foreign_checkpoint_is_one_line_and_exit_2(tmp_path, content, message):
    path = write_experiment(tmp_path)
    checkpoint = tmp_path / "results" / "os" / "supernet" / "supernet.pt"
    checkpoint.parent.mkdir(parents=True)
    if content is not None:
        checkpoint.write_bytes(content)
    else:  # a finished supernet of another space: the same file read for this experiment
        other = yaml.safe_load(TINY)
        other["base_dim"] = {"choice": [4, 16]}
        (tmp_path / "other_space.yaml").write_text(yaml.safe_dump(other))
        data = yaml.safe_load(path.read_text())
        data["space"] = "other_space.yaml"
        (tmp_path / "other.yaml").write_text(yaml.safe_dump({**data, "name": "os"}))
        proc = snn_nas("supernet", "train", str(tmp_path / "other.yaml"), "--results-dir", str(tmp_path / "results"))
        assert proc.wait(timeout=300) == 0
    before = checkpoint.read_bytes()
    proc = snn_nas("supernet", "train", str(path), "--results-dir", str(tmp_path / "results"), "--resume")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2 and message in err and len(err.strip().splitlines()) == 1
    assert checkpoint.read_bytes() == before


def _nan_weight(state: dict) -> None:
    name = next(k for k, v in state["weights"].items() if v.is_floating_point())
    state["weights"][name] = torch.full_like(state["weights"][name], float("nan"))


def _wrong_shape(state: dict) -> None:
    name = next(k for k, v in state["weights"].items() if v.dim() >= 2)
    state["weights"][name] = state["weights"][name].flatten()


DAMAGES = {
    "NaN weights": (_nan_weight, "holds NaN or inf"),
    "a tensor of the wrong shape": (_wrong_shape, "has the wrong shape"),
    "garbage bounds": (lambda state: state.update(bounds={"stages": "garbage"}), "bounds"),
    "an epoch count of 'one'": (lambda state: state.update(epoch="one"), "epoch: expected a whole number"),
    "a history of another length": (lambda state: state.update(history=[]), "one entry per finished epoch"),
    "a history of strings": (lambda state: state["history"][0].update(val_acc_largest="x"), "not a number"),
}


def test_train_and_show_refuse_the_same_damaged_finished_supernet(tmp_path, capsys):
    """A finished supernet, damaged in place: 'supernet train' must not call it 'already trained',
    and 'supernet show' must not show it; both say one line naming the file (one check)."""
    from snn_nas.cli.main import main

    path, results = write_experiment(tmp_path, epochs=1), tmp_path / "results"
    checkpoint = results / "os" / "supernet" / "supernet.pt"
    assert main(["supernet", "train", str(path), "--results-dir", str(results), "--no-progress"]) == 0
    intact = checkpoint.read_bytes()
    assert main(["supernet", "train", str(path), "--results-dir", str(results)]) == 0
    assert "already trained: 1 epochs" in capsys.readouterr().out
    for what, (damage, message) in DAMAGES.items():
        state = torch.load(checkpoint, weights_only=True)
        damage(state)
        torch.save(state, checkpoint)
        for argv in (["train", str(path), "--results-dir", str(results)], ["show", str(results / "os")]):
            assert main(["supernet", *argv]) == 2, what
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1 and str(checkpoint) in err and message in err, (what, err)
        checkpoint.write_bytes(intact)


def test_a_checkpoint_of_the_older_layout_is_refused_with_the_reason(tmp_path):
    from snn_nas.supernet.checkpoint import FORMAT

    path = tmp_path / "supernet.pt"
    torch.save({"format": FORMAT, "format_version": 1, "weights": {}}, path)
    with pytest.raises(SupernetError, match=r"format 1.*laid out differently.*train the supernet again"):
        read_supernet_state(path)


def test_a_setting_that_cannot_work_fails_before_anything_runs(tmp_path):
    path = write_experiment(tmp_path, random_subnets=0, sandwich=False, distill=False)
    proc = snn_nas("supernet", "train", str(path), "--results-dir", str(tmp_path / "results"))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "trains no sub-network per step" in err
    assert not (tmp_path / "results").exists()


def test_anchors_are_trained_at_every_step_after_the_extremes(space):
    anchor = space.decode(space.sample(np.random.default_rng(3)))
    sampler = SubnetSampler(space, seed=0, anchors=(anchor,))
    for step in range(3):
        subnets = sampler.step(0, step, sandwich=True, random_subnets=1)
        assert len(subnets) == 4 and subnets[2] == anchor  # largest, smallest, the anchor, one random
    assert sampler.step(0, 0, sandwich=False, random_subnets=1)[0] == anchor
    assert SupernetConfig(anchors=["mlp_spe_micro"]).subnets_per_step == 5  # a YAML list, counted


@pytest.mark.parametrize(
    ("anchors", "message"),
    [
        (["no_such_model"], "unknown preset(s) ['no_such_model']"),
        ("mlp_spe_micro", "expected a list of at most 16 preset names"),
        (["mlp_spe_micro", "mlp_spe_micro"], "named twice"),
    ],
)
def test_bad_anchors_name_the_setting(anchors, message):
    with pytest.raises(SupernetError, match=r"^supernet: anchors: ") as caught:
        SupernetConfig.from_dict({"anchors": anchors})
    assert message in str(caught.value)


def test_an_anchor_outside_the_supernet_names_the_preset_and_the_dimension():
    from snn_nas.space import load_space
    from snn_nas.supernet.bounds import SupernetBounds
    from snn_nas.supernet.training import anchor_genotypes

    bounds = SupernetBounds.from_space(load_space("quick"), num_classes=10, in_chans=1, image_size=32)
    assert [g.key() for g in anchor_genotypes(("mlp_spe_micro",), bounds)] == [get_preset("mlp_spe_micro").key()]
    with pytest.raises(SupernetError, match=r"'mlp_spe_t' is not a sub-network of this supernet: stages: 4 stages"):
        anchor_genotypes(("mlp_spe_t",), bounds)


def test_a_search_with_an_anchor_outside_the_space_fails_before_anything_runs(tmp_path):
    path = write_experiment(tmp_path, anchors=["mlp_spe_micro"])  # the tiny space does not hold it
    proc = snn_nas("search", str(path), "--results-dir", str(tmp_path / "results"))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert "oneshot.supernet.anchors: 'mlp_spe_micro' is not a member of space 'tiny'" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "results").exists()
