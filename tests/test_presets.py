from __future__ import annotations

import argparse
import json

import pytest

from snn_nas.builder import count_parameters
from snn_nas.cli import models as models_cli
from snn_nas.errors import SnnNasError
from snn_nas.genotype import Genotype
from snn_nas.layers.params import parameter_count
from snn_nas.presets import PRESETS, SPE_CELL, get_preset, list_presets, preset_info
from snn_nas.registry import UnknownNameError

FULL = ("mlp_spe_t", "mlp_spe_s", "mlp_s", "snn_mlp_t", "snn_mlp_s", "snn_mlp_b")

# Parameters at 224 px / 1000 classes (published: 25M, 38M, 34M; 28.3M, 49.7M, 87.9M).
PINNED = {
    "mlp_spe_t": 25_229_180,
    "mlp_spe_s": 37_975_568,
    "mlp_s": 34_507_408,
    "snn_mlp_t": 28_335_736,
    "snn_mlp_s": 49_703_080,
    "snn_mlp_b": 87_897_288,
}
PUBLISHED_M = {"mlp_spe_t": 25, "mlp_spe_s": 38, "mlp_s": 34, "snn_mlp_t": 28.3, "snn_mlp_s": 49.7, "snn_mlp_b": 87.9}


def test_registry_lists_and_rejects_names():
    assert set(FULL) | {"mlp_spe_micro", "snn_mlp_micro"} == set(list_presets())
    assert list_presets() == sorted(list_presets())
    with pytest.raises(UnknownNameError, match="mlp_spe_t") as info:
        get_preset("mlp_spe_x")
    assert isinstance(info.value, SnnNasError) and isinstance(info.value, LookupError)


@pytest.mark.parametrize("name", list_presets())
def test_presets_are_json_round_trip_genotypes(name):
    g = get_preset(name)
    assert isinstance(g, Genotype)
    assert Genotype.from_json(g.to_json()) == g
    assert preset_info(name).genotype is g


def test_spiking_presets_follow_the_published_table():
    for name, dim in (("mlp_spe_t", 78), ("mlp_spe_s", 96), ("mlp_s", 96)):
        g = get_preset(name)
        assert (g.family, g.time_steps, g.patch_size, g.mlp_ratio) == ("spiking", 4, 4, 3.0)
        assert g.depths == (2, 8, 14, 2) and g.dims == (dim, 2 * dim, 4 * dim, 8 * dim)
        assert (g.neuron.tau, g.neuron.v_threshold, g.neuron.surrogate, g.neuron.alpha) == (2.0, 1.0, "sigmoid", 4.0)
        for i, s in enumerate(g.stages):
            assert (s.skip_source, s.skip_paths, s.token_h.op, s.token_w.op) == ("stage", "both", "mlp", "mlp")
            assert s.identity == ("lif_bn" if name == "mlp_s" else "x")
            if i == 0:
                assert s.encoder is None
            elif name == "mlp_s":
                assert s.encoder.input_ops == ("conv2x2",)
            else:
                assert s.encoder == SPE_CELL
    assert preset_info("mlp_spe_t").top1 == 66.39 and "69.09" in preset_info("mlp_spe_t").top1_note


def test_snn_mlp_presets_follow_the_published_table():
    table = {"snn_mlp_t": (96, (2, 2, 6, 2), 0.2, 81.9), "snn_mlp_s": (96, (2, 2, 18, 2), 0.3, 83.3),
             "snn_mlp_b": (128, (2, 2, 18, 2), 0.5, 83.5)}  # fmt: skip
    for name, (dim, depths, drop, top1) in table.items():
        g = get_preset(name)
        assert (g.family, g.time_steps, g.mlp_ratio, g.drop_path, g.depths) == ("snn_mlp", 1, 4.0, drop, depths)
        assert g.dims == (dim, 2 * dim, 4 * dim, 8 * dim)
        for s in g.stages:
            for m in (s.token_h, s.token_w):
                assert (m.op, m.group, m.scan, m.output) == ("group_lif", 4, "forward", "real")
        info = preset_info(name)
        assert (info.top1, info.image_size, info.num_classes) == (top1, 224, 1000)


def test_micro_presets_build_at_32_px():
    micro = get_preset("snn_mlp_micro")
    assert [s.token_h.group for s in micro.stages] == [4, 4, 2]
    micro.check_image_size(32)
    micro.check_image_size(28)
    for name in ("mlp_spe_micro", "snn_mlp_micro"):
        g = get_preset(name)
        assert g.dims == (24, 48, 96) and g.depths == (1, 1, 1) and g.patch_size == 4
        assert preset_info(name).image_size == 32 and preset_info(name).top1 is None
    assert get_preset("mlp_spe_micro").time_steps == 4


@pytest.mark.parametrize("name", FULL)
def test_parameter_counts_at_224_are_pinned(name):
    built = count_parameters(get_preset(name), num_classes=1000, image_size=224)  # a real build (meta device)
    assert built == PINNED[name]
    assert parameter_count(get_preset(name)) == PINNED[name]
    assert abs(built / 1e6 - PUBLISHED_M[name]) < 0.6


def test_mlp_spe_t_count_by_hand():
    # spiking block, width C on an S x S grid, r = 3: token (2 axial maps S^2+S + BN(S), fuse 3C^2 + BN(C))
    # + channel (2 x (3C^2) + 3C + C + 2 BN(S^2))
    def block(c, s):
        return 2 * (s * s + 3 * s) + 3 * c * c + 2 * c + 6 * c * c + 4 * c + 4 * s * s

    def spe(c_in, c):  # 3 input convs 3x3 s2 + 2 node convs 3x3, each + BN(C/3)
        n = c // 3
        return 3 * (9 * c_in * n + 2 * n) + 2 * (9 * n * n + 2 * n)

    dims, sides, depths = (78, 156, 312, 624), (56, 28, 14, 7), (2, 8, 14, 2)
    total = 3 * 78 * 16 + 2 * 78  # stem conv 4x4 + BN
    for i, (c, s, d) in enumerate(zip(dims, sides, depths, strict=True)):
        total += (spe(dims[i - 1], c) if i else 0) + d * block(c, s)
    total += 2 * 624 + 624 * 1000 + 1000
    assert total == PINNED["mlp_spe_t"]


def test_snn_mlp_t_count_by_hand():
    def block(c):  # 12 C^2 + 29 C + 4 (4 + 2 convs 1x1, dw 3x3, 5 GN, 2 x (tau, v_th))
        return 12 * c * c + 29 * c + 4

    dims, depths = (96, 192, 384, 768), (2, 2, 6, 2)
    total = 3 * 96 * 16 + 96 + 2 * 96  # stem conv (bias) + GN
    total += sum(d * block(c) for c, d in zip(dims, depths, strict=True))
    total += sum(8 * c + 4 * c * 2 * c for c in dims[:3])  # space-to-depth: GN(4C) + conv 4C -> 2C
    total += 2 * 768 + 768 * 1000 + 1000
    assert total == PINNED["snn_mlp_t"]


# ----------------------------------------------------------------------------- snn-nas models
def _run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    models_cli.add_arguments(parser)
    rc = models_cli.run(parser.parse_args(list(argv)))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_models_command_table(capsys):
    rc, out, _ = _run_cli(capsys)
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].split() == ["name", "family", "T", "depths", "widths", "px/cls", "params", "top-1"]
    row = next(line.split() for line in lines if line.startswith("mlp_spe_t "))
    assert row == ["mlp_spe_t", "spiking", "4", "2,8,14,2", "78,156,312,624", "224/1000", "25.23M", "66.39"]
    assert len(PRESETS) == sum(line.split()[0] in PRESETS for line in lines[1:] if line.strip())


def test_models_command_json_and_sizes(capsys):
    rc, out, _ = _run_cli(capsys, "--json", "--image-size", "32", "--num-classes", "10")
    rows = {r["name"]: r for r in json.loads(out)}
    assert rc == 0 and rows["snn_mlp_t"]["params"] == count_parameters(get_preset("snn_mlp_t"), 10, 32)
    assert rows["snn_mlp_micro"]["params"] == count_parameters(get_preset("snn_mlp_micro"), 10, 32)


def test_models_command_one_preset_prints_its_genotype(capsys):
    rc, out, err = _run_cli(capsys, "snn_mlp_t")
    assert rc == 0 and Genotype.from_json(out) == get_preset("snn_mlp_t")
    assert "28,335,736" in err and "81.90" in err
    with pytest.raises(UnknownNameError, match="snn_mlp_t"):
        _run_cli(capsys, "snn_mlp_x")
    with pytest.raises(SnnNasError, match="--image-size"):
        _run_cli(capsys, "--image-size", "0")
