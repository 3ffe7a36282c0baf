"""``snn-nas audit``: retrain a sample of a search at a higher fidelity, in parallel through Ray.

Each audited architecture is one Ray task (``audit_one``) with the search's resources per trial
(``resources`` of the stored experiment); tasks run concurrently up to what the cluster holds,
and the driver writes each finished architecture to ``RESULTS_DIR/audit/`` at once
(``snn_nas.audit.AuditStore``), so an interrupted audit resumes without retraining what
finished. What is sampled and which figures are reported: ``snn_nas.audit``.

A high-fidelity training fits ``train`` only (``train_on="train"``): the held-out ``val`` gives
the accuracy compared with the proxy's, and the test part is read once, after the last epoch.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snn_nas.audit import (
    AUDIT_DIR,
    JSON_FILE,
    PNG_FILE,
    AuditError,
    AuditStore,
    audit_report,
    audit_sample,
    draw_audit_png,
    plot_info,
    row_id,
)
from snn_nas.errors import SnnNasError

HEARTBEAT_S = 60.0  # a progress line at least this often while architectures train


@dataclass(frozen=True)
class AuditRun:
    """Outcome of ``run_audit``: the folder, the report (``audit.json``), and whether every
    sampled architecture finished."""

    directory: Path
    report: dict[str, Any]
    complete: bool


def audit_one(row: Mapping[str, Any], config: dict[str, Any], costs: Mapping[str, Any], gpus: float) -> dict[str, Any]:
    """Train one sampled row's architecture at ``config`` and measure it (no Ray here)."""
    from snn_nas.costs import measure_costs
    from snn_nas.genotype import Genotype
    from snn_nas.search.trial import calibration_batch
    from snn_nas.training import TrainConfig, load_config_data, train_model
    from snn_nas.zero_cost import sahd

    started = time.perf_counter()
    out: dict[str, Any] = {
        "key": row["key"],
        "trial_id": row.get("trial_id"),
        "on_front": bool(row.get("on_front")),
        "proxy_val_acc": row.get("val_acc"),
        "proxy_sops": row.get("sops"),
        "supernet_val_acc": row.get("supernet_val_acc"),
        "supernet_sops": row.get("supernet_sops"),
        "proxy_source": row.get("proxy_source"),
        "summary": row.get("summary"),
        "fidelity": json.dumps(config, sort_keys=True),
        "status": "failed",
        "error": None,
    }
    try:
        genotype = Genotype.from_json(str(row["genotype"]))
        train_config = TrainConfig.from_dict(dict(config))
        from snn_nas.training.devices import share_gpu, trial_device

        device = trial_device(gpus)  # CUDA when asked for and present (Ray's GPU is cuda:0), else the CPU
        share = share_gpu(device, gpus)  # caps this task's CUDA memory at its GPU share
        data = load_config_data(train_config)
        images = calibration_batch(data, int(costs.get("calibration_images", 64))).to(device)
        from snn_nas.builder import build_model

        untrained = build_model(genotype, data.num_classes, data.image_size, data.in_chans, seed=train_config.seed).to(
            device
        )
        out["sahd"] = sahd(untrained, images) if genotype.is_spiking else None
        if row.get("needs_proxy"):  # a two-stage search's stage-1 architecture: train it at the proxy too
            proxy_config = TrainConfig.from_dict(proxy_fidelity(row.get("fidelity")))
            proxy = train_model(
                genotype, proxy_config, device=device, progress=False, data=data.without_test(), memory_share=share
            )
            if proxy.ok:
                proxy_costs = measure_costs(proxy.model, images, energy=_energy(costs))
                out.update(proxy_val_acc=proxy.val_acc, proxy_sops=proxy_costs.sops)
        result = train_model(
            genotype, train_config, device=device, progress=False, data=data, evaluate_test=True, memory_share=share
        )
        out.update(status=result.status, error=result.error, epochs=result.epochs, time_steps=result.time_steps)
        if result.ok:
            report = measure_costs(result.model, images, energy=_energy(costs))
            out.update(val_acc=result.val_acc, test_acc=result.test_acc, sops=report.sops, params=report.params)
    except Exception as exc:  # one architecture that cannot train does not stop the audit
        out["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    out["wall_s"] = time.perf_counter() - started
    return out


def _energy(costs: Mapping[str, Any]) -> Any:
    from snn_nas.costs import EnergyModel

    return EnergyModel(**{k: float(v) for k, v in costs.items() if k in ("energy_per_sop_pj", "energy_per_mac_pj")})


def proxy_fidelity(fidelity: Any) -> dict[str, Any]:
    """The standalone proxy ``TrainConfig`` fields of a row's ``fidelity`` (JSON), without what a
    one-shot trial records beside them (``oneshot``)."""
    data = json.loads(fidelity) if isinstance(fidelity, str) else dict(fidelity or {})
    return {k: v for k, v in data.items() if k != "oneshot"}


def _stored_experiment(root: Path) -> dict[str, Any]:
    from snn_nas.search.layout import EXPERIMENT_FILE

    path = root / EXPERIMENT_FILE
    if not path.is_file():
        return {}
    from snn_nas.yamlutil import read_yaml

    data = read_yaml(path, what="the search's experiment file", error=AuditError)
    return data if isinstance(data, dict) else {}


def check_sizes(rows: list[dict[str, Any]], configs: Mapping[str, Any], setting: str) -> None:
    """Every architecture to audit must run at the image size it would train at (else it would
    fail, and the audit compare nothing): an ``AuditError`` naming the size and one of them."""
    from snn_nas.genotype import Genotype

    unfit = []
    for row in rows:
        size = configs[row["key"]].image_size
        if size is None:  # the dataset's own size, which the search's trials ran at
            continue
        try:
            Genotype.from_json(str(row["genotype"])).check_image_size(size)
        except SnnNasError as exc:
            unfit.append((row["key"], size, exc))
    if unfit:
        key, size, reason = unfit[0]
        raise AuditError(
            f"{setting} {size}: {len(unfit)} of the {len(rows)} architectures to audit cannot run at {size} px "
            f"(e.g. {key}: {reason}); audit at a size they run at"
        )


def run_audit(
    results_dir: str | Path,
    *,
    sample: int = 12,
    epochs: int = 10,
    overrides: Mapping[str, Any] | None = None,
    address: str | None = None,
    num_cpus: int | None = None,
    progress: bool = True,
    verbose: bool = False,
) -> AuditRun:
    """Audit the search in ``results_dir`` (see the module docstring); returns the report.

    ``sample``: architectures to retrain (the whole search front, then a spread; at least 3);
    ``epochs`` and ``overrides`` (TrainConfig fields): the high fidelity, applied to each trial's
    own search fidelity as ``snn-nas retrain`` does, but on ``train`` only.
    """
    import ray

    from snn_nas.report import load_trials
    from snn_nas.retrain import full_fidelity_config
    from snn_nas.search.cluster import ray_session

    root = Path(results_dir)
    trials = load_trials(root)
    from snn_nas.audit_oneshot import is_two_stage, two_stage_sample
    from snn_nas.report import dataset_classes, declared_dataset

    if is_two_stage(trials):
        rows = two_stage_sample(trials, sample)
    else:  # the search front by the rule every view uses (chance level kept off)
        rows = audit_sample(trials, sample, num_classes=dataset_classes(declared_dataset(root)))
    experiment = _stored_experiment(root)
    resources = experiment.get("resources") or {}
    cpus, gpus = float(resources.get("cpus", 1) or 1), float(resources.get("gpus", 0) or 0)
    costs = experiment.get("costs") or {}
    configs = {
        r["key"]: full_fidelity_config(
            r.get("fidelity"), epochs=epochs, overrides=dict(overrides or {}), train_on="train"
        )
        for r in rows
    }
    check_sizes(rows, configs, "--image-size" if "image_size" in dict(overrides or {}) else "the search's image_size")
    store = AuditStore(root / AUDIT_DIR)
    wanted = {r["key"]: (r["key"], json.dumps(configs[r["key"]].to_dict(), sort_keys=True)) for r in rows}
    todo = [r for r in rows if wanted[r["key"]] not in store.done()]
    elsewhere = len({k for k, _ in store.done()} & set(wanted)) - (len(rows) - len(todo))
    started = time.perf_counter()
    if progress:
        done = len(rows) - len(todo)
        print(
            f"audit: {len(rows)} architectures ({sum(r['on_front'] for r in rows)} front members), "
            f"{epochs} epochs on train; {done} already done, {len(todo)} to train"
            + (f" ({elsewhere} audited before at other settings: kept, not reused)" if elsewhere > 0 else ""),
            file=sys.stderr,
            flush=True,
        )
    if todo:
        with ray_session(address, num_cpus, verbose):
            task = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=1)(audit_one)
            pending = {
                task.remote(_plain_row(r), configs[r["key"]].to_dict(), dict(costs), gpus): r["key"] for r in todo
            }
            finished, said = 0, time.perf_counter()
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=HEARTBEAT_S)
                if not ready:  # a long training: say it is alive, and for how long it has run
                    if progress and time.perf_counter() - said >= HEARTBEAT_S:
                        minutes = (time.perf_counter() - started) / 60
                        line = f"  ... {finished} of {len(todo)} done, {minutes:.0f} min so far"
                        print(line, file=sys.stderr, flush=True)
                        said = time.perf_counter()
                    continue
                said = time.perf_counter()
                key = pending.pop(ready[0])
                try:
                    row = ray.get(ready[0])
                except Exception as exc:  # the task's worker died beyond its retries
                    source = next(r for r in todo if r["key"] == key)
                    row = {**_plain_row(source), "status": "failed", "error": type(exc).__name__,
                           "fidelity": wanted[key][1], "proxy_val_acc": source.get("val_acc")}  # fmt: skip
                store.record(row)
                finished += 1
                if progress:
                    figure = f"val_acc {row['val_acc']:.2%}" if row.get("val_acc") is not None else row.get("status")
                    print(f"  [{finished}/{len(todo)}] {key}: {figure}", file=sys.stderr, flush=True)
    current = set(wanted.values())
    audited = [r for r in store.rows() if row_id(r) in current]
    proxy = proxy_fidelity(rows[0].get("fidelity"))
    report = audit_report(
        audited,
        fidelity=configs[rows[0]["key"]].to_dict(),
        proxy=proxy,
        sample=len(rows),
        wall_s=time.perf_counter() - started,
    )
    out = root / AUDIT_DIR
    (out / JSON_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    draw_audit_png(plot_info(audited), out / PNG_FILE)
    complete = len(audited) == len(rows)
    if not audited:
        raise AuditError(f"{root}: no audited architecture finished")
    return AuditRun(directory=out, report=report, complete=complete)


def _plain_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A table row as JSON-able primitives (what travels to a Ray task)."""
    from snn_nas.report.columns import plain_value

    return {name: plain_value(value) for name, value in row.items()}
