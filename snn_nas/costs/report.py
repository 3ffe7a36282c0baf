"""The cost report of one model on one calibration batch, and the energy model behind it."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from snn_nas.costs.counting import energy_uj
from snn_nas.errors import SnnNasError


class CostError(SnnNasError, ValueError):
    """Bad input to the cost model (an image batch of the wrong shape, a negative energy)."""


@dataclass(frozen=True)
class EnergyModel:
    """Energy per operation in picojoules (45 nm CMOS figures of Horowitz, ISSCC 2014:
    a 32-bit float add 0.9 pJ, a 32-bit float multiply-add 4.6 pJ)."""

    energy_per_sop_pj: float = 0.9
    energy_per_mac_pj: float = 4.6

    def __post_init__(self) -> None:
        for name in ("energy_per_sop_pj", "energy_per_mac_pj"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise CostError(f"{name}: expected a finite number >= 0 (picojoules), got {value!r}")
            object.__setattr__(self, name, float(value))

    def energy_uj(self, sops: float, macs: float) -> float:
        """Microjoules for ``sops`` accumulates and ``macs`` multiply-accumulates."""
        return energy_uj(sops, macs, self.energy_per_sop_pj, self.energy_per_mac_pj)

    def describe(self) -> str:
        return f"{self.energy_per_sop_pj:g} pJ/SOP, {self.energy_per_mac_pj:g} pJ/MAC"


@dataclass(frozen=True)
class LayerCost:
    """Synaptic operations of one module, per image, summed over the time steps.

    ``input_rate``: firing rate of the module's spiking inputs (None when its inputs are
    real-valued); ``sops``: accumulates triggered by those spikes; ``macs``: MACs of its
    operations on real-valued inputs; ``dense_macs``: MACs of all its operations if run dense.
    """

    name: str
    kind: str
    input_rate: float | None
    sops: float
    macs: float
    dense_macs: float = 0.0

    def energy_uj(self, energy: EnergyModel) -> float:
        return energy.energy_uj(self.sops, self.macs)


@dataclass(frozen=True)
class NeuronCost:
    """Firing of one spiking-neuron module: ``rate`` (spikes per neuron per time step) and
    ``neurons`` (its neurons per image, i.e. output elements per image and time step)."""

    name: str
    kind: str
    rate: float
    neurons: float


@dataclass(frozen=True)
class CostReport:
    """Costs of one model on a batch of images, per image, summed over ``time_steps``.

    ``sops``: synaptic accumulates triggered by spikes; ``macs``: multiply-accumulates of
    synaptic operations on real-valued inputs; ``energy_uj``: ``energy_per_sop_pj * sops +
    energy_per_mac_pj * macs`` in microjoules; ``firing_rate``: mean over all spiking neurons and
    time steps, weighted by neuron count (None for a model without spiking neurons); ``layers``:
    per-module rows in execution order; ``neurons``: per spiking-neuron-module firing, led by
    the input layer (``(input)``, kind ``input``) when the input is spikes (event frames);
    ``params``: parameter count; ``macs_per_step``: dense MACs of one image at one time step.
    """

    sops: float
    macs: float
    energy_uj: float
    firing_rate: float | None
    layers: tuple[LayerCost, ...]
    params: int
    macs_per_step: int
    time_steps: int
    energy_per_sop_pj: float
    energy_per_mac_pj: float
    batch_size: int = 1
    neurons: tuple[NeuronCost, ...] = field(default=())

    @property
    def input_rate(self) -> float | None:
        """Firing rate of the input layer when the input is spikes (event frames), else None."""
        return next((n.rate for n in self.neurons if n.kind == "input"), None)

    @property
    def energy(self) -> EnergyModel:
        return EnergyModel(self.energy_per_sop_pj, self.energy_per_mac_pj)

    def to_dict(self) -> dict[str, Any]:
        """Primitives only (JSON-ready): the scalar keys, ``layers`` and ``neurons`` as lists of dicts."""
        data = asdict(self)
        data["layers"] = [asdict(row) for row in self.layers]
        data["neurons"] = [asdict(row) for row in self.neurons]
        return data

    def metrics(self) -> dict[str, float | int | None]:
        """The scalar figures only (what a result-table row stores)."""
        return {
            "sops": self.sops,
            "macs": self.macs,
            "energy_uj": self.energy_uj,
            "firing_rate": self.firing_rate,
            "params": self.params,
            "macs_per_step": self.macs_per_step,
            "time_steps": self.time_steps,
        }


def format_count(value: float | None, digits: int = 3) -> str:
    """``4363290624 -> '4.36 G'``; small values as integers or with 3 significant digits."""
    if value is None:
        return "-"
    magnitude = abs(value)
    for limit, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if magnitude >= limit:
            return f"{value / limit:.{digits}g} {suffix}"
    if float(value).is_integer():
        return f"{int(value)}"
    return f"{value:.{digits}g}"
