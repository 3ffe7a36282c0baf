"""The frozen training configuration: recipe and fidelity knobs, stored with every result."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from snn_nas.errors import SnnNasError

OPTIMIZERS = ("sgd", "adamw")
TRAIN_ON = ("train", "train+val")


class ConfigError(SnnNasError, ValueError):
    """An invalid training configuration; the message names the field and what is allowed."""


@dataclass(frozen=True)
class TrainConfig:
    """How to train one architecture (all fields primitives).

    Recipe: ``optimizer`` (``sgd`` | ``adamw``), ``lr`` (peak, after ``warmup_epochs`` of linear
    warm-up, then cosine decay to 0 per step), ``momentum`` (SGD), ``weight_decay``,
    ``label_smoothing``, ``grad_clip`` (max global grad norm; None: off), ``amp`` (mixed
    precision: bfloat16 autocast on CUDA where supported, else float16 with loss scaling; on the
    CPU only with ``SNN_NAS_CPU_AMP=bf16``; see ``snn_nas.training.loops.amp_dtype``), ``seed``.
    Fidelity (proxies): ``subset`` (fraction of the training split, drawn by ``seed``),
    ``image_size`` (None: the dataset's own), ``epochs``, ``batch_size``, ``max_time_steps``
    (cap on the genotype's T; None: no cap), ``max_batches_per_epoch`` (None: all).
    Data: ``dataset`` (registry name, options allowed), ``data_root``, ``num_workers``,
    ``eval_batch_size``, ``val_fraction`` (share of the training data held out as ``val``; None:
    the dataset's default), ``train_on``: ``train`` (fit on ``train``, report ``val`` every
    epoch: searches, audits, ``snn-nas train``) or ``train+val`` (fit on all the training
    data, nothing held out to watch: ``snn-nas retrain``, which reports the test accuracy of
    the final model).

    The defaults are the CPU recipe for ``mnist5k`` (``mlp_spe_micro``: 96 % validation accuracy
    in 5 epochs, seeds 0 and 1).
    """

    dataset: str = "mnist5k"
    epochs: int = 5
    batch_size: int = 32
    lr: float = 3e-3
    optimizer: str = "adamw"
    momentum: float = 0.9
    weight_decay: float = 0.01
    warmup_epochs: float = 0.5
    label_smoothing: float = 0.1
    grad_clip: float | None = 5.0
    subset: float = 1.0
    image_size: int | None = None
    max_time_steps: int | None = None
    max_batches_per_epoch: int | None = None
    eval_batch_size: int = 256
    seed: int = 0
    amp: bool = True
    num_workers: int = 0
    data_root: str | None = None
    val_fraction: float | None = None
    train_on: str = "train"

    def __post_init__(self) -> None:
        for name in (
            "lr", "momentum", "weight_decay", "warmup_epochs", "label_smoothing", "subset", "grad_clip", "val_fraction"
        ):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, name, float(value))
        self.validate()

    def validate(self) -> None:
        if not isinstance(self.dataset, str) or not self.dataset:
            raise ConfigError(f"dataset: expected a dataset name, got {self.dataset!r}")
        _int("epochs", self.epochs, 1)
        _int("batch_size", self.batch_size, 1)
        _int("eval_batch_size", self.eval_batch_size, 1)
        _int("seed", self.seed, 0)
        if self.seed > MAX_SEED:
            raise ConfigError(f"seed: {self.seed} is too large; expected an integer in [0, {MAX_SEED}]")
        _int("num_workers", self.num_workers, 0)
        _int("image_size", self.image_size, 1, optional=True)
        _int("max_time_steps", self.max_time_steps, 1, optional=True)
        _int("max_batches_per_epoch", self.max_batches_per_epoch, 1, optional=True)
        if self.train_on not in TRAIN_ON:
            raise ConfigError(f"train_on: {self.train_on!r} is not allowed; choose one of {list(TRAIN_ON)}")
        if self.val_fraction is not None:
            _real("val_fraction", self.val_fraction, low=0.0, high=1.0, low_open=True, high_open=True)
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer: {self.optimizer!r} is not allowed; choose one of {list(OPTIMIZERS)}")
        _real("lr", self.lr, low=0.0, low_open=True, high=MAX_LR)
        _real("momentum", self.momentum, low=0.0, high=1.0, high_open=True)
        _real("weight_decay", self.weight_decay, low=0.0)
        _real("warmup_epochs", self.warmup_epochs, low=0.0)
        _real("label_smoothing", self.label_smoothing, low=0.0, high=1.0, high_open=True)
        _real("subset", self.subset, low=0.0, high=1.0, low_open=True)
        if self.grad_clip is not None:
            _real("grad_clip", self.grad_clip, low=0.0, low_open=True)
        if not isinstance(self.amp, bool):
            raise ConfigError(f"amp: expected true or false, got {self.amp!r}")
        if self.data_root is not None and not isinstance(self.data_root, str):
            raise ConfigError(f"data_root: expected a path string or None, got {self.data_root!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Rebuild from ``to_dict`` output; unknown fields are an error naming the allowed ones."""
        if not isinstance(data, dict):
            raise ConfigError(f"training config: expected a mapping, got {type(data).__name__}")
        allowed = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ConfigError(f"training config: unknown field(s) {unknown}; allowed: {sorted(allowed)}")
        return cls(**data)

    def key(self) -> str:
        """A stable 12-hex-digit hash of every field."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


MAX_LR = 10.0  # a peak learning rate above it cannot be meant (SGD's published recipes use 0.1)
MAX_SEED = 2**32 - 1  # what every random generator seeded from it accepts (numpy, torch, Python)


def _int(name: str, value: Any, low: int, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        extra = " or None" if optional else ""
        raise ConfigError(f"{name}: expected an integer >= {low}{extra}, got {value!r}")


def _real(
    name: str, value: Any, low: float, high: float | None = None, low_open: bool = False, high_open: bool = False
) -> None:
    ok = isinstance(value, float) and math.isfinite(value)  # NaN and inf are never a setting
    if ok:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        lo = f"{'(' if low_open else '['}{low:g}"
        hi = "inf)" if high is None else f"{high:g}{')' if high_open else ']'}"
        raise ConfigError(f"{name}: {value!r} is out of range; must be a finite number in {lo}, {hi}")
