"""Bad input of issue 16 (item 13): the 19 "bad" cases and the "poor" ones, each reproduced as a
user meets it. Each gives a clear error (exit code 2 and one line through the CLI, an
``SnnNasError`` subclass through the API) or a stated warning; never a traceback, never a silent
pass."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
import torch
import yaml

from snn_nas.checkpoint import CheckpointError, load_model
from snn_nas.cli.main import main
from snn_nas.errors import SnnNasError
from snn_nas.genotype import Genotype, GenotypeError, Stage
from snn_nas.presets import get_preset
from snn_nas.search.results import ResultsError, ResultStore, load_results

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = Genotype(stages=(Stage(depth=1, dim=8),), time_steps=1, patch_size=4)
DATASET = "synthetic:train=32,val=16,classes=4,channels=1"
SPACE = (
    "name: small\nimage_size: 8\ntime_steps: {choice: [1, 2]}\npatch_size: 4\nnum_stages: 1\n"
    "stage1: {dim: 8, depth: 1, token_h: {op: {choice: [mlp, none]}}}\n"
)


def cli_error(capsys, *argv: str) -> str:
    """The real CLI: exit 2, one short line ``snn-nas CMD: error: ...`` on stderr, no traceback."""
    rc = main(list(argv))
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith(f"snn-nas {argv[0]}: error: "), err
    assert "Traceback" not in err and len(lines[0]) < 500, err
    return lines[0]


def good_row(trial_id: str = "t0", **values) -> dict:
    return {"trial_id": trial_id, "status": "ok", "key": TINY.key(), "genotype": TINY.to_json(), "val_acc": 0.5,
            "sops": 10.0, "macs": 5.0, **values}  # fmt: skip


@pytest.fixture
def results_dir(tmp_path):
    store = ResultStore(tmp_path / "search")
    store.record(good_row())
    return tmp_path / "search"


# ----------------------------------------------------------------------------- numbers without bounds
def test_huge_widths_and_time_steps_fail_at_the_genotype_not_in_torch(tmp_path, capsys):
    for field, value, message in (("dim", 10**9, r"stages\[0\].dim: 1000000000 is out of range"),
                                  ("time_steps", 10**9, "time_steps: 1000000000 is out of range")):  # fmt: skip
        data = get_preset("mlp_spe_micro").to_dict()
        if field == "dim":
            data["stages"][0]["dim"] = value
        else:
            data[field] = value
        with pytest.raises(GenotypeError, match=message):
            Genotype.from_dict(data)
        path = tmp_path / f"{field}.json"
        path.write_text(json.dumps(data))
        assert "is out of range" in cli_error(capsys, "profile", str(path))
    # a space file with such a number names the key
    space = (Path(__file__).resolve().parents[1] / "snn_nas/space/builtin/quick.yaml").read_text()
    (tmp_path / "big.yaml").write_text(space.replace("base_dim: {choice: [24, 36]}", "base_dim: 1000000000"))
    assert "base_dim: 1000000000 is not allowed; expected an integer in [1, 16384]" in cli_error(
        capsys, "space", str(tmp_path / "big.yaml")
    )


def test_a_checkpoint_whose_genotype_has_a_huge_width_is_refused(tmp_path, capsys):
    from snn_nas.training import TrainConfig, train_model

    config = TrainConfig(dataset=DATASET, epochs=1, batch_size=16, image_size=8, max_batches_per_epoch=1)
    train_model(TINY, config, out_dir=tmp_path, progress=False)
    path = tmp_path / "last.pt"
    state = torch.load(path, weights_only=True)
    state["genotype"]["stages"][0]["dim"] = 10**9
    torch.save(state, path)
    with pytest.raises(SnnNasError, match="out of range"):
        load_model(path)
    assert "out of range" in cli_error(capsys, "profile", str(path))


@pytest.mark.parametrize("seed", ["-1", "1180591620717411303424"])
def test_seeds_out_of_range(seed, capsys, results_dir, tmp_path):
    arch = tmp_path / "tiny.json"
    arch.write_text(TINY.to_json())
    assert "seed" in cli_error(capsys, "train", str(arch), "--dataset", DATASET, "--seed", seed)
    assert "--seed" in cli_error(capsys, "space", "quick", "--sample", "1", "--seed", seed)
    assert "seed" in cli_error(capsys, "retrain", str(results_dir), "--seed", seed, "--epochs", "1")


# ----------------------------------------------------------------------------- damaged results folders
def test_random_bytes_as_the_experiment_file(results_dir, capsys):
    (results_dir / "experiment.yaml").write_bytes(bytes(range(256)) * 4)
    for command in ("pareto", "retrain"):
        line = cli_error(capsys, command, str(results_dir))
        assert "experiment.yaml" in line and "UTF-8" in line


@pytest.mark.parametrize(("column", "value"), [("sops", -5.0), ("energy_uj", -1.0), ("params", -3), ("sops", "inf")])
def test_negative_or_infinite_costs_are_refused_like_bad_accuracies(tmp_path, capsys, column, value):
    """A negative SOP count was front rank 0 with a hypervolume above the maximum."""
    import pandas as pd

    from snn_nas.search.results import rows_to_frame

    folder = tmp_path / "search"
    folder.mkdir()
    frame = rows_to_frame([good_row()])
    frame[column] = pd.Series([float(value)], dtype=frame[column].dtype if column != "params" else "Int64")
    frame.to_parquet(folder / "trials.parquet")
    with pytest.raises(ResultsError, match=f"{column}: .* is not a cost"):
        load_results(folder)
    for command in ("pareto", "retrain", "audit"):
        assert "is not a cost" in cli_error(capsys, command, str(folder))


def test_a_journal_line_with_a_non_numeric_cost_does_not_replace_a_good_row(results_dir, caplog):
    with (results_dir / "trials.jsonl").open("a") as handle:
        handle.write(json.dumps(good_row(sops="abc")) + "\n")
    with caplog.at_level(logging.WARNING):
        table = load_results(results_dir)
    assert table.iloc[0]["sops"] == 10.0 and len(table) == 1
    assert "line 2: sops: 'abc' is not a number; skipped" in caplog.text


def test_a_duplicate_trial_id_keeps_the_row_written_first(results_dir, caplog, capsys):
    """An appended row of a trial already recorded (an injected 97 %) must not replace its real
    result: not in the journal, not in the table, not on the front."""
    import pandas as pd

    with (results_dir / "trials.jsonl").open("a") as handle:
        handle.write(json.dumps(good_row(val_acc=0.97)) + "\n")
    for journal_only in (True, False):
        if not journal_only:  # the same in the table: two rows of t0, the injected one last
            table = load_results(results_dir)
            pd.concat([table, table.assign(val_acc=0.97)]).to_parquet(results_dir / "trials.parquet")
            (results_dir / "trials.jsonl").unlink()
        with caplog.at_level(logging.WARNING):
            table = load_results(results_dir)
        assert len(table) == 1 and table.iloc[0]["val_acc"] == 0.5
        assert "trial_id t0 is in 2 " in caplog.text and "only the first one, written first, is used" in caplog.text
        caplog.clear()
        assert main(["pareto", str(results_dir), "--json"]) == 0
        assert [row["val_acc"] for row in json.loads(capsys.readouterr().out)["front"]] == [0.5]


def test_retrain_key_with_bytes_that_are_not_utf8(results_dir, capsys):
    key = b"\xff\xfe".decode("utf-8", "surrogateescape")  # what Python makes of such argv bytes
    assert "--key: expected an architecture key" in cli_error(capsys, "retrain", str(results_dir), "--key", key)


def _retrain_row(folder: Path, **values) -> Path:
    from snn_nas.training import TrainConfig

    config = TrainConfig(dataset=DATASET, epochs=1, batch_size=16, image_size=8, max_batches_per_epoch=1)
    ResultStore(folder).record(good_row(**{"fidelity": config.to_json(), "params": 100, **values}))
    return folder


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"key": "0123456789ab"}, f"its stored genotype has key {TINY.key()}, not the row's key 0123456789ab"),
        ({"genotype": '{"stages": ['}, "genotype: genotype JSON is malformed"),
        ({"fidelity": '{"epochs": -3}'}, "fidelity: epochs: expected an integer >= 1, got -3"),
    ],
    ids=["key mismatch", "malformed genotype", "bad epochs"],
)
def test_a_damaged_row_is_refused_by_retrain_naming_the_table_and_the_trial(tmp_path, capsys, values, message):
    folder = _retrain_row(tmp_path / "search", **values)
    key = values.get("key", TINY.key())
    line = cli_error(capsys, "retrain", str(folder), "--key", key, "--device", "cpu", "--no-progress")
    assert f"{folder / 'trials.parquet'}: trial t0" in line and message in line, line
    assert not (folder / "retrain").exists()


def test_retrain_by_key_of_an_architecture_that_breaks_the_constraints_says_so(tmp_path, capsys):
    folder = _retrain_row(tmp_path / "search")
    (folder / "experiment.yaml").write_text(yaml.safe_dump({"dataset": DATASET, "constraints": {"max_params": 50}}))
    argv = [
        "retrain",
        str(folder),
        "--key",
        TINY.key(),
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--no-progress",
        "--no-export",
    ]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert f"warning: {TINY.key()}: it breaks the search's constraints (max_params: 100 > 50)" in err
    report = json.loads((folder / "retrain" / TINY.key() / "report.json").read_text())
    assert "max_params: 100 > 50" in report["source"]["why"]


def test_a_front_emptied_by_nan_values_says_they_are_nan(tmp_path, capsys):
    store = ResultStore(tmp_path / "search")
    for number in range(3):
        store.record(good_row(f"t{number}", val_acc=float("nan")))
    store.record(good_row("t3", sops=float("nan")))
    line = cli_error(capsys, "retrain", str(tmp_path / "search"), "--device", "cpu")
    assert "3 ok trials have a NaN val_acc, 1 ok trial has a NaN sops" in line and "no trial has finished" not in line


def test_settings_that_would_do_nothing_useful_are_refused(tmp_path, capsys):
    """space --sample beyond its bound; a table path that is a folder (a resume would say "no
    trial yet" and write nothing there); an audit at an image size no architecture runs at."""
    from dataclasses import replace

    from snn_nas.training import TrainConfig

    assert "--sample: 100000000 is out of range" in cli_error(capsys, "space", "quick", "--sample", "100000000")
    _, directory, _ = _prepared(tmp_path)
    (directory / "trials.parquet").mkdir()
    line = cli_error(capsys, *_resume(directory))
    assert f"{directory / 'trials.parquet'}: is a folder, not the search's trials.parquet" in line
    folder = tmp_path / "search"
    config = TrainConfig(dataset=DATASET, epochs=1, batch_size=16, image_size=8).to_json()
    store = ResultStore(folder)
    for number, dim in enumerate((8, 12, 16, 20)):
        genotype = replace(TINY, stages=(Stage(depth=1, dim=dim),))
        store.record(good_row(f"t{number}", key=genotype.key(), genotype=genotype.to_json(), fidelity=config,
                              sops=10.0 * (number + 1), val_acc=0.4 + 0.1 * number))  # fmt: skip
    line = cli_error(capsys, "audit", str(folder), "--image-size", "1", "--sample", "3", "--epochs", "1")
    assert "--image-size 1: 4 of the 4 architectures to audit cannot run at 1 px" in line, line  # at least 3 + front
    assert not (folder / "audit").exists()


def test_out_under_a_file_is_found_before_training(tmp_path, capsys):
    (tmp_path / "afile").write_text("")
    arch = tmp_path / "tiny.json"
    arch.write_text(TINY.to_json())
    line = cli_error(capsys, "train", str(arch), "--dataset", DATASET, "--out", str(tmp_path / "afile" / "run"))
    assert "which is a file, not a folder" in line
    assert not (tmp_path / "afile").is_dir()


def test_a_pt_of_random_bytes_is_not_called_a_pickle_that_could_run_code(tmp_path, capsys):
    path = tmp_path / "random.pt"
    path.write_bytes(os.urandom(2048))
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint") as info:
        load_model(path)
    assert "could run code" not in str(info.value)
    assert "not a PyTorch checkpoint" in cli_error(capsys, "profile", str(path))


# ----------------------------------------------------------------------------- searches
def _prepared(tmp_path: Path, name: str = "exp", **overrides):
    from snn_nas.search.experiment import load_experiment
    from snn_nas.search.layout import prepare_directory, search_directory
    from snn_nas.space import load_space

    (tmp_path / "space.yaml").write_text(SPACE)
    data = {"name": name, "space": "space.yaml", "dataset": DATASET, "trials": 2, "seed": 1,
            "fidelity": {"epochs": 1, "batch_size": 16, "image_size": 8}, **overrides}  # fmt: skip
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(data))
    experiment = load_experiment(tmp_path / f"{name}.yaml")
    directory = search_directory(tmp_path / "results", name)
    space = load_space(experiment.space)
    prepare_directory(experiment, directory, resume=False, space=space)
    return experiment, directory, space


def _resume(directory: Path) -> list[str]:
    return ["search", "--resume", "--name", directory.name, "--results-dir", str(directory.parent), "--no-progress"]


def test_a_damaged_samplers_study_on_resume_is_one_line_before_ray(tmp_path, capsys):
    from snn_nas.search.layout import SAMPLER_STUDY_FILE

    _, directory, _ = _prepared(tmp_path)
    (directory / SAMPLER_STUDY_FILE).write_bytes(b"SQLite format 3\x00" + os.urandom(4000))
    line = cli_error(capsys, *_resume(directory))
    assert "the samplers' study of this search cannot be read" in line and "move the file away" in line


def test_random_bytes_in_the_users_study_on_resume_are_one_line_before_ray(tmp_path, capsys):
    from snn_nas.search.layout import STUDY_FILE

    _, directory, _ = _prepared(tmp_path)
    (directory / STUDY_FILE).write_bytes(os.urandom(20000))
    line = cli_error(capsys, *_resume(directory))
    assert str(directory / STUDY_FILE) in line and "cannot be read" in line and "rebuilt from the table" in line


def test_resume_without_its_fingerprint_after_the_space_was_edited_is_refused(tmp_path, capsys):
    from snn_nas.search.layout import FINGERPRINT_FILE

    experiment, directory, space = _prepared(tmp_path)
    genotype = space.decode(space.sample(0))
    config = experiment.train_config()
    row = {"trial_id": "t0", "status": "ok", "key": genotype.key(), "genotype": genotype.to_json()}
    ResultStore(directory).record({**row, "val_acc": 0.5, "sops": 1.0, "fidelity": config.to_json()})
    (directory / FINGERPRINT_FILE).unlink()
    text = (tmp_path / "space.yaml").read_text().replace("stage1: {dim: 8,", "stage1: {dim: 12,")
    (tmp_path / "space.yaml").write_text(text)
    line = cli_error(capsys, *_resume(directory))
    assert f"without {FINGERPRINT_FILE}" in line and "space" in line and "is not in it" in line


def test_a_search_started_without_baselines_resumes_without_them(tmp_path):
    from snn_nas.search.layout import ran_without_baselines

    _, directory, _ = _prepared(tmp_path)
    assert not ran_without_baselines(directory)  # nothing ran yet: the baselines come first
    ResultStore(directory).record({"trial_id": "t0", "status": "ok", "key": "k", "val_acc": 0.5, "sops": 1.0})
    assert ran_without_baselines(directory)  # search rows and no baseline run: started with --no-baselines
    (directory / "ray" / "baselines").mkdir(parents=True)
    assert not ran_without_baselines(directory)


def test_warm_start_presets_outside_the_space_are_refused_like_anchors(tmp_path, capsys):
    """One rule for the settings that name members of the space (warm_start, the supernet's
    anchors): a non-member, or an unknown name, is one line naming the setting and the file,
    before Ray and before the results folder."""
    cases = [
        ({"warm_start": ["mlp_spe_micro"]}, "warm_start: 'mlp_spe_micro' is not a member of space 'small'"),
        ({"warm_start": ["snn_mlp_micro"]}, "warm_start: 'snn_mlp_micro' is not a member of space 'small' (family"),
        ({"warm_start": ["no_such_preset"]}, "warm_start: unknown preset 'no_such_preset'"),
        ({"baselines": ["no_such_preset"]}, "baselines: unknown preset 'no_such_preset'"),
        ({"oneshot": {"supernet": {"anchors": ["mlp_spe_micro"]}}}, "oneshot.supernet.anchors: 'mlp_spe_micro' is"),
    ]
    for number, (overrides, message) in enumerate(cases):
        (tmp_path / "space.yaml").write_text(SPACE)
        path = tmp_path / f"w{number}.yaml"
        data = {"name": f"w{number}", "space": "space.yaml", "dataset": DATASET, "trials": 2, **overrides}
        path.write_text(yaml.safe_dump(data))
        line = cli_error(capsys, "search", str(path), "--results-dir", str(tmp_path / "r"))
        assert f"{path}: {message}" in line, line
        assert not (tmp_path / "r").exists()


# ----------------------------------------------------------------------------- data and the Python API
def _image_folder(root: Path) -> None:
    from PIL import Image

    for part in ("train", "val"):
        for label in ("a", "b"):
            folder = root / part / label
            folder.mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(folder / f"{i}.png")


def test_a_file_that_is_not_an_image_fails_before_any_training_in_one_line(tmp_path, capsys):
    from snn_nas.data import DatasetError, load_dataset

    _image_folder(tmp_path / "data")
    broken = tmp_path / "data" / "train" / "a" / "broken.png"
    broken.write_bytes(b"not an image at all")
    (tmp_path / "data" / "train" / "b" / "notes.txt").write_text("not listed by ImageFolder: not checked")
    with pytest.raises(DatasetError, match=rf"{broken}: not an image file"):
        load_dataset("imagefolder", data_root=str(tmp_path / "data"), image_size=8, val_fraction=0.3)
    (tmp_path / "space.yaml").write_text(SPACE)
    fidelity = {"epochs": 1, "batch_size": 4, "image_size": 8}
    experiment = {"name": "img", "space": "space.yaml", "dataset": "imagefolder", "trials": 2, "baselines": [],
                  "data_root": str(tmp_path / "data"), "fidelity": fidelity}  # fmt: skip
    (tmp_path / "img.yaml").write_text(yaml.safe_dump(experiment))
    line = cli_error(capsys, "search", str(tmp_path / "img.yaml"), "--results-dir", str(tmp_path / "r"))
    assert f"{broken}: not an image file" in line and not (tmp_path / "r").exists()  # before Ray and the folder


def test_an_image_damaged_past_its_header_is_one_line_from_a_dataloader_worker(tmp_path):
    """A PNG cut short keeps a valid header, so it fails where a DataLoader worker reads it: torch
    re-raises it with the worker's traceback as the message; the CLI and the table keep the error."""
    from torch.utils.data import DataLoader

    from snn_nas.data import load_dataset
    from snn_nas.errors import worker_message
    from snn_nas.search.trial import _reason

    _image_folder(tmp_path)
    whole = (tmp_path / "train" / "a" / "0.png").read_bytes()
    for name in ("0.png", "1.png", "2.png"):
        (tmp_path / "train" / "a" / name).write_bytes(whole[:40])
    data = load_dataset("imagefolder", data_root=str(tmp_path), image_size=8, val_fraction=0.3)
    with pytest.raises(SnnNasError) as caught:
        for _ in DataLoader(data.trainval, batch_size=2, num_workers=1):
            pass
    assert "Traceback" in str(caught.value)  # what torch raises: the worker's whole traceback
    line = worker_message(str(caught.value))
    assert line.startswith("imagefolder: ") and "train/a/" in line and "not a readable image" in line, line
    assert "\n" not in line and _reason(caught.value) == f"DatasetError: {line}"


def test_nan_images_are_refused_by_the_cost_probe():
    from snn_nas.builder import build_model
    from snn_nas.costs import CostError, measure_costs

    model = build_model(TINY, num_classes=4, image_size=8, in_chans=1)
    images = torch.zeros(2, 1, 8, 8)
    images[0, 0, 0, 0] = float("nan")
    with pytest.raises(CostError, match="1 value\\(s\\) are NaN or infinite"):
        measure_costs(model, images)
    with pytest.raises(CostError, match=r"model: expected a torch\.nn\.Module"):
        measure_costs(None, torch.zeros(2, 1, 8, 8))


@pytest.mark.parametrize(
    "call",
    [
        lambda: __import__("snn_nas").load_space(None),
        lambda: Genotype.from_json(None),
        lambda: __import__("snn_nas").load_results(None),
        lambda: __import__("snn_nas").load_model(None),
    ],
)
def test_the_python_api_on_none_raises_project_errors(call):
    with pytest.raises(SnnNasError, match="expected"):
        call()
