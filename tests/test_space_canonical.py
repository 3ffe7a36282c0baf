"""Canonical genotypes: one key per network (``Genotype.canonical``, ``SearchSpace.decode``,
``SearchSpace.canonical_size``) and the single-label change check of
``experiments/benchmarks/duplicates.py`` on every shipped space."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from space_samples import enumerate_samples

from snn_nas.genotype import AxisMixer, Cell, Genotype, GenotypeError, Stage
from snn_nas.presets import get_preset, list_presets, preset_info
from snn_nas.space import SearchSpace, SpaceError, load_space, shipped_spaces

REPO = Path(__file__).resolve().parents[1]


def _load_duplicates():
    path = REPO / "experiments" / "benchmarks" / "duplicates.py"
    spec = importlib.util.spec_from_file_location("snn_nas_duplicates_check", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


duplicates = _load_duplicates()
pytestmark = pytest.mark.usefixtures("one_thread")

# Image size 8, patch 4: token grids of side 2 (stage 1) and 1 (stage 2), so that a group of 2
# is a whole axis in stage 1 and every scan of stage 2 is one step long.
TINY = {
    "name": "tiny_canonical",
    "image_size": 8,
    "time_steps": 1,
    "patch_size": 4,
    "drop_path": {"choice": [0.0, 0.2]},
    "num_stages": {"choice": [1, 2]},
    "stage_defaults": {
        "depth": {"choice": [1, 2]},
        "identity": "x",
        "skip_source": {"choice": ["stage", "block", "none"]},
        "skip_paths": {"choice": ["both", "token"]},
        "token_h": {
            "op": {"choice": ["mlp", "group_lif"]},
            "group": {"choice": [0, 2]},
            "scan": {"choice": ["forward", "both"]},
        },
        "token_w": {"op": "none"},
    },
    "stage1": {"dim": 4},
    "stage2": {"dim": 4, "cell": {"nodes": 1, "in": {"choice": ["conv3x3", "conv1x1"]}}},
}


def tiny(**changes) -> SearchSpace:
    return SearchSpace.from_dict({**TINY, **changes}, source="tiny_canonical.yaml")


def same_network(a: Genotype, b: Genotype, image_size: int) -> bool:
    """Built from one seed: same parameters, outputs and gradients (also at random parameters)."""
    probes = [dict(seed=0), dict(seed=1, batch=8, randomize=True)]
    return all(
        duplicates.verdict(
            duplicates.probe(a, image_size, in_chans=1, **p), duplicates.probe(b, image_size, in_chans=1, **p)
        )
        == "same"
        for p in probes
    )


def quick_sample(**changes) -> dict:
    """A valid 2-stage sample of the quick space (patch 4: sides 8 and 4) with ``changes``."""
    space = load_space("quick")
    samples = (space.sample(seed) for seed in range(500))
    base = next(s for s in samples if s["num_stages"] == 2 and s["patch_size"] == 4)
    fixed = {"stage1.skip_source": "stage", "stage1.skip_paths": "both"}  # canonical in stage 1 too
    sample = {**base, **fixed, "stage2.token_h.op": "mlp", "stage2.token_w.op": "mlp", **changes}
    return {label: sample[label] for label in space.active_labels(sample)}


# ---------------------------------------------------------------- the equivalences, by hand


def test_depth1_block_skip_is_the_stage_skip():
    space = load_space("quick")
    for paths in ("both", "token", "channel"):
        stage = quick_sample(**{"stage2.depth": 1, "stage2.skip_source": "stage", "stage2.skip_paths": paths})
        block = {**stage, "stage2.skip_source": "block"}
        raw = space.decode(block, canonical=False)
        assert raw.stages[1].skip_source == "block"
        assert space.decode(block) == space.decode(stage) == space.decode(stage, canonical=False)
        assert space.decode(block).key() == space.decode(stage).key()
    assert same_network(raw, space.decode(stage), space.image_size)
    # two blocks: the second block sees u_ch (block) instead of h (stage): different networks and keys
    deep = {**stage, "stage2.depth": 2}
    assert space.decode(deep).key() != space.decode({**deep, "stage2.skip_source": "block"}).key()
    assert not same_network(space.decode(deep), space.decode({**deep, "stage2.skip_source": "block"}), 32)


def test_group_equal_to_the_side_is_the_whole_axis():
    space = load_space("quick")  # patch 4 at 32 px: stage 2 has a 4 x 4 token grid
    lif = {"stage2.token_h.op": "group_lif", "stage2.token_h.scan": "backward", "stage2.token_h.output": "real"}
    whole = quick_sample(**lif, **{"stage2.token_h.group": 0})
    four = {**whole, "stage2.token_h.group": 4}
    two = {**whole, "stage2.token_h.group": 2}
    assert space.decode(four, canonical=False).stages[1].token_h.group == 4
    assert space.decode(four) == space.decode(whole)
    assert space.decode(four).stages[1].token_h == AxisMixer("group_lif", 0, "backward", "real")
    assert space.decode(two).key() != space.decode(whole).key()
    assert same_network(space.decode(four, canonical=False), space.decode(whole), 32)
    assert not same_network(space.decode(two), space.decode(whole), 32)


def stage(depth=1, dim=8, encoder=None, **kw) -> Stage:
    return Stage(depth=depth, dim=dim, encoder=encoder, **kw)


CELL = Cell(input_ops=("conv2x2",), node_ops=((),))


@pytest.mark.parametrize("family", ["spiking", "snn_mlp"])
def test_one_step_scans_are_one_rule(family):
    # 8 px, patch 4: stage 2 has a 1 x 1 grid; a scan of one step is the same in every direction
    output = "real" if family == "snn_mlp" else "spike"
    extra = {"identity": "none", "skip_source": "block"} if family == "snn_mlp" else {}

    def genotype(scan: str) -> Genotype:
        mixer = AxisMixer("group_lif", 0, scan, output)
        second = stage(encoder=None if family == "snn_mlp" else CELL, token_h=mixer, token_w=mixer, **extra)
        steps = 1 if family == "snn_mlp" else 2
        return Genotype(stages=(stage(**extra), second), family=family, time_steps=steps, drop_path=0.1)

    forward = genotype("forward")
    for scan in ("backward", "both"):
        assert genotype(scan).canonical(8) == forward.canonical(8) == forward
        assert genotype(scan).canonical() == genotype(scan)  # an image-size rule
        assert same_network(genotype(scan), forward, 8)
    # at 16 px stage 2 has 2 positions: the scans differ
    assert genotype("both").canonical(16) != forward.canonical(16)
    assert not same_network(genotype("both"), forward, 16)


def test_groups_larger_than_the_axis_pass_everything_through():
    # snn_mlp at 32 px: stage sides 8, 4, 2, 1; a group of 4 on 2 or 1 positions changes nothing
    g = get_preset("snn_mlp_t")
    c = g.canonical(32)
    assert [s.token_h for s in c.stages] == [
        AxisMixer("group_lif", 4, "forward", "real"),  # 2 groups of 4 on 8 positions: kept
        AxisMixer("group_lif", 0, "forward", "real"),  # 4 == side: the whole axis
        AxisMixer("group_lif", 3, "forward", "real"),  # 4 > 2: pass-through, spelled side + 1
        AxisMixer("group_lif", 2, "forward", "real"),
    ]
    assert c.canonical(32) == c and g.canonical(224) == g

    def micro(groups: tuple[int, ...], scan: str) -> Genotype:
        mixers = [AxisMixer("group_lif", group, scan, "real") for group in groups]
        stages = tuple(
            Stage(depth=1, dim=8 * 2**i, token_h=m, token_w=m, identity="none", skip_source="block")
            for i, m in enumerate(mixers)
        )
        return Genotype(stages=stages, family="snn_mlp", time_steps=1)

    a, b = micro((4, 4, 4, 4), "forward"), micro((4, 4, 8, 2), "both")
    assert a.canonical(32).stages[2:] == b.canonical(32).stages[2:]
    assert same_network(a, a.canonical(32), 32)
    assert same_network(micro((4, 4, 8, 8), "both"), micro((4, 4, 4, 4), "both"), 32)


def test_one_block_in_all_takes_no_drop_path():
    g = Genotype(stages=(stage(),), drop_path=0.3)
    assert g.canonical() == Genotype(stages=(stage(),))
    assert same_network(g, g.canonical(), 16)
    two = Genotype(stages=(stage(depth=2),), drop_path=0.3)
    assert two.canonical() == two


def test_canonical_is_idempotent_and_keeps_the_rest():
    rng = np.random.default_rng(0)
    for name in shipped_spaces():
        space = load_space(name)
        for _ in range(30):
            raw = space.decode(space.sample(rng), canonical=False)
            for size in (space.image_size, 32, 64, None):
                c = raw.canonical(size)
                assert c.canonical(size) == c
                assert c.canonical() == c  # the structural rules are applied at every size
                assert (c.family, c.depths, c.dims, c.time_steps, c.neuron) == (
                    raw.family,
                    raw.depths,
                    raw.dims,
                    raw.time_steps,
                    raw.neuron,
                )
    g = get_preset("mlp_spe_t")
    with pytest.raises(GenotypeError, match="image_size: 2 is out of range"):
        g.canonical(2)


@pytest.mark.parametrize("name", list_presets())
def test_presets_are_canonical(name):
    g, size = get_preset(name), preset_info(name).image_size
    assert g.canonical() == g
    if name == "snn_mlp_micro":
        # groups 4 / 2 equal the sides of stages 2 / 3 at 32 px: canonically the whole axis (0);
        # the preset spells them 4 / 2 (the SNN-MLP structure in miniature); both build one network
        c = g.canonical(size)
        assert [s.token_h.group for s in c.stages] == [4, 0, 0]
        assert same_network(g, c, size)
    else:
        assert g.canonical(size) == g


# ---------------------------------------------------------------- decode / encode


def test_encode_takes_canonical_and_non_canonical_members():
    space = load_space("quick")
    sample = quick_sample(**{"stage2.depth": 1, "stage2.skip_source": "block", "stage2.skip_paths": "token"})
    raw = space.decode(sample, canonical=False)
    assert raw != space.decode(sample)
    for g in (raw, space.decode(sample)):
        assert space.contains(g)
        encoded = space.encode(g)
        assert encoded["stage2.skip_source"] == "stage"  # the canonical value when the space has it
        assert space.decode(encoded) == g.canonical(space.image_size)


def test_encode_falls_back_to_an_equivalent_choice():
    # no 'stage' skip and no group 0 on offer: the canonical genotype is spelled 'block' / 2
    data = {k: v for k, v in TINY.items() if k != "stage2"}
    data["num_stages"] = 1
    data["stage_defaults"] = {
        **TINY["stage_defaults"],
        "skip_source": {"choice": ["block", "none"]},
        "token_h": {"op": "group_lif", "group": 2, "scan": {"choice": ["forward", "both"]}},
    }
    space = SearchSpace.from_dict(data)
    sample = {
        "drop_path": 0.2,
        "stage1.depth": 1,
        "stage1.skip_source": "block",
        "stage1.skip_paths": "both",
        "stage1.token_h.scan": "both",
    }
    g = space.decode(sample)
    assert g.stages[0].skip_source == "stage" and g.stages[0].token_h.group == 0 and g.drop_path == 0.0
    assert space.encode(g) == {**sample, "drop_path": 0.0}
    assert space.contains(g) and space.contains(space.decode(sample, canonical=False))
    two = space.decode({**sample, "stage1.depth": 2})
    assert two.stages[0].skip_source == "block" and two.drop_path == 0.2
    assert space.encode(two) == {**sample, "stage1.depth": 2}


def test_encode_still_rejects_non_members():
    space = load_space("quick")
    g = space.decode(quick_sample())
    other = Genotype(stages=(Stage(depth=3, dim=g.stages[0].dim),), time_steps=g.time_steps)
    with pytest.raises(SpaceError, match=r"stage1\.depth: 3 is not one of"):
        space.encode(other)


# ---------------------------------------------------------------- sizes


def test_canonical_size_is_a_brute_force_count_of_keys():
    space = tiny()
    keys, valid = set(), 0
    for sample in enumerate_samples(space):
        try:
            g = space.decode(sample)
        except SpaceError:
            continue
        valid += 1
        keys.add(g.key())
    # raw: drop 2 x (stage 1: depth 2 x skips 5 x token_h 5 = 50; x stage 2: 2 x 5 x 3 x cells 2 = 60)
    assert valid == space.size() == 2 * (50 + 50 * 60)
    # canonical: stage 1 (side 2): mlp + group 0 (= 2) x 2 scans = 3 mixers; skips 3 at depth 1, 5 at
    # depth 2 -> 24. Stage 2 (side 1): mlp + one scan = 2 mixers -> 8 x 2 x 2 cells = 32. One stage:
    # the 9 one-block configurations take one drop_path, the other 15 two -> 39; two stages 24 x 32 x 2
    assert len(keys) == space.canonical_size() == 39 + 24 * 32 * 2


def test_canonical_size_merges_repeated_widths():
    data = {
        "name": "widths",
        "image_size": 32,
        "num_stages": 2,
        "base_dim": {"choice": [4, 8]},
        "stage_defaults": {"depth": 2, "skip_source": "none"},
        "stage1": {"width_mult": {"choice": [1, 2]}},
        "stage2": {"width_mult": {"choice": [2, 4]}, "cell": {"nodes": 1, "in": "conv3x3"}},
    }
    space = SearchSpace.from_dict(data)
    # widths (4|8, 8|16) and (8|16, 16|32): (8, 16) is spelled twice
    assert space.size() == 8 and space.canonical_size() == 7
    keys = {space.decode(s).key() for s in enumerate_samples(space)}
    assert len(keys) == 7


@pytest.mark.parametrize("name", ["quick", "spiking_mlp", "snn_mlp"])
def test_canonical_size_of_shipped_spaces(name):
    space = load_space(name)
    assert 0 < space.canonical_size() <= space.size()
    if name == "snn_mlp":  # groups 0/2/4 never equal the sides 56/28/14/7 at 224 px
        assert space.canonical_size() == space.size()
    else:
        assert space.canonical_size() < space.size()
    assert space.to_dict()["canonical_size"] == space.canonical_size()


# ---------------------------------------------------------------- the single-label change check


def test_check_finds_every_equivalence_of_a_tiny_space():
    space = tiny()
    changes, _ = duplicates.check_space(space, range(12), in_chans=1)
    assert changes and not [c for c in changes if c.bug or c.missed]
    merged = {(c.pooled_label, c.old, c.new) for c in changes if c.merged}
    assert any(label == "stage*.skip_source" for label, _, _ in merged)
    assert any(label == "stage*.token_h.group" for label, _, _ in merged)
    assert any(label == "stage*.token_h.scan" for label, _, _ in merged)  # the one-position stage 2


@pytest.mark.parametrize(
    ("name", "samples", "max_changes"), [("quick", 12, 25), ("spiking_mlp", 6, 15), ("snn_mlp", 3, 8)]
)
def test_different_keys_build_different_networks(name, samples, max_changes):
    space = duplicates.checked_space(name)  # shrunk: small widths, depths and T, same sides and choices
    assert space.image_size == load_space(name).image_size
    changes, _ = duplicates.check_space(space, range(samples), max_changes=max_changes, in_chans=1)
    assert len(changes) >= samples * min(max_changes, 5)
    bad = [(c.seed, c.label, c.old, c.new, c.verdict) for c in changes if c.bug or c.missed]
    assert not bad


def test_duplicates_script_prints_a_table(capsys):
    rc = duplicates.main([str(REPO / "search_spaces" / "quick.yaml"), "--samples", "1", "--max-changes", "4"])
    out = capsys.readouterr().out
    assert rc == 0 and "quick_shrunk" in out and "label" in out and "canonical" in out
