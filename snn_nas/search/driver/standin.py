"""Stand-in trials: what the driver sees of a search, without the training.

To measure the driver at a scale this machine cannot train (thousands of trials, hundreds of
slots), a trial is replaced by a ``StandinTrial``: it decodes its sample like a real trial, then
for each epoch sleeps ``seconds / epochs`` and reports the record a real trial would (status,
key, genotype, per-epoch ``val_acc``, ``sops`` and the other costs, the curve). The numbers come
from a ``CurveModel`` fitted to the rows of a real search, so the sampler and the scheduler see
realistic values: architectures that differ in the same labels differ as they did in training.

The model, fitted by ridge regression on one-hot features of the sample (``label=value``)::

    log sops(x)          = a_s + sum_f w_s[f] x_f + e_s,     e_s ~ N(0, sd_s^2)
    logit acc_final(x)   = a_a + sum_f w_a[f] x_f + e_a,     e_a ~ N(0, sd_a^2)
    acc_epoch(x, e)      = acc_final(x) * ratio[e]           (ratio: the real curves' median)

with ``sd`` the residual standard deviations and the noise drawn from a generator seeded by the
trial's architecture key and the model's seed (the same architecture reports the same numbers).
``fit_curve_model(rows, space)`` is pure numpy; ``standin_runner`` is what ``run_search(...,
runner=...)`` takes.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

RIDGE = 1.0  # L2 penalty of the fits (one-hot features: shrinks rarely seen label values to 0)


def _features(sample: Mapping[str, Any]) -> list[str]:
    return [f"{label}={json.dumps(value, sort_keys=True)}" for label, value in sorted(sample.items())]


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


@dataclass(frozen=True)
class CurveModel:
    """The fitted model of the module docstring (primitives only: pickled to the workers and
    written as JSON next to the benchmark that fitted it)."""

    sops_intercept: float
    sops_weights: tuple[tuple[str, float], ...]
    sops_sd: float
    acc_intercept: float
    acc_weights: tuple[tuple[str, float], ...]
    acc_sd: float
    ratios: tuple[float, ...]  # acc at epoch e / final acc, e = 1..epochs
    rows: int = 0  # how many real rows it was fitted on
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "sops_intercept": self.sops_intercept,
            "sops_weights": dict(self.sops_weights),
            "sops_sd": self.sops_sd,
            "acc_intercept": self.acc_intercept,
            "acc_weights": dict(self.acc_weights),
            "acc_sd": self.acc_sd,
            "ratios": list(self.ratios),
            "rows": self.rows,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CurveModel:
        return cls(
            sops_intercept=float(data["sops_intercept"]),
            sops_weights=tuple(sorted((str(k), float(v)) for k, v in dict(data["sops_weights"]).items())),
            sops_sd=float(data["sops_sd"]),
            acc_intercept=float(data["acc_intercept"]),
            acc_weights=tuple(sorted((str(k), float(v)) for k, v in dict(data["acc_weights"]).items())),
            acc_sd=float(data["acc_sd"]),
            ratios=tuple(float(r) for r in data["ratios"]),
            rows=int(data.get("rows", 0)),
            seed=int(data.get("seed", 0)),
        )

    def draw(self, sample: Mapping[str, Any], key: str, epochs: int) -> tuple[float, list[float]]:
        """``(sops, [val_acc at epoch 1..epochs])`` of an architecture, noise seeded by ``key``."""
        digest = hashlib.sha256(f"{key}/{self.seed}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        features = _features(sample)
        sops_w, acc_w = dict(self.sops_weights), dict(self.acc_weights)
        log_sops = self.sops_intercept + sum(sops_w.get(f, 0.0) for f in features) + rng.normal(0, self.sops_sd)
        logit = self.acc_intercept + sum(acc_w.get(f, 0.0) for f in features) + rng.normal(0, self.acc_sd)
        final = 1.0 / (1.0 + math.exp(-logit))
        ratios = [self.ratios[min(e, len(self.ratios)) - 1] if self.ratios else 1.0 for e in range(1, epochs + 1)]
        return float(math.exp(log_sops)), [min(1.0, final * r) for r in ratios]


def _ridge(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray, float]:
    """``(intercept, weights, residual sd)`` of ``y ~ intercept + x w`` with penalty ``RIDGE``."""
    mean = y.mean()
    gram = x.T @ x + RIDGE * np.eye(x.shape[1])
    weights = np.linalg.solve(gram, x.T @ (y - mean))
    residual = y - mean - x @ weights
    dof = max(1, y.size - 1)
    return float(mean), weights, float(math.sqrt(float(residual @ residual) / dof))


def fit_curve_model(rows: Sequence[Mapping[str, Any]], space: Any, *, seed: int = 0) -> CurveModel:
    """Fit a ``CurveModel`` to the finished search rows of a real search (``ok`` rows for the
    final accuracy and every row with SOPs for the costs; the per-epoch ratios from the ``ok``
    rows' curves). ``ValueError`` with fewer than 5 usable rows."""
    from snn_nas.genotype import Genotype

    usable = []
    for row in rows:
        if row.get("baseline") or not row.get("genotype") or row.get("status") not in ("ok", "stopped"):
            continue
        try:
            sample = space.encode(Genotype.from_json(str(row["genotype"])))
        except Exception:
            continue
        usable.append((sample, row))
    if len(usable) < 5:
        raise ValueError(f"fit_curve_model: needs at least 5 trained search rows, got {len(usable)}")
    names = sorted({f for sample, _ in usable for f in _features(sample)})
    index = {name: i for i, name in enumerate(names)}

    def matrix(samples: list[Mapping[str, Any]]) -> np.ndarray:
        x = np.zeros((len(samples), len(names)))
        for i, sample in enumerate(samples):
            for f in _features(sample):
                x[i, index[f]] = 1.0
        return x

    costly = [(s, r) for s, r in usable if r.get("sops") is not None and float(r["sops"]) > 0]
    s_int, s_w, s_sd = _ridge(matrix([s for s, _ in costly]), np.log([float(r["sops"]) for _, r in costly]))
    done = [(s, r) for s, r in usable if r.get("status") == "ok" and r.get("val_acc") is not None]
    a_int, a_w, a_sd = _ridge(matrix([s for s, _ in done]), np.array([_logit(float(r["val_acc"])) for _, r in done]))
    curves = [_curve_accuracies(r.get("curve")) for _, r in done]
    epochs = max((len(c) for c in curves), default=1)
    ratios = []
    for e in range(epochs):
        values = [c[e] / c[-1] for c in curves if len(c) == epochs and c[-1] > 0]
        ratios.append(float(np.median(values)) if values else 1.0)
    return CurveModel(
        sops_intercept=s_int,
        sops_weights=tuple((n, float(w)) for n, w in zip(names, s_w, strict=True) if abs(w) > 1e-9),
        sops_sd=s_sd,
        acc_intercept=a_int,
        acc_weights=tuple((n, float(w)) for n, w in zip(names, a_w, strict=True) if abs(w) > 1e-9),
        acc_sd=a_sd,
        ratios=tuple(ratios),
        rows=len(usable),
        seed=seed,
    )


def _curve_accuracies(curve: Any) -> list[float]:
    from snn_nas.search.results import parse_curve

    return [float(p["val_acc"]) for p in parse_curve(curve) if p.get("val_acc") is not None]


@dataclass(frozen=True)
class StandinTrial:
    """A trial that sleeps ``seconds`` in all (spread over ``epochs``) and reports the records a
    real trial would, with the numbers of ``model``. Called like ``run_trial``."""

    model: CurveModel
    seconds: float
    epochs: int = 2

    def __call__(self, sample: Mapping[str, Any], *, space: Any, spec: Any, baseline: str = "",
                 report: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:  # fmt: skip
        from snn_nas.search.trial import describe_genotype, empty_record, genotype_of

        started = time.perf_counter()
        record = empty_record(spec, baseline=baseline)
        try:
            genotype = genotype_of(sample, space, baseline)
        except Exception as exc:
            record.update(status="invalid", error=f"{type(exc).__name__}: {exc}"[:300])
            report(record)
            return record
        describe_genotype(record, genotype)
        sops, accuracies = self.model.draw(sample, record["key"], self.epochs)
        record.update(params=1000, time_steps=1, macs_per_step=0.0, num_classes=10, feasible=True, device="stand-in")
        curve = []
        for epoch, accuracy in enumerate(accuracies, start=1):
            time.sleep(self.seconds / self.epochs)
            point = {
                "epoch": epoch,
                "val_acc": accuracy,
                "val_loss": 1.0 - accuracy,
                "sops": sops,
                "macs": 0.0,
                "energy_uj": 0.9e-6 * sops,
                "firing_rate": 0.1,
                "wall_s": time.perf_counter() - started,
            }
            curve.append(point)
            record.update({k: v for k, v in point.items() if k != "wall_s"}, epochs=epoch, curve=list(curve))
            record["wall_s"] = point["wall_s"]
            if epoch == len(accuracies):
                record["status"] = "ok"
            report(dict(record))
        return record


def standin_runner(model: CurveModel, seconds: float, epochs: int = 2) -> StandinTrial:
    """A runner for ``run_search(..., runner=...)``: stand-in trials of ``seconds`` each."""
    return StandinTrial(model=model, seconds=float(seconds), epochs=int(epochs))
