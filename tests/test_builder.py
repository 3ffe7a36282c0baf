from __future__ import annotations

import pytest
import torch

from snn_nas.builder import build_model, count_parameters
from snn_nas.genotype import AxisMixer, Cell, Genotype, GenotypeError, Stage
from snn_nas.layers.common import ModelInputError
from snn_nas.layers.params import parameter_count
from snn_nas.layers.snn_mlp import SNNMLP
from snn_nas.layers.spiking_mlp import SpikingMLP
from snn_nas.neurons import LIF, spiking_neurons
from snn_nas.presets import get_preset, list_presets

SPE = Cell(input_ops=("conv3x3",) * 3, node_ops=((), ("conv3x3",), ("identity", "conv3x3")))


pytestmark = pytest.mark.usefixtures("one_thread")


def one_stage(source: str = "stage", paths: str = "both", depth: int = 2, **kw) -> Genotype:
    stage = Stage(depth=depth, dim=6, skip_source=source, skip_paths=paths)
    return Genotype(stages=(stage,), time_steps=2, **kw)


def images(b: int = 2, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 4


# ----------------------------------------------------------------------------- contract
def test_model_contract_on_both_input_layouts():
    model = build_model(get_preset("mlp_spe_micro"), num_classes=5, image_size=16, seed=0)
    assert isinstance(model, SpikingMLP)
    assert (model.num_classes, model.image_size, model.in_chans, model.time_steps) == (5, 16, 3, 4)
    assert model.genotype == get_preset("mlp_spe_micro")
    x = images()
    steps = model.forward_steps(x)
    assert steps.shape == (4, 2, 5)
    torch.testing.assert_close(model(x), steps.mean(0))
    # a [T, B, C, H, W] sequence overrides time_steps; the static image repeated equals [B, C, H, W]
    torch.testing.assert_close(model.forward_steps(x.unsqueeze(0).expand(4, -1, -1, -1, -1)), steps)
    assert model(torch.rand(3, 2, 3, 16, 16)).shape == (2, 5)
    model.time_steps = 1  # proxy cap
    assert model.forward_steps(x).shape == (1, 2, 5)
    with pytest.raises(ModelInputError, match="time_steps"):
        model.time_steps = 0


def test_bad_inputs_are_clear_errors():
    model = build_model(get_preset("mlp_spe_micro"), image_size=16)
    with pytest.raises(ModelInputError, match=r"\[B, C, H, W\]"):
        model(torch.rand(3, 16, 16))
    with pytest.raises(ModelInputError, match="16x16"):
        model(torch.rand(1, 3, 32, 32))
    with pytest.raises(ModelInputError, match="3 channels"):
        model(torch.rand(1, 1, 16, 16))


def test_build_errors_name_the_problem():
    build_model(get_preset("snn_mlp_t"), image_size=32)  # group 4 > sides 2, 1: passed through, as published
    with pytest.raises(GenotypeError, match="mlp_ratio"):
        build_model(Genotype(stages=(Stage(depth=1, dim=2),), mlp_ratio=0.25))  # int(2 x 0.25) = 0 hidden channels
    with pytest.raises(GenotypeError, match="patch_size"):
        build_model(get_preset("mlp_spe_micro"), image_size=2)
    with pytest.raises(GenotypeError, match="num_classes"):
        build_model(get_preset("mlp_spe_micro"), num_classes=0)
    with pytest.raises(GenotypeError, match="genotype"):
        build_model(get_preset("mlp_spe_micro").to_dict())  # type: ignore[arg-type]


def test_seed_makes_builds_reproducible_without_touching_global_rng():
    g = get_preset("snn_mlp_micro")
    state = torch.random.get_rng_state()
    a = build_model(g, seed=3).state_dict()
    b = build_model(g, seed=3).state_dict()
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = build_model(g, seed=4).state_dict()
    assert not torch.equal(a["stages.0.encoder.proj.weight"], c["stages.0.encoder.proj.weight"])


def test_snn_mlp_family_contract():
    model = build_model(get_preset("snn_mlp_micro"), num_classes=7, image_size=32, in_chans=1, seed=0)
    assert isinstance(model, SNNMLP) and model.time_steps == 1
    assert spiking_neurons(model) == []
    x = torch.rand(2, 1, 32, 32)
    assert model.forward_steps(x).shape == (1, 2, 7)
    model.eval()
    # [T, B, ...] is folded into the batch: each step is the same image here
    torch.testing.assert_close(model(x.unsqueeze(0).expand(3, -1, -1, -1, -1)), model(x))


# ----------------------------------------------------------------------------- presets
SMALL = {name: (32, 2) for name in list_presets()}
SMALL.update({"snn_mlp_t": (100, 1), "snn_mlp_s": (100, 1), "snn_mlp_b": (100, 1)})  # smallest side >= group 4


@pytest.mark.parametrize("name", list_presets())
def test_every_preset_runs_forward_and_backward(name):
    size, batch = SMALL[name]
    model = build_model(get_preset(name), num_classes=10, image_size=size, seed=0)
    if "micro" not in name:
        model.time_steps = 1
    logits = model(torch.rand(batch, 3, size, size))
    assert logits.shape == (batch, 10)
    assert torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits, torch.arange(batch)).backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert (
        grads["stages.0.encoder.proj.0.weight" if model.genotype.is_spiking else "stages.0.encoder.proj.weight"]
        .abs()
        .sum()
        > 0
    )


def test_spiking_preset_neurons_are_all_lif():
    model = build_model(get_preset("mlp_spe_micro"), image_size=32)
    lifs = spiking_neurons(model)
    # per stage: encoder LIF + block (h, w, token, channel-hidden, channel-out) = 6; 2 SPE cells x 2
    assert len(lifs) == 3 * 6 + 2 * 2
    assert all(isinstance(m, LIF) and m.tau == 2.0 and m.v_threshold == 1.0 for _, m in lifs)


def test_parameter_counter_matches_real_builds():
    genotypes = [get_preset(n) for n in list_presets()]
    odd_cell = Cell(input_ops=("avgpool_conv1x1", "none"), node_ops=((), ("conv1x1",)))
    genotypes += [
        Genotype(
            stages=(
                Stage(depth=1, dim=8, identity="lif_bn", token_w=AxisMixer("group_lif", 2, "both", "spike")),
                Stage(depth=2, dim=12, encoder=odd_cell, skip_source="bn_spike", skip_paths="channel"),
            ),
            mlp_ratio=2.5,
        ),
        Genotype(
            stages=(
                Stage(depth=1, dim=8, token_h=AxisMixer("none"), identity="none", skip_source="block"),
                Stage(depth=1, dim=9, encoder=SPE, skip_source="bn_spike"),
            ),
        ),
    ]
    for g in genotypes:
        for size, classes in ((32, 10), (45, 3)):
            try:
                expected = count_parameters(g, classes, size, in_chans=1)
            except GenotypeError:
                continue
            assert parameter_count(g, classes, size, in_chans=1) == expected, g.summary()


# ----------------------------------------------------------------------------- skip connections
def _reference_stage(model: SpikingMLP, x: torch.Tensor, source: str) -> torch.Tensor:
    """The equations of SEED_ARCHITECTURES.md / the builder docstring, written out by hand."""
    stage = model.stages[0]
    seq = model.as_sequence(x)
    h = stage.encoder(seq)
    s = stage.encoder_lif(h)
    r = h
    for block in stage.blocks:
        token = block.token(s)
        if source == "bn_spike":
            bn = lambda m, t: m(t.flatten(0, 1)).unflatten(0, t.shape[:2])  # noqa: E731
            x1 = block.token_lif(token + bn(block.token_shortcut, s))
            u = block.channel(x1) + bn(block.channel_shortcut, x1)
        elif source == "none":
            x1 = block.token_lif(token)
            u = block.channel(x1)
        else:
            x1 = block.token_lif(r + token)
            u = r + token + block.channel(x1)
        s = block.channel_lif(u)
        if source == "block":
            r = u
    return model.head(s).mean(0)


@pytest.mark.parametrize("source", ["stage", "block", "bn_spike", "none"])
def test_skip_sources_follow_their_equations(source):
    model = build_model(one_stage(source), num_classes=4, image_size=16, seed=1)
    x = images()
    torch.testing.assert_close(model(x), _reference_stage(model, x, source))


def test_skip_configurations_change_the_computation():
    x = images(seed=2)
    outputs = {}
    for source, paths in [
        ("stage", "both"),
        ("stage", "token"),
        ("stage", "channel"),
        ("block", "both"),
        ("bn_spike", "both"),
        ("none", "both"),
    ]:
        model = build_model(one_stage(source, paths), num_classes=4, image_size=16, seed=1)
        outputs[(source, paths)] = model(x).detach()
    keys = list(outputs)
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            assert not torch.allclose(outputs[a], outputs[b]), (a, b)


def test_drop_path_is_active_only_in_training():
    model = build_model(one_stage(drop_path=0.5), num_classes=4, image_size=16, seed=1)
    x = images(b=8)
    model.eval()
    torch.testing.assert_close(model(x), model(x))
    model.train()
    torch.manual_seed(0)
    a = model(x)
    torch.manual_seed(1)
    assert not torch.allclose(a, model(x))
