"""One-shot trials, free of Ray: an architecture evaluated on the supernet (stage 1), or trained
standalone from the supernet's weights (stage 2, ``init: inherit``).

A stage-1 trial is an ordinary trial of the search whose *fidelity* is the supernet: instead of
training, it inherits the architecture's weights, recalibrates batch norm on fixed training
images and classifies the validation part (``snn_nas.supernet.evaluate``), then measures the
costs exactly as a standalone trial does (same calibration batch, same cost model). It reports
once (``epoch`` 1); its row says ``proxy: supernet`` and its ``fidelity`` names the checkpoint
and the evaluation settings. Each Ray worker process loads the supernet once (cached by path,
size and modification time).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import torch

from snn_nas.errors import SnnNasError
from snn_nas.search.trial_metrics import CURVE_KEYS, calibration_batch, is_feasible, silence

_LOADED: dict[str, tuple[tuple[int, int], Any]] = {}
_CALIBRATION: dict[tuple[str, str], tuple[Any, list[torch.Tensor]]] = {}


def supernet_settings(spec: Any) -> Any:
    """The ``SupernetConfig`` of the evaluation settings in ``spec.oneshot``."""
    from dataclasses import fields

    from snn_nas.supernet.config import SupernetConfig

    names = {f.name for f in fields(SupernetConfig)}
    return SupernetConfig.from_dict({k: v for k, v in dict(spec.oneshot).items() if k in names})


def cached_supernet(path: str) -> Any:
    """The supernet at ``path``, loaded once per process (reloaded when the file changes)."""
    from snn_nas.supernet.checkpoint import load_supernet

    stat = os.stat(path)
    stamp = (stat.st_size, stat.st_mtime_ns)
    cached = _LOADED.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    net, _ = load_supernet(path)
    net.eval()
    _LOADED.clear()  # one supernet per worker process
    _CALIBRATION.clear()
    _LOADED[path] = (stamp, net)
    return net


def _calibration(path: str, data: Any, settings: Any, device: torch.device) -> list[torch.Tensor]:
    from snn_nas.supernet.evaluate import calibration_images

    key = (path, str(device))
    cached = _CALIBRATION.get(key)
    if cached is None or cached[0] is not data.train:  # the same images for every architecture
        cached = _CALIBRATION[key] = (data.train, calibration_images(data, settings, device))
    return cached[1]


def evaluate_on_supernet(
    record: dict[str, Any],
    genotype: Any,
    data: Any,
    spec: Any,
    device: torch.device,
    baseline: str,
    emit: Callable[[dict[str, Any]], None],
    started: float,
) -> tuple[str, str | None]:
    """Fill ``record`` with the supernet evaluation of ``genotype`` (accuracy, costs, one curve
    point), report it with ``emit`` and return the final ``(status, error)``."""
    from snn_nas.costs import EnergyModel, measure_costs
    from snn_nas.layers.params import parameter_count
    from snn_nas.supernet.evaluate import evaluate_subnet

    params = parameter_count(genotype, data.num_classes, data.image_size, data.in_chans)
    record["params"] = params
    limit = dict(spec.constraints).get("params")
    if limit is not None and params > limit:
        record["feasible"] = False
        if not baseline:
            return "invalid", f"{params} parameters exceed constraints.max_params ({limit:g}); not evaluated"
    path = spec.supernet_file()
    net = cached_supernet(path)
    try:
        net.bounds.check(genotype)
    except SnnNasError as exc:
        return "invalid", f"not in the supernet: {exc}"
    settings = supernet_settings(spec)
    config = spec.config()
    evaluation = evaluate_subnet(
        net, genotype, data, settings, device=device, calibration=_calibration(path, data, settings, device),
        time_steps=config.max_time_steps,
    )  # fmt: skip
    energy = EnergyModel(spec.energy_per_sop_pj, spec.energy_per_mac_pj)
    images = calibration_batch(data, spec.calibration_images).to(device)
    record.update(measure_costs(evaluation.model, images, energy=energy).metrics())
    record["val_acc"], record["val_loss"] = float(evaluation.val_acc), float(evaluation.val_loss)
    record["epoch"] = record["epochs"] = 1
    record["wall_s"] = time.perf_counter() - started
    record["feasible"] = is_feasible(record, spec.constraints)
    record["curve"] = [{"epoch": 1, **{k: record[k] for k in CURVE_KEYS}}]
    status, error = "ok", silence(record, data.num_classes, genotype.is_spiking)
    if error:
        status = "silent"
    record["status"], record["error"] = status, error
    emit(record)
    return status, error


def inherited_model(genotype: Any, data: Any, spec: Any, device: torch.device) -> torch.nn.Module:
    """The model of ``genotype`` with the supernet's weights (stage 2, ``init: inherit``), its
    batch norm recalibrated, ready to be trained standalone."""
    from snn_nas.supernet.evaluate import recalibrate_batch_norm

    path = spec.supernet_file()
    net = cached_supernet(path)
    net.bounds.check(genotype)
    settings = supernet_settings(spec)
    model = net.subnet(genotype, device=device)
    recalibrate_batch_norm(model, _calibration(path, data, settings, device))
    return model.train()
