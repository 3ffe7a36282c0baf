"""Event data (``snn_nas.data.events``): tiny files in N-MNIST's and DVS128 Gesture's on-disk
formats read through tonic, the simulated nmnist5k, frames per T, the cache, bad input, costs."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from snn_nas.data import DatasetError, load_dataset
from snn_nas.data.events import frames as frames_module
from snn_nas.data.events.stream import check_time_bins, make_events, resize_events, to_frames
from snn_nas.data.resident import make_batches


@pytest.fixture(autouse=True)
def cache_dir(tmp_path_factory, monkeypatch):
    """One cache folder for the module (nmnist5k is simulated once); no frames kept in memory."""
    monkeypatch.setenv("SNN_NAS_CACHE", str(tmp_path_factory.getbasetemp() / "events-cache"))
    frames_module.set_frames.cache_clear()
    yield
    frames_module.set_frames.cache_clear()


# ------------------------------------------------------------------ N-MNIST's binary format
def write_nmnist(path, x, y, t, p) -> None:
    """N-MNIST's 40-bit events: x, y, then polarity (bit 7) and 23 bits of time (us)."""
    x, y, t, p = (np.asarray(v, dtype=np.int64) for v in (x, y, t, p))
    raw = np.stack([x, y, (p << 7) | ((t >> 16) & 127), (t >> 8) & 255, t & 255], axis=1).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw.tobytes())


def stream(seed: int, n: int = 60, duration: int = 300_000):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 34, n), rng.integers(0, 34, n), np.sort(rng.integers(0, duration, n)), rng.integers(0, 2, n)


def nmnist_folder(root, per_class: int = 4, classes: int = 3):
    for part, count in (("Train", per_class), ("Test", 2)):
        for digit in range(classes):
            for k in range(count):
                write_nmnist(root / "NMNIST" / part / str(digit) / f"{k:05d}.bin", *stream(100 * digit + k))
    return root


def test_nmnist_files_load_through_tonic_and_bin_per_t(tmp_path):
    root = nmnist_folder(tmp_path)
    data = load_dataset("nmnist", data_root=str(root), image_size=16, seed=0, val_fraction=0.25)
    assert (len(data.train), len(data.val), len(data.test), data.in_chans, data.num_classes) == (9, 3, 6, 2, 10)
    with pytest.raises(DatasetError, match="at_time_steps"):
        data.train[0]  # frames wait for the model's T
    binned = data.at_time_steps(3)
    x, label = binned.test[0]  # test: the official Test folder, sorted (digit 0, file 00000)
    assert x.shape == (3, 2, 16, 16) and x.dtype == torch.float32 and label == 0
    # by hand: x' = floor(x * 16 / 34); bins of (t_last - t_first) // 3 us from t_first
    xs, ys, ts, ps = stream(0)
    width = (ts[-1] - ts[0]) // 3
    expected = torch.zeros(3, 2, 16, 16)
    for xi, yi, ti, pi in zip(xs, ys, ts, ps, strict=True):
        k = (ti - ts[0]) // width
        if k < 3:
            expected[k, pi, yi * 16 // 34, xi * 16 // 34] = 1.0
    assert torch.equal(x, expected)
    assert sorted(binned.val[i][1] for i in range(3)) == [0, 1, 2]  # stratified: one of each class
    assert binned.at_time_steps(3) is binned and binned.at_time_steps(2).train[0][0].shape[0] == 2


def test_nmnist_bad_files_are_named(tmp_path):
    root = nmnist_folder(tmp_path)
    with pytest.raises(DatasetError, match=r"folder .*NMNIST.*not found"):
        load_dataset("nmnist", data_root=str(tmp_path / "nowhere"))
    damaged = root / "NMNIST" / "Train" / "1" / "00002.bin"
    damaged.write_bytes(damaged.read_bytes()[:-2])
    with pytest.raises(DatasetError, match=r"00002\.bin is damaged: 298 bytes"):
        load_dataset("nmnist", data_root=str(root))
    write_nmnist(damaged, [3, 40], [3, 3], [10, 20], [0, 1])  # x = 40 on a 34-pixel sensor
    with pytest.raises(DatasetError, match=r"00002\.bin: 1 event\(s\) outside the 34x34 sensor.*x=40"):
        load_dataset("nmnist", data_root=str(root))
    write_nmnist(damaged, [3, 4, 5], [3, 3, 3], [10, 30, 20], [0, 1, 1])
    with pytest.raises(DatasetError, match=r"00002\.bin: time stamps go backwards at event 2 \(t=20 after t=30\)"):
        load_dataset("nmnist", data_root=str(root))


def test_empty_streams_are_dropped_with_a_count(tmp_path, caplog):
    root = nmnist_folder(tmp_path)
    (root / "NMNIST" / "Train" / "2" / "00001.bin").write_bytes(b"")
    data = load_dataset("nmnist", data_root=str(root), val_fraction=0.25, image_size=8)
    with caplog.at_level(logging.WARNING):
        binned = data.at_time_steps(2)
    assert len(binned.train) + len(binned.val) == 11  # 12 streams, one without events
    assert "dropped 1 of" in caplog.text and "no events" in caplog.text


def test_t_larger_than_the_events_allow_is_refused(tmp_path):
    for digit in range(2):
        for part in ("Train", "Test"):
            for k in range(3):
                write_nmnist(
                    tmp_path / "NMNIST" / part / str(digit) / f"{k}.bin", [1, 2], [1, 2], [5, 5 + 3 + k], [0, 1]
                )
    data = load_dataset("nmnist", data_root=str(tmp_path), val_fraction=0.34)
    assert data.at_time_steps(3).time_bins == 3
    with pytest.raises(DatasetError, match=r"T=4 time bins is more than the events allow: the shortest sample spans 3"):
        data.at_time_steps(4)
    with pytest.raises(DatasetError, match="integer >= 1"):
        check_time_bins(0, 10, "x")


def test_cli_train_on_a_damaged_file_says_one_line_and_exits_2(tmp_path, capsys):
    from snn_nas.cli.main import main

    root = nmnist_folder(tmp_path)
    (root / "NMNIST" / "Test" / "0" / "00001.bin").write_bytes(b"\x01\x02\x03")
    code = main(
        ["train", "mlp_spe_micro", "--dataset", "nmnist", "--data-root", str(root), "--out", str(tmp_path / "o")]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "00001.bin is damaged" in err[0]


# ------------------------------------------------------------------ DVS128 Gesture's arrays
def test_dvsgesture_arrays_load_with_times_in_ms(tmp_path):
    for part, users in (("ibmGestureTrain", (1, 2)), ("ibmGestureTest", (3,))):
        for user in users:
            for label in range(11):
                rng = np.random.default_rng(user * 11 + label)
                n = 40
                events = np.stack(
                    [
                        rng.integers(0, 128, n),
                        rng.integers(0, 128, n),
                        rng.integers(0, 2, n),
                        np.sort(rng.integers(0, 900, n)),
                    ],
                    axis=1,
                )
                folder = tmp_path / "DVSGesture" / part / f"user{user:02d}_led"
                folder.mkdir(parents=True, exist_ok=True)
                np.save(folder / f"{label}.npy", events)
    data = load_dataset("dvsgesture", data_root=str(tmp_path), image_size=32, val_fraction=0.5)
    assert (len(data.train), len(data.val), len(data.test), data.num_classes) == (11, 11, 11, 11)
    x, label = data.at_time_steps(4).test[0]
    assert x.shape == (4, 2, 32, 32) and label == 0 and x.sum() > 0
    _, spans = data.parts[0][1].index()
    assert spans.min() > 900  # milliseconds became microseconds


# ------------------------------------------------------------------ the simulated nmnist5k
def test_nmnist5k_is_deterministic_and_split_like_mnist5k():
    from snn_nas.data.bundled import _mnist_arrays, three_way_split
    from snn_nas.data.events.nmnist5k import simulated_streams

    arrays, labels = simulated_streams(0, per_class=6)
    again, _ = simulated_streams(0, per_class=6)
    assert np.array_equal(arrays.t, again.t) and np.array_equal(arrays.x, again.x)
    other, _ = simulated_streams(1, per_class=6)
    assert not np.array_equal(arrays.t[:100], other.t[:100])
    counts = np.diff(arrays.offsets)
    assert counts.min() > 200 and set(np.unique(arrays.p)) == {0, 1}  # ON and OFF events in every set
    assert arrays.x.max() < 34 and arrays.y.max() < 34 and arrays.t.max() <= 315_000
    assert all(
        np.all(np.diff(arrays.t[a:b]) >= 0) for a, b in zip(arrays.offsets[:-1], arrays.offsets[1:], strict=True)
    )
    data = load_dataset("nmnist5k:per_class=6", image_size=16, seed=3)
    parts = three_way_split(torch.from_numpy(labels), 0.25, 3)
    assert [len(p) for p in parts] == [len(data.train), len(data.val), len(data.test)]
    _, mnist_labels = _mnist_arrays()  # the first 6 digits of each class of mnist5k, in their order
    first = np.sort(np.concatenate([np.flatnonzero(mnist_labels.numpy() == c)[:6] for c in range(10)]))
    assert labels.tolist() == mnist_labels.numpy()[first].tolist()


def test_frames_are_cached_on_disk_and_equal(tmp_path):
    data = load_dataset("nmnist5k:per_class=4", image_size=12)
    first = data.at_time_steps(2).train[3][0]
    frames_module.set_frames.cache_clear()  # a new process: only the disk cache is left
    files = list(frames_module.cache.cache_dir().glob("frames-*.npz"))
    assert files
    second = load_dataset("nmnist5k:per_class=4", image_size=12).at_time_steps(2).train[3][0]
    assert torch.equal(first, second) and set(first.unique().tolist()) <= {0.0, 1.0}


def test_resident_batches_serve_time_bins_as_binary_floats():
    data = load_dataset("nmnist5k:per_class=4", image_size=8).at_time_steps(4)
    batches = make_batches(data.val, device=torch.device("cpu"), batch_size=5)
    assert batches.resident and batches.images.dtype == torch.uint8  # one byte per pixel on the device
    x, _ = next(iter(batches))
    assert x.shape == (5, 4, 2, 8, 8) and x.dtype == torch.float32
    assert torch.equal(x, torch.stack([data.val[i][0] for i in range(5)]))  # exactly 0 / 1


# ------------------------------------------------------------------ stream functions
def test_resize_pads_above_the_sensor_and_frames_are_binary():
    events = make_events(np.array([0, 33, 33]), np.array([0, 33, 33]), np.array([0, 50, 100]), np.array([1, 0, 0]))
    padded = resize_events(events, (34, 34), 40)
    assert padded["x"].tolist() == [3, 36, 36]
    frames = to_frames(events, (34, 34), 17, 2)  # the 2 OFF events fall in one pixel of bin 1
    assert frames.dtype == bool and frames.sum() == 2 and frames[1, 0, 16, 16] and frames[0, 1, 0, 0]


# ------------------------------------------------------------------ costs on spiking input
def test_the_stem_accumulates_on_event_frames_and_the_input_layer_fires():
    from snn_nas.builder import build_model
    from snn_nas.costs import measure_costs
    from snn_nas.presets import get_preset
    from snn_nas.search.trial_metrics import calibration_batch

    data = load_dataset("nmnist5k:per_class=4", image_size=16).at_time_steps(4)
    model = build_model(get_preset("mlp_spe_micro"), 10, 16, data.in_chans, seed=0)
    images = calibration_batch(data, 8)
    assert images.shape == (4, 8, 2, 16, 16)  # [T, B, C, H, W]
    report = measure_costs(model, images)
    stem = report.layers[0]
    assert stem.macs == 0 and stem.sops > 0 and stem.input_rate == pytest.approx(images.mean().item())
    assert report.neurons[0].name == "(input)" and report.input_rate == pytest.approx(images.mean().item())
    assert report.neurons[0].neurons == 2 * 16 * 16 and report.time_steps == 4
    static = measure_costs(model, torch.randn(4, 8, 2, 16, 16))
    assert static.layers[0].macs > 0 and static.layers[0].sops == 0 and static.input_rate is None
