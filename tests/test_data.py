from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from snn_nas.data import DATASETS, DatasetError, load_dataset, make_synthetic, parse_dataset_name
from snn_nas.data.base import RandomCropFlip, pad_images, stratified_split
from snn_nas.registry import UnknownNameError

CIFAR10_MEAN0, CIFAR10_STD0 = 0.4914, 0.2470


def _labels(dataset) -> list[int]:
    return [dataset[i][1] for i in range(len(dataset))]


# ------------------------------------------------------------------ registry and names
def test_registry_names_and_unknown_name_lists_them():
    assert DATASETS.names() == [
        "cifar10", "cifar100", "cifar10dvs", "digits", "dvsgesture", "imagefolder", "mnist5k", "nmnist", "nmnist5k",
        "synthetic",
    ]  # fmt: skip
    with pytest.raises(UnknownNameError, match="valid names: cifar10, cifar100, cifar10dvs, digits"):
        load_dataset("mnist")


def test_parse_dataset_name_options():
    assert parse_dataset_name("synthetic:train=8, val=4,noise=0.5") == (
        "synthetic",
        {"train": 8, "val": 4, "noise": 0.5},
    )
    assert parse_dataset_name("mnist5k") == ("mnist5k", {})
    with pytest.raises(DatasetError, match="key=value"):
        parse_dataset_name("synthetic:train")
    with pytest.raises(DatasetError, match="allowed options: train, val, test, classes, channels, noise"):
        load_dataset("synthetic:bogus=1")
    with pytest.raises(DatasetError, match="allowed options: none"):
        load_dataset("mnist5k:train=3")


# ------------------------------------------------------------------ helpers
def test_stratified_split_keeps_class_proportions_and_is_seeded():
    labels = torch.tensor([0] * 10 + [1] * 5 + [2] * 2)
    train, val = stratified_split(labels, 0.2, seed=3)
    assert sorted(labels[val].tolist()) == [0, 0, 1, 2]  # round(10*.2)=2, round(5*.2)=1, min 1 of 2
    assert len(train) + len(val) == len(labels) and not set(train.tolist()) & set(val.tolist())
    again = stratified_split(labels, 0.2, seed=3)
    assert torch.equal(again[1], val)
    assert any(not torch.equal(stratified_split(labels, 0.2, seed=s)[1], val) for s in range(4, 10))


def test_pad_images_centres_with_value():
    x = torch.ones(1, 1, 2, 2)
    y = pad_images(x, 5, value=-1.0)
    assert y.shape == (1, 1, 5, 5)
    expected = torch.full((5, 5), -1.0)
    expected[1:3, 1:3] = 1.0  # top/left pad (5-2)//2 = 1, extra pixel right/bottom
    assert torch.equal(y[0, 0], expected)


def test_random_crop_flip_shifts_content_and_keeps_shape():
    image = torch.arange(16.0).view(1, 4, 4)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        outs = [RandomCropFlip(padding=1, flip=True)(image) for _ in range(20)]
    assert all(o.shape == (1, 4, 4) for o in outs)
    padded = torch.nn.functional.pad(image, (1, 1, 1, 1))
    windows = [padded[:, top : top + 4, left : left + 4] for top in range(3) for left in range(3)]
    candidates = windows + [w.flip(-1) for w in windows]
    assert all(any(torch.equal(o, c) for c in candidates) for o in outs)
    assert len({tuple(o.flatten().tolist()) for o in outs}) > 1


# ------------------------------------------------------------------ bundled datasets
def test_mnist5k_split_shapes_and_normalisation():
    data = load_dataset("mnist5k")
    assert (data.name, data.num_classes, data.in_chans, data.image_size) == ("mnist5k", 10, 1, 28)
    assert (len(data.train), len(data.val), len(data.test)) == (3000, 1000, 1000)
    assert np.bincount(_labels(data.val)).tolist() == [100] * 10
    assert np.bincount(_labels(data.test)).tolist() == [100] * 10
    image, label = data.train[0]
    assert image.dtype == torch.float32 and image.shape == (1, 28, 28) and isinstance(label, int)
    # corner pixels are background 0 -> (0 - 0.1307) / 0.3081
    assert image[0, 0, 0].item() == pytest.approx(-0.1307 / 0.3081, abs=1e-5)
    same = load_dataset("mnist5k", seed=0)
    other = load_dataset("mnist5k", seed=1)
    assert torch.equal(same.val.images, data.val.images)
    assert not torch.equal(other.val.images, data.val.images)
    assert torch.equal(other.test.images, data.test.images)  # the test part never moves with the seed
    bigger = load_dataset("mnist5k", val_fraction=0.5)
    assert (len(bigger.train), len(bigger.val)) == (2000, 2000) and torch.equal(bigger.test.images, data.test.images)
    with pytest.raises(DatasetError, match=r"val_fraction must be a number in \(0, 1\)"):
        load_dataset("mnist5k", val_fraction=1.5)


def test_mnist5k_image_size_pads_up_and_resizes_down():
    small = load_dataset("mnist5k")
    padded = load_dataset("mnist5k", image_size=32)
    assert padded.image_size == 32 and padded.train[0][0].shape == (1, 32, 32)
    assert torch.equal(padded.train.images[:, :, 2:30, 2:30], small.train.images)
    assert torch.allclose(padded.train.images[:, :, :2], torch.tensor(-0.1307 / 0.3081))
    assert load_dataset("mnist5k", image_size=14).train[0][0].shape == (1, 14, 14)


def test_digits_loads_and_resizes():
    data = load_dataset("digits", image_size=16)
    assert (data.num_classes, data.in_chans, data.image_size) == (10, 1, 16)
    assert len(data.train) + len(data.val) + len(data.test) == 1797
    assert data.val[0][0].shape == (1, 16, 16)
    assert abs(data.train.images.mean().item()) < 1e-4  # normalised with the training part's statistics
    with pytest.raises(DatasetError, match="image_size must be a positive integer"):
        load_dataset("digits", image_size=0)


def test_synthetic_is_deterministic_shaped_and_balanced():
    a = load_dataset("synthetic:train=12,val=6,classes=3,channels=2", image_size=5, seed=4)
    b = make_synthetic(train=12, val=6, classes=3, channels=2, image_size=5, seed=4)
    assert (a.num_classes, a.in_chans, a.image_size) == (3, 2, 5)
    assert a.train[0][0].shape == (2, 5, 5)
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.val.labels, b.val.labels)
    assert np.bincount(_labels(a.train)).tolist() == [4, 4, 4]
    c = make_synthetic(train=12, val=6, classes=3, channels=2, image_size=5, seed=5)
    assert not torch.equal(a.train.images, c.train.images)
    with pytest.raises(DatasetError, match="classes must be an integer >= 2"):
        make_synthetic(classes=1)


# ------------------------------------------------------------------ CIFAR (tiny files in the real layout)
def _cifar_batch(n: int, label_key: bytes, num_classes: int, offset: int) -> dict:
    data = np.zeros((n, 3072), dtype=np.uint8)
    data[:, :1024] = 255  # channel 0 all ones, channels 1 and 2 zero
    data[:, 1024] = np.arange(n) + offset  # first pixel of channel 1 marks the image
    return {b"data": data, label_key: [(i + offset) % num_classes for i in range(n)]}


def _dump(path: Path, obj: dict) -> None:
    with path.open("wb") as handle:
        pickle.dump(obj, handle)


def write_tiny_cifar10(root: Path, per_batch: int = 4) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i in range(1, 6):
        _dump(folder / f"data_batch_{i}", _cifar_batch(per_batch, b"labels", 10, offset=(i - 1) * per_batch))
    _dump(folder / "test_batch", _cifar_batch(3, b"labels", 10, offset=100))
    _dump(folder / "batches.meta", {b"label_names": [f"c{i}".encode() for i in range(10)]})


def write_tiny_cifar100(root: Path) -> None:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    _dump(folder / "train", _cifar_batch(6, b"fine_labels", 100, offset=0))
    _dump(folder / "test", _cifar_batch(2, b"fine_labels", 100, offset=50))
    _dump(folder / "meta", {b"fine_label_names": [f"f{i}".encode() for i in range(100)], b"coarse_label_names": []})


def test_cifar10_reads_python_pickles(tmp_path):
    write_tiny_cifar10(tmp_path)
    data = load_dataset("cifar10:verify=0", data_root=str(tmp_path))
    assert (data.num_classes, data.in_chans, data.image_size) == (10, 3, 32)
    assert (len(data.train), len(data.val), len(data.test)) == (10, 10, 3)  # 2 per class: 1 held out as val
    assert len(data.training_set(include_val=True)) == 20
    assert data.classes[:2] == ("c0", "c1")
    image, label = data.test[1]
    assert label == 101 % 10 and image.shape == (3, 32, 32)
    assert image[0, 5, 5].item() == pytest.approx((1 - CIFAR10_MEAN0) / CIFAR10_STD0, rel=1e-5)
    assert image[1, 0, 0].item() == pytest.approx((101 / 255 - 0.4822) / 0.2435, rel=1e-5)
    assert sorted(_labels(data.train) + _labels(data.val)) == sorted(i % 10 for i in range(20))
    assert torch.equal(data.val[0][0], data.val[0][0])  # val is served without augmentation
    # training images are augmented (crop with zero padding, flip) but keep their shape
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        crops = [data.train[0][0] for _ in range(8)]
    assert all(c.shape == (3, 32, 32) for c in crops)
    assert any(not torch.equal(c, crops[0]) for c in crops)


def test_cifar100_reads_fine_labels_and_resizes(tmp_path):
    write_tiny_cifar100(tmp_path)
    data = load_dataset("cifar100:verify=0", data_root=str(tmp_path), image_size=16)
    assert (data.num_classes, data.image_size, len(data.train) + len(data.val), len(data.test)) == (100, 16, 6, 2)
    assert data.test[0][0].shape == (3, 16, 16) and data.test[0][1] == 50
    assert data.classes[99] == "f99"


def test_cifar_missing_files_error_names_layout(tmp_path):
    with pytest.raises(DatasetError, match="needs --data-root"):
        load_dataset("cifar10")
    with pytest.raises(DatasetError, match=r"cifar-10-batches-py.*--download"):
        load_dataset("cifar10", data_root=str(tmp_path))
    write_tiny_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(DatasetError, match="lacks test_batch"):
        load_dataset("cifar10", data_root=str(tmp_path))
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(b"not a pickle")
    data = load_dataset("cifar10:verify=0", data_root=str(tmp_path))  # the test batch is read on first use
    with pytest.raises(DatasetError, match="cannot read"):
        len(data.test)


# ------------------------------------------------------------------ image folders
def write_tiny_imagefolder(root: Path) -> None:
    from PIL import Image

    colours = {"cat": (255, 0, 0), "dog": (0, 0, 255)}
    marker = 0
    for part, count in (("train", 2), ("val", 1)):
        for name, colour in colours.items():
            folder = root / part / name
            folder.mkdir(parents=True)
            for i in range(count):
                image = Image.new("RGB", (24, 20), colour)
                image.putpixel((0, 0), (marker, marker, marker))  # every file differs from every other
                image.save(folder / f"{i}.png")
                marker += 40


def test_imagefolder_loads_with_imagenet_transforms(tmp_path):
    write_tiny_imagefolder(tmp_path)
    data = load_dataset("imagefolder", data_root=str(tmp_path), image_size=16)
    assert (data.num_classes, data.in_chans, data.image_size) == (2, 3, 16)
    assert data.classes == ("cat", "dog") and (len(data.train), len(data.val), len(data.test)) == (2, 2, 2)
    image, label = data.test[0]  # red cat
    assert label == 0 and image.shape == (3, 16, 16)
    assert torch.allclose(image[0, 8:, 8:], torch.tensor((1 - 0.485) / 0.229), atol=1e-4)
    assert torch.allclose(image[1, 8:, 8:], torch.tensor((0 - 0.456) / 0.224), atol=1e-4)
    assert data.train[1][0].shape == (3, 16, 16) and sorted(_labels(data.train)) == [0, 1]


def test_imagefolder_errors(tmp_path):
    with pytest.raises(DatasetError, match="needs --data-root"):
        load_dataset("imagefolder")
    write_tiny_imagefolder(tmp_path)
    (tmp_path / "val" / "dog" / "0.png").rename(tmp_path / "val" / "cat" / "1.png")
    (tmp_path / "val" / "dog").rmdir()
    with pytest.raises(DatasetError, match=r"only in train: \['dog'\]"):
        load_dataset("imagefolder", data_root=str(tmp_path))
    with pytest.raises(DatasetError, match="is not a folder"):
        load_dataset("imagefolder", data_root=str(tmp_path / "nowhere"))


# ------------------------------------------------------------------ the three parts are disjoint by content
def _contents(dataset) -> list[bytes]:
    """Every image of ``dataset`` as bytes, without augmentation."""
    if isinstance(dataset, torch.utils.data.Subset):
        base = dataset.dataset
        return [_raw_file(base, i) for i in dataset.indices]
    if hasattr(dataset, "dataset"):  # a LazyDataset: what it builds
        dataset = dataset.dataset
    if hasattr(dataset, "samples"):  # an ImageFolder: the file contents
        return [_raw_file(dataset, i) for i in range(len(dataset))]
    return [dataset.images[i].numpy().tobytes() for i in range(len(dataset))]


def _raw_file(folder, index: int) -> bytes:
    from PIL import Image

    return Image.open(folder.samples[index][0]).convert("RGB").tobytes()


def _assert_disjoint(data) -> None:
    parts = {name: _contents(getattr(data, name)) for name in ("train", "val", "test")}
    for name, images in parts.items():
        assert len(set(images)) == len(images), f"{data.name}: duplicate images inside {name}"
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        shared = set(parts[a]) & set(parts[b])
        assert not shared, f"{data.name}: {len(shared)} images in both {a} and {b}"


@pytest.mark.parametrize("name", ["mnist5k", "digits", "synthetic:train=40,val=20,test=20"])
def test_offline_datasets_have_three_disjoint_parts(name):
    data = load_dataset(name)
    _assert_disjoint(data)
    assert len(data.test) > 0 and len(data.val) > 0


def test_cifar_and_imagefolder_parts_are_disjoint(tmp_path):
    write_tiny_cifar10(tmp_path / "c10")
    _assert_disjoint(load_dataset("cifar10:verify=0", data_root=str(tmp_path / "c10")))
    write_tiny_imagefolder(tmp_path / "folder")
    data = load_dataset("imagefolder", data_root=str(tmp_path / "folder"), image_size=16, val_fraction=0.5)
    _assert_disjoint(data)


def test_cifar_refuses_files_that_are_not_the_official_release(tmp_path):
    write_tiny_cifar10(tmp_path)
    with pytest.raises(
        DatasetError, match=r"not the official cifar-10-batches-py/data_batch_1 \(MD5 differs\).*verify=0"
    ):
        load_dataset("cifar10", data_root=str(tmp_path))
    with pytest.raises(DatasetError, match="option verify must be 1"):
        load_dataset("cifar10:verify=maybe", data_root=str(tmp_path))


def test_without_test_withholds_the_test_part():
    from snn_nas.data import SplitWithheldError

    data = load_dataset("synthetic:train=8,val=4,test=4").without_test()
    assert len(data.train) == 8 and len(data.val) == 4
    with pytest.raises(SplitWithheldError, match="withheld during a search"):
        data.test[0]
    with pytest.raises(SplitWithheldError):
        len(data.test)
    assert "withheld test" in data.describe()
