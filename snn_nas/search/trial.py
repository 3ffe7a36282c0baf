"""The work of one trial, free of Ray: decode the sample, train it, measure its costs.

``run_trial`` is called by the Ray trainable (``snn_nas.search.tune``) with a ``report``
function; it reports a *record* (a flat dict of primitives, the result-table fields of the
trial so far) after every epoch and returns the final record. It never raises for a bad
candidate: an invalid sample, a failed or diverged training run end as a record whose
``status`` says so, with the reason in ``error`` and NaN objectives.

Costs are measured on the model being trained, after every epoch, on a fixed calibration batch
(the first ``calibration_images`` validation images): firing rates change with training, so
each reported SOP figure is that of the weights whose accuracy is reported with it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from snn_nas.jsonutil import finite_or_none as finite_or_none  # re-exported (search.study, search.searcher)
from snn_nas.search.results import COLUMNS, parse_curve
from snn_nas.search.trial_metrics import CHANCE_MARGIN as CHANCE_MARGIN  # re-exported
from snn_nas.search.trial_metrics import CURVE_KEYS, calibration_batch, is_feasible, silence
from snn_nas.search.trial_metrics import violations as violations  # re-exported

RUNNING = "running"  # status of an intermediate (per-epoch) record
FAILED_STATUSES = ("failed", "diverged", "invalid")
OOM_REASON = "out of memory"

Record = dict[str, Any]
Report = Callable[[Record], Any]


@dataclass(frozen=True)
class TrialSpec:
    """What every trial of one search shares (primitives only; shipped to the Ray workers).

    ``train_config``: ``TrainConfig.to_dict()``; ``constraints``: ``(metric, upper bound)``
    pairs; ``gpus``: the trial's GPU share (> 0: train on CUDA when available). One-shot
    searches (``snn_nas.search.oneshot``): ``oneshot`` holds ``(setting, value)`` pairs with the
    supernet ``checkpoint`` path, relative to the search's folder ``results_dir`` (so that a
    copied or moved results folder reads its own supernet, and its rows name no other folder),
    and either ``proxy: supernet`` (evaluate on the supernet: inherit,
    recalibrate batch norm, measure; no training) with the supernet's evaluation settings, or
    ``init: inherit`` (train standalone, starting from the supernet's weights).
    """

    train_config: tuple[tuple[str, Any], ...]
    objectives: tuple[str, ...] = ("val_acc", "sops")
    constraints: tuple[tuple[str, float], ...] = ()
    calibration_images: int = 64
    energy_per_sop_pj: float = 0.9
    energy_per_mac_pj: float = 4.6
    cpus: float = 1.0
    gpus: float = 0.0
    oneshot: tuple[tuple[str, Any], ...] = ()
    results_dir: str = ""  # where this run's folder is now: not part of the fidelity

    @property
    def proxy(self) -> str:
        """``supernet`` for a one-shot search's first stage, else ``standalone``."""
        return str(dict(self.oneshot).get("proxy", "standalone"))

    @classmethod
    def from_experiment(cls, experiment: Any) -> TrialSpec:
        config = experiment.train_config()
        return cls(
            train_config=tuple(sorted(config.to_dict().items())),
            objectives=tuple(experiment.metrics),
            constraints=tuple(experiment.constraints),
            calibration_images=experiment.costs.calibration_images,
            energy_per_sop_pj=experiment.costs.energy_per_sop_pj,
            energy_per_mac_pj=experiment.costs.energy_per_mac_pj,
            cpus=experiment.resources.cpus,
            gpus=experiment.resources.gpus,
        )

    def with_seed(self, seed: int) -> TrialSpec:
        """The same spec training with ``seed``."""
        from dataclasses import replace

        return replace(self, train_config=tuple(sorted({**dict(self.train_config), "seed": int(seed)}.items())))

    def config(self) -> Any:
        from snn_nas.training.config import TrainConfig

        return TrainConfig.from_dict(dict(self.train_config))

    def supernet_file(self) -> str:
        """The supernet checkpoint of a one-shot trial: ``oneshot``'s ``checkpoint``, resolved
        against ``results_dir`` when relative."""
        from pathlib import Path

        return str(Path(self.results_dir) / str(dict(self.oneshot)["checkpoint"]))

    def fidelity_json(self) -> str:
        """The row's ``fidelity``: the ``TrainConfig``, plus ``oneshot`` (how a one-shot trial
        used the supernet) when there is one."""
        import json

        extra = {"oneshot": dict(self.oneshot)} if self.oneshot else {}
        return json.dumps({**dict(self.train_config), **extra}, sort_keys=True)


def _reason(exc: BaseException) -> str:
    from snn_nas.errors import worker_message

    message = worker_message(str(exc))  # raised in a DataLoader worker: the error, not "Caught ..."
    text = message.strip().splitlines()[0] if message.strip() else ""
    if isinstance(exc, MemoryError) or "out of memory" in text.lower():
        return f"{OOM_REASON}: {type(exc).__name__}: {text}" if text else OOM_REASON
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _with_oom_reason(error: str | None) -> str | None:
    if error and "out of memory" in error.lower() and not error.startswith(OOM_REASON):
        return f"{OOM_REASON}: {error}"
    return error


def empty_record(spec: TrialSpec, *, baseline: str = "") -> Record:
    """A record with every metric unknown (NaN) and status ``running``."""
    return {
        "status": RUNNING,
        "error": None,
        "key": None,
        "genotype": None,
        "summary": None,
        "baseline": baseline,
        "proxy": spec.proxy,
        "val_acc": math.nan,
        "val_loss": math.nan,
        "sops": math.nan,
        "macs": math.nan,
        "energy_uj": math.nan,
        "params": None,
        "macs_per_step": None,
        "time_steps": None,
        "firing_rate": math.nan,
        "epoch": 0,
        "epochs": 0,
        "wall_s": 0.0,
        "feasible": None,
        "curve": [],
        "num_classes": None,
        "device": None,
    }


def genotype_of(sample: Mapping[str, Any], space: Any, baseline: str = "") -> Any:
    """The genotype of a trial: the preset ``baseline`` when given, else ``space.decode(sample)``."""
    if baseline:
        from snn_nas.presets import get_preset

        return get_preset(baseline)
    return space.decode(dict(sample))


def describe_genotype(record: Record, genotype: Any) -> None:
    record["key"] = genotype.key()
    record["genotype"] = genotype.to_json()
    record["summary"] = genotype.summary()


def _finish(record: Record, status: str, error: str | None, started: float) -> Record:
    record["status"] = status
    record["error"] = error
    record["wall_s"] = time.perf_counter() - started
    return record


def run_trial(
    sample: Mapping[str, Any],
    *,
    space: Any,
    spec: TrialSpec,
    baseline: str = "",
    report: Report | None = None,
    data: Any = None,
) -> Record:
    """Decode ``sample`` (or take preset ``baseline``), train it, measure costs; never raises
    for a bad candidate.

    ``report(record)`` is called after every epoch with the record so far (``status``
    ``running``, or ``ok`` at the last epoch) and once more at the end when the final record
    differs from the last one reported (a failure, a divergence). ``data``: preloaded
    ``DataSplits`` (default: loaded here). Returns the final record.
    """
    started = time.perf_counter()
    record = empty_record(spec, baseline=baseline)
    last_reported: list[Record] = []

    def emit(rec: Record) -> None:
        snapshot = dict(rec)
        last_reported[:] = [snapshot]
        if report is not None:
            report(snapshot)

    def finish(status: str, error: str | None) -> Record:
        _finish(record, status, error, started)
        if not last_reported or last_reported[0]["status"] != record["status"]:
            emit(record)
        return record

    from snn_nas.errors import SnnNasError

    # 1. the architecture
    try:
        genotype = genotype_of(sample, space, baseline)
        describe_genotype(record, genotype)
    except SnnNasError as exc:
        return finish("invalid", str(exc))
    except Exception as exc:  # a decoder bug: the trial fails, the search goes on
        return finish("failed", _reason(exc))

    try:
        from snn_nas.builder import build_model
        from snn_nas.costs import EnergyModel, measure_costs
        from snn_nas.training import load_config_data, train_model
        from snn_nas.training.devices import describe_device, share_gpu, trial_device

        config = spec.config()
        device = trial_device(spec.gpus)  # CUDA if asked for and present (Ray's GPU is cuda:0), else the CPU
        share = share_gpu(device, spec.gpus)  # caps this trial's CUDA memory at its GPU share
        record["device"] = describe_device(device, spec.gpus)
        if data is None:
            data = load_config_data(config)
        data = data.without_test()  # a search ranks on val: reading test inside a trial raises
        record["num_classes"] = int(data.num_classes)  # chance accuracy is 1 / num_classes

        # 2. the model, and the constraints that hold before training
        try:
            genotype.check_image_size(data.image_size)
            data = data.at_time_steps(min(genotype.time_steps, config.max_time_steps or genotype.time_steps))
        except SnnNasError as exc:
            return finish("invalid", str(exc))
        if spec.oneshot:  # the supernet's evaluation (stage 1), or its weights as the start (stage 2)
            from snn_nas.search.supernet_trial import evaluate_on_supernet, inherited_model

            if spec.proxy == "supernet":
                status, error = evaluate_on_supernet(record, genotype, data, spec, device, baseline, emit, started)
                return finish(status, error)
            model = inherited_model(genotype, data, spec, device)
        else:
            model = build_model(
                genotype, num_classes=data.num_classes, image_size=data.image_size, in_chans=data.in_chans,
                seed=config.seed,
            )  # fmt: skip
        params = sum(p.numel() for p in model.parameters())
        record["params"] = params
        limit = dict(spec.constraints).get("params")
        if limit is not None and params > limit:
            record["feasible"] = False
            if not baseline:  # a reference point is evaluated anyway, marked infeasible
                return finish("invalid", f"{params} parameters exceed constraints.max_params ({limit:g}); not trained")

        energy = EnergyModel(spec.energy_per_sop_pj, spec.energy_per_mac_pj)
        images = calibration_batch(data, spec.calibration_images).to(device)

        dense: list[int] = []  # dense MACs per step do not change with training: count them once

        # 3. training, with costs after every epoch
        def on_epoch(epoch: int, metrics: dict[str, Any]) -> None:
            costs = measure_costs(model, images, energy=energy, macs_per_step=dense[0] if dense else None)
            dense[:] = [costs.macs_per_step]
            record.update(costs.metrics())
            record["val_acc"] = float(metrics["val_acc"])
            record["val_loss"] = float(metrics["val_loss"])
            record["epoch"] = record["epochs"] = int(epoch)
            record["wall_s"] = time.perf_counter() - started
            record["feasible"] = is_feasible(record, spec.constraints)  # on the latest costs
            record["status"] = "ok" if epoch >= config.epochs else RUNNING
            silent = silence(record, data.num_classes, genotype.is_spiking) if record["status"] == "ok" else None
            if silent:  # so that even a last report the scheduler cuts off never says ok
                record["status"], record["error"] = "silent", silent
            record["curve"] = [*record["curve"], {"epoch": int(epoch), **{k: record[k] for k in CURVE_KEYS}}]
            emit(record)

        result = train_model(
            model, config, callback=on_epoch, device=device, progress=False, data=data, memory_share=share
        )
    except (MemoryError, RuntimeError) as exc:  # e.g. torch.cuda.OutOfMemoryError while building
        return finish("failed", _reason(exc))
    except SnnNasError as exc:
        return finish("failed", str(exc))
    except Exception as exc:
        return finish("failed", _reason(exc))

    if result.status != "ok":
        if result.status == "diverged":
            return finish("diverged", result.error)
        return finish("failed", _with_oom_reason(result.error) or "failed")
    if record["epochs"] < config.epochs:  # the engine stopped early without saying why
        return finish("failed", f"training ended after {record['epochs']} of {config.epochs} epochs")
    silent = silence(record, data.num_classes, genotype.is_spiking)
    return finish("silent", silent) if silent else finish("ok", None)


# ---------------------------------------------------------------------- table rows (driver side)
DRIVER_COLUMNS = ("trial_id", "seed", "fidelity", "version")  # filled in by the driver, not the trial
RECORD_KEYS = tuple(c for c in COLUMNS if c not in DRIVER_COLUMNS)  # what a trial reports


def error_line(text: str | None, default: str = "the trial's worker failed") -> str:
    """The last line of a traceback (the exception), tagged ``out of memory`` when it is one."""
    lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
    message = lines[-1] if lines else default
    if "out of memory" in message.lower() or "OutOfMemoryError" in message:
        message = _with_oom_reason(message) or message
    return message[:500]


def make_row(
    trial_id: str,
    sample: Mapping[str, Any],
    result: Mapping[str, Any],
    *,
    space: Any,
    spec: TrialSpec,
    baseline: str = "",
    error: str | None = None,
) -> Record:
    """The result-table row of a finished trial from its last reported record.

    ``error`` (the trial raised past ``run_trial``, e.g. its worker died) makes it ``failed``;
    a last record still ``running`` means the scheduler stopped the trial (``stopped``), or,
    with no epoch done, that it ended without a result (``failed``). Key and genotype are
    decoded here when the record lacks them.
    """
    from snn_nas.version import __version__

    row = {k: result.get(k) for k in RECORD_KEYS}
    if error is not None:
        row["status"], row["error"] = "failed", error
    elif row.get("status") in (None, RUNNING):
        if (row.get("epochs") or 0) > 0:
            row["status"] = "stopped"
        else:
            row["status"], row["error"] = "failed", row.get("error") or "the trial ended without reporting a result"
    row["baseline"] = baseline
    if not row.get("key"):
        try:
            record: Record = {}
            describe_genotype(record, genotype_of(sample, space, baseline))
            row.update(record)
        except Exception:  # an undecodable sample keeps an empty key
            pass
    config = dict(spec.train_config)
    row.update(trial_id=trial_id, seed=config.get("seed"), fidelity=spec.fidelity_json(), version=__version__)
    row["proxy"] = row.get("proxy") or spec.proxy
    return row


def reusable_baselines(rows: list[dict[str, Any]], spec: TrialSpec) -> dict[str, dict[str, Any]]:
    """``key -> row`` of the baseline rows whose result a search trial of the same architecture
    may reuse instead of training it again: finished ``ok``, feasible, trained at this fidelity."""
    fidelity = json.loads(spec.fidelity_json())
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        if not row.get("baseline") or row.get("status") != "ok" or row.get("feasible") is False or not row.get("key"):
            continue
        try:
            same = json.loads(str(row.get("fidelity"))) == fidelity
        except ValueError:
            same = False
        if same:
            out[str(row["key"])] = dict(row)
    return out


def reuse_records(row: Mapping[str, Any]) -> list[Record]:
    """The records a search trial reports when it reuses baseline ``row`` (same architecture,
    same fidelity): one per epoch of the row's curve, ``running`` until the last, which is the
    row's own result, so a scheduler sees the rungs as if the trial trained. ``baseline`` is
    empty (it is a search trial) and ``reused_from`` names the row's trial."""
    final = {k: row.get(k) for k in RECORD_KEYS}
    final.update(baseline="", reused_from=str(row.get("trial_id")), error=None)
    curve = parse_curve(row.get("curve"))
    records: list[Record] = []
    for i, point in enumerate(curve[:-1]):
        step = {**final, **{k: point.get(k) for k in CURVE_KEYS}, "status": RUNNING, "curve": curve[: i + 1]}
        step["epoch"] = step["epochs"] = int(point.get("epoch", i + 1))
        records.append(step)
    final["epoch"] = final.get("epochs")
    final["curve"] = curve
    records.append(final)
    return records


def seen_keys(rows: list[dict[str, Any]]) -> set[str]:
    """The architecture keys of the search rows (baselines left out)."""
    return {str(row["key"]) for row in rows if row.get("key") and not row.get("baseline")}
