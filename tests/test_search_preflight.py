"""Checks before Ray starts (issue 10, family 8): what would fail every trial is an error of one
line before anything runs; a search whose every trial failed exits non-zero."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import yaml

from snn_nas.cli.main import main
from snn_nas.errors import SnnNasError
from snn_nas.search.experiment import ExperimentError, load_experiment
from snn_nas.search.layout import SearchRun
from snn_nas.search.preflight import check_before_ray, fits_at, smallest_fitting_size
from snn_nas.space import load_space

SPACE = """\
name: tiny
image_size: 8
family: spiking
time_steps: 1
patch_size: {choice: [2, 4]}
mlp_ratio: 2
num_stages: {choice: [1, 2]}
stage_defaults:
  depth: 1
  dim: 8
  token_h: {op: mlp}
  token_w: {op: mlp}
"""
DATASET = "synthetic:train=32,val=16,classes=4,channels=1"
FIDELITY = {"epochs": 1, "batch_size": 16, "image_size": 8, "max_batches_per_epoch": 1}


def write_experiment(folder: Path, name: str = "exp", **overrides) -> Path:
    (folder / "space.yaml").write_text(SPACE)
    data = {"name": name, "space": "space.yaml", "dataset": DATASET, "fidelity": FIDELITY, "trials": 2, **overrides}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def one_line_error(capsys, argv: list[str], code: int = 2) -> str:
    assert main(argv) == code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("snn-nas search: error: ") and "Traceback" not in err, err
    return lines[0]


BAD = [
    ({"dataset": "no_such_data"}, r"dataset 'no_such_data': unknown dataset 'no_such_data'; valid names: .*synthetic"),
    ({"dataset": "synthetic:colour=1"}, r"unknown option\(s\) \['colour'\]"),
    ({"dataset": "cifar10"}, r"dataset 'cifar10': cifar10: needs --data-root"),
    ({"dataset": "cifar10", "data_root": "/no/such/folder"}, r"\(data_root /no/such/folder\): .*not found"),
    ({"dataset": "imagefolder", "data_root": "/no/such/folder"}, r"/no/such/folder/train is not a folder"),
    ({"fidelity": {**FIDELITY, "image_size": 1}}, r"fidelity\.image_size: trials train at 1 px, and no architecture"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD)
def test_what_would_fail_every_trial_fails_before_ray_starts(tmp_path, capsys, overrides, message):
    path = write_experiment(tmp_path, **overrides)
    experiment = load_experiment(path)
    with pytest.raises(ExperimentError, match=message) as info:
        check_before_ray(experiment, load_space(experiment.space))
    assert isinstance(info.value, SnnNasError) and str(path) in str(info.value)
    results = tmp_path / "results"
    line = one_line_error(capsys, ["search", str(path), "--results-dir", str(results), "--no-progress"])
    assert str(path) in line and not results.exists()  # nothing was started, nothing written

    import ray

    assert not ray.is_initialized()


def test_image_size_criterion_is_exact_for_the_space_rules():
    space = load_space_text(SPACE)
    assert fits_at(space, 8) and fits_at(space, 64)  # at or above the space's own size: every sample
    assert fits_at(space, 2) and not fits_at(space, 1)  # patch 2 runs on 2 px, nothing on 1 px
    assert smallest_fitting_size(space, 1) == 2
    narrow = replace(space, all_dimensions=tuple(d if d.label != "patch_size" else replace(d, choices=(4,))
                                                 for d in space.all_dimensions))  # fmt: skip
    assert not fits_at(narrow, 3) and smallest_fitting_size(narrow, 3) == 4


def test_a_patch_size_too_large_for_the_training_size_is_a_warning(tmp_path, caplog):
    experiment = load_experiment(write_experiment(tmp_path, fidelity={**FIDELITY, "image_size": 3}))
    with caplog.at_level(logging.WARNING, logger="snn_nas.search.preflight"):
        check_before_ray(experiment, load_space(experiment.space))
    (message,) = [r.getMessage() for r in caplog.records]
    assert "fidelity.image_size: trials train at 3 px, where patch_size 4 cannot run" in message


def test_a_ray_client_address_skips_the_data_files_but_not_the_name(tmp_path):
    experiment = load_experiment(write_experiment(tmp_path, dataset="cifar10", data_root="/on/the/cluster"))
    check_before_ray(experiment, load_space(experiment.space), address="ray://head:10001")
    unknown = load_experiment(write_experiment(tmp_path, dataset="no_such_data"))
    with pytest.raises(ExperimentError, match="unknown dataset"):
        check_before_ray(unknown, load_space(unknown.space), address="ray://head:10001")


def test_none_ran_counts_search_rows_that_never_trained(tmp_path):
    rows = [
        {"trial_id": "t0", "status": "invalid", "baseline": "", "error": "image_size: 3 is smaller than patch_size 4"},
        {"trial_id": "t1", "status": "failed", "baseline": "", "error": "RuntimeError: boom"},
        {"trial_id": "b", "status": "ok", "baseline": "mlp_spe_micro", "error": None},  # baselines do not count
    ]
    assert SearchRun(directory=tmp_path, table=pd.DataFrame(rows), complete=True, wall_s=1.0).none_ran
    rows[1]["status"] = "ok"
    assert not SearchRun(directory=tmp_path, table=pd.DataFrame(rows), complete=True, wall_s=1.0).none_ran


def test_a_search_where_no_trial_could_train_exits_1(tmp_path, capsys, monkeypatch):
    """A real search (Ray, Optuna) whose every trial is ruled out before training: exit 1 and one
    line with the most common reason."""
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    path = write_experiment(tmp_path, constraints={"max_params": 1})
    argv = ["search", str(path), "--results-dir", str(tmp_path / "results"), "--no-baselines", "--num-cpus", "2",
            "--no-progress"]  # fmt: skip
    line = one_line_error(capsys, argv, code=1)
    assert "no trial could train: all 2 trials failed or were invalid" in line
    assert "exceed constraints.max_params (1); not trained" in line


def load_space_text(text: str):
    from snn_nas.space import SearchSpace

    return SearchSpace.from_dict(yaml.safe_load(text), source="tiny")


def test_an_unknown_warm_start_preset_fails_before_ray(tmp_path, capsys):
    path = write_experiment(tmp_path, warm_start=["no_such_preset"])
    line = one_line_error(capsys, ["search", str(path), "--results-dir", str(tmp_path / "r"), "--no-baselines"])
    assert "unknown preset 'no_such_preset'" in line and not (tmp_path / "r").exists()
