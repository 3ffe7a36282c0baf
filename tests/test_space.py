from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from space_samples import enumerate_samples

from snn_nas.genotype import AxisMixer, Cell, Genotype, Neuron, Stage
from snn_nas.space import SearchSpace, SpaceError, load_space, shipped_spaces
from snn_nas.space.loading import REPO_SPACES_DIR

SHIPPED = ("quick", "spiking_mlp", "snn_mlp")

# A space small enough to count by hand (see test_size_of_tiny_space_is_hand_counted).
TINY = {
    "name": "tiny",
    "image_size": 8,
    "time_steps": {"choice": [1, 2]},
    "patch_size": 4,  # token grid 2 x 2 in stage 1, 1 x 1 in stage 2
    "num_stages": {"choice": [1, 2]},
    "stage_defaults": {
        "depth": 1,
        "identity": {"choice": ["x", "none"]},
        "skip_source": {"choice": ["stage", "none"]},
        "skip_paths": {"choice": ["both", "token"]},
        "token_h": {"op": {"choice": ["mlp", "group_lif", "none"]}, "group": {"choice": [0, 2]}},
        "token_w": {"op": "none"},
    },
    "stage1": {"dim": 8},
    "stage2": {
        "dim": {"choice": [8, 9]},
        "cell": {
            "nodes": {"choice": [1, 2]},
            "in": {"choice": ["conv3x3", "none"]},
            "from": {"choice": ["none", "identity"]},
        },
    },
}


def tiny(**changes) -> SearchSpace:
    return SearchSpace.from_dict({**TINY, **changes}, source="tiny.yaml")


def write(tmp_path: Path, data, name: str = "space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


# ---------------------------------------------------------------- shipped files


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_spaces_load_by_name_and_path(name):
    by_name = load_space(name)
    by_path = load_space(REPO_SPACES_DIR / f"{name}.yaml")
    assert by_name == by_path
    assert by_name.name == name
    assert set(SHIPPED) <= set(shipped_spaces())
    assert isinstance(by_name.size(), int) and by_name.size() > 0
    labels = by_name.labels
    assert "num_stages" in by_name.by_label and "stage3.depth" in labels
    assert len(labels) == len(set(labels))
    for dim in by_name.dimensions:
        assert len(dim.choices) >= 2 and dim.condition_text


def test_spiking_space_lists_every_system_dimension():
    labels = set(load_space("spiking_mlp").labels)
    expected = {
        "time_steps",
        "num_stages",
        "patch_size",
        "mlp_ratio",
        "base_dim",
        "stage3.depth",
        "stage2.skip_source",
        "stage2.skip_paths",
        "stage2.identity",
        "stage2.token_h.op",
        "stage2.token_h.group",
        "stage2.token_w.scan",
        "stage2.token_w.output",
        "stage3.cell.nodes",
        "stage3.cell.node0.in",
        "stage3.cell.node3.in",
        "stage3.cell.node3.from2",
        "neuron.tau",
        "neuron.v_threshold",
        "neuron.surrogate",
        "neuron.alpha",
    }
    assert expected <= labels
    space = load_space("spiking_mlp")
    assert space.by_label["stage3.cell.node2.from0"].condition_text == "num_stages >= 3 and stage3.cell.nodes >= 3"
    assert space.by_label["stage2.token_h.group"].condition_text == (
        "num_stages >= 2 and stage2.token_h.op == group_lif"
    )
    assert "stage1.cell.nodes" not in space.by_label  # the stem encodes stage 1


def test_builtin_copies_match_the_repository_files():
    builtin = Path(__file__).resolve().parents[1] / "snn_nas" / "space" / "builtin"
    for path in sorted(REPO_SPACES_DIR.glob("*.yaml")):
        copy = builtin / path.name
        assert copy.is_file(), f"copy {path} to {copy} (package data for non-editable installs)"
        assert copy.read_text() == path.read_text(), f"{copy} is stale: cp {path} {copy}"


@pytest.mark.parametrize("name", SHIPPED)
def test_100_samples_decode_encode_and_are_members(name):
    space = load_space(name)
    rng = np.random.default_rng(123)
    keys = set()
    for _ in range(100):
        sample = space.sample(rng)
        assert list(sample) == space.active_labels(sample)
        genotype = space.decode(sample)
        genotype.check_image_size(space.image_size)
        assert Genotype.from_json(genotype.to_json()) == genotype
        assert genotype == genotype.canonical(space.image_size)  # decode returns canonical genotypes
        encoded = space.encode(genotype)
        assert space.decode(encoded) == genotype
        if space.decode(sample, canonical=False) == genotype:  # a canonical sample encodes to itself
            assert encoded == sample
        assert space.contains(genotype)
        keys.add(genotype.key())
    assert len(keys) > 90  # the spaces are huge: repeats are rare


def test_seeded_sampling_is_reproducible_and_seeds_differ():
    space = load_space("quick")
    assert space.sample(7) == space.sample(7)
    assert space.sample(np.random.default_rng(7)) == space.sample(7)
    assert len({json.dumps(space.sample(seed), sort_keys=True) for seed in range(10)}) == 10
    rng = np.random.default_rng(0)
    assert space.sample(rng) != space.sample(rng)  # a generator advances


def test_spiking_presets_are_members_of_the_full_space():
    from snn_nas.presets import get_preset

    space = load_space("spiking_mlp")
    spe = Cell(input_ops=("conv3x3",) * 3, node_ops=((), ("conv3x3",), ("identity", "conv3x3")))
    by_hand = Genotype(
        stages=tuple(
            Stage(depth=d, dim=78 * 2**i, encoder=None if i == 0 else spe) for i, d in enumerate((2, 8, 14, 2))
        ),
        time_steps=4,
        patch_size=4,
        mlp_ratio=3.0,
    )
    assert by_hand == get_preset("mlp_spe_t")
    sample = space.encode(by_hand)
    assert sample["base_dim"] == 78 and sample["stage3.depth"] == 14
    assert sample["stage2.cell.nodes"] == 3 and sample["stage2.cell.node2.from0"] == "identity"
    assert "stage2.cell.node3.in" not in sample  # inactive with 3 nodes
    assert "stage2.token_h.group" not in sample  # inactive with op mlp
    for name in ("mlp_spe_t", "mlp_spe_s", "mlp_s"):
        assert space.contains(get_preset(name)), name
        assert space.decode(space.encode(get_preset(name))) == get_preset(name)
    assert space.encode(get_preset("mlp_s"))["stage2.identity"] == "lif_bn"


def test_snn_mlp_presets_are_members_of_their_space_only():
    from snn_nas.presets import get_preset

    snn_mlp, spiking = load_space("snn_mlp"), load_space("spiking_mlp")
    for name in ("snn_mlp_t", "snn_mlp_s", "snn_mlp_b"):
        assert snn_mlp.contains(get_preset(name)), name
        assert not spiking.contains(get_preset(name))
    assert not snn_mlp.contains(get_preset("mlp_spe_t"))


def test_quick_space_widths_divide_every_node_count():
    space = load_space("quick")
    assert max(space.by_label["stage3.cell.nodes"].choices) <= 4
    for base in space.by_label["base_dim"].choices:
        for s in (1, 2, 3):
            for mult in space.by_label[f"stage{s}.width_mult"].choices:
                assert (base * mult) % 12 == 0  # 12 is divisible by 1, 2, 3 and 4 nodes


# ---------------------------------------------------------------- size


def test_size_of_tiny_space_is_hand_counted():
    # stage 1 (side 2): token_h has mlp | group_lif with group 0 or 2 | none = 4 ways, token_w 1,
    #   identity 2, minus the branchless none/none/none = 7; skips: stage x 2 paths + none = 3 -> 21
    # stage 2 (side 1): token_h mlp | group_lif(0) | none = 3 -> 3 * 2 - 1 = 5; skips 3;
    #   cells: 1 node: in conv3x3 (in none has no input) = 1; 2 nodes: 1 * (2 * 2 - 1) = 3;
    #   width 8 takes either (4), width 9 only 1 node (1) -> 5; stage 2 = 5 * 3 * 5 = 75
    # total: time_steps 2 x (one stage 21 + two stages 21 * 75) = 2 * 1596
    assert tiny().size() == 3192
    space = tiny(time_steps=1)  # brute force over every flat configuration (halved to stay fast)
    assert space.size() == 1596
    valid = 0
    for sample in enumerate_samples(space):
        try:
            space.decode(sample)
        except SpaceError:
            continue
        valid += 1
    assert valid == 1596


def test_size_counts_base_dim_times_multipliers():
    data = {
        "name": "widths",
        "image_size": 32,
        "num_stages": {"choice": [1, 2]},
        "base_dim": {"choice": [5, 6]},
        "stage_defaults": {"depth": 1},
        "stage1": {"dim": 6},
        "stage2": {"width_mult": {"choice": [1.5, 2]}, "cell": {"nodes": {"choice": [1, 3]}, "in": "conv3x3"}},
    }
    space = SearchSpace.from_dict(data)
    assert space.by_label["base_dim"].condition_text == "num_stages >= 2"  # only stage 2 multiplies it
    # one stage: 1 (base_dim inactive); two stages: base 5 gives widths 7.5 (not whole) and 10
    # (1 node only) -> 1, base 6 gives 9 and 12 (1 or 3 nodes each) -> 4
    assert space.size() == 1 + 5
    assert sum(1 for s in enumerate_samples(space) if _valid(space, s)) == 6
    assert space.sample(0, max_tries=200) is not None
    one_stage = space.decode({"num_stages": 1})
    assert space.encode(one_stage) == {"num_stages": 1}
    with pytest.raises(SpaceError, match=r"stage2.width_mult: base_dim 5 x 1.5 = 7.5 is not a whole number"):
        space.decode({"num_stages": 2, "base_dim": 5, "stage2.width_mult": 1.5, "stage2.cell.nodes": 1})


def _valid(space: SearchSpace, sample: dict) -> bool:
    try:
        space.decode(sample)
    except SpaceError:
        return False
    return True


# ---------------------------------------------------------------- conditions, suggest


def test_active_labels_follow_conditions():
    space = tiny()
    unconditional = ["time_steps", "num_stages", "stage1.identity", "stage1.skip_source", "stage1.token_h.op"]
    assert space.active_labels({}) == unconditional
    partial = {"num_stages": 2, "stage1.token_h.op": "group_lif", "stage2.skip_source": "none", "stage2.cell.nodes": 1}
    active = space.active_labels(partial)
    assert "stage1.token_h.group" in active and "stage2.token_h.group" not in active
    assert "stage2.skip_paths" not in active and "stage1.skip_paths" not in active  # stage1.skip_source unknown
    assert "stage2.cell.node0.in" in active and "stage2.cell.node1.in" not in active
    assert "stage2.depth" not in space.labels  # fixed by stage_defaults
    assert space.fixed["stage2.depth"] == 1


def test_decode_ignores_inactive_labels_and_canonicalises():
    space = tiny()
    base = {"time_steps": 1, "num_stages": 1, "stage1.identity": "x", "stage1.token_h.op": "mlp"}
    sample = {**base, "stage1.skip_source": "none", "stage1.token_h.group": 2, "stage1.skip_paths": "token"}
    genotype = space.decode(sample)
    assert genotype.stages[0].token_h == AxisMixer("mlp")
    assert genotype.stages[0].skip_paths == "both"
    assert space.encode(genotype) == {**base, "stage1.skip_source": "none"}


def test_suggest_with_optuna_fixed_trial_and_a_real_study():
    space = load_space("quick")
    sample = space.sample(3)
    assert space.suggest(optuna.trial.FixedTrial(sample)) == sample

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(15):
        trial = study.ask()
        drawn = space.suggest(trial)
        assert set(trial.params) == set(drawn) == set(space.active_labels(drawn))
        if _valid(space, drawn):
            genotype = space.decode(drawn)
            assert space.decode(space.encode(genotype)) == genotype
            study.tell(trial, 1.0)
        else:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
    assert len(study.trials) == 15


# ---------------------------------------------------------------- decode errors


@pytest.mark.parametrize(
    ("sample", "message"),
    [
        (
            {
                "stage1.token_h.op": "group_lif",
                "stage1.token_h.group": 2,
                "num_stages": 2,
                "stage2.token_h.op": "group_lif",
                "stage2.token_h.group": 2,
            },
            "stage2.token_h.group: 2 exceeds the 1 positions of stage 2",
        ),
        ({"num_stages": 2, "stage2.cell.node0.in": "none"}, r"stage2.cell.node0: node 0 has no input"),
        (
            {
                "num_stages": 2,
                "stage2.cell.nodes": 2,
                "stage2.cell.node1.in": "none",
                "stage2.cell.node1.from0": "none",
            },
            "stage2.cell.node1: node 1 has no input",
        ),
        (
            {
                "num_stages": 2,
                "stage2.dim": 9,
                "stage2.cell.nodes": 2,
                "stage2.cell.node1.in": "conv3x3",
                "stage2.cell.node1.from0": "none",
            },
            "stage2.cell.nodes: 2 nodes do not divide the stage width 9",
        ),
        ({"stage1.identity": "none", "stage1.token_h.op": "none"}, "stage1.identity: the token block has no branch"),
        ({"time_steps": 3}, r"time_steps: 3 is not allowed; choose one of \[1, 2\]"),
        ({"colour": "red"}, "unknown label 'colour'"),
        ({"num_stages": 2, "stage2.dim": None}, "stage2.dim: None is not allowed"),
    ],
)
def test_decode_rejects_invalid_samples_naming_the_label(sample, message):
    base = {
        "time_steps": 1,
        "num_stages": 1,
        "stage1.identity": "x",
        "stage1.skip_source": "none",
        "stage1.token_h.op": "mlp",
        "stage2.identity": "x",
        "stage2.skip_source": "none",
        "stage2.token_h.op": "mlp",
        "stage2.dim": 8,
        "stage2.cell.nodes": 1,
        "stage2.cell.node0.in": "conv3x3",
    }
    with pytest.raises(SpaceError, match=message):
        tiny().decode({**base, **sample})


def test_decode_reports_a_missing_active_label():
    with pytest.raises(SpaceError, match=r"stage1.token_h.group: missing from the sample \(active because"):
        tiny().decode(
            {
                "time_steps": 1,
                "num_stages": 1,
                "stage1.identity": "x",
                "stage1.skip_source": "none",
                "stage1.token_h.op": "group_lif",
            }
        )


def test_encode_names_the_label_a_genotype_breaks():
    space = load_space("spiking_mlp")
    from snn_nas.presets import get_preset

    g = get_preset("mlp_spe_t")
    deeper = Genotype(stages=(Stage(depth=5, dim=78), *g.stages[1:]), time_steps=4)
    with pytest.raises(SpaceError, match=r"stage1.depth: 5 is not one of \[1, 2, 3\]"):
        space.encode(deeper)
    odd = Genotype(stages=(Stage(depth=2, dim=51), Stage(depth=2, dim=102, encoder=g.stages[1].encoder)))
    with pytest.raises(SpaceError, match="base_dim: the widths"):
        space.encode(odd)
    assert not space.contains(Genotype(stages=g.stages, neuron=Neuron(tau=3.0)))
    assert not load_space("quick").contains(g)  # 224-px model: widths and depths outside quick


# ---------------------------------------------------------------- malformed files


@pytest.mark.parametrize(
    ("change", "key", "message"),
    [
        ({"colour": 1}, "colour", "unknown key; allowed here"),
        ({"stage2": {"token_h": {"op": "mlp", "colour": 1}}}, "stage2.token_h.colour", "unknown key"),
        (
            {"stage_defaults": {**TINY["stage_defaults"], "token_h": {"op": {"choice": ["mlp", "foo"]}}}},
            "stage_defaults.token_h.op",
            r"'foo' is not allowed; expected one of \[mlp, group_lif, none\]",
        ),
        ({"time_steps": {"choice": []}}, "time_steps", "the choice list is empty"),
        ({"time_steps": [1, 2]}, "time_steps", "bare list is ambiguous"),
        ({"time_steps": {"values": [1, 2]}}, "time_steps", "unexpected key"),
        ({"time_steps": {"choice": [1, 1]}}, "time_steps", "listed twice"),
        ({"time_steps": "four"}, "time_steps", "expected an integer in \\[1, 256\\]"),
        ({"stage1": "deep"}, "stage1", "expected a mapping"),
        ({"stage1": {"dim": 8, "cell": {"nodes": 2}}}, "stage1.cell", "encoded by the stem"),
        ({"stage1": {"dim": 8, "width_mult": 1}}, "stage1", "either dim or width_mult"),
        ({"stage3": {"dim": 8}}, "stage3", "num_stages is at most 2"),
        (
            {"stage2": {"dim": 8, "cell": {"nodes": 2, "node2": {"in": "conv1x1"}}}},
            "stage2.cell.node2.in",
            "node 2 does not exist",
        ),
        ({"image_size": "big"}, "image_size", "expected an integer"),
        ({"family": "ann"}, "family", "expected one of"),
        ({"base_dim": 8}, "base_dim", "no stage uses it"),
        ({"num_stages": 5}, "num_stages", r"expected an integer in \[1, 4\]"),
    ],
)
def test_malformed_files_name_the_file_and_key(tmp_path, change, key, message):
    path = write(tmp_path, {**TINY, **change})
    with pytest.raises(SpaceError, match=message) as info:
        load_space(path)
    assert str(info.value).startswith(f"{path}: {key}:")


def test_missing_required_keys_and_non_mappings(tmp_path):
    data = {k: v for k, v in TINY.items() if k != "image_size"}
    with pytest.raises(SpaceError, match="image_size: missing"):
        load_space(write(tmp_path, data))
    data = {**TINY, "stage_defaults": {k: v for k, v in TINY["stage_defaults"].items() if k != "depth"}}
    with pytest.raises(SpaceError, match=r"stage1\.depth: missing"):
        load_space(write(tmp_path, data))
    with pytest.raises(SpaceError, match="expected a mapping at the top level"):
        load_space(write(tmp_path, "- 1\n- 2\n"))
    with pytest.raises(SpaceError, match="the file is empty"):
        load_space(write(tmp_path, ""))
    with pytest.raises(SpaceError, match="not valid YAML"):
        load_space(write(tmp_path, "name: [unclosed\n"))


def test_family_specific_keys_and_empty_spaces_are_rejected(tmp_path):
    with pytest.raises(SpaceError, match=r"stage2.cell: does not apply to family snn_mlp"):
        load_space(write(tmp_path, {**TINY, "family": "snn_mlp", "time_steps": 1, "stage_defaults": {"depth": 1}}))
    with pytest.raises(SpaceError, match="has no valid configuration"):
        # every group of 4 exceeds the 2 x 2 token grid
        data = {k: v for k, v in TINY.items() if k != "stage2"}
        data.update(num_stages=1, stage_defaults={"depth": 1, "token_h": {"op": "group_lif", "group": 4}})
        load_space(write(tmp_path, data))


def test_missing_file_and_unknown_name(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(SpaceError, match=f"{missing}: no such space file") as info:
        load_space(missing)
    assert "quick" in str(info.value) and isinstance(info.value, ValueError)
    with pytest.raises(SpaceError, match="not a shipped space name"):
        load_space("no_such_space")
    with pytest.raises(SpaceError, match="is a directory"):
        load_space(tmp_path)
    assert load_space("quick.yaml") == load_space("quick")


# ---------------------------------------------------------------- command line


def run_cli(*argv: str) -> int:
    from snn_nas.cli import space as command

    parser = argparse.ArgumentParser(prog="snn-nas space")
    command.add_arguments(parser)
    return command.run(parser.parse_args(list(argv)))


def test_cli_prints_dimensions_size_and_samples(capsys):
    assert run_cli("quick", "--sample", "2", "--seed", "5") == 0
    out = capsys.readouterr().out
    space = load_space("quick")
    assert "space quick" in out and f"{space.size():,}" in out
    assert f"{space.canonical_size():,} distinct networks" in out and "of the configurations repeat" in out
    assert "stage2.token_h.group" in out and "if num_stages >= 2 and stage2.token_h.op == group_lif" in out
    rng = np.random.default_rng(5)
    for _ in range(2):
        assert space.decode(space.sample(rng)).key() in out


def test_cli_json_is_complete_and_reproducible(capsys):
    assert run_cli("quick", "--sample", "3", "--seed", "1", "--json") == 0
    info = json.loads(capsys.readouterr().out)
    space = load_space("quick")
    assert info["name"] == "quick" and info["size"] == space.size()
    assert info["canonical_size"] == space.canonical_size() < space.size()
    assert [d["label"] for d in info["dimensions"]] == list(space.labels)
    assert len(info["samples"]) == 3
    for row in info["samples"]:
        genotype = Genotype.from_dict(row["genotype"])
        assert genotype.key() == row["key"] == space.decode(row["sample"]).key()


def test_cli_lists_shipped_spaces_and_rejects_bad_files(capsys, tmp_path):
    assert run_cli() == 0
    out = capsys.readouterr().out
    assert all(name in out for name in SHIPPED) and "distinct networks" in out
    assert run_cli("--json") == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["quick"]["canonical_size"] == load_space("quick").canonical_size()
    with pytest.raises(SpaceError, match="no such space file"):
        run_cli(str(tmp_path / "missing.yaml"))
    with pytest.raises(SpaceError, match="--sample"):
        run_cli("quick", "--sample", "-1")


# ---------------------------------------------------------------- models


def test_quick_samples_build_into_models():
    torch = pytest.importorskip("torch")
    builder = pytest.importorskip("snn_nas.builder")
    space = load_space("quick")
    rng = np.random.default_rng(0)
    x = torch.rand(1, 1, 32, 32)
    for i in range(100):
        genotype = space.decode(space.sample(rng))
        model = builder.build_model(genotype, num_classes=3, image_size=32, in_chans=1, seed=i)
        if i < 3:  # a forward pass on a few keeps the test fast (the builder's tests cover more)
            model.time_steps = 1
            with torch.no_grad():
                assert model(x).shape == (1, 3)


def test_samples_read_back_from_tables_and_pickled_spaces_still_work():
    import pickle

    space = load_space("quick")
    sample = space.sample(11)
    # a pandas/parquet round trip hands back numpy scalars
    as_numpy = {k: np.array([v])[0] if not isinstance(v, str) else v for k, v in sample.items()}
    assert space.decode(as_numpy) == space.decode(sample)
    assert space.decode(json.loads(json.dumps(sample))) == space.decode(sample)
    clone = pickle.loads(pickle.dumps(space))  # Ray ships the space to its workers
    assert clone == space and clone.size() == space.size() and clone.sample(11) == sample


def test_sampling_gives_up_with_the_last_reason():
    space = tiny()  # about one draw in two fails (node0.in none, identity/op none, ...)
    failures = []
    for seed in range(20):
        try:
            space.sample(seed, max_tries=1)
        except SpaceError as exc:
            failures.append(str(exc))
    assert failures and all("no valid sample in 1 draws; last reason: space 'tiny': stage" in f for f in failures)
