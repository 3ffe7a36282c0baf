"""The cost model: synaptic operations, MACs, energy and firing rates of a model.

``measure_costs(model, images)`` runs a model on a calibration batch under an operator-level
probe and returns a ``CostReport`` (per image, summed over the time steps);
``count_params_macs(model, image_size, in_chans)`` gives parameters and dense MACs per time
step (thop with our counting rules). The pure counting rules live in ``counting``.
"""

from __future__ import annotations

from snn_nas.costs.counting import conv_macs, conv_sops, energy_uj, is_binary, matmul_macs, matmul_sops
from snn_nas.costs.macs import count_params, count_params_macs, mac_rule
from snn_nas.costs.measure import measure_costs
from snn_nas.costs.probe import OperatorProbe, spiking_neuron_modules
from snn_nas.costs.report import CostError, CostReport, EnergyModel, LayerCost, NeuronCost, format_count

__all__ = [
    "CostError",
    "CostReport",
    "EnergyModel",
    "LayerCost",
    "NeuronCost",
    "OperatorProbe",
    "conv_macs",
    "conv_sops",
    "count_params",
    "count_params_macs",
    "energy_uj",
    "format_count",
    "is_binary",
    "mac_rule",
    "matmul_macs",
    "matmul_sops",
    "measure_costs",
    "spiking_neuron_modules",
]
