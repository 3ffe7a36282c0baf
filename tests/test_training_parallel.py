"""Data-parallel training without Ray: the maths of ``snn_nas.training.parallel``, synchronised
batch norm, the published recipes, and one step of 2 gloo workers (``torch.distributed``
processes running the loop every Ray Train worker runs) against 1 worker with the whole batch."""

from __future__ import annotations

import math

import pytest
import torch

from snn_nas.training import TrainConfig
from snn_nas.training.parallel import (
    ParallelError,
    ParallelSettings,
    epoch_order,
    global_batches,
    loss_scale,
    make_plan,
    per_worker_batch,
    placement_refusal,
    scaled_lr,
    shard,
)

DATASET = "synthetic:train=64,val=16,test=16,classes=4"


# ----------------------------------------------------------------------------- the maths
def test_shards_are_disjoint_and_make_up_the_global_batch_with_repeats_on_different_workers():
    order = epoch_order(40, seed=3, epoch=2, repeats=3)
    assert len(order) == 40 and order == epoch_order(40, seed=3, epoch=2, repeats=3)  # from (seed, epoch) alone
    assert order != epoch_order(40, seed=3, epoch=3, repeats=3)
    assert order[:3] == [order[0]] * 3  # each image three times in a row
    for batch in global_batches(order, 12, 40 // 12):
        parts = [shard(batch, r, 3) for r in range(3)]
        assert sorted(i for p in parts for i in p) == sorted(batch) and all(len(p) == 4 for p in parts)
    first = global_batches(order, 12, 1)[0]
    assert len({shard(first, r, 3)[0] for r in range(3)}) == 1  # the 3 copies of an image: one per worker
    assert sorted(epoch_order(10, 0, 1)) == list(range(10))


def test_loss_scale_makes_the_average_of_workers_the_mean_of_the_global_batch():
    losses = torch.arange(10.0)
    parts = [losses[r::3] for r in range(3)]  # shards of 4, 3 and 3 images
    averaged = sum(p.sum() * loss_scale(len(p), 10, 3) for p in parts) / 3  # what DDP's average gives
    assert averaged.item() == pytest.approx(losses.mean().item())


def test_the_plan_the_lr_rule_and_a_global_batch_that_does_not_divide():
    assert per_worker_batch(512, 8) == 64
    with pytest.raises(ParallelError, match=r"global batch 100 does not divide by 8 workers.*96 or 104"):
        per_worker_batch(100, 8)
    assert scaled_lr(5e-4, "linear:512", 1024) == pytest.approx(1e-3) and scaled_lr(0.1, "fixed", 64) == 0.1
    with pytest.raises(ParallelError, match="--lr-rule"):
        scaled_lr(0.1, "sqrt", 64)
    plan = make_plan(workers=8, gpus_per_worker=1, global_batch=512, lr=0.1, lr_rule="fixed", sync_bn=False,
                     train_images=1_281_167, epochs=100)  # fmt: skip
    assert (plan.steps_per_epoch, plan.total_steps) == (2502, 250_200)
    text = "\n".join(plan.lines())
    assert "global batch 512 = 8 x 64" in text and "batch norm per worker (statistics over 64 images)" in text
    with pytest.raises(ParallelError, match="--workers: 0"):
        ParallelSettings(workers=0)


def test_placement_names_what_is_missing():
    assert placement_refusal(2, 1, 0, [(2.0, 0.0)]) is None
    line = placement_refusal(4, 1, 0, [(2.0, 0.0)])
    assert "can place 2 worker(s)" in line and "missing: room for 2 more, i.e. 2 CPUs" in line
    assert "has no GPU" in placement_refusal(2, 1, 1, [(8.0, 0.0), (8.0, 0.0)])
    line = placement_refusal(3, 1, 1, [(8.0, 2.0), (1.0, 1.0), (0.0, 4.0)])  # CPUs and GPUs must sit together
    assert line is None
    assert "missing: room for 1 more, i.e. 1 CPUs and 1 GPUs" in placement_refusal(4, 1, 1, [(8.0, 2.0), (1.0, 1.0)])


def test_sync_batch_norm_is_batch_norm_in_one_process_and_keeps_the_names():
    from snn_nas.training.sync_bn import GlooSyncBatchNorm, convert_sync_batchnorm

    net = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 1), torch.nn.BatchNorm2d(3), torch.nn.BatchNorm1d(4))
    names = list(net.state_dict())
    converted = convert_sync_batchnorm(net, torch.device("cpu"))
    assert isinstance(converted[1], GlooSyncBatchNorm) and list(converted.state_dict()) == names
    x = torch.randn(5, 3, 4)
    reference = torch.nn.BatchNorm1d(3)
    assert torch.allclose(GlooSyncBatchNorm(3)(x), reference(x))


def test_published_recipes_are_the_reference_settings():
    from snn_nas.training.published import RECIPES, get_recipe

    assert RECIPES.names() == ["mixer_snn_imagenet", "snn_mlp_imagenet"]
    mixer = get_recipe("mixer_snn_imagenet")
    fields = mixer.train_fields()
    assert (fields["optimizer"], fields["lr"], fields["batch_size"], fields["epochs"]) == ("sgd", 0.1, 512, 100)
    assert fields["weight_decay"] == 0.0 and fields["warmup_epochs"] == 0.0 and fields["grad_clip"] is None
    aug = mixer.augment
    assert (aug.mixup, aug.cutmix, aug.random_erasing, aug.repeats, aug.randaugment_ops) == (0.8, 1.0, 0.25, 3, 2)
    snn_mlp = get_recipe("snn_mlp_imagenet")
    assert scaled_lr(snn_mlp.train_fields()["lr"], snn_mlp.lr_rule, 1024) == pytest.approx(1e-3)
    TrainConfig(**{**snn_mlp.train_fields()})  # every field a valid TrainConfig setting


def test_mixup_and_cutmix_give_soft_labels_and_refuse_tensor_data_for_per_image_augmentation():
    from snn_nas.data import load_dataset
    from snn_nas.training.augment import Augment, AugmentError, BatchMixer, with_training_transform

    torch.manual_seed(0)
    x, y = torch.randn(6, 3, 8, 8), torch.tensor([0, 1, 2, 3, 0, 1])
    mixed, soft = BatchMixer(Augment(mixup=0.8, cutmix=1.0), num_classes=4)(x, y)
    assert mixed.shape == x.shape and soft.shape == (6, 4)
    assert torch.allclose(soft.sum(1), torch.ones(6))
    frames, soft = BatchMixer(Augment(cutmix=1.0), num_classes=4)(torch.randn(2, 6, 2, 8, 8), y)
    assert frames.shape == (2, 6, 2, 8, 8) and soft.shape == (6, 4)
    with pytest.raises(AugmentError, match="image folders"):
        with_training_transform(load_dataset(DATASET, image_size=8), Augment(randaugment_ops=2))


# ----------------------------------------------------------------------------- in one process
def _config(**changes):
    values = dict(dataset=DATASET, image_size=8, epochs=2, batch_size=16, max_batches_per_epoch=2, optimizer="sgd",
                  lr=0.2, weight_decay=0.0, warmup_epochs=0.0, grad_clip=None, amp=False)  # fmt: skip
    return TrainConfig(**{**values, **changes})


def _genotype():
    from snn_nas.genotype import Genotype, Stage

    return Genotype(stages=(Stage(depth=1, dim=8),), time_steps=2, patch_size=4)


def test_an_interrupted_run_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path, one_thread):
    from snn_nas.checkpoint import CheckpointError, load_checkpoint
    from snn_nas.data import load_dataset
    from snn_nas.training.augment import Augment
    from snn_nas.training.data_parallel import train_worker

    data = load_dataset(DATASET, image_size=8)
    settings = ParallelSettings(augment=Augment(mixup=0.5))
    whole = train_worker(_genotype(), _config(), settings, out_dir=tmp_path / "a", data=data, progress=False)
    train_worker(_genotype(), _config(), settings, out_dir=tmp_path / "b", data=data, progress=False, stop_after=1)
    assert load_checkpoint(tmp_path / "b" / "last.pt")["epoch"] == 1
    resumed = train_worker(_genotype(), _config(), settings, out_dir=tmp_path / "b", data=data, progress=False,
                           resume=True, evaluate_test=True)  # fmt: skip
    state = load_checkpoint(tmp_path / "b" / "last.pt")
    assert state["parallel"]["resumed_from"] == [1] and [h["epoch"] for h in state["history"]] == [1, 2]
    for name, tensor in whole.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name
    assert resumed.test_acc is not None and math.isfinite(resumed.test_loss)
    with pytest.raises(CheckpointError, match="recipe"):  # another augmentation: another training
        train_worker(_genotype(), _config(), ParallelSettings(recipe="x"), out_dir=tmp_path / "b", data=data,
                     progress=False, resume=True)  # fmt: skip


# ----------------------------------------------------------------------------- two gloo workers
def _worker(rank: int, world: int, folder: str, sync_bn: bool) -> None:
    import torch.distributed as dist

    from snn_nas.data import load_dataset
    from snn_nas.training.data_parallel import train_worker

    torch.set_num_threads(1)
    if world > 1:
        dist.init_process_group("gloo", rank=rank, world_size=world, init_method=f"file://{folder}/group")
    try:
        train_worker(_genotype(), _config(epochs=1, max_batches_per_epoch=1), ParallelSettings(workers=world,
                     sync_bn=sync_bn), rank=rank, device="cpu", out_dir=f"{folder}/w{world}",
                     data=load_dataset(DATASET, image_size=8), progress=False)  # fmt: skip
    finally:
        if world > 1:
            dist.destroy_process_group()


def test_one_step_of_two_gloo_workers_equals_one_worker_with_the_whole_batch(tmp_path, one_thread):
    """One SGD step (momentum 0.9, no weight decay: after the first step the momentum buffer is the
    gradient) with global batch 16: 2 gloo processes of 8 images each, synchronised batch norm,
    against 1 process of 16. Gradients, updated weights and batch-norm statistics agree to float
    rounding; without synchronised batch norm they do not."""
    import torch.multiprocessing as mp

    from snn_nas.checkpoint import load_checkpoint

    _worker(0, 1, str(tmp_path), True)
    mp.spawn(_worker, args=(2, str(tmp_path), True), nprocs=2)
    one, two = (load_checkpoint(tmp_path / f"w{w}" / "last.pt") for w in (1, 2))
    assert two["parallel"]["workers"] == 2 and two["history"][0]["train_images"] == 16
    for name, tensor in one["model"].items():
        assert torch.allclose(tensor.float(), two["model"][name].float(), atol=1e-5, rtol=1e-4), name
    grads_one, grads_two = (c["optimizer"]["state"] for c in (one, two))
    biggest = max(g["momentum_buffer"].abs().max().item() for g in grads_one.values())
    assert biggest > 1e-3  # a real step
    for k, g in grads_one.items():
        assert torch.allclose(g["momentum_buffer"], grads_two[k]["momentum_buffer"], atol=1e-5, rtol=1e-4), k
    assert one["history"][0]["train_loss"] == pytest.approx(two["history"][0]["train_loss"], rel=1e-5)


def test_a_published_recipe_trains_on_an_image_folder(tmp_path, one_thread):
    """``--recipe mixer_snn_imagenet`` on a folder of JPEGs: its settings in the config, the
    per-image augmentations in the data workers, mixup/cutmix on the batch, the report's entry."""
    import json

    from PIL import Image

    from snn_nas.cli.main import main

    for part, count in (("train", 24), ("val", 4)):
        for i in range(count):
            (tmp_path / "data" / part / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
            pixels = torch.randint(0, 256, (16, 16, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(i))
            Image.fromarray(pixels.numpy()).save(tmp_path / "data" / part / f"c{i % 2}" / f"{i}.jpg")
    out = tmp_path / "run"
    argv = ["train", "mlp_spe_micro", "--dataset", "imagefolder", "--data-root", str(tmp_path / "data"),
            "--image-size", "16", "--recipe", "mixer_snn_imagenet", "--epochs", "1", "--batch-size", "8",
            "--max-batches", "2", "--num-workers", "1", "--val-fraction", "0.2", "--out", str(out),
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "ok" and result["parallel"]["recipe"] == "mixer_snn_imagenet"
    config = result["config"]
    assert (config["optimizer"], config["lr"], config["weight_decay"], config["grad_clip"]) == ("sgd", 0.1, 0.0, None)
    assert config["batch_size"] == 8 and config["epochs"] == 1  # the command line over the recipe
    assert result["parallel"]["augment"]["repeats"] == 3 and result["history"][0]["train_images"] == 16
