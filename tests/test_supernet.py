"""The supernet: every architecture of a space is a view of one store of weights."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from snn_nas.genotype import Cell, Genotype
from snn_nas.presets import get_preset
from snn_nas.space import load_space, shipped_spaces
from snn_nas.supernet import Supernet, SupernetBounds, SupernetError
from snn_nas.supernet.layout import store_layout


@pytest.fixture(scope="module")
def quick():
    space = load_space("quick")
    bounds = SupernetBounds.from_space(space, num_classes=10, in_chans=1)
    return space, Supernet(bounds, seed=0)


def outputs_agree(net: Supernet, genotype: Genotype, x: torch.Tensor) -> None:
    """The supernet in configuration ``genotype`` and the extracted model compute the same
    numbers, in training mode (batch statistics; stochastic depth drawn from one seed) and in
    eval mode (running statistics)."""
    sub = net.subnet(genotype)
    for training in (True, False):
        net.train(training)
        sub.train(training)
        torch.manual_seed(1)
        a = net(x, genotype)
        torch.manual_seed(1)
        b = sub(x)
        assert torch.equal(a, b), f"{genotype.summary()} training={training}: max diff {(a - b).abs().max()}"


def test_supernet_and_extracted_subnet_give_identical_outputs(quick):
    space, net = quick
    x = torch.randn(3, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    genotypes = [space.decode(space.sample(seed)) for seed in range(12)]
    genotypes.append(space.decode(space.encode(get_preset("mlp_spe_micro"))))
    for genotype in genotypes:
        outputs_agree(net, genotype, x)


def test_snn_mlp_family_extracts_identically():
    space = load_space("snn_mlp")
    bounds = SupernetBounds.from_space(space, num_classes=4, in_chans=3, image_size=32)
    net = Supernet(bounds, seed=0)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    outputs_agree(net, space.decode(space.sample(0)), x)  # drop path > 0: seeded in both


def test_subnets_share_one_store_channel_by_channel(quick):
    """Hidden units are shared as leading slices; a stream channel after a patch-encoding cell
    (node n, channel i of that node) is one store entry whatever the width and node count, so
    the blocks that read it always see the node channel it was trained on."""
    space, net = quick
    micro = space.decode(space.encode(get_preset("mlp_spe_micro")))
    wider = space.decode({**space.encode(micro), "base_dim": 36})
    assert wider.stages[1].dim == 72 and micro.stages[1].dim == 48 and micro.stages[1].encoder.nodes == 3
    name = "stages.1.blocks.0.channel.fc1.weight"
    small = net.subnet(micro).state_dict()[name]  # [hidden, 3 nodes x 16 channels]
    big = net.subnet(wider).state_dict()[name]  # [hidden, 3 nodes x 24 channels]
    for node in range(3):
        assert torch.equal(big[: small.shape[0], node * 24 : node * 24 + 16], small[:, node * 16 : node * 16 + 16])
    assert not torch.equal(big[: small.shape[0], : small.shape[1]], small)  # not the leading 48 columns
    one_node = space.decode({**space.encode(micro), "stage2.cell.nodes": 1})
    single = net.subnet(one_node).state_dict()[name]
    assert torch.equal(single[: small.shape[0], :16], small[:, :16])  # node 0's channels
    # the next cell's input edges read the stream the same way
    conv = "stages.2.encoder.inputs.0.0.weight"
    a, b = net.subnet(micro).state_dict()[conv], net.subnet(wider).state_dict()[conv]
    assert torch.equal(b[: a.shape[0], 24:40], a[:, 16:32])
    # gradients of a forward land in the slots the architecture uses, nowhere else
    net.train()
    net.zero_grad()
    stats = "stages.1.blocks.0.token.bn.running_mean"
    before = net.store(stats).clone()
    net(torch.randn(2, 1, 32, 32), micro).square().mean().backward()
    moved = (net.store(stats) != before).nonzero().flatten().tolist()
    assert moved and set(moved) <= {*range(16), *range(72, 88), *range(108, 124)}  # written back to the slots
    assert any(72 <= m < 88 for m in moved)
    grad = net.store(name).grad
    assert grad is not None
    slots = [0, 72, 108]  # node slots of 72, 36 and 24 channels (stage 2's widest: 72 = 1 node)
    used = torch.zeros(grad.shape[1], dtype=torch.bool)
    for start in slots:
        used[start : start + 16] = True
        assert grad[: small.shape[0], start : start + 16].abs().sum() > 0
    assert grad[:, ~used].abs().sum() == 0 and grad[small.shape[0] :].abs().sum() == 0


@pytest.mark.parametrize("name", shipped_spaces())
def test_random_samples_of_every_shipped_space_extract(name):
    """Every tensor of every sampled architecture has a slot in the layout and fits its shape
    (checked on the meta device: the ImageNet spaces hold about 100 M weights)."""
    space = load_space(name)
    bounds = SupernetBounds.from_space(space, num_classes=1000, in_chans=3)
    net = Supernet(bounds, meta=True)
    used: set[str] = set()
    for seed in range(25):
        plan = net.plan(space.decode(space.sample(seed)))
        used.update(item.slot for item in plan.items)
        assert plan.items
    assert used <= {k.replace(".", "/") for k in store_layout(bounds)}


def test_the_quick_space_extracts_for_real_and_the_model_is_an_ordinary_one(quick, tmp_path):
    from snn_nas.checkpoint import load_model, save_checkpoint
    from snn_nas.costs import measure_costs

    space, net = quick
    genotype = space.decode(space.sample(3))
    model = net.subnet(genotype).eval()
    report = measure_costs(model, torch.rand(4, 1, 32, 32))
    assert report.params == sum(p.numel() for p in model.parameters())
    path = save_checkpoint(
        tmp_path / "sub.pt",
        {"epoch": 0, "model": model.state_dict(), "genotype": genotype.to_dict(), "config": None,
         "model_args": {"num_classes": 10, "image_size": 32, "in_chans": 1}},
    )  # fmt: skip
    x = torch.rand(2, 1, 32, 32)
    assert torch.equal(load_model(path)(x), model(x))


def test_a_genotype_outside_the_supernet_names_the_dimension(quick):
    space, net = quick
    base = space.decode(space.encode(get_preset("mlp_spe_micro")))
    stages = list(base.stages)

    def with_stage(i: int, **changes) -> Genotype:
        new = list(stages)
        new[i] = replace(new[i], **changes)
        return replace(base, stages=tuple(new))

    cases = {
        "stages[0].depth": with_stage(0, depth=3),
        "stages[1].dim": with_stage(1, dim=300, encoder=Cell(("conv3x3",), ((),))),
        "patch_size: 8": replace(base, patch_size=8),
        "mlp_ratio": replace(base, mlp_ratio=5.0),  # 24 x 5 = 120 hidden > 36 x 3
        "stages: 4 stages": replace(base, stages=(*stages, replace(stages[-1], dim=144))),
        "family": get_preset("snn_mlp_micro"),
    }
    for dimension, genotype in cases.items():
        with pytest.raises(SupernetError, match=dimension.replace("[", r"\[").replace("]", r"\]")):
            net(torch.zeros(1, 1, 32, 32), genotype)


def test_bounds_round_trip_and_read_the_space(quick):
    _, net = quick
    bounds = net.bounds
    assert SupernetBounds.from_dict(bounds.to_dict()) == bounds
    assert [s.dim for s in bounds.stages] == [36, 72, 144]
    assert bounds.patch_sizes == (2, 4) and bounds.stage_counts == (1, 2, 3)
    assert bounds.stages[2].sides == (2, 4)  # stage 3 at 32 px: patch 4 -> 8, 4, 2; patch 2 -> 16, 8, 4
    with pytest.raises(SupernetError, match="malformed"):
        SupernetBounds.from_dict({"space": "x"})
