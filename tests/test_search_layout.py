"""The search folder: the fingerprint of the space and the fidelity, and what ``--resume`` refuses
(issue 10, family 5); repairing a damaged journal on resume (family 4); the outcome of a run.
No Ray: every refusal happens before Ray starts."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest
import yaml

from snn_nas.cli.main import main
from snn_nas.errors import SnnNasError
from snn_nas.search import fingerprint as fp
from snn_nas.search.experiment import load_experiment
from snn_nas.search.layout import FINGERPRINT_FILE, SearchError, SearchRun, prepare_directory, search_directory
from snn_nas.search.results import JOURNAL_FILE, ResultStore, load_results
from snn_nas.space import load_space

SPACE = """\
name: tiny
image_size: 8
family: spiking
time_steps: {choice: [1, 2]}
patch_size: {choice: [2, 4]}
mlp_ratio: 2
num_stages: 1
base_dim: {choice: [6, 12]}
stage_defaults:
  depth: 1
  token_h: {op: {choice: [mlp, none]}}
  token_w: {op: mlp}
stage1: {width_mult: 1}
"""
FIDELITY = {"epochs": 2, "batch_size": 16, "image_size": 8, "max_batches_per_epoch": 2}


def write_experiment(folder: Path, name: str = "exp", **overrides) -> Path:
    (folder / "space.yaml").write_text(SPACE)
    data = {
        "name": name,
        "space": "space.yaml",
        "dataset": "synthetic:train=32,val=16,classes=4,channels=1",
        "fidelity": FIDELITY,
        "trials": 2,
        "seed": 1,
        **overrides,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def started(tmp_path):
    """An interrupted search: its folder as ``prepare_directory`` left it, with one finished trial."""
    experiment = load_experiment(write_experiment(tmp_path))
    directory = search_directory(tmp_path / "results", experiment.name)
    prepare_directory(experiment, directory, resume=False)
    ResultStore(directory).record({"trial_id": "t0", "status": "ok", "key": "k0", "val_acc": 0.5, "sops": 1.0})
    return experiment, directory


def resume_cli(directory: Path, capsys, *extra: str) -> tuple[int, str]:
    rc = main(["search", *extra, "--resume", "--name", directory.name, "--results-dir", str(directory.parent)])
    return rc, capsys.readouterr().err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("snn-nas search: error: ") and "Traceback" not in err, err
    return lines[0]


# ---------------------------------------------------------------------- the fingerprint
def test_fingerprint_is_of_the_content_not_the_file(tmp_path):
    experiment = load_experiment(write_experiment(tmp_path))
    config = experiment.train_config()
    first = fp.fingerprint(load_space(experiment.space), config)
    assert set(first) == {"format", "space", "fidelity"} and len(first["space"]["sha256"]) == 64
    assert "num_workers" not in first["fidelity"]["content"] and "data_root" not in first["fidelity"]["content"]
    # comments, key order and a data_root on another machine change nothing
    (tmp_path / "space.yaml").write_text("# a comment\n" + "\n".join(reversed(SPACE.splitlines()[:7])) + "\n"
                                         + "\n".join(SPACE.splitlines()[7:]) + "\n")  # fmt: skip
    moved = fp.fingerprint(load_space(experiment.space), config.__class__(**{**config.to_dict(), "data_root": "/x"}))
    assert moved == first
    # a choice added: named, with the choices before and after
    (tmp_path / "space.yaml").write_text(SPACE.replace("{choice: [6, 12]}", "{choice: [6, 12, 24]}"))
    edited = fp.fingerprint(load_space(experiment.space), config)
    assert edited["space"]["sha256"] != first["space"]["sha256"]
    changes = fp.space_changes(first["space"]["content"], edited["space"]["content"])
    assert changes == ["base_dim choices [6, 12] -> [6, 12, 24]"]
    assert fp.fidelity_changes({"epochs": 2, "lr": 0.1}, {"epochs": 3}, {"lr": 0.1}) == ["epochs 2 -> 3"]


def test_a_new_search_stores_its_fingerprint(started):
    experiment, directory = started
    stored = json.loads((directory / FINGERPRINT_FILE).read_text())
    assert stored == fp.fingerprint(load_space(experiment.space), experiment.train_config())
    assert stored["format"] == fp.FORMAT and stored["fidelity"]["content"]["epochs"] == 2


# ---------------------------------------------------------------------- resuming what changed
def test_resume_refuses_an_edited_space_naming_what_changed(started, capsys):
    experiment, directory = started
    space_file = Path(experiment.space)
    space_file.write_text(SPACE.replace("patch_size: {choice: [2, 4]}", "patch_size: {choice: [2]}"))
    with pytest.raises(SearchError, match=r"search space .* changed since the search started \(patch_size choices"):
        prepare_directory(experiment, directory, resume=True)
    assert issubclass(SearchError, SnnNasError)
    rc, err = resume_cli(directory, capsys)
    assert rc == 2 and "patch_size choices [2, 4] -> [2]" in one_line(err)
    space_file.write_text(SPACE)  # undone: the resume is accepted again
    prepare_directory(experiment, directory, resume=True)


def test_resume_refuses_a_changed_fidelity_naming_the_fields(started, capsys):
    _, directory = started
    stored = directory / "experiment.yaml"  # the user edits the stored experiment
    data = yaml.safe_load(stored.read_text())
    data["fidelity"]["epochs"] = 3
    stored.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(SearchError, match=r"the fidelity changed since the search started \(epochs 2 -> 3\)"):
        prepare_directory(load_experiment(stored), directory, resume=True)
    rc, err = resume_cli(directory, capsys)
    assert rc == 2 and "epochs 2 -> 3" in one_line(err)
    # ... or passes an edited experiment file along with --resume: the same fields are named
    edited = write_experiment(directory.parent.parent, fidelity={**FIDELITY, "lr": 0.5})
    rc, err = resume_cli(directory, capsys, str(edited))
    line = one_line(err)
    assert rc == 2 and "fidelity (epochs 3 -> 2; lr " in line and " -> 0.5)" in line


def test_resume_accepts_a_moved_data_root_and_fingerprints_older_folders(started):
    experiment, directory = started
    (directory / FINGERPRINT_FILE).unlink()  # a search folder from before fingerprints
    prepare_directory(experiment, directory, resume=True)
    assert (directory / FINGERPRINT_FILE).is_file()
    moved = load_experiment(write_experiment(directory.parent.parent, data_root=str(directory.parent)))
    prepare_directory(moved, directory, resume=True)  # where the data lives may change
    (directory / FINGERPRINT_FILE).write_text("{not json")
    with pytest.raises(SearchError, match="unreadable fingerprint"):
        prepare_directory(experiment, directory, resume=True)


# ---------------------------------------------------------------------- a damaged journal on resume
def test_resume_rewrites_a_damaged_journal_once_and_keeps_the_original(started, caplog):
    experiment, directory = started
    store = ResultStore(directory)
    store.record({"trial_id": "t1", "status": "failed", "key": "k1", "error": "boom"})
    journal = directory / JOURNAL_FILE
    journal.write_text(journal.read_text().replace('"t0"', '"t0', 1))  # line 1 damaged (the table still has t0)
    with caplog.at_level(logging.WARNING):
        prepare_directory(experiment, directory, resume=True)
    messages = [r.getMessage() for r in caplog.records]
    assert any(f"{journal}: line 1: not valid JSON" in m for m in messages), messages
    assert any("continuing with the 2 trial(s) read" in m and ".damaged" in m for m in messages), messages
    assert (directory / f"{JOURNAL_FILE}.damaged").is_file()
    caplog.clear()
    assert list(load_results(directory)["trial_id"]) == ["t0", "t1"] and not caplog.records  # clean from now on


# ---------------------------------------------------------------------- the outcome
def test_none_ran_when_every_search_trial_failed_or_was_invalid(tmp_path):
    def outcome(*statuses: str, baseline: str = "ok") -> SearchRun:
        rows = [{"trial_id": f"t{i}", "status": s, "baseline": ""} for i, s in enumerate(statuses)]
        rows.append({"trial_id": "b", "status": baseline, "baseline": "mlp_spe_micro"})
        return SearchRun(directory=tmp_path, table=pd.DataFrame(rows), complete=True, wall_s=1.0)

    assert outcome("failed", "invalid").none_ran
    assert not outcome("failed", "ok").none_ran and not outcome("invalid", "diverged").none_ran
    assert not outcome().none_ran  # no search trial yet
