"""The ``oneshot:`` block of an experiment file: a two-stage, weight-sharing search.

::

    oneshot:
      supernet:                 # snn_nas.supernet.config.SupernetConfig (training, evaluation)
        epochs: 6
        random_subnets: 2
        bn_batches: 4
      stage2:
        top: 4                  # the most accurate points of stage 1's front
        spread: 4               # more front points, evenly spread along log cost
        near_baselines: 1       # best estimates next to each seed design's cost, on each side
        near_band: 2.0          # ... within this cost ratio of the seed design
        seeds: 2                # training seeds of those (and of the seed designs)
        init: scratch           # scratch | inherit (start from the supernet's weights)

Stage 1 explores ``trials`` architectures on the supernet with the experiment's ``sampler``
(each an ordinary Ray Tune trial at the *supernet fidelity*: inherit, recalibrate batch norm,
measure). Stage 2 trains the chosen front points as standalone trials at the experiment's
``fidelity``; only those form the reported front (``snn_nas.search.oneshot``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from snn_nas.errors import SnnNasError
from snn_nas.supernet.config import SupernetConfig

INITS = ("scratch", "inherit")


@dataclass(frozen=True)
class Stage2:
    """Which stage-1 front points train standalone, with how many seeds, from which weights."""

    top: int = 4
    spread: int = 4
    near_baselines: int = 1
    near_band: float = 2.0
    seeds: int = 2
    init: str = "scratch"


@dataclass(frozen=True)
class OneShot:
    """A two-stage search's settings (module docstring)."""

    supernet: SupernetConfig = field(default_factory=SupernetConfig)
    stage2: Stage2 = field(default_factory=Stage2)

    def to_dict(self) -> dict[str, Any]:
        return {"supernet": self.supernet.to_dict(), "stage2": asdict(self.stage2)}


def parse_oneshot(source: str, value: Any, error: type[SnnNasError]) -> OneShot | None:
    """The ``oneshot`` block (None when absent); ``error`` (naming ``source`` and the key) for
    bad content."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise error(f"{source}: oneshot: expected a mapping with 'supernet' and 'stage2', got {type(value).__name__}")
    unknown = sorted(str(k) for k in value if k not in ("supernet", "stage2"))
    if unknown:
        raise error(f"{source}: oneshot: unknown key(s) {unknown}; allowed: ['supernet', 'stage2']")
    try:
        supernet = SupernetConfig.from_dict(value.get("supernet"), where="oneshot.supernet")
    except SnnNasError as exc:
        raise error(f"{source}: {exc}") from None
    raw = value.get("stage2") or {}
    if not isinstance(raw, dict):
        raise error(f"{source}: oneshot.stage2: expected a mapping, got {type(raw).__name__}")
    allowed = [f.name for f in fields(Stage2)]
    unknown = sorted(str(k) for k in raw if k not in allowed)
    if unknown:
        raise error(f"{source}: oneshot.stage2: unknown key(s) {unknown}; allowed: {allowed}")
    stage2 = Stage2(**raw)
    for name, low in (("top", 0), ("spread", 0), ("near_baselines", 0), ("seeds", 1)):
        number = getattr(stage2, name)
        if isinstance(number, bool) or not isinstance(number, int) or not low <= number <= 1000:
            raise error(f"{source}: oneshot.stage2.{name}: expected an integer in [{low}, 1000], got {number!r}")
    band = stage2.near_band
    if isinstance(band, bool) or not isinstance(band, int | float) or not 1.0 < band <= 1000.0:
        raise error(f"{source}: oneshot.stage2.near_band: expected a cost ratio in (1, 1000], got {band!r}")
    stage2 = replace(stage2, near_band=float(band))
    if stage2.top + stage2.spread + stage2.near_baselines == 0:
        raise error(f"{source}: oneshot.stage2: top, spread and near_baselines are all 0; stage 2 would train nothing")
    if stage2.init not in INITS:
        raise error(f"{source}: oneshot.stage2.init: {stage2.init!r} is not allowed; choose one of {list(INITS)}")
    return OneShot(supernet=supernet, stage2=stage2)
