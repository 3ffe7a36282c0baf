"""Experiment files: schema, defaults, validation errors, the bundled experiments."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from snn_nas.errors import SnnNasError
from snn_nas.search.experiment import (
    DEFAULT_BASELINES,
    Experiment,
    ExperimentError,
    Objective,
    find_experiment,
    load_experiment,
)

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, data: object, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False) if not isinstance(data, str) else data)
    return path


def test_minimal_file_gets_the_documented_defaults(tmp_path):
    exp = load_experiment(write(tmp_path, {"space": "quick"}, "mini.yaml"))
    assert exp.name == "mini"  # the file's stem
    assert exp.dataset == "mnist5k" and exp.data_root is None
    assert exp.trials == 16 and exp.sampler == "tpe" and exp.seed == 0
    assert exp.objectives == (Objective("val_acc", "max"), Objective("sops", "min"))
    assert exp.metrics == ["val_acc", "sops"] and exp.modes == ["max", "min"]
    assert exp.scheduler.kind == "none" and exp.constraints == ()
    assert (exp.resources.cpus, exp.resources.gpus) == (1.0, 0.0)
    assert exp.max_concurrent == 2 and exp.max_failures == 1
    assert exp.baselines == DEFAULT_BASELINES


def test_full_file_is_read_and_fidelity_becomes_a_train_config(tmp_path):
    data = {
        "name": "full",
        "space": "quick",
        "dataset": "synthetic:train=32,val=16",
        "data_root": "/data",
        "fidelity": {"epochs": 3, "image_size": 16, "subset": 0.5, "max_batches_per_epoch": 2},
        "trials": 7,
        "sampler": "nsga2",
        "sampler_options": {"population_size": 4},
        "objectives": {"val_acc": "max", "energy_uj": "min", "params": "min"},
        "constraints": {"max_params": 1000, "max_sops": 2.5e6, "max_macs": None},
        "scheduler": {"type": "asha", "grace_period": 2, "reduction_factor": 3},
        "resources": {"cpus": 2, "gpus": 0.25},
        "max_concurrent": 4,
        "max_failures": 0,
        "seed": 5,
        "costs": {"calibration_images": 8, "energy_per_sop_pj": 1.0},
        "baselines": ["mlp_spe_micro"],
        "reference_point": {"val_acc": 0.0, "energy_uj": 10.0},
    }
    exp = load_experiment(write(tmp_path, data))
    assert exp.metrics == ["val_acc", "energy_uj", "params"] and exp.modes == ["max", "min", "min"]
    assert exp.constraints == (("params", 1000.0), ("sops", 2.5e6))  # null bounds dropped, sorted
    assert exp.scheduler.kind == "asha" and exp.scheduler.grace_period == 2 and exp.scheduler.reduction_factor == 3.0
    assert exp.resources.gpus == 0.25 and exp.costs.calibration_images == 8 and exp.costs.energy_per_mac_pj == 4.6
    assert dict(exp.sampler_options) == {"population_size": 4}
    config = exp.train_config()
    # dataset, data root and seed come from the top level, the rest from fidelity
    assert (config.dataset, config.data_root, config.seed) == ("synthetic:train=32,val=16", "/data", 5)
    assert (config.epochs, config.image_size, config.subset, config.max_batches_per_epoch) == (3, 16, 0.5, 2)


def test_round_trip_through_to_dict(tmp_path):
    exp = load_experiment(REPO / "experiments" / "quick.yaml")
    again = Experiment.from_dict(yaml.safe_load(exp.to_yaml()), source="again")
    assert replace(again, source=exp.source) == exp  # equal up to the label naming the source
    assert again.to_dict() == exp.to_dict()


def test_space_path_is_resolved_relative_to_the_file(tmp_path):
    (tmp_path / "spaces").mkdir()
    space = tmp_path / "spaces" / "mine.yaml"
    space.write_text("name: mine\n")
    exp = load_experiment(write(tmp_path, {"space": "spaces/mine.yaml"}))
    assert exp.space == str(space.resolve())
    # a name that is no file stays a name, for load_space to find among the shipped spaces
    assert load_experiment(write(tmp_path, {"space": "quick"}, "b.yaml")).space == "quick"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "space: expected a search-space file"),
        ({"space": "quick", "samplr": "tpe"}, "unknown key(s) ['samplr']"),
        (
            {"space": "quick", "sampler": "cmaes"},
            "sampler: 'cmaes' is not allowed; choose one of ['tpe', 'nsga2', 'gp', 'random']",
        ),
        ({"space": "quick", "trials": 0}, "trials: expected an integer >= 1, got 0"),
        ({"space": "quick", "objectives": {"accuracy": "max"}}, "objectives: 'accuracy' is not allowed"),
        (
            {"space": "quick", "objectives": {"sops": "down"}},
            "objectives.sops: 'down' is not allowed; choose one of ['max', 'min']",
        ),
        ({"space": "quick", "constraints": {"max_flops": 3}}, "constraints: unknown key(s) ['max_flops']"),
        ({"space": "quick", "constraints": {"max_sops": -1}}, "constraints.max_sops: expected a number > 0"),
        (
            {"space": "quick", "scheduler": "hyperband"},
            "scheduler: 'hyperband' is not allowed; choose one of ['none', 'asha', 'moasha']",
        ),
        (
            {"space": "quick", "scheduler": {"type": "asha", "grace_period": 9}},
            "grace_period: 9 exceeds fidelity.epochs (5)",
        ),
        ({"space": "quick", "scheduler": "asha", "objectives": {"sops": "min"}}, "add 'val_acc: max' to objectives"),
        ({"space": "quick", "resources": {"cpus": 0}}, "resources.cpus: expected a number > 0"),
        ({"space": "quick", "resources": {"tpus": 1}}, "resources: unknown key(s) ['tpus']"),
        ({"space": "quick", "fidelity": {"seed": 3}}, "fidelity: ['seed'] belong at the top level"),
        ({"space": "quick", "fidelity": {"epoch": 3}}, "fidelity: training config: unknown field(s) ['epoch']"),
        ({"space": "quick", "fidelity": {"optimizer": "lion"}}, "fidelity: optimizer: 'lion' is not allowed"),
        (
            {"space": "quick", "fidelity": {"lr": 1.0e9}},
            "lr: 1000000000.0 is out of range; must be a finite number in (0, 10]",
        ),
        ({"space": "quick", "sampler_options": {"seed": 1}}, "'seed' and 'constraints_func' are set by snn-nas"),
        ({"space": "quick", "name": "a/b"}, "name: 'a/b' is not a valid name"),
        ({"space": "quick", "baselines": "mlp_spe_micro"}, "baselines: expected a list of preset names"),
        ({"space": "quick", "reference_point": {"sops": "2.0e6"}}, "write 2.0e+6, not 2.0e6"),
    ],
)
def test_bad_files_raise_errors_naming_file_key_and_allowed_values(tmp_path, data, message):
    path = write(tmp_path, data)
    with pytest.raises(ExperimentError) as info:
        load_experiment(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)
    assert isinstance(info.value, SnnNasError) and isinstance(info.value, ValueError)


def test_not_a_mapping_and_bad_yaml(tmp_path):
    with pytest.raises(ExperimentError, match="expected a mapping of settings"):
        load_experiment(write(tmp_path, "- a\n- b\n"))
    with pytest.raises(ExperimentError, match="not valid YAML"):
        load_experiment(write(tmp_path, "space: [unclosed\n", "bad.yaml"))


def test_find_experiment_by_name_and_unknown_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the bundled files are found from anywhere
    assert find_experiment("quick") == (REPO / "experiments" / "quick.yaml").resolve()
    assert find_experiment("cifar10.yaml") == (REPO / "experiments" / "cifar10.yaml").resolve()
    with pytest.raises(ExperimentError) as info:
        find_experiment("nope")
    assert "bundled experiments: cifar10, events, imagenet, oneshot, quick" in str(info.value)


def test_overrides_are_validated():
    exp = load_experiment("quick")
    changed = exp.with_overrides(name="try-1", trials=3)
    assert (changed.name, changed.trials) == ("try-1", 3) and changed.space == exp.space
    assert exp.with_overrides() == exp
    with pytest.raises(ExperimentError, match="--num-samples: expected an integer >= 1"):
        exp.with_overrides(trials=0)
    with pytest.raises(ExperimentError, match="not a valid name"):
        exp.with_overrides(name="../x")


@pytest.mark.parametrize("name", ["quick", "cifar10", "imagenet"])
def test_bundled_experiments_are_valid_and_their_spaces_load(name):
    from snn_nas.space import load_space

    exp = load_experiment(name)
    assert exp.name == name
    space = load_space(exp.space)
    assert space.size() > 1
    assert exp.train_config().image_size in (None, space.image_size)  # trained at the space's image size
    assert "val_acc" in exp.metrics
    if name == "quick":
        assert exp.dataset == "mnist5k" and exp.resources.gpus == 0 and space.name == "quick"
    else:
        assert exp.resources.gpus > 0 and exp.data_root  # GPU cluster experiments on data on disk
