"""Retrain one architecture of a search at full fidelity, measure it, and report.

``retrain(results_dir, rank=K | key=KEY, ...)`` picks a trial (``select_trial``), raises its
search fidelity to full fidelity (``full_fidelity_config``), trains it with the training engine
(checkpoint ``last.pt``, resumable), measures its costs on the search's calibration batch (the
first validation images), and writes everything under ``RESULTS_DIR/retrain/<key>/``:

* ``last.pt``: the trained model (``snn_nas.load_model(path)`` rebuilds it in eval mode);
* ``report.json`` and ``report.md``: architecture, test accuracy, the search's validation
  accuracy, SOPs, MACs, energy, params, T, training config and curve;
* ``training_curve.png``.

Who sees what: the search selected the architecture on ``val``. Retraining fits it on all the
training data (``train`` + ``val``, ``train_on="train+val"``) and reports the **test accuracy
of the final model** (``test_acc``), measured once after the last epoch: no epoch and no
checkpoint is chosen by it, and nothing is held out to choose by, so there is no ``best.pt``.
"""

from __future__ import annotations

import json
import math
import platform
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from snn_nas.errors import SnnNasError
from snn_nas.jsonutil import finite_or_null
from snn_nas.report import (
    EXCLUSIONS,
    TRIALS_FILE,
    analyse_front,
    dataset_classes,
    declared_constraints,
    declared_dataset,
    declared_reference_point,
    is_missing,
    load_trials,
    seed_design_keys,
)
from snn_nas.report.columns import plain_value

DEFAULT_EPOCHS = 30
DEFAULT_CALIBRATION_IMAGES = 64
CHECKPOINT = "last.pt"


class RetrainError(SnnNasError, LookupError):
    """No trial matches the requested rank or key, or its row cannot be retrained."""


@dataclass(frozen=True)
class RetrainResult:
    """Where ``retrain`` wrote its files, and the headline figures (see ``report.json``)."""

    key: str
    status: str
    test_acc: float | None
    search_val_acc: float | None
    train_acc: float | None
    sops: float | None
    energy_uj: float | None
    out_dir: str
    checkpoint: str
    report_json: str
    report_md: str
    curve_png: str


# ----------------------------------------------------------------------------- selection
def select_trial(
    trials: Any,
    *,
    rank: int | None = None,
    key: str | None = None,
    x: str = "sops",
    reference: Any = None,
    num_classes: int | None = None,
    seed_designs: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The row to retrain, as a dict with ``rank`` (None when chosen by key), ``seed_design``
    (the preset the architecture is, or "") and ``why`` (the choice in words).

    ``rank`` K: the K-th row of the Pareto front (accuracy vs ``x``) sorted by accuracy
    descending, one row per architecture, seed designs included (rank 0 = most accurate; what
    ``snn-nas pareto`` shows). ``key``: the trial with this architecture key (or a unique prefix
    of one), its most accurate ``ok`` row. Neither: the most accurate front member that is not a
    seed design, i.e. the best architecture the search found; a seed design (a baseline, or a
    warm-start preset) is retrained only when asked for by rank or key. ``num_classes`` and
    ``seed_designs``: as ``analyse_front``.
    """
    if rank is not None and key is not None:
        raise RetrainError("give either --rank or --key, not both")
    if key is None:
        analysis = analyse_front(
            trials, x=x, reference_point=reference, num_classes=num_classes, seed_designs=seed_designs
        )
        front = analysis.front
        if front.empty:
            reasons = "; ".join(f"{n} {EXCLUSIONS[r]}" for r, n in analysis.excluded_counts.items())
            nan = _nan_counts(trials, ("val_acc", x))
            what = (
                f"{nan} (not a number: such a trial has no place on a front)"
                if nan
                else "no trial has finished with status 'ok' and a place on it yet"
            )
            raise RetrainError(f"the front is empty: {what}" + (f" (kept off: {reasons})" if reasons else ""))
        if rank is None:
            found = front[front["seed_design"].astype(str) == ""]
            if found.empty:
                designs = ", ".join(sorted(set(front["seed_design"].astype(str))))
                raise RetrainError(
                    f"every front member is a seed design ({designs}), not an architecture the search found; "
                    "retrain one with --rank 0 or --key KEY"
                )
            row = dict(found.iloc[0].to_dict())
            above = front[front["rank"] < row["rank"]]
            why = f"rank {row['rank']} of the front: the most accurate architecture the search found"
            if not above.empty:
                ahead = ", ".join(f"{r['key']} ({r['seed_design']})" for r in above.to_dict("records"))
                why += f"; ahead of it only seed designs: {ahead} (retrain those with --rank or --key)"
            row["why"] = why
            return row
        if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < len(front):
            raise RetrainError(f"--rank: {rank} is out of range; the front has ranks 0..{len(front) - 1}")
        row = dict(front.iloc[rank].to_dict())
        row["why"] = f"rank {rank} of the front, as asked"
        return _seed_note(row)
    if not isinstance(key, str) or not key.strip() or not key.isprintable():
        raise RetrainError(f"--key: expected an architecture key (or a unique prefix of one), got {key!r}")
    keys = trials["key"].map(lambda v: "" if is_missing(v) else str(v))  # an invalid trial may have no key
    matches = trials[keys == key]
    if matches.empty:
        matches = trials[keys.str.startswith(key)]
        if matches["key"].nunique() > 1:
            found = ", ".join(sorted(matches["key"].astype(str).unique())[:8])
            raise RetrainError(f"--key: {key!r} is the prefix of several keys ({found}); give more characters")
    if matches.empty:
        known = ", ".join(sorted(k for k in keys.unique() if k)[:8]) or "(none)"
        raise RetrainError(f"--key: no trial has key {key!r}; keys include {known}")
    ok = matches[matches["status"].astype(str).to_numpy() == "ok"]
    chosen = (ok if not ok.empty else matches).sort_values("val_acc", ascending=False, na_position="last")
    row = dict(chosen.iloc[0].to_dict())
    row["rank"] = None
    row_key = "" if is_missing(row.get("key")) else str(row["key"])
    baseline = "" if is_missing(row.get("baseline")) else str(row.get("baseline") or "")
    row["seed_design"] = baseline or (seed_designs or {}).get(row_key, "") or _baseline_of(trials, row_key)
    row["why"] = f"key {row_key}, as asked"
    return _seed_note(row)


def _nan_counts(trials: Any, columns: tuple[str, ...]) -> str:
    """``"3 ok trials have a NaN val_acc"`` for the ``columns`` in which finished (``ok``) rows hold
    NaN or no value; "" when none does."""
    import numpy as np
    import pandas as pd

    if "status" not in trials.columns:
        return ""
    ok = trials[trials["status"].astype(str) == "ok"]
    out = []
    for column in columns:
        if column in ok.columns:
            count = int((~np.isfinite(pd.to_numeric(ok[column], errors="coerce").to_numpy(dtype=float))).sum())
            if count:
                out.append(f"{count} ok trial{'s have' if count > 1 else ' has'} a NaN {column}")
    return ", ".join(out)


def _baseline_of(trials: Any, key: str) -> str:
    if "baseline" not in trials.columns:
        return ""
    names = [str(b) for k, b in zip(trials["key"], trials["baseline"], strict=True) if str(k) == key and str(b or "")]
    return next((b for b in names if b and b != "<NA>"), "")


def _seed_note(row: dict[str, Any]) -> dict[str, Any]:
    design = row.get("seed_design") or ""
    if design and not is_missing(design):
        row["why"] += (
            f"; note: this is the seed design {design}, a hand design the search started from, not one it found"
        )
    return row


def choose_trial(
    results_dir: str | Path, *, rank: int | None = None, key: str | None = None, x: str = "sops", trials: Any = None
) -> dict[str, Any]:
    """``select_trial`` on the table of ``results_dir``, with its declared reference point, the
    classes of its dataset and its seed designs."""
    root = Path(results_dir)
    if trials is None:
        trials = load_trials(root)
    reference, _ = declared_reference_point(root)
    row = select_trial(
        trials,
        rank=rank,
        key=key,
        x=x,
        reference=reference,
        num_classes=dataset_classes(declared_dataset(root)),
        seed_designs=seed_design_keys(root),
    )
    broken = broken_constraints(row, declared_constraints(root))
    if broken:  # only --key reaches such a row: the front keeps infeasible trials off
        row["constraint_warning"] = f"it breaks the search's constraints ({broken}); retrained as asked"
        row["why"] += f"; note: {row['constraint_warning']}"
    return row


def broken_constraints(row: dict[str, Any], constraints: dict[str, float]) -> str:
    """The constraints ``row`` breaks, in words (``max_params: 390,000 > 300,000``); "" when none."""
    from snn_nas.report import format_count

    out = []
    for metric, limit in constraints.items():
        value = row.get(metric)
        if not is_missing(value) and isinstance(value, (int, float)) and float(value) > limit:
            out.append(f"max_{metric}: {format_count(float(value))} > {format_count(limit)}")
    return ", ".join(out)


def search_config(fidelity: Any) -> Any:
    """The ``TrainConfig`` a trial was searched with, from its ``fidelity`` (JSON text or a dict;
    a one-shot trial's ``oneshot`` entry left out; missing: the defaults)."""
    from snn_nas.training import TrainConfig

    if not isinstance(fidelity, dict) and is_missing(fidelity):
        fidelity = None
    if isinstance(fidelity, str):
        try:
            fidelity = json.loads(fidelity)
        except json.JSONDecodeError as exc:
            raise RetrainError(f"the trial's fidelity column is not valid JSON: {exc}") from None
    if isinstance(fidelity, dict):  # a one-shot trial records how it used the supernet beside its TrainConfig
        fidelity = {k: v for k, v in fidelity.items() if k != "oneshot"}
    return TrainConfig.from_dict(fidelity) if fidelity else TrainConfig()


def full_fidelity_config(
    fidelity: Any,
    *,
    epochs: int = DEFAULT_EPOCHS,
    overrides: dict[str, Any] | None = None,
    native_image_size: bool = False,
    train_on: str = "train+val",
) -> Any:
    """The search's ``TrainConfig`` (``fidelity``: JSON text or a dict) at full fidelity.

    Full fidelity: all of the chosen training data (``subset`` 1.0; ``train_on``:
    ``"train+val"`` for a retraining, ``"train"`` for an audit, which keeps ``val`` held out),
    every batch (``max_batches_per_epoch`` None), the architecture's own T (``max_time_steps``
    None) and ``epochs``. Everything else (dataset, image size, batch size, recipe, seed,
    ``val_fraction``) stays as the search had it. ``overrides`` (TrainConfig field -> value,
    None values ignored) apply last; ``native_image_size`` sets ``image_size`` to None (the
    dataset's own size).
    """
    from snn_nas.training import TrainConfig

    base = fidelity if isinstance(fidelity, TrainConfig) else search_config(fidelity)
    changes: dict[str, Any] = {
        "subset": 1.0,
        "max_batches_per_epoch": None,
        "max_time_steps": None,
        "epochs": epochs,
        "train_on": train_on,
    }
    allowed = {f.name for f in fields(TrainConfig)}
    for name, value in (overrides or {}).items():
        if name not in allowed:
            raise RetrainError(f"override {name!r} is not a TrainConfig field; allowed: {sorted(allowed)}")
        if value is not None:
            changes[name] = value
    if native_image_size:
        changes["image_size"] = None
    return replace(base, **changes)


def _experiment_costs(results_dir: Path) -> dict[str, Any]:
    """The ``costs`` settings of the experiment (calibration images, energy constants), if any."""
    path = results_dir / "experiment.yaml"
    if not path.is_file():
        return {}
    from snn_nas.yamlutil import read_yaml

    data = read_yaml(path, what="the search's experiment file", error=RetrainError)
    costs = data.get("costs") if isinstance(data, dict) else None
    return dict(costs) if isinstance(costs, dict) else {}


# ----------------------------------------------------------------------------- retraining
def retrain(
    results_dir: str | Path,
    *,
    rank: int | None = None,
    key: str | None = None,
    x: str = "sops",
    epochs: int = DEFAULT_EPOCHS,
    overrides: dict[str, Any] | None = None,
    native_image_size: bool = False,
    resume: bool = True,
    device: str | None = None,
    progress: bool = True,
    download: bool = False,
    calibration_images: int | None = None,
    data: Any = None,
    selected: dict[str, Any] | None = None,
    trainer: Any = None,
    config_hook: Any = None,
    at_scale: dict[str, Any] | None = None,
    export: bool = True,
) -> RetrainResult:
    """Retrain the chosen trial of ``results_dir`` at full fidelity on ``train`` + ``val`` and
    measure its test accuracy; see the module docstring.

    ``rank`` / ``key`` / ``x``: as ``select_trial``. ``epochs``, ``overrides`` (TrainConfig
    fields) and ``native_image_size``: as ``full_fidelity_config``. ``resume``: continue from
    ``retrain/<key>/last.pt`` if present (same settings required). ``data``: preloaded
    ``DataSplits`` (default: the config's dataset). ``calibration_images``: validation images
    the costs are measured on (default: the experiment's ``costs.calibration_images``, else 64).
    ``selected``: the row ``choose_trial`` returned (default: chosen here from ``rank`` / ``key``).
    ``trainer``: the training function (default ``train_model``; ``snn-nas retrain --workers N``
    passes the data-parallel one, same signature); ``config_hook``: applied to the full-fidelity
    config before training (a published recipe, the learning-rate rule); ``at_scale``: the
    data-parallel settings and plan, written to the report. ``export``: also write the trained
    network as a ``torch.export`` program, ``model.pt2`` (``snn_nas.export``).
    """
    import torch

    from snn_nas.checkpoint import CheckpointError
    from snn_nas.costs import EnergyModel, measure_costs
    from snn_nas.genotype import Genotype
    from snn_nas.search.trial import calibration_batch
    from snn_nas.training import load_config_data, resolve_device, train_model
    from snn_nas.version import __version__

    root = Path(results_dir)
    trials = load_trials(root)
    if selected is None:
        selected = choose_trial(root, rank=rank, key=key, x=x, trials=trials)
    row = selected
    where = f"{root / TRIALS_FILE}: trial {plain_value(row.get('trial_id'))}"
    if is_missing(row.get("genotype")):
        raise RetrainError(f"{where} (key {row['key']}) has no genotype to rebuild")
    try:
        genotype = Genotype.from_json(str(row["genotype"]))
    except SnnNasError as exc:
        raise RetrainError(f"{where}: genotype: {exc}; the table is damaged") from None
    if not is_missing(row.get("key")) and genotype.key() != str(row["key"]):
        raise RetrainError(
            f"{where}: its stored genotype has key {genotype.key()}, not the row's key {row['key']}; the table is "
            "damaged (retraining the stored genotype would retrain another architecture than the one chosen)"
        )
    try:
        searched = search_config(row.get("fidelity"))
    except SnnNasError as exc:
        raise RetrainError(f"{where}: fidelity: {exc}; the table is damaged") from None
    config = full_fidelity_config(searched, epochs=epochs, overrides=overrides, native_image_size=native_image_size)
    if config_hook is not None:
        config = config_hook(config)
    arch_key = genotype.key()
    out = root / "retrain" / arch_key  # created by the first checkpoint or the report, never left empty

    dev = resolve_device(device)
    if data is None:
        data = load_config_data(config, download=download)
    train = trainer if trainer is not None else train_model
    try:
        result = train(
            genotype, config, out_dir=out, resume=resume, device=dev, progress=progress, data=data, evaluate_test=True
        )
    except CheckpointError as exc:
        raise RetrainError(f"{exc}. Pass --no-resume to start this retraining over") from None

    exp_costs = _experiment_costs(root)
    costs = None
    if result.ok:
        energy = EnergyModel(**{k: v for k, v in exp_costs.items() if k in ("energy_per_sop_pj", "energy_per_mac_pj")})
        n = calibration_images or int(exp_costs.get("calibration_images", DEFAULT_CALIBRATION_IMAGES))
        images = calibration_batch(result.data, n).to(dev)  # the images the search measured its costs on (T bins)
        costs = measure_costs(result.model, images, energy=energy).to_dict()
    exported = _export(result.model, images, out) if result.ok and export else None

    report = {
        "key": arch_key,
        "status": result.status,
        "error": result.error,
        "test_acc": result.test_acc,
        "test_loss": result.test_loss,
        "train_acc": _final(result.history, "train_acc"),
        "train_loss": _final(result.history, "train_loss"),
        "search_val_acc": plain_value(row.get("val_acc")),
        "trained_on": f"{config.train_on} ({len(data.training_set(include_val=True))} images)",
        "epochs": result.epochs,
        "time_steps": result.time_steps,
        "wall_s": result.wall_s,
        "costs": costs,
        "summary": genotype.summary(),
        "genotype": genotype.to_dict(),
        "config": config.to_dict(),
        "dataset": data.describe(),
        "source": {
            "results_dir": str(root),
            "trial_id": plain_value(row.get("trial_id")),
            "rank": plain_value(row.get("rank")),
            "x": x,
            "baseline": plain_value(row.get("baseline")) or "",
            "seed_design": plain_value(row.get("seed_design")) or "",
            "why": row.get("why"),
            "search_val_acc": plain_value(row.get("val_acc")),
            "search_sops": plain_value(row.get("sops")),
            "search_energy_uj": plain_value(row.get("energy_uj")),
            "search_fidelity": json.loads(row["fidelity"]) if isinstance(row.get("fidelity"), str) else None,
        },
        "checkpoint": CHECKPOINT,
        "program": exported,
        **({"at_scale": at_scale} if at_scale else {}),
        "history": result.history,
        "device": str(dev),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "version": __version__,
    }
    out.mkdir(parents=True, exist_ok=True)  # training that failed in its first epoch wrote no checkpoint
    paths = write_report(report, out)
    return RetrainResult(
        key=arch_key,
        status=result.status,
        test_acc=result.test_acc,
        search_val_acc=report["search_val_acc"],
        train_acc=report["train_acc"],
        sops=None if costs is None else costs["sops"],
        energy_uj=None if costs is None else costs["energy_uj"],
        out_dir=str(out),
        checkpoint=str(out / CHECKPOINT),
        report_json=str(paths["json"]),
        report_md=str(paths["md"]),
        curve_png=str(paths["png"]),
    )


def _export(model: Any, images: Any, out: Path) -> dict[str, Any]:
    """Write ``out/model.pt2`` (``snn_nas.export``); its file name, or the reason it could not be
    written (the retraining's result stands either way)."""
    from snn_nas.export import PROGRAM, export_program

    out.mkdir(parents=True, exist_ok=True)
    try:
        export_program(model, images[:2] if images.ndim == 4 else images[:, :2], out / PROGRAM)
    except Exception as exc:  # torch.export's failures have many types; the checkpoint is still there
        return {"file": None, "error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"}
    return {"file": PROGRAM, "error": None, "input": list(images.shape[1:] if images.ndim == 4 else images.shape)}


def _final(history: list[dict[str, Any]], name: str) -> float | None:
    return float(history[-1][name]) if history and name in history[-1] else None


# ----------------------------------------------------------------------------- the report
def write_report(report: dict[str, Any], out: Path) -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` and ``training_curve.png`` into ``out``."""
    from snn_nas.plots import draw_training_curve_png, training_curve_info

    paths = {"json": out / "report.json", "md": out / "report.md", "png": out / "training_curve.png"}
    paths["json"].write_text(json.dumps(finite_or_null(report), indent=2) + "\n")
    trained_on = str(report.get("trained_on") or "").split(" (")[0]
    info = training_curve_info(
        report["history"], title=f"retraining {report['key']}", test_acc=report.get("test_acc"), trained_on=trained_on
    )
    draw_training_curve_png(info, paths["png"])
    paths["md"].write_text(markdown_report(report))
    return paths


def _pct(value: Any) -> str:
    return "-" if value is None or not math.isfinite(float(value)) else f"{100 * float(value):.2f} %"


def markdown_report(report: dict[str, Any]) -> str:
    """The Markdown version of a retraining report (``report.json`` content)."""
    from snn_nas.report import format_count

    costs = report.get("costs") or {}
    source = report["source"]
    config = report["config"]
    checkpoint = Path(source["results_dir"]) / "retrain" / report["key"] / report["checkpoint"]
    origin = f"rank {source['rank']} of the Pareto front" if source.get("rank") is not None else "chosen by key"
    design = source.get("seed_design") or source.get("baseline")
    if design:
        origin += f"; the seed design `{design}` (a hand design the search started from, not one it found)"
    elif source.get("rank") is not None:
        origin += "; found by the search"
    lines = [
        f"# Retrained architecture `{report['key']}`",
        "",
        f"From `{source['results_dir']}`, trial `{source['trial_id']}` ({origin}; search accuracy "
        f"{_pct(source.get('search_val_acc'))} at the search fidelity). Status: **{report['status']}**"
        + (f" ({report['error']})" if report.get("error") else "")
        + ".",
        "",
        "## Architecture",
        "",
        *[f"- {part.strip()}" for part in report["summary"].split(";")],
        "",
        "## Result",
        "",
        "| metric | value |",
        "|---|---|",
        f"| **test accuracy** (final model, the checkpoint) | {_pct(report.get('test_acc'))} |",
        f"| search accuracy (val, at the search fidelity: what selected it) | {_pct(report.get('search_val_acc'))} |",
        f"| training accuracy (final epoch, on {report.get('trained_on', 'train+val')}) | "
        f"{_pct(report.get('train_acc'))} |",
        f"| SOPs per image | {format_count(costs.get('sops'))} |",
        f"| MACs per image | {format_count(costs.get('macs'))} |",
        f"| energy per image | {_energy(costs)} |",
        f"| mean firing rate | {_rate(costs.get('firing_rate'))} |",
        f"| parameters | {format_count(costs.get('params'))} |",
        f"| time steps T | {report.get('time_steps')} |",
        f"| epochs | {report['epochs']} |",
        f"| training wall time | {report['wall_s']:.1f} s on {report['device']} |",
        "",
        f"Dataset: {report['dataset']}. Trained on {report.get('trained_on', 'train+val')}; the test part was read "
        "once, after the last epoch. Costs measured on the search's calibration batch "
        f"({costs.get('batch_size', '-')} validation images), per image, summed over the time steps.",
        "",
        "## Training",
        "",
        "![training curve](training_curve.png)",
        "",
        "| epoch | train accuracy | train loss |",
        "|---|---|---|",
        *[
            f"| {h.get('epoch')} | {_pct(h.get('train_acc'))} | {_num(h.get('train_loss'))} |"
            for h in report["history"]
        ],
        "",
        "Training config (full fidelity): "
        + ", ".join(
            f"{k}={config[k]}" for k in ("dataset", "epochs", "batch_size", "lr", "optimizer", "image_size", "seed")
        ),
        "",
        "## Use it",
        "",
        "```python",
        "import snn_nas",
        f'model = snn_nas.load_model("{checkpoint}")',
        "logits = model(images)  # [B, C, H, W] -> [B, num_classes], eval mode",
        "```",
        "",
        *_program_lines(report, checkpoint.parent),
        *_scale_lines(report.get("at_scale")),
        "## Genotype",
        "",
        "```json",
        json.dumps(report["genotype"], indent=2, sort_keys=True),
        "```",
        "",
        f"snn-nas {report['version']}, torch {report['torch']}, Python {report['python']}.",
        "",
    ]
    return "\n".join(lines)


def _program_lines(report: dict[str, Any], folder: Path) -> list[str]:
    program = report.get("program") or {}
    if not program.get("file"):
        reason = program.get("error") or "not asked for"
        return [f"No `torch.export` program was written ({reason}).", ""]
    return [
        f"Without snn-nas (torch only), from the `torch.export` program `{folder / program['file']}` (inference "
        f"at T = {report.get('time_steps')}, any batch size):",
        "",
        "```python",
        "import torch",
        f'model = torch.export.load("{folder / program["file"]}").module()',
        "logits = model(images)  # normalised as in training -> [B, num_classes]",
        "```",
        "",
    ]


def _scale_lines(at_scale: dict[str, Any] | None) -> list[str]:
    if not at_scale:
        return []
    return ["## At scale", "", *[f"- {line}" for line in at_scale.get("lines", [])], ""]


def _energy(costs: dict[str, Any]) -> str:
    if costs.get("energy_uj") is None:
        return "-"
    return f"{costs['energy_uj']:.4g} uJ ({costs['energy_per_sop_pj']:g} pJ/SOP, {costs['energy_per_mac_pj']:g} pJ/MAC)"


def _rate(value: Any) -> str:
    return "-" if value is None else f"{float(value):.4f}"


def _num(value: Any) -> str:
    return "-" if value is None or not math.isfinite(float(value)) else f"{float(value):.4f}"
