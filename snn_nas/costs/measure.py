"""``measure_costs``: SOPs, MACs, energy and firing rates of a model on a batch of real images."""

from __future__ import annotations

import math

import torch
from torch import nn

from snn_nas.costs.counting import count_nonzero, is_binary
from snn_nas.costs.macs import count_params, count_params_macs
from snn_nas.costs.probe import OperatorProbe
from snn_nas.costs.report import CostError, CostReport, EnergyModel, LayerCost, NeuronCost

INPUT_LAYER = "(input)"
"""The name of the input layer's row in ``CostReport.neurons`` when the input is spikes."""


def _check_images(images: object) -> torch.Tensor:
    if not isinstance(images, torch.Tensor):
        raise CostError(f"images: expected a tensor [B, C, H, W] or [T, B, C, H, W], got {type(images).__name__}")
    if images.ndim not in (4, 5):
        raise CostError(f"images: expected [B, C, H, W] or [T, B, C, H, W], got a tensor of shape {list(images.shape)}")
    if images.numel() == 0:
        raise CostError(f"images: the batch is empty (shape {list(images.shape)})")
    if not images.is_floating_point():
        raise CostError(f"images: expected a floating-point tensor (normalised images), got {images.dtype}")
    if not bool(torch.isfinite(images).all()):
        bad = int((~torch.isfinite(images)).sum())
        raise CostError(
            f"images: {bad} value(s) are NaN or infinite; costs are counted on real images (a NaN input fires no "
            "spike and would report 0 SOPs)"
        )
    return images


def measure_costs(
    model: nn.Module,
    images: torch.Tensor,
    *,
    energy: EnergyModel | None = None,
    macs_per_step: int | None = None,
) -> CostReport:
    """Run ``model`` once on ``images`` and count what its synaptic operations cost.

    ``images``: ``[B, C, H, W]`` (repeated over ``model.time_steps``) or ``[T, B, C, H, W]``
    (``T`` overrides it). The forward runs without gradients in eval mode; every module's
    train/eval flag is restored afterwards and no parameter or buffer changes. All figures of
    the returned ``CostReport`` are per image (totals divided by ``B``) and summed over the
    ``T`` time steps. ``macs_per_step`` (dense MACs of one image at one step) is counted with
    ``count_params_macs`` at the images' size unless given. ``energy`` defaults to
    ``EnergyModel()`` (0.9 pJ/SOP, 4.6 pJ/MAC).

    Spiking input (every value 0 or 1, e.g. the binary frames of event data): the first
    synaptic layer's operations are accumulates (SOPs), as for any binary activation, and the
    input layer's firing rate (spikes per pixel and step) is the first row of ``neurons``,
    named ``(input)``; ``firing_rate`` stays the mean over the network's own neurons.
    """
    energy = EnergyModel() if energy is None else energy
    if not isinstance(energy, EnergyModel):
        raise CostError(f"energy: expected an EnergyModel, got {type(energy).__name__}")
    if not isinstance(model, nn.Module):
        raise CostError(f"model: expected a torch.nn.Module (snn_nas.build_model), got {type(model).__name__}")
    images = _check_images(images)
    if images.ndim == 5:
        time_steps, batch = int(images.shape[0]), int(images.shape[1])
    else:
        time_steps, batch = int(getattr(model, "time_steps", 1)), int(images.shape[0])
    reference = next(iter((*model.parameters(), *model.buffers())), None)
    if reference is not None and images.device != reference.device:
        images = images.to(reference.device)

    flags = {m: m.training for m in model.modules()}
    try:
        model.eval()
        with torch.no_grad(), OperatorProbe(model) as probe:
            model(images)
    finally:
        for module, flag in flags.items():
            module.training = flag

    if macs_per_step is None:
        size = (int(images.shape[-2]), int(images.shape[-1]))
        _, macs_per_step = count_params_macs(model, size, int(images.shape[-3]))

    layers = tuple(
        LayerCost(
            name=t.name,
            kind=t.kind,
            input_rate=t.input_rate,
            sops=t.sops / batch,
            macs=t.macs / batch,
            dense_macs=t.dense_macs / batch,
        )
        for t in probe.iter_layers()
    )
    neurons = tuple(
        NeuronCost(name=t.name, kind=t.kind, rate=t.rate, neurons=t.elements / (batch * time_steps))
        for t in probe.neurons.values()
    )
    if is_binary(images):  # spiking input (event frames): the input layer's firing leads the rows
        rate = count_nonzero(images) / images.numel()
        pixels = math.prod(images.shape[-3:])  # input neurons per image and step: C x H x W
        neurons = (NeuronCost(name=INPUT_LAYER, kind="input", rate=rate, neurons=pixels), *neurons)
    spikes = sum(t.spikes for t in probe.neurons.values())
    elements = sum(t.elements for t in probe.neurons.values())
    sops, macs = probe.sops / batch, probe.macs / batch
    return CostReport(
        sops=sops,
        macs=macs,
        energy_uj=energy.energy_uj(sops, macs),
        firing_rate=spikes / elements if elements else None,
        layers=layers,
        params=count_params(model),
        macs_per_step=int(macs_per_step),
        time_steps=time_steps,
        energy_per_sop_pj=energy.energy_per_sop_pj,
        energy_per_mac_pj=energy.energy_per_mac_pj,
        batch_size=batch,
        neurons=neurons,
    )
