"""How a supernet is trained and how its sub-networks are evaluated (a frozen dataclass of
primitives; the ``supernet:`` section of an experiment's ``oneshot:`` block).

Training follows BigNAS's sandwich rule: each step trains the largest sub-network on the
labels, then the smallest and ``random_subnets`` random ones, each on the largest's soft
predictions when ``distill`` is on (in-place distillation). The data, image size and held-out
part come from the experiment's fidelity, so a supernet ranks on the same ``val`` part as the
standalone trials.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from snn_nas.supernet.bounds import SupernetError

OPTIMIZERS = ("sgd", "adamw")
EVALUATION_FIELDS = ("bn_batches", "bn_batch_size", "eval_batch_size", "val_images", "finetune_steps", "finetune_lr")
"""Settings of how a sub-network is evaluated, not of how the supernet is trained."""


@dataclass(frozen=True)
class SupernetConfig:
    """Supernet training and evaluation settings (all primitives).

    Training: ``epochs``, ``batch_size``, ``lr`` (peak, after ``warmup_epochs`` of linear
    warm-up, then cosine decay per step), ``optimizer`` (``sgd`` | ``adamw``), ``momentum``,
    ``weight_decay``, ``label_smoothing`` (of the largest's loss), ``grad_clip`` (None: off),
    ``seed``.
    Sandwich rule: ``sandwich`` (train the largest and the smallest every step; off: only
    random sub-networks, single-path style), ``random_subnets`` (random sub-networks per step),
    ``distill`` (the others learn the largest's soft predictions, in-place distillation),
    ``distill_temperature``, ``feasible_only`` (random and smallest sub-networks are drawn within
    the experiment's constraints), ``extremes`` (``first``: the largest and smallest take the
    first choice of every label that is not elastic; ``random``: drawn every step; ``opposite``:
    the largest takes the first choice, the smallest the last), ``largest``
    (``max``: every elastic label at its largest, constraints or not; ``feasible``: shrunk until
    it meets the constraints), ``anchors`` (preset names, e.g. the seed designs: each is trained
    at every step after the largest and the smallest, distilled like them). See
    ``snn_nas.supernet.sampling``.
    Evaluation of one architecture: ``bn_batches`` batches of ``bn_batch_size`` training images
    recalibrate every batch norm (fixed images, the same for every architecture), then
    ``val_images`` validation images (None: all) are classified in batches of
    ``eval_batch_size``; with ``finetune_steps`` > 0 the inherited weights are first adapted by
    that many AdamW steps (lr ``finetune_lr``) on fixed training batches.
    """

    epochs: int = 6
    batch_size: int = 50
    lr: float = 0.005
    optimizer: str = "adamw"
    momentum: float = 0.9
    weight_decay: float = 0.01
    warmup_epochs: float = 0.5
    label_smoothing: float = 0.1
    grad_clip: float | None = 5.0
    seed: int = 0
    sandwich: bool = True
    random_subnets: int = 2
    distill: bool = True
    distill_temperature: float = 1.0
    feasible_only: bool = True
    extremes: str = "first"
    largest: str = "max"
    anchors: tuple[str, ...] = ()
    bn_batches: int = 4
    bn_batch_size: int = 100
    eval_batch_size: int = 250
    val_images: int | None = None
    finetune_steps: int = 0
    finetune_lr: float = 0.002

    def __post_init__(self) -> None:
        for name in ("lr", "momentum", "weight_decay", "warmup_epochs", "label_smoothing", "grad_clip",
                     "distill_temperature", "finetune_lr"):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, name, float(value))
        if isinstance(self.anchors, list):  # from a YAML list
            object.__setattr__(self, "anchors", tuple(self.anchors))
        self.validate()

    @property
    def subnets_per_step(self) -> int:
        return self.random_subnets + len(self.anchors) + (2 if self.sandwich else 0)

    def validate(self) -> None:
        _int("epochs", self.epochs, 1, 10_000)
        _int("batch_size", self.batch_size, 1, 1_000_000)
        _int("seed", self.seed, 0, 2**63 - 1)
        _int("random_subnets", self.random_subnets, 0, 64)
        _int("bn_batches", self.bn_batches, 0, 100_000)
        _int("bn_batch_size", self.bn_batch_size, 1, 1_000_000)
        _int("eval_batch_size", self.eval_batch_size, 1, 1_000_000)
        _int("finetune_steps", self.finetune_steps, 0, 100_000)
        _real("finetune_lr", self.finetune_lr, 0.0, None, low_open=True)
        if self.val_images is not None:
            _int("val_images", self.val_images, 1, 10**9)
        if self.optimizer not in OPTIMIZERS:
            raise SupernetError(
                f"supernet.optimizer: {self.optimizer!r} is not allowed; choose one of {list(OPTIMIZERS)}"
            )
        _real("lr", self.lr, 0.0, None, low_open=True)
        _real("momentum", self.momentum, 0.0, 1.0, high_open=True)
        _real("weight_decay", self.weight_decay, 0.0, None)
        _real("warmup_epochs", self.warmup_epochs, 0.0, None)
        _real("label_smoothing", self.label_smoothing, 0.0, 1.0, high_open=True)
        _real("distill_temperature", self.distill_temperature, 0.0, None, low_open=True)
        if self.grad_clip is not None:
            _real("grad_clip", self.grad_clip, 0.0, None, low_open=True)
        for name in ("sandwich", "distill", "feasible_only"):
            if not isinstance(getattr(self, name), bool):
                raise SupernetError(f"supernet.{name}: expected true or false, got {getattr(self, name)!r}")
        from snn_nas.supernet.sampling import EXTREMES, LARGEST

        for name, allowed in (("extremes", EXTREMES), ("largest", LARGEST)):
            if getattr(self, name) not in allowed:
                raise SupernetError(
                    f"supernet.{name}: {getattr(self, name)!r} is not allowed; choose one of {list(allowed)}"
                )
        _anchors(self.anchors)
        if self.subnets_per_step == 0:
            raise SupernetError(
                "supernet.random_subnets: 0 with sandwich off trains no sub-network per step; "
                "use random_subnets >= 1 or sandwich: true"
            )
        if self.distill and not self.sandwich:
            raise SupernetError("supernet.distill: in-place distillation learns from the largest sub-network; "
                                "it needs sandwich: true (or set distill: false)")  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def training_dict(self) -> dict[str, Any]:
        """The settings that shape the trained weights (a checkpoint is resumed or reused only
        when they match); the evaluation settings may change between uses."""
        return {k: v for k, v in asdict(self).items() if k not in EVALUATION_FIELDS}

    @classmethod
    def from_dict(cls, data: Any, where: str = "supernet") -> SupernetConfig:
        """Read a ``supernet:`` mapping; unknown keys and bad values raise ``SupernetError``."""
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise SupernetError(f"{where}: expected a mapping of settings, got {type(data).__name__}")
        allowed = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise SupernetError(f"{where}: unknown setting(s) {unknown}; allowed: {allowed}")
        try:
            return cls(**data)
        except SupernetError as exc:
            raise SupernetError(f"{where}: {str(exc).removeprefix('supernet.')}") from None


def _anchors(anchors: Any) -> None:
    from snn_nas.presets import list_presets

    if not isinstance(anchors, tuple) or not all(isinstance(a, str) for a in anchors) or len(anchors) > 16:
        raise SupernetError(f"supernet.anchors: expected a list of at most 16 preset names, got {anchors!r}")
    unknown = [a for a in anchors if a not in list_presets()]
    if unknown:
        raise SupernetError(f"supernet.anchors: unknown preset(s) {unknown}; choose from {list_presets()}")
    if len(set(anchors)) != len(anchors):
        raise SupernetError(f"supernet.anchors: a preset is named twice in {list(anchors)}")


def _int(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SupernetError(f"supernet.{name}: expected an integer in [{low}, {high}], got {value!r}")


def _real(name: str, value: Any, low: float, high: float | None, *, low_open: bool = False,
          high_open: bool = False) -> None:  # fmt: skip
    ok = isinstance(value, float) and math.isfinite(value)
    if ok:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        lo = f"{'(' if low_open else '['}{low:g}"
        hi = "inf)" if high is None else f"{high:g}{')' if high_open else ']'}"
        raise SupernetError(f"supernet.{name}: {value!r} is out of range; must be a finite number in {lo}, {hi}")
