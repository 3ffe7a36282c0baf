from __future__ import annotations

import json

import pytest

from snn_nas.genotype import AxisMixer, Cell, Genotype, GenotypeError, Neuron, Stage

SPE = Cell(input_ops=("conv3x3",) * 3, node_ops=((), ("conv3x3",), ("identity", "conv3x3")))


def spiking(**overrides) -> Genotype:
    stages = (
        Stage(depth=1, dim=24),
        Stage(depth=2, dim=48, encoder=SPE, token_h=AxisMixer("group_lif", 4, "both", "spike")),
    )
    return Genotype(stages=overrides.pop("stages", stages), **overrides)


def test_json_round_trip_preserves_equality_and_key():
    g = spiking(time_steps=2, neuron=Neuron(tau=1.5, surrogate="atan", alpha=2))
    text = g.to_json()
    back = Genotype.from_json(text)
    assert back == g
    assert back.key() == g.key()
    # through a plain json dump/load of the dict, as a parquet cell would store it
    assert Genotype.from_dict(json.loads(json.dumps(g.to_dict()))) == g


def test_key_is_stable_and_sensitive():
    g = spiking()
    assert g.key() == spiking().key()
    assert len(g.key()) == 12
    assert spiking(time_steps=2).key() != g.key()
    # ints and floats that are equal give the same key (3 == 3.0 for mlp_ratio)
    assert spiking(mlp_ratio=3).key() == spiking(mlp_ratio=3.0).key()


def test_key_does_not_depend_on_dict_order():
    d = spiking().to_dict()
    reordered = dict(reversed(list(d.items())))
    assert Genotype.from_dict(reordered).key() == spiking().key()


def test_lists_become_tuples_so_genotypes_hash():
    cell = Cell(input_ops=["conv1x1", "conv3x3"], node_ops=[[], ["identity"]])
    assert isinstance(cell.input_ops, tuple) and isinstance(cell.node_ops[1], tuple)
    g = spiking(stages=[Stage(depth=1, dim=24), Stage(depth=1, dim=48, encoder=cell)])
    assert hash(g) == hash(Genotype.from_dict(g.to_dict()))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(family="ann"), "family: 'ann' is not allowed"),
        (dict(time_steps=0), "time_steps: 0 is out of range"),
        (dict(stages=()), "stages: need 1 to 4 stages"),
        (dict(neuron=Neuron(surrogate="relu")), "neuron.surrogate: 'relu' is not allowed"),
        (dict(neuron=Neuron(tau=0.5)), "neuron.tau"),
        (dict(stages=(Stage(depth=1, dim=24, encoder=SPE),)), "stages[0].encoder"),
        (dict(stages=(Stage(depth=1, dim=24), Stage(depth=1, dim=48))), "stages[1].encoder"),
        (dict(stages=(Stage(depth=1, dim=24), Stage(depth=1, dim=50, encoder=SPE))), "not divisible"),
        (dict(stages=(Stage(depth=0, dim=24),)), "stages[0].depth"),
        (dict(stages=(Stage(depth=1, dim=24, skip_source="none", skip_paths="token"),)), "skip_paths"),
        (dict(stages=(Stage(depth=1, dim=24, token_h=AxisMixer("mlp", group=4)),)), "stages[0].token_h"),
        (
            dict(
                stages=(Stage(depth=1, dim=24, identity="none", token_h=AxisMixer("none"), token_w=AxisMixer("none")),)
            ),
            "no branch",
        ),
    ],
)
def test_invalid_genotypes_name_the_field(change, message):
    with pytest.raises(GenotypeError) as info:
        spiking(**change)
    assert message in str(info.value)


def test_cell_node_without_input_is_rejected():
    bad = Cell(input_ops=("conv3x3", "none"), node_ops=((), ("none",)))
    with pytest.raises(GenotypeError, match=r"node1: node 1 has no input edge"):
        spiking(stages=(Stage(depth=1, dim=24), Stage(depth=1, dim=48, encoder=bad)))


def test_cell_rows_must_match_node_count():
    bad = Cell(input_ops=("conv3x3", "conv1x1"), node_ops=((), ()))
    with pytest.raises(GenotypeError, match=r"node_ops\[1\]: node 1 takes one edge from each earlier node"):
        spiking(stages=(Stage(depth=1, dim=24), Stage(depth=1, dim=48, encoder=bad)))


def test_spe_cell_has_two_spiking_nodes():
    assert SPE.spiking_nodes() == (0, 1)
    assert Cell().spiking_nodes() == ()


def test_snn_mlp_family_constraints():
    stage = Stage(
        depth=1,
        dim=24,
        token_h=AxisMixer("group_lif", 4, "forward", "real"),
        token_w=AxisMixer("group_lif", 4, "forward", "real"),
        identity="none",
        skip_source="block",
    )
    g = Genotype(stages=(stage,), family="snn_mlp", time_steps=1, mlp_ratio=4)
    assert not g.is_spiking
    with pytest.raises(GenotypeError, match="time_steps: the snn_mlp family"):
        Genotype(stages=(stage,), family="snn_mlp", time_steps=4)
    with pytest.raises(GenotypeError, match="pre-norm residual"):
        Genotype(stages=(Stage(depth=1, dim=24, token_h=stage.token_h),), family="snn_mlp", time_steps=1)


def test_resolutions_and_group_size_check():
    g = spiking()
    assert g.resolutions(32) == (8, 4)
    assert g.resolutions(28) == (7, 4)
    g.check_image_size(32)  # group 4 on a side of 4 is fine
    g.check_image_size(16)  # group 4 on a side of 2: every position passes through, as published
    with pytest.raises(GenotypeError, match="image_size: 2 is smaller than patch_size 4"):
        g.check_image_size(2)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"stages": [{"depth": 1, "dim": 8}], "colour": "red"}, "unknown field(s) ['colour']"),
        ({"stages": [{"depth": 1}]}, "missing required field(s) ['dim']"),
        ({"family": "spiking"}, "missing required field 'stages'"),
        ({"schema": 99, "stages": []}, "schema: version 99"),
        ([1, 2], "expected a mapping"),
    ],
)
def test_from_dict_errors(data, message):
    with pytest.raises(GenotypeError) as info:
        Genotype.from_dict(data)
    assert message in str(info.value)


def test_from_json_reports_malformed_text():
    with pytest.raises(GenotypeError, match="malformed"):
        Genotype.from_json("{not json")
