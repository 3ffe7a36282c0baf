from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from snn_nas.data import make_synthetic
from snn_nas.genotype import Genotype, Stage
from snn_nas.training import ConfigError, TrainConfig, train_model
from snn_nas.training.schedule import WarmupCosine

# A tiny spiking genotype: one stage of width 8, T = 2, patch 4 -> 2 x 2 tokens at 8 px.
TINY = Genotype(stages=(Stage(depth=1, dim=8),), time_steps=2, patch_size=4)


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_data(seed: int = 0):
    return make_synthetic(train=48, val=24, classes=3, channels=1, image_size=8, noise=0.5, seed=seed)


def tiny_config(**overrides) -> TrainConfig:
    values = dict(dataset="synthetic", epochs=2, batch_size=8, lr=0.01, image_size=8, eval_batch_size=32)
    values.update(overrides)
    return TrainConfig(**values)


def weights(model: nn.Module) -> list[torch.Tensor]:
    return [t.detach().clone() for t in model.state_dict().values()]


# ------------------------------------------------------------------ config
def test_config_round_trip_key_and_int_floats():
    config = TrainConfig(lr=1, warmup_epochs=1, subset=1)
    assert isinstance(config.lr, float) and isinstance(config.warmup_epochs, float)
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert config.key() == TrainConfig(lr=1.0, warmup_epochs=1.0).key()
    assert config.key() != TrainConfig(lr=0.5).key()
    assert len(config.key()) == 12


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("optimizer", "adam", "choose one of \\['sgd', 'adamw'\\]"),
        ("subset", 0.0, "subset: 0.0 is out of range"),
        ("lr", -1.0, "lr: -1.0 is out of range"),
        ("epochs", 0, "epochs: expected an integer >= 1"),
        ("max_time_steps", 0, "max_time_steps: expected an integer >= 1 or None"),
        ("label_smoothing", 1.0, "label_smoothing"),
    ],
)
def test_config_rejects_bad_values(field, value, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**{field: value})


def test_config_from_dict_rejects_unknown_fields():
    with pytest.raises(ConfigError, match="unknown field\\(s\\) \\['lr_max'\\]"):
        TrainConfig.from_dict({"lr_max": 1.0})


def test_warmup_cosine_factors():
    schedule = WarmupCosine(total_steps=6, warmup_steps=2)
    factors = [schedule(step) for step in range(6)]
    # warm-up 1/2, 2/2; then cosine over 4 steps: progress 0, 1/4, 2/4, 3/4
    expected = [0.5, 1.0, 1.0, 0.5 * (1 + math.cos(math.pi / 4)), 0.5, 0.5 * (1 + math.cos(3 * math.pi / 4))]
    assert factors == pytest.approx(expected)
    assert WarmupCosine(total_steps=4)(0) == 1.0


# ------------------------------------------------------------------ training
def test_training_learns_reports_every_epoch_and_keeps_global_rng():
    seen = []
    state = torch.get_rng_state()
    result = train_model(
        TINY, tiny_config(epochs=3), data=tiny_data(), progress=False, callback=lambda e, m: seen.append((e, m))
    )
    assert torch.equal(torch.get_rng_state(), state)  # no global random state leaks
    assert result.status == "ok" and result.error is None
    assert [e for e, _ in seen] == [1, 2, 3] and result.epochs == 3
    metrics = seen[-1][1]
    for key in ("epoch", "val_acc", "val_loss", "train_loss", "lr", "wall_s", "train_images", "time_steps"):
        assert key in metrics
    assert 0.0 <= metrics["val_acc"] <= 1.0
    assert metrics["train_images"] == 48  # 6 full batches of 8
    assert result.val_acc == metrics["val_acc"] and result.best_val_acc == max(m["val_acc"] for _, m in seen)
    assert result.val_acc > 0.6  # 3 well-separated classes: far above chance (1/3)
    assert not result.model.training
    assert result.history == [m for _, m in seen]


def test_who_sees_what_train_val_and_test():
    """Fitting reads train (or train + val), per-epoch evaluation reads val, and test is read once at
    the end, only when asked: proven with a test part that refuses to be read."""
    data = tiny_data()
    withheld = data.without_test()
    result = train_model(TINY, tiny_config(epochs=2), data=withheld, progress=False)  # never touches test
    assert result.status == "ok" and result.test_acc is None
    tested = train_model(TINY, tiny_config(epochs=2), data=data, progress=False, evaluate_test=True)
    images = torch.stack([data.test[i][0] for i in range(len(data.test))])
    labels = torch.tensor([data.test[i][1] for i in range(len(data.test))])
    with torch.no_grad():
        expected = float((tested.model(images).argmax(1) == labels).float().mean())
    assert tested.test_acc == pytest.approx(expected)  # the final model's accuracy on the test part
    assert tested.val_acc == result.val_acc  # the test evaluation changed nothing before it
    everything = train_model(TINY, tiny_config(epochs=1, train_on="train+val"), data=data, progress=False)
    assert everything.history[0]["train_images"] == len(data.train) + len(data.val)
    assert math.isnan(everything.val_acc) and math.isnan(everything.best_val_acc)
    with pytest.raises(ConfigError, match="train_on"):
        tiny_config(train_on="test")


def test_same_seed_same_weights_other_seed_differs():
    data = tiny_data()
    a = train_model(TINY, tiny_config(), data=data, progress=False)
    b = train_model(TINY, tiny_config(), data=data, progress=False)
    c = train_model(TINY, tiny_config(seed=1), data=data, progress=False)
    assert a.val_acc == b.val_acc and a.val_loss == b.val_loss
    assert all(torch.equal(x, y) for x, y in zip(weights(a.model), weights(b.model), strict=True))
    assert any(not torch.equal(x, y) for x, y in zip(weights(a.model), weights(c.model), strict=True))


def test_fidelity_knobs_subset_batches_and_time_step_cap():
    data = tiny_data()
    capped = train_model(TINY, tiny_config(epochs=1, max_time_steps=1, subset=0.5), data=data, progress=False)
    assert capped.model.time_steps == 1 and capped.time_steps == 1
    assert capped.history[0]["train_images"] == 24  # half of 48, three batches of 8
    limited = train_model(
        TINY,
        tiny_config(epochs=1, max_batches_per_epoch=2, optimizer="sgd", warmup_epochs=1),
        data=data,
        progress=False,
    )
    assert limited.history[0]["train_images"] == 16 and limited.model.time_steps == 2


def test_huge_learning_rate_diverges_with_a_reason():
    class Exploding(nn.Module):
        time_steps = 1

        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(64, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x.flatten(1)) ** 3

    config = tiny_config(lr=10.0, optimizer="sgd", grad_clip=None, epochs=2)  # the largest lr allowed
    result = train_model(Exploding(), config, data=tiny_data(), progress=False)
    assert result.status == "diverged"
    assert "loss became" in result.error and ("nan" in result.error or "inf" in result.error)
    assert result.epochs < 2


def test_runtime_error_gives_failed_status():
    class Broken(nn.Module):
        time_steps = 1

        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(10, 3)  # images are 1 x 8 x 8 = 64 features

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x.flatten(1))

    result = train_model(Broken(), tiny_config(epochs=1), data=tiny_data(), progress=False)
    assert result.status == "failed" and "RuntimeError" in result.error and result.epochs == 0
    assert math.isnan(result.val_loss) and result.val_acc == 0.0


@pytest.mark.parametrize("part", ["train", "val"])
def test_nan_images_stop_training_and_evaluation_naming_the_batch(part):
    """A spiking network turns NaN pixels into silence and finite logits, so without a check a
    NaN image would train and score silently; it is an error naming the batch instead."""
    from snn_nas.builder import build_model
    from snn_nas.data import DatasetError

    model = build_model(TINY, num_classes=3, image_size=8, in_chans=1)
    with torch.no_grad():
        assert torch.isfinite(model(torch.full((2, 1, 8, 8), float("nan")))).all()  # why the check exists
    data = tiny_data()
    dataset = data.train.dataset if hasattr(data.train, "dataset") else data.train
    if part == "val":
        dataset = data.val.dataset if hasattr(data.val, "dataset") else data.val
    dataset.images[3] = float("nan")
    words = "training" if part == "train" else "evaluation"
    with pytest.raises(DatasetError, match=rf"the {words} data hold NaN or inf: batch \d+ of the epoch"):
        train_model(TINY, tiny_config(epochs=1), data=data, progress=False)


def test_data_and_config_image_size_must_agree():
    with pytest.raises(ConfigError, match="image_size"):
        train_model(TINY, tiny_config(image_size=16), data=tiny_data(), progress=False)


# ------------------------------------------------------------------ command line
def test_cli_train_writes_result_and_checkpoints(tmp_path, capsys):
    from snn_nas.cli.main import main

    arch = tmp_path / "tiny.json"
    arch.write_text(TINY.to_json())
    out = tmp_path / "run"
    argv = [
        "train", str(arch), "--dataset", "synthetic:train=24,val=12,classes=3,channels=1",
        "--image-size", "8", "--epochs", "1", "--batch-size", "8", "--lr", "0.01", "--out", str(out), "--no-progress",
    ]  # fmt: skip
    assert main(argv) == 0
    report = json.loads((out / "result.json").read_text())
    assert report["status"] == "ok" and 0.0 <= report["val_acc"] <= 1.0 and 0.0 <= report["test_acc"] <= 1.0
    assert report["config"]["epochs"] == 1 and report["config"]["image_size"] == 8
    assert report["key"] == TINY.key() and report["wall_s"] > 0
    assert (out / "last.pt").is_file() and (out / "best.pt").is_file()
    try:
        import snn_nas.costs  # noqa: F401
    except ImportError:
        assert report["costs"] is None
    else:
        assert report["costs"]["time_steps"] == 2 and report["costs"]["params"] > 0
    assert "val_acc" in (printed := capsys.readouterr().out) and "test_acc" in printed
    # a second run into the same folder needs --resume
    assert main(argv) == 2
    assert "--resume" in capsys.readouterr().err
    assert main([*argv, "--resume"]) == 0


def test_cli_bad_input_is_a_clean_error(tmp_path, capsys):
    from snn_nas.cli.main import main

    assert main(["train", "no_such_preset", "--out", str(tmp_path / "x")]) == 2
    assert "valid names" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "missing.json")]) == 2
    assert main(["train", "mlp_spe_micro", "--optimizer", "sgd", "--subset", "2", "--out", str(tmp_path / "y")]) == 2
    assert "subset" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_mnist5k_recipe_learns_in_one_epoch(tmp_path):
    """The default mnist5k recipe with mlp_spe_micro, cut to 1 epoch (5 epochs reach ~96 %)."""
    from snn_nas.cli.main import main

    out = tmp_path / "micro"
    assert main(["train", "mlp_spe_micro", "--epochs", "1", "--out", str(out), "--no-progress"]) == 0
    report = json.loads((out / "result.json").read_text())
    assert report["dataset"] == "mnist5k" and report["config"]["lr"] == TrainConfig().lr
    assert report["val_acc"] >= 0.85  # measured 0.90-0.91 after one epoch


def test_resolve_device_errors():
    from snn_nas.training import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="not a torch device"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")
