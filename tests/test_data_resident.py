"""Device-resident batches (``snn_nas.data.resident``) against the DataLoader path they replace.

"Same batches" is meant as the module docstring defines it: the same images and labels in the
same order for a seed, the same pixels without augmentation, and the same augmented pixels for
the same crop offsets and flips (which the two paths draw from different generators)."""

from __future__ import annotations

import logging

import pytest
import torch
from torch.utils.data import ConcatDataset, DataLoader, Subset

from snn_nas.data import SplitWithheldError, load_dataset, make_synthetic
from snn_nas.data.base import RandomCropFlip
from snn_nas.data.resident import (
    BUDGET_ENV,
    ResidentBatches,
    crop_flip,
    make_augment_generator,
    make_batches,
    tensor_source,
)
from snn_nas.genotype import Genotype, Stage
from snn_nas.training import TrainConfig, train_model

CPU = torch.device("cpu")
TINY = Genotype(stages=(Stage(depth=1, dim=4),), time_steps=2, patch_size=4)


def _epochs(batches, epochs: int, stop: dict[int, int] | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Every batch of ``epochs`` epochs; epoch e stops after ``stop[e]`` batches (as a capped epoch)."""
    out = []
    for epoch in range(epochs):
        for step, (x, y) in enumerate(batches):
            if stop and epoch in stop and step >= stop[epoch]:
                break
            out.append((x.clone(), y.clone()))
    return out


def _both(dataset, **kwargs):
    resident = make_batches(dataset, device=CPU, generator=torch.Generator().manual_seed(5), **kwargs)
    loader = make_batches(dataset, device=CPU, generator=torch.Generator().manual_seed(5), resident=False, **kwargs)
    assert isinstance(resident, ResidentBatches) and isinstance(loader, DataLoader)
    assert len(resident) == len(loader)
    return resident, loader


@pytest.mark.parametrize("n, batch, drop_last", [(60, 8, True), (60, 7, True), (61, 8, False)])
def test_same_indices_labels_and_pixels_as_the_loader_for_a_seed(n, batch, drop_last):
    data = make_synthetic(train=n, val=8, classes=5, channels=1, image_size=6, seed=1)
    resident, loader = _both(data.train, batch_size=batch, shuffle=True, drop_last=drop_last)
    stop = {1: 3}  # an epoch cut short (max_batches_per_epoch) must not shift the next ones
    ours, theirs = _epochs(resident, 3, stop), _epochs(loader, 3, stop)
    assert len(ours) == len(theirs) > 0
    for (x, y), (x_ref, y_ref) in zip(ours, theirs, strict=True):
        assert torch.equal(y, y_ref) and torch.equal(x, x_ref)
    first = torch.cat([y for _, y in ours[: len(resident)]])
    assert not torch.equal(first, data.train.labels[: len(first)])  # shuffled, not in stored order


def test_subset_and_concatenation_are_resident_too():
    data = make_synthetic(train=40, val=12, classes=4, channels=1, image_size=4, seed=2)
    for dataset in (Subset(data.train, [3, 1, 4, 15, 9, 26]), ConcatDataset([data.train, data.val])):
        resident, loader = _both(dataset, batch_size=5, shuffle=True)
        for (x, y), (x_ref, y_ref) in zip(_epochs(resident, 2), _epochs(loader, 2), strict=True):
            assert torch.equal(x, x_ref) and torch.equal(y, y_ref)


def test_uint8_parts_are_kept_as_uint8_and_converted_like_the_per_item_transform():
    data = make_synthetic(train=30, val=20, classes=3, image_size=8, seed=3, like="cifar")
    source = tensor_source(data.val)
    assert source is not None and source.images.dtype == torch.uint8 and source.augment is None
    resident, loader = _both(data.val, batch_size=6)
    assert resident.images.dtype == torch.uint8
    for (x, y), (x_ref, y_ref) in zip(_epochs(resident, 1), _epochs(loader, 1), strict=True):
        assert torch.equal(x, x_ref) and torch.equal(y, y_ref)


def test_a_resize_is_prepared_once_with_the_same_pixels():
    data = make_synthetic(train=12, val=10, classes=2, image_size=8, seed=4, like="cifar")
    data.val.transform.size = 6  # a loader serving 6 px images from 8 px pixels
    resident, loader = _both(data.val, batch_size=4)
    assert resident.images.dtype == torch.float32 and resident.images.shape[-1] == 6
    for (x, _), (x_ref, _) in zip(_epochs(resident, 1), _epochs(loader, 1), strict=True):
        torch.testing.assert_close(x, x_ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("padding", [0, 1, 4])
def test_batch_crop_flip_equals_the_per_image_transform_for_the_same_draws(padding):
    gen = torch.Generator().manual_seed(padding)
    images = torch.randn(9, 3, 7, 7, generator=gen)
    tops = torch.randint(0, 2 * padding + 1, (9,), generator=gen)
    lefts = torch.randint(0, 2 * padding + 1, (9,), generator=gen)
    flips = torch.rand(9, generator=gen) < 0.5
    flips[0], flips[1] = True, False
    out = crop_flip(images, tops, lefts, flips, padding)
    per_image = RandomCropFlip(padding=padding, flip=True)
    for i in range(9):
        expected = per_image.apply(images[i], int(tops[i]), int(lefts[i]), bool(flips[i]))
        assert torch.equal(out[i], expected)


def test_training_augmentation_is_seeded_on_the_device_and_held_out_parts_are_untouched():
    data = make_synthetic(train=24, val=10, classes=3, image_size=8, seed=5, like="cifar")

    def batches(aug_seed: int) -> list:
        train = make_batches(
            data.train,
            device=CPU,
            batch_size=8,
            shuffle=True,
            generator=torch.Generator().manual_seed(0),
            augment_generator=make_augment_generator(CPU, aug_seed),
        )
        return _epochs(train, 2)

    first, again, other = batches(0), batches(0), batches(1)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, again, strict=True))
    assert any(not torch.equal(a[0], b[0]) for a, b in zip(first, other, strict=True))
    assert all(torch.equal(a[1], b[1]) for a, b in zip(first, other, strict=True))  # the order is the loader's
    # every augmented image is one of the crops and flips of its prepared image, in the loader's order
    gen = torch.Generator().manual_seed(0)
    torch.empty((), dtype=torch.int64).random_(generator=gen)
    order = torch.randperm(24, generator=gen)
    augment = data.train.transform.transforms[-1]
    prepare = data.val.transform
    pad = augment.padding
    for position, image in enumerate(torch.cat([x for x, _ in first[:3]])):
        source = prepare(data.train.images[order[position]])
        candidates = [
            augment.apply(source, top, left, flip)
            for top in range(2 * pad + 1)
            for left in range(2 * pad + 1)
            for flip in (False, True)
        ]
        assert any(torch.equal(image, c) for c in candidates)
    # held-out parts: in stored order, never augmented, identical on every pass
    val = make_batches(data.val, device=CPU, batch_size=4)
    passes = [_epochs(val, 1) for _ in range(2)]
    stacked = torch.cat([x for x, _ in passes[0]])
    assert torch.equal(stacked, torch.stack([data.val[i][0] for i in range(len(data.val))]))
    assert torch.equal(torch.cat([y for _, y in passes[0]]), data.val.labels)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(*passes, strict=True))


def test_test_part_is_never_read_and_withheld_test_refuses():
    data = make_synthetic(train=16, val=8, classes=2, channels=1, image_size=8, seed=6).without_test()
    result = train_model(
        TINY,
        TrainConfig(dataset="synthetic", epochs=1, batch_size=8, lr=0.01, warmup_epochs=0.0),
        data=data,
        progress=False,
        resident=True,
    )
    assert result.ok
    withheld = make_batches(data.test, device=CPU, batch_size=4)
    with pytest.raises(SplitWithheldError):
        next(iter(withheld))


def test_a_part_too_large_falls_back_to_the_loader_and_says_so_once(monkeypatch, caplog):
    data = make_synthetic(train=20, val=8, classes=2, channels=1, image_size=8, seed=7)
    monkeypatch.setenv(BUDGET_ENV, "100")  # bytes: smaller than the 20 images
    with caplog.at_level(logging.WARNING, logger="snn_nas.data.resident"):
        for _ in range(3):
            batches = make_batches(data.train, device=CPU, batch_size=4, name="a-large-part-7")
            assert isinstance(batches, DataLoader)
    said = [r.getMessage() for r in caplog.records if "a-large-part-7" in r.getMessage()]
    assert len(said) == 1 and "do not fit" in said[0] and "DataLoader" in said[0]


def test_image_folders_and_unknown_transforms_use_the_loader():
    data = make_synthetic(train=8, val=4, classes=2, channels=1, image_size=4, seed=8)
    data.train.transform = lambda image: image * 2  # a transform the resident path cannot apply in batch
    assert tensor_source(data.train) is None
    assert isinstance(make_batches(data.train, device=CPU, batch_size=4), DataLoader)


def test_training_is_the_same_on_both_paths_without_augmentation():
    data = load_dataset("synthetic:train=48,val=16,classes=3,channels=1")
    config = TrainConfig(dataset="synthetic", epochs=2, batch_size=8, lr=0.01, seed=3)
    runs = [train_model(TINY, config, data=data, progress=False, resident=flag) for flag in (True, False)]
    keys = ("train_loss", "train_acc", "val_loss", "val_acc")
    assert [[h[k] for k in keys] for h in runs[0].history] == [[h[k] for k in keys] for h in runs[1].history]


def test_resume_with_device_augmentation_matches_an_uninterrupted_run(tmp_path):
    data = make_synthetic(train=32, val=16, classes=2, channels=3, image_size=8, seed=9, like="cifar")
    config = TrainConfig(dataset="synthetic", epochs=2, batch_size=8, lr=0.01, seed=1)
    straight = train_model(TINY, config, data=data, out_dir=tmp_path / "a", progress=False, resident=True)

    class Stop(Exception):
        pass

    def stop(epoch, metrics):
        raise Stop

    with pytest.raises(Stop):
        train_model(TINY, config, data=data, out_dir=tmp_path / "b", progress=False, resident=True, callback=stop)
    resumed = train_model(TINY, config, data=data, out_dir=tmp_path / "b", progress=False, resident=True, resume=True)
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in straight.history]
    assert all(torch.equal(v, resumed.model.state_dict()[k]) for k, v in straight.model.state_dict().items())
