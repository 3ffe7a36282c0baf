from __future__ import annotations

import pytest
import torch

from snn_nas.checkpoint import BEST, LAST, CheckpointError, load_checkpoint, load_model, save_checkpoint
from snn_nas.data import make_synthetic
from snn_nas.genotype import Genotype, Stage
from snn_nas.training import TrainConfig, train_model

TINY = Genotype(stages=(Stage(depth=1, dim=8),), time_steps=2, patch_size=4)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data():
    return make_synthetic(train=40, val=20, classes=3, channels=1, image_size=8, noise=0.8, seed=2)


def config(**overrides) -> TrainConfig:
    values = dict(dataset="synthetic", epochs=2, batch_size=8, lr=0.02, image_size=8, warmup_epochs=0.5, seed=3)
    values.update(overrides)
    return TrainConfig(**values)


class Interrupt(Exception):
    pass


def _stop_after_first_epoch(epoch: int, metrics: dict) -> None:
    if epoch == 1:
        raise Interrupt


def test_resume_matches_an_uninterrupted_run(tmp_path, data):
    straight = train_model(TINY, config(), data=data, out_dir=tmp_path / "straight", progress=False)
    with pytest.raises(Interrupt):  # the run is killed after epoch 1, once last.pt is written
        train_model(
            TINY, config(), data=data, out_dir=tmp_path / "resumed", progress=False, callback=_stop_after_first_epoch
        )
    assert load_checkpoint(tmp_path / "resumed" / LAST)["epoch"] == 1
    seen = []
    resumed = train_model(
        TINY,
        config(),
        data=data,
        out_dir=tmp_path / "resumed",
        resume=True,
        progress=False,
        callback=lambda e, m: seen.append(e),
    )
    assert seen == [2] and resumed.epochs == 2 and resumed.status == "ok"
    straight_state, resumed_state = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(straight_state[k], resumed_state[k]) for k in straight_state)
    assert resumed.val_acc == straight.val_acc and resumed.val_loss == straight.val_loss
    for a, b in zip(straight.history, resumed.history, strict=True):
        assert (a["val_acc"], a["val_loss"], a["train_loss"], a["lr"]) == (
            b["val_acc"],
            b["val_loss"],
            b["train_loss"],
            b["lr"],
        )


def test_checkpoint_contents_best_and_last(tmp_path, data):
    result = train_model(TINY, config(epochs=3), data=data, out_dir=tmp_path, progress=False)
    last = load_checkpoint(tmp_path / LAST)
    best = load_checkpoint(tmp_path / BEST)
    accs = [m["val_acc"] for m in result.history]
    assert last["epoch"] == 3 and last["history"] == result.history
    best_epoch = accs.index(max(accs)) + 1  # the first epoch reaching the maximum
    assert best["epoch"] == best_epoch and best["best_val_acc"] == max(accs) == last["best_val_acc"]
    assert last["config"] == config(epochs=3).to_dict() and last["genotype"] == TINY.to_dict()
    assert last["model_args"] == {"num_classes": 3, "image_size": 8, "in_chans": 1, "time_steps": 2}
    assert {"optimizer", "scheduler", "rng", "version"} <= set(last)
    assert last["scheduler"]["last_epoch"] == 3 * 5  # 40 images / batch 8 = 5 steps per epoch


def test_load_model_rebuilds_the_trained_model(tmp_path, data):
    result = train_model(TINY, config(epochs=1, max_time_steps=1), data=data, out_dir=tmp_path, progress=False)
    model = load_model(tmp_path / LAST)
    assert not model.training and model.time_steps == 1 and model.num_classes == 3
    images = torch.stack([data.val[i][0] for i in range(6)])
    with torch.no_grad():
        assert torch.equal(model(images), result.model(images))
    assert isinstance(load_model(tmp_path), torch.nn.Module)  # an out folder means its last.pt


def test_resume_refuses_another_config_and_completed_run_is_kept(tmp_path, data):
    first = train_model(TINY, config(epochs=1), data=data, out_dir=tmp_path, progress=False)
    with pytest.raises(CheckpointError, match=r"lr: 0\.02 -> 0\.5"):
        train_model(TINY, config(epochs=1, lr=0.5), data=data, out_dir=tmp_path, resume=True, progress=False)
    again = train_model(TINY, config(epochs=1), data=data, out_dir=tmp_path, resume=True, progress=False)
    assert again.epochs == 1 and again.val_acc == first.val_acc and again.history == first.history
    other = Genotype(stages=(Stage(depth=1, dim=4),), time_steps=2, patch_size=4)
    with pytest.raises(CheckpointError, match="different architecture"):
        train_model(other, config(epochs=1), data=data, out_dir=tmp_path, resume=True, progress=False)


def test_bad_checkpoint_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(junk)
    torch.save({"weights": torch.zeros(1)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not an snn-nas checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    save_checkpoint(tmp_path / "nogeno.pt", {"epoch": 0, "model": {}, "config": {}, "model_args": {}, "genotype": None})
    with pytest.raises(CheckpointError, match="no genotype"):
        load_model(tmp_path / "nogeno.pt")
