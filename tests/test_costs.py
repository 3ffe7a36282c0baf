"""measure_costs and count_params_macs: hand-computed models, spikingjelly cross-checks, presets, CLI."""

from __future__ import annotations

import argparse
import json

import pytest
import torch
from torch import nn

from snn_nas.costs import CostError, CostReport, EnergyModel, count_params_macs, measure_costs
from snn_nas.neurons import LIF


class Threshold(nn.Module):
    """A spiking neuron with a known output: spike where the input is >= 1 (no memory)."""

    is_spiking_neuron = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x >= 1).to(x.dtype)


class TinySNN(nn.Module):
    """[B, 1, 4, 4] -> stem conv 2x2/2 (ones) -> spikes [2x2] -> conv 3x3 pad 1 (1 -> 2) -> linear 8 -> 3."""

    def __init__(self, time_steps: int = 2) -> None:
        super().__init__()
        self.time_steps = time_steps
        self.stem = nn.Conv2d(1, 1, 2, stride=2, bias=False)
        nn.init.ones_(self.stem.weight)
        self.neuron = Threshold()
        self.conv = nn.Conv2d(1, 2, 3, padding=1, bias=False)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4:
            x = x.unsqueeze(0).expand(self.time_steps, *x.shape)
        steps, batch = x.shape[:2]
        s = self.neuron(self.stem(x.flatten(0, 1)))
        y = self.conv(s).flatten(1)
        return self.head(y).unflatten(0, (steps, batch)).mean(0)


def tiny_images() -> torch.Tensor:
    images = torch.zeros(2, 1, 4, 4)
    images[0, 0, 0, 0] = 1.5  # one spike (top-left token) per step; image 1 never spikes
    return images


def test_measure_costs_hand_computed():
    import snn_nas

    assert snn_nas.measure_costs is measure_costs and snn_nas.CostReport is CostReport
    report = measure_costs(TinySNN(time_steps=2), tiny_images())
    # per image, summed over T = 2:
    # stem: 4 outputs x 4 MACs x 2 steps = 32 MACs; head: 8 x 3 x 2 = 48 MACs (real-valued inputs)
    # conv: image 0 has 1 spike per step, which a 3x3 pad-1 kernel on 2x2 sends to all 4 outputs
    # of 2 channels: 8 SOPs x 2 steps; image 1: 0. Per image: 8.
    assert report.sops == 8
    assert report.macs == 80
    assert report.energy_uj == pytest.approx((8 * 0.9 + 80 * 4.6) * 1e-6)
    assert report.firing_rate == pytest.approx(2 / 16)  # 2 spikes over 2 images x 2 steps x 4 neurons
    assert report.time_steps == 2 and report.batch_size == 2
    assert report.macs_per_step == 16 + 4 * 2 * 9 + 24
    assert report.params == 4 + 18 + 27
    rows = [(r.name, r.kind, r.input_rate, r.sops, r.macs) for r in report.layers]
    assert rows == [("stem", "Conv2d", None, 0, 32), ("conv", "Conv2d", 2 / 16, 8, 0), ("head", "Linear", None, 0, 48)]
    (neuron,) = report.neurons
    assert (neuron.name, neuron.rate, neuron.neurons) == ("neuron", 2 / 16, 4)


def test_measure_costs_sequence_input_overrides_time_steps():
    seq = tiny_images().unsqueeze(0).repeat(3, 1, 1, 1, 1)  # [T=3, B=2, 1, 4, 4]
    report = measure_costs(TinySNN(time_steps=2), seq)
    assert (report.time_steps, report.batch_size) == (3, 2)
    assert (report.sops, report.macs) == (12, 120)


def test_measure_costs_energy_model_is_configurable():
    report = measure_costs(TinySNN(), tiny_images(), energy=EnergyModel(1.0, 10.0))
    assert report.energy_uj == pytest.approx((8 * 1.0 + 80 * 10.0) * 1e-6)
    assert (report.energy_per_sop_pj, report.energy_per_mac_pj) == (1.0, 10.0)


def test_all_zero_input_gives_zero_sops():
    report = measure_costs(TinySNN(), torch.zeros(3, 1, 4, 4))
    assert report.sops == 0 and report.firing_rate == 0
    # Decision: an input whose values are all in {0, 1} counts as spikes wherever it appears, so
    # an all-zero image costs nothing at the stem and head either (no event, no work).
    assert report.macs == 0 and report.energy_uj == 0
    assert [row.input_rate for row in report.layers] == [0.0, 0.0, 0.0]


class SmallLIFNet(nn.Module):
    """Stem + BN + LIF + grouped conv + LIF + linear head; BN and dropout to check nothing changes."""

    def __init__(self) -> None:
        super().__init__()
        self.time_steps = 2
        self.stem = nn.Conv2d(3, 4, 2, 2, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.lif1 = LIF()
        self.conv = nn.Conv2d(4, 4, 3, padding=1, groups=2)
        self.lif2 = LIF()
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4:
            x = x.unsqueeze(0).repeat(self.time_steps, 1, 1, 1, 1)
        steps, batch = x.shape[:2]
        s = self.lif1(3 * self.bn(self.stem(x.flatten(0, 1))).unflatten(0, (steps, batch)))
        s = self.lif2(2 * self.conv(s.flatten(0, 1)).unflatten(0, (steps, batch)))
        return self.head(self.drop(s.mean((-1, -2)))).mean(0)


def test_measure_costs_leaves_model_unchanged():
    torch.manual_seed(0)
    model = SmallLIFNet()
    model.train()
    model.head.eval()  # mixed flags must come back as they were
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = {name: m.training for name, m in model.named_modules()}
    images = torch.randn(3, 3, 8, 8)
    report = measure_costs(model, images)
    assert {name: m.training for name, m in model.named_modules()} == flags
    after = model.state_dict()
    assert after.keys() == before.keys()  # no thop buffers left behind
    for key, value in before.items():
        assert torch.equal(after[key], value), key  # BN running stats untouched (eval mode)
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks
    assert report.sops > 0 and report.firing_rate is not None
    assert measure_costs(model, images).to_dict() == report.to_dict()  # deterministic (no dropout)


def test_lif_model_agrees_with_spikingjelly_synop_and_mac_counters():
    from spikingjelly.activation_based.op_counter import DispatchCounterMode, MACCounter, SynOpCounter

    torch.manual_seed(1)
    model = SmallLIFNet().eval()
    images = torch.randn(4, 3, 8, 8)
    report = measure_costs(model, images)
    synops = SynOpCounter()
    macs = MACCounter(extra_ignore_modules=[nn.BatchNorm2d])
    with torch.no_grad(), DispatchCounterMode([synops, macs]):
        model(images)
    assert report.sops > 0
    assert report.sops == synops.get_total() / 4
    assert report.macs == macs.get_total() / 4


def test_report_to_dict_is_json_primitives():
    data = measure_costs(TinySNN(), tiny_images()).to_dict()
    assert json.loads(json.dumps(data)) == data
    for key in ("sops", "macs", "energy_uj", "firing_rate", "layers", "params", "macs_per_step", "time_steps"):
        assert key in data
    assert data["layers"][1] == {
        "name": "conv",
        "kind": "Conv2d",
        "input_rate": 0.125,
        "sops": 8.0,
        "macs": 0.0,
        "dense_macs": 144.0,
    }


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (torch.zeros(1, 4, 4), r"\[B, C, H, W\]"),
        (torch.zeros(0, 1, 4, 4), "empty"),
        (torch.zeros(1, 1, 4, 4, dtype=torch.long), "floating"),
        ([[0.0]], "tensor"),
    ],
)
def test_measure_costs_rejects_bad_images(images, message):
    with pytest.raises(CostError, match=message):
        measure_costs(TinySNN(), images)


# ---------------------------------------------------------------------------- dense MACs (thop)
class Mixed(nn.Module):
    """Modules thop knows, a norm (0 MACs by our rule) and a functional einsum thop cannot see."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.mix = nn.Parameter(torch.randn(4, 6))
        self.fc = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(torch.relu(self.bn(self.conv(x)))).flatten(1)
        return self.fc(torch.einsum("bc,cd->bd", h, self.mix))


def test_count_params_macs_rules_and_functional_ops():
    model = Mixed()
    params, macs = count_params_macs(model, 5, 2)
    assert params == (4 * 2 * 9 + 4) + 8 + 24 + (6 * 3 + 3)
    assert macs == 25 * 4 * 2 * 9 + 4 * 6 + 6 * 3  # conv + einsum + linear; BN, ReLU, pooling: 0
    assert set(model.state_dict()) == set(Mixed().state_dict())  # thop's buffers removed
    with torch.device("meta"):
        on_meta = Mixed()
    assert count_params_macs(on_meta, 5, 2) == (params, macs)


def test_count_params_macs_one_step_of_a_spiking_model():
    model = TinySNN(time_steps=4)
    model.image_size, model.in_chans = 4, 1
    assert count_params_macs(model) == (49, 16 + 72 + 24)  # one image, one step, whatever T is


def test_count_params_macs_needs_a_size():
    with pytest.raises(CostError, match="image_size"):
        count_params_macs(Mixed())


def test_spikingjelly_multistep_network():
    """Multi-step spikingjelly layers ([T, B, ...] inputs) and its own LIF nodes."""
    from spikingjelly.activation_based import layer, neuron
    from spikingjelly.activation_based.op_counter import DispatchCounterMode, SynOpCounter

    torch.manual_seed(2)
    model = nn.Sequential(
        layer.Conv2d(2, 4, 3, padding=1, step_mode="m"),
        neuron.LIFNode(step_mode="m"),
        layer.Flatten(step_mode="m"),
        layer.Linear(100, 3, step_mode="m"),
    )
    model.time_steps = 3  # so count_params_macs feeds [T=1, B=1, C, H, W]
    assert count_params_macs(model, 5, 2)[1] == 25 * 4 * 2 * 9 + 100 * 3
    images = 3 * torch.randn(3, 2, 2, 5, 5)  # [T, B, C, H, W]
    report = measure_costs(model, images)
    assert isinstance(model[1].v, float)  # membrane reset after measuring
    counter = SynOpCounter()
    with torch.no_grad(), DispatchCounterMode([counter]):
        model(images)
    assert report.sops > 0 and report.sops == counter.get_total() / 2
    assert report.macs == 3 * 25 * 4 * 2 * 9  # the conv on the analog input, 3 steps
    assert [n.name for n in report.neurons] == ["1"]


def test_group_lif_with_spike_output_is_a_spiking_neuron():
    from snn_nas.builder import build_model
    from snn_nas.costs import spiking_neuron_modules
    from snn_nas.genotype import AxisMixer, Genotype, Stage

    mixer = AxisMixer(op="group_lif", group=2, output="spike")
    model = build_model(Genotype(stages=(Stage(depth=1, dim=8, token_h=mixer),), time_steps=2), 3, 16, 1, seed=0)
    kinds = {name: type(module).__name__ for name, module in spiking_neuron_modules(model)}
    assert kinds["stages.0.blocks.0.token.mix_h.lif"] == "GroupLIF"
    assert "LIF" in kinds.values()


# ---------------------------------------------------------------------------- presets
def _preset_model(name: str, image_size: int, num_classes: int, *, meta: bool = False) -> nn.Module:
    from snn_nas.builder import build_model
    from snn_nas.presets import get_preset

    if meta:
        with torch.device("meta"):
            return build_model(get_preset(name), num_classes, image_size, 3)
    return build_model(get_preset(name), num_classes, image_size, 3, seed=0)


@pytest.mark.parametrize(
    ("name", "params_m", "gmacs"),
    [("snn_mlp_t", 28.3, 4.4), ("snn_mlp_s", 49.7, 8.5), ("snn_mlp_b", 87.9, 15.2)],
)
def test_snn_mlp_presets_match_published_params_and_flops(name, params_m, gmacs):
    """Counted on the meta device at 224 (no memory, no arithmetic): about a second each."""
    params, macs = count_params_macs(_preset_model(name, 224, 1000, meta=True))
    assert round(params / 1e6, 1) == params_m
    assert round(macs / 1e9, 1) == gmacs


@pytest.mark.parametrize(("name", "params_m"), [("mlp_spe_t", 25), ("mlp_spe_s", 38), ("mlp_s", 34)])
def test_spiking_presets_match_published_params(name, params_m):
    """Published as whole millions (25M, 38M, 34M: mlp_s counts 34.51 M, so the paper's figures are
    not all rounded the same way); dense MACs per step are not published for these."""
    model = _preset_model(name, 224, 1000, meta=True)
    params, macs = count_params_macs(model)
    assert abs(params / 1e6 - params_m) < 0.6
    assert macs > 0 and model.time_steps == 4


def test_spiking_preset_agrees_with_spikingjelly_and_dense_count():
    from spikingjelly.activation_based.op_counter import DispatchCounterMode, SynOpCounter

    model = _preset_model("mlp_spe_micro", 32, 10).eval()
    images = 2 * torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    report = measure_costs(model, images)
    counter = SynOpCounter()
    with torch.no_grad(), DispatchCounterMode([counter]):
        model(images)
    assert report.sops > 0 and 0 < report.firing_rate < 1
    assert report.sops == counter.get_total() / 2
    # every synaptic op of one step, run dense, is what thop counts per step
    dense_total = sum(row.dense_macs for row in report.layers)
    assert dense_total == report.time_steps * report.macs_per_step
    stem = report.layers[0]
    assert stem.input_rate is None and stem.sops == 0 and stem.macs == stem.dense_macs > 0


def test_non_spiking_preset_has_zero_sops_and_all_macs():
    model = _preset_model("snn_mlp_micro", 32, 10)
    report = measure_costs(model, torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
    assert report.sops == 0
    assert report.firing_rate is None and report.neurons == ()
    assert report.time_steps == 1
    assert report.macs == report.macs_per_step > 0
    assert isinstance(report, CostReport)


# ---------------------------------------------------------------------------- CLI
def run_profile(argv: list[str]) -> int:
    from snn_nas.cli import profile

    parser = argparse.ArgumentParser()
    profile.add_arguments(parser)
    return profile.run(parser.parse_args(argv))


def test_cli_profile_dense_json(capsys):
    assert run_profile(["snn_mlp_t", "--image-size", "224", "--num-classes", "1000", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert round(data["params"] / 1e6, 1) == 28.3
    assert round(data["macs_per_step"] / 1e9, 1) == 4.4
    assert data["time_steps"] == 1


def test_cli_profile_dataset_table_and_json(capsys, tmp_path):
    from snn_nas.genotype import Genotype, Stage

    arch = tmp_path / "arch.json"
    arch.write_text(Genotype(stages=(Stage(depth=1, dim=8),), time_steps=2).to_json())
    argv = [str(arch), "--dataset", "synthetic:train=8,val=4,classes=3", "--batch", "2", "--image-size", "16"]
    assert run_profile([*argv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    for key in ("sops", "macs", "energy_uj", "firing_rate", "layers", "params", "macs_per_step", "time_steps"):
        assert key in data
    assert (data["batch_size"], data["num_classes"], data["image_size"], data["time_steps"]) == (2, 3, 16, 2)
    assert data["energy_uj"] == pytest.approx((0.9 * data["sops"] + 4.6 * data["macs"]) * 1e-6)
    assert run_profile([*argv, "--sop-pj", "1.5"]) == 0
    text = capsys.readouterr().out
    assert "1.5 pJ/SOP, 4.6 pJ/MAC" in text and "stages.0.encoder.proj.0" in text and "SOPs / image" in text


def test_cli_profile_bad_input():
    from snn_nas.errors import SnnNasError

    with pytest.raises(SnnNasError, match="no_such_preset"):
        run_profile(["no_such_preset"])
    with pytest.raises(SnnNasError, match="--batch"):
        run_profile(["mlp_spe_micro", "--dataset", "synthetic", "--batch", "0"])
    with pytest.raises(SnnNasError, match="--mac-pj"):
        run_profile(["mlp_spe_micro", "--mac-pj", "-1"])
