from __future__ import annotations

import pytest
import torch
from torch import nn

from snn_nas.genotype import AxisMixer, Cell, Neuron
from snn_nas.group_lif import GroupLIF
from snn_nas.layers.common import DropPath, drop_path_rates
from snn_nas.layers.encoders import DagCell, PatchMerge2x2, SpaceToDepth, SpikingStem
from snn_nas.layers.mixing import AxialMLP, ChannelBlock, TokenBlock
from snn_nas.layers.snn_mlp import LIFModule
from snn_nas.neurons import LIF

SPE = Cell(input_ops=("conv3x3",) * 3, node_ops=((), ("conv3x3",), ("identity", "conv3x3")))
NEURON = Neuron()


pytestmark = pytest.mark.usefixtures("one_thread")


def spikes(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=g) < 0.3).float()


def test_spe_cell_is_exactly_the_published_layers():
    cell = DagCell(SPE, in_chans=12, out_chans=18, neuron=NEURON)
    convs = [m for m in cell.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 5  # three stride-2 input edges, two node-to-node edges
    assert sorted((c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding) for c in convs) == sorted(
        [(12, 6, (3, 3), (2, 2), (1, 1))] * 3 + [(6, 6, (3, 3), (1, 1), (1, 1))] * 2
    )
    assert all(c.bias is None for c in convs)
    assert sum(isinstance(m, nn.BatchNorm2d) and m.num_features == 6 for m in cell.modules()) == 5
    assert sum(isinstance(m, LIF) for m in cell.modules()) == 2
    identity_edges = [op for row in SPE.node_ops for op in row if op == "identity"]
    assert identity_edges == ["identity"]
    # 3 x (12*6*9 + 2*6) + 2 x (6*6*9 + 2*6)
    assert sum(p.numel() for p in cell.parameters()) == 3 * (648 + 12) + 2 * (324 + 12)


def test_spe_cell_wiring_matches_the_published_equations():
    cell = DagCell(SPE, in_chans=4, out_chans=6, neuron=NEURON)
    x = spikes(2, 3, 4, 7, 7)  # odd side: output ceil(7/2) = 4
    out = cell(x)
    assert out.shape == (2, 3, 6, 4, 4)
    f = x.flatten(0, 1)
    lif = LIF()

    def spk(n: torch.Tensor) -> torch.Tensor:
        return lif(n.unflatten(0, (2, 3))).flatten(0, 1)

    n1 = cell.inputs["0"](f)
    n2 = cell.inputs["1"](f) + cell.edges["0_1"](spk(n1))
    n3 = cell.inputs["2"](f) + n1 + cell.edges["1_2"](spk(n2))
    torch.testing.assert_close(out, torch.cat([n1, n2, n3], 1).unflatten(0, (2, 3)))


def test_general_cell_with_every_op_and_odd_sides():
    cell = Cell(
        input_ops=("avgpool_conv1x1", "conv1x1", "none", "conv2x2"),
        node_ops=((), ("conv1x1",), ("identity", "conv3x3"), ("none", "identity", "conv1x1")),
    )
    m = DagCell(cell, in_chans=5, out_chans=8, neuron=NEURON)
    assert sorted(m.lifs) == ["0", "1", "2"]  # nodes feeding a later conv edge (node 3 feeds none)
    assert sorted(m.edges) == ["0_1", "1_2", "2_3"]
    out = m(spikes(2, 2, 5, 5, 5))
    assert out.shape == (2, 2, 8, 3, 3)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in m.parameters())


def test_patch_merge_2x2_pads_odd_sides_and_matches_plain_conv_on_even():
    m = PatchMerge2x2(3, 4)
    x = torch.randn(2, 3, 7, 7)
    assert m(x).shape == (2, 4, 4, 4)
    m.eval()
    x = torch.randn(2, 3, 6, 6)
    torch.testing.assert_close(m(x), m.bn(nn.functional.conv2d(x, m.conv.weight, stride=2)))


def test_space_to_depth_order_and_norm():
    m = SpaceToDepth(1, 4)
    with torch.no_grad():
        m.reduction.weight.copy_(torch.eye(4).view(4, 4, 1, 1))
    x = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])  # rows (0,0)=0 (0,1)=1 (1,0)=2 (1,1)=3
    out = m(x).flatten()
    # order (0,0), (1,0), (0,1), (1,1) as (row, col) offsets -> 0, 2, 1, 3; then GN(1, 4) over them
    expected = torch.tensor([0.0, 2.0, 1.0, 3.0])
    expected = (expected - 1.5) / torch.sqrt(torch.tensor(1.25 + 1e-5))
    torch.testing.assert_close(out, expected)
    assert SpaceToDepth(3, 5)(torch.randn(1, 3, 7, 5)).shape == (1, 5, 4, 3)


def test_spiking_stem_folds_time_into_batch():
    stem = SpikingStem(3, 8, 4).eval()
    x = torch.randn(3, 2, 3, 16, 16)
    out = stem(x)
    assert out.shape == (3, 2, 8, 4, 4)
    torch.testing.assert_close(out[1, 0], stem.proj(x[1, 0:1])[0])


def test_axial_mlp_mixes_only_along_its_axis():
    m = AxialMLP("h", 5, NEURON).eval()
    with torch.no_grad():
        m.proj.weight.zero_()
        m.proj.weight[0, 4] = 3.0  # output row 0 = 3 * input row 4
        m.proj.bias.zero_()
    x = torch.zeros(1, 1, 2, 5, 3)
    x[0, 0, 1, 4, 2] = 1.0
    out = m(x)
    assert out.shape == x.shape
    # BN (eval, fresh stats) ~ identity; H[0] = 3 / tau(2) = 1.5 >= v_th: one spike at (c=1, h=0, w=2)
    assert out.sum() == 1 and out[0, 0, 1, 0, 2] == 1
    w = AxialMLP("w", 3, NEURON)
    assert w.proj.weight.shape == (3, 3, 1, 1) and w.bn.num_features == 3
    assert w(x).shape == x.shape


def test_token_block_branches_and_shapes():
    x = spikes(2, 2, 6, 4, 4)
    published = TokenBlock(6, 4, "x", AxisMixer(), AxisMixer(), NEURON)
    assert published.fuse.weight.shape == (6, 18, 1, 1) and published.fuse.bias is None
    assert published(x).shape == x.shape
    only_h = TokenBlock(6, 4, "none", AxisMixer(), AxisMixer("none"), NEURON)
    assert only_h.fuse.weight.shape == (6, 6, 1, 1)
    lif_bn = TokenBlock(6, 4, "lif_bn", AxisMixer("none"), AxisMixer("none"), NEURON)
    assert sum(isinstance(m, LIF) for m in lif_bn.modules()) == 1
    group = TokenBlock(
        6, 4, "x", AxisMixer("group_lif", 2, "both", "spike"), AxisMixer("group_lif", 0, "backward", "real"), NEURON
    )
    lifs = [m for m in group.modules() if isinstance(m, GroupLIF)]
    assert [(g.axis, g.group, g.scan, g.output) for g in lifs] == [
        ("h", 2, "both", "spike"),
        ("w", 0, "backward", "real"),
    ]
    out = group(x)
    assert out.shape == x.shape
    out.sum().backward()
    assert all(g.tau.grad is not None for g in lifs)


def test_channel_block_normalises_over_the_token_index():
    m = ChannelBlock(6, 18, 12, NEURON)
    assert m.fc1.weight.shape == (18, 6) and m.fc1.bias is not None
    assert m.bn1.num_features == 12 and m.bn2.num_features == 12
    x = spikes(2, 3, 6, 3, 4)
    out = m(x)
    assert out.shape == x.shape
    m.eval()
    with torch.no_grad():
        m.bn2.reset_running_stats()  # the train-mode call above moved them
        m.bn2.bias.copy_(torch.arange(12.0))  # token t gets + t
        m.fc2.weight.zero_()
        m.fc2.bias.zero_()
    out = m(x)
    torch.testing.assert_close(out[1, 2, 5], torch.arange(12.0).view(3, 4))


def test_snn_mlp_lif_module_matches_the_published_structure():
    mixer = AxisMixer("group_lif", 4, "forward", "real")
    m = LIFModule(16, 8, mixer, mixer)
    groups = [g for g in m.modules() if isinstance(g, GroupLIF)]
    assert [(g.axis, g.group) for g in groups] == [("h", 4), ("w", 4)]
    convs = [c for c in m.modules() if isinstance(c, nn.Conv2d)]
    assert len(convs) == 5 and all(c.bias is not None for c in convs)
    assert m.dw.groups == 16 and m.dw.kernel_size == (3, 3)
    assert all(n.num_groups == 1 for n in m.modules() if isinstance(n, nn.GroupNorm))
    # 4 conv1x1 (C^2 + C) + dw (9C + C) + 3 GN (2C) + 2 x (tau, v_th)
    c = 16
    assert sum(p.numel() for p in m.parameters()) == 4 * (c * c + c) + 10 * c + 6 * c + 4
    x = torch.randn(2, 16, 8, 8)
    assert m(x).shape == x.shape
    single = LIFModule(16, 8, AxisMixer("none"), AxisMixer("mlp"))
    assert single.branch_h is None and single.branch_w.mixer.proj.weight.shape == (8, 8, 1, 1)
    assert single(x).shape == x.shape


def test_drop_path_rates_and_per_sample_masks():
    assert drop_path_rates(1, 0.3) == [0.0]
    assert drop_path_rates(5, 0.2) == pytest.approx(torch.linspace(0, 0.2, 5).tolist())
    dp = DropPath(0.5, batch_dim=1).train()
    torch.manual_seed(0)
    out = dp(torch.ones(3, 64, 2))
    per_sample = out[0, :, 0]
    assert set(per_sample.unique().tolist()) <= {0.0, 2.0}
    assert torch.equal(out[0], out[2])  # a sample is kept or dropped at every step alike
    assert torch.equal(dp.eval()(torch.ones(3, 4, 2)), torch.ones(3, 4, 2))
