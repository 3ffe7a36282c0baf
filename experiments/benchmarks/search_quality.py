"""Does the search beat random search? Strategies over seeds at an equal trial budget.

Runs the quick experiment (or ``--experiment``) once per strategy and seed with the real Ray Tune
and Optuna, then measures every run's front on normalised axes and writes a CSV and a plot.

Normalised objectives (both minimised, both in [0, 1], fixed bounds, so runs are comparable)::

    error = 1 - val_acc
    cost  = clip((log10(SOPs) - log10(SOPS_LO)) / (log10(SOPS_HI) - log10(SOPS_LO)), 0, 1)

with ``SOPS_HI`` the experiment's reference point (2e6 SOPs per image for quick) and ``SOPS_LO``
= 1e3. The hypervolume ``HV`` of a run's ``ok`` trials (trained to the end of the proxy; trials
stopped early are of a lower fidelity and never count) is taken against the reference point
``(1, 1)``, so ``HV`` is in [0, 1]. ``regret = HV(union front) - HV(run)``, where the union front is
that of every ``ok`` trial of every run of the benchmark: 0 means a run found everything that
any run found. Curves: ``HV`` and regret after each finished trial (in the order the table
recorded them) and against the wall time since the run started.

The seed design: ``mlp_spe_micro`` is trained once per seed at the same fidelity, as a trial is
(no Ray, but the trial's thread count: on a CPU the number of threads changes the order of
floating-point sums, and a 3-epoch training then ends up to 2.6 points apart), and a run
*dominates* it when one of its ``ok`` trials, other than the seed design itself, is at least as
accurate at no more SOPs.

Strategies (``STRATEGIES``): random search (no early stopping); the previous default (TPE with
accuracy-only ASHA); TPE with MOASHA; TPE with MOASHA and SAHD pre-screening; TPE with MOASHA and
the warm start; NSGA-II with MOASHA and the warm start; TPE with the warm start and no early
stopping (every trial a full proxy evaluation, like random search); the last two with 8 mutants
of the seed design after it (``warm_start: {from: baselines, mutants: 8}``); and TPE in its
multivariate, grouped form (``multivariate: true, group: true``: a joint density over the labels
that appear together, which suits a conditional space) with MOASHA and the warm start, with and
without the mutants. ``--trials`` scales the budget
down, the same for all. Runs already in ``--results-dir`` are read, not repeated (``--resume``
is implied), so the benchmark can be stopped and continued.

Example (about 2 to 3 hours on 2 CPU cores)::

    python experiments/benchmarks/search_quality.py --seeds 0 1 2
    python experiments/benchmarks/search_quality.py --seeds 0 --trials 12 --strategies random tpe_moasha
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
SOPS_LO = 1e3
SEED_DESIGN = "mlp_spe_micro"

STRATEGIES: dict[str, dict[str, Any]] = {
    "random": {"sampler": "random", "sampler_options": (), "scheduler": "none", "warm_start": "none"},
    "tpe_asha": {"sampler": "tpe", "scheduler": "asha", "warm_start": "none"},
    "tpe_moasha": {"sampler": "tpe", "scheduler": "moasha", "warm_start": "none"},
    "tpe_moasha_prescreen": {"sampler": "tpe", "scheduler": "moasha", "warm_start": "none", "prescreen": (64, 8)},
    "tpe_moasha_warm": {"sampler": "tpe", "scheduler": "moasha", "warm_start": "baselines"},
    "nsga2_moasha_warm": {"sampler": "nsga2", "sampler_options": (), "scheduler": "moasha", "warm_start": "baselines"},
    "tpe_warm": {"sampler": "tpe", "scheduler": "none", "warm_start": "baselines"},
    "tpe_moasha_warm_mutants": {"sampler": "tpe", "scheduler": "moasha", "warm_start": "baselines", "mutants": 8},
    "tpe_warm_mutants": {"sampler": "tpe", "scheduler": "none", "warm_start": "baselines", "mutants": 8},
    "tpe_mv_moasha_warm_mutants": {
        "sampler": "tpe",
        "sampler_options": (("group", True), ("multivariate", True), ("n_startup_trials", 8)),
        "scheduler": "moasha",
        "warm_start": "baselines",
        "mutants": 8,
    },
    "tpe_mv_moasha_warm": {
        "sampler": "tpe",
        "sampler_options": (("group", True), ("multivariate", True), ("n_startup_trials", 8)),
        "scheduler": "moasha",
        "warm_start": "baselines",
    },
}


def strategy_experiment(base: Any, strategy: str, seed: int, trials: int) -> Any:
    """The experiment of one run: ``base`` with the strategy's sampler, scheduler and first trials."""
    from snn_nas.search.experiment import Prescreen

    spec = STRATEGIES[strategy]
    scheduler = dataclasses.replace(base.scheduler, kind=spec["scheduler"])
    changes: dict[str, Any] = {
        "name": f"{strategy}_s{seed}",
        "seed": seed,
        "trials": trials,
        "sampler": spec["sampler"],
        "scheduler": scheduler,
        "warm_start": spec["warm_start"],
        "warm_mutants": spec.get("mutants", 0),
        "prescreen": Prescreen(*spec["prescreen"]) if "prescreen" in spec else Prescreen(),
    }
    if "sampler_options" in spec:
        changes["sampler_options"] = spec["sampler_options"]
    return dataclasses.replace(base, **changes)


# ---------------------------------------------------------------------- maths (pure)
def normalise(val_acc: np.ndarray, sops: np.ndarray, sops_hi: float) -> np.ndarray:
    """``[n, 2]`` (error, cost) on the benchmark's fixed axes (see the module docstring)."""
    lo, hi = math.log10(SOPS_LO), math.log10(sops_hi)
    cost = (np.log10(np.maximum(sops, 1.0)) - lo) / (hi - lo)
    return np.stack([1.0 - val_acc, np.clip(cost, 0.0, 1.0)], axis=1)


def hypervolume(points: np.ndarray) -> float:
    """2-D hypervolume of minimised ``[n, 2]`` points in [0, 1]^2 against (1, 1)."""
    from snn_nas.pareto import hypervolume_2d

    if len(points) == 0:
        return 0.0
    return float(hypervolume_2d(points, np.array([1.0, 1.0])))


def run_curves(table: Any, started: float, sops_hi: float) -> list[dict[str, Any]]:
    """HV after each recorded trial of one run: ``[{trial, wall_s, hv}]``."""
    rows = table[table["baseline"] == ""].sort_values("finished_at", kind="stable")
    out, points = [], []
    for k, row in enumerate(rows.to_dict("records"), start=1):
        ok = row["status"] == "ok" and np.isfinite(row["val_acc"]) and np.isfinite(row["sops"])
        if ok:
            points.append(normalise(np.array([row["val_acc"]]), np.array([row["sops"]]), sops_hi)[0])
        out.append({"trial": k, "wall_s": float(row["finished_at"]) - started, "hv": hypervolume(np.array(points))})
    return out


# ---------------------------------------------------------------------- runs
def run_one(base: Any, strategy: str, seed: int, trials: int, results: Path, num_cpus: int | None) -> dict[str, Any]:
    """Run (or read) one search; returns its table and start time."""
    from snn_nas.search.results import load_results
    from snn_nas.search.tune import run_search

    experiment = strategy_experiment(base, strategy, seed, trials)
    folder = results / experiment.name
    meta = folder / "benchmark.json"
    if meta.is_file():
        info = json.loads(meta.read_text())
        if info.get("complete"):
            return {"table": load_results(folder), **info}
    resume = (folder / "experiment.yaml").is_file()
    started = time.time()
    if resume and meta.is_file():
        started = json.loads(meta.read_text())["started"]
    folder.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps({"started": started, "complete": False}))
    print(
        f"[{strategy} seed {seed}] {'resuming' if resume else 'running'} {trials} trials", file=sys.stderr, flush=True
    )
    outcome = run_search(
        experiment, results_dir=results, resume=resume, baselines=False, progress=False, num_cpus=num_cpus
    )
    info = {"started": started, "complete": outcome.complete, "wall_s": time.time() - started}
    meta.write_text(json.dumps(info))
    print(f"[{strategy} seed {seed}] done in {info['wall_s']:.0f} s", file=sys.stderr, flush=True)
    return {"table": outcome.table, **info}


def seed_design(base: Any, seed: int, results: Path) -> dict[str, Any]:
    """The seed design trained at the run's fidelity and seed (cached in ``results``)."""
    path = results / f"seed_design_s{seed}.json"
    if path.is_file():
        return json.loads(path.read_text())
    import torch

    from snn_nas.search.trial import TrialSpec, run_trial
    from snn_nas.space import load_space

    experiment = dataclasses.replace(base, seed=seed)
    spec = TrialSpec.from_experiment(experiment)
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(spec.cpus)))  # as a trial's Ray worker: the thread count changes the sums
    try:
        record = run_trial({}, space=load_space(experiment.space), spec=spec, baseline=SEED_DESIGN)
    finally:
        torch.set_num_threads(threads)
    out = {k: record[k] for k in ("key", "status", "val_acc", "sops", "params", "wall_s")}
    path.write_text(json.dumps(out))
    return out


def dominates(table: Any, seed_row: dict[str, Any]) -> tuple[bool, float | None]:
    """Whether an ``ok`` search trial other than the seed design dominates it, and the best accuracy
    of the run at or below the seed design's SOPs."""
    ok = table[(table["status"] == "ok") & (table["baseline"] == "") & (table["key"] != seed_row["key"])]
    cheaper = ok[ok["sops"] <= seed_row["sops"]]
    best = float(cheaper["val_acc"].max()) if len(cheaper) else None
    return best is not None and best >= seed_row["val_acc"], best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment", default="quick")
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--trials", type=int, default=None, help="trials per run (default: the experiment's)")
    parser.add_argument("--results-dir", type=Path, default=REPO / "results" / "benchmark_search_quality")
    parser.add_argument("--out", type=Path, default=REPO / "docs", help="where the CSVs and the plot go")
    parser.add_argument("--num-cpus", type=int, default=None)
    args = parser.parse_args(argv)

    import pandas as pd

    from snn_nas.search.experiment import load_experiment

    base = load_experiment(args.experiment)
    trials = args.trials or base.trials
    sops_hi = dict(base.reference_point).get("sops", 2e6)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    runs = []
    for seed in args.seeds:
        design = seed_design(base, seed, args.results_dir)
        for strategy in args.strategies:
            run = run_one(base, strategy, seed, trials, args.results_dir, args.num_cpus)
            runs.append({"strategy": strategy, "seed": seed, "design": design, **run})

    union = []
    for run in runs:
        t = run["table"]
        ok = t[(t["status"] == "ok") & (t["baseline"] == "")]
        union.append(normalise(ok["val_acc"].to_numpy(float), ok["sops"].to_numpy(float), sops_hi))
    hv_union = hypervolume(np.concatenate(union)) if union else 0.0

    summary, curves = [], []
    for run in runs:
        table = run["table"]
        curve = run_curves(table, run["started"], sops_hi)
        beaten, best = dominates(table, run["design"])
        search = table[table["baseline"] == ""]
        counts = search["status"].value_counts().to_dict()
        summary.append(
            {
                "strategy": run["strategy"],
                "seed": run["seed"],
                "trials": len(search),
                "wall_s": round(run.get("wall_s") or (curve[-1]["wall_s"] if curve else 0.0), 1),
                "hv": curve[-1]["hv"] if curve else 0.0,
                "regret": hv_union - (curve[-1]["hv"] if curve else 0.0),
                "ok": counts.get("ok", 0),
                "stopped": counts.get("stopped", 0),
                "invalid": counts.get("invalid", 0),
                "seed_design_acc": run["design"]["val_acc"],
                "seed_design_sops": run["design"]["sops"],
                "best_acc_at_seed_sops": best,
                "dominates_seed_design": beaten,
            }
        )
        for point in curve:
            curves.append({"strategy": run["strategy"], "seed": run["seed"], **point, "regret": hv_union - point["hv"]})
    args.out.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(summary)
    frame.to_csv(args.out / "search_quality.csv", index=False)
    pd.DataFrame(curves).to_csv(args.out / "search_quality_curves.csv", index=False)
    plot(pd.DataFrame(curves), args.out / "img" / "search_quality.png", trials)
    table = frame.groupby("strategy", sort=False).agg(
        hv_mean=("hv", "mean"),
        regret_mean=("regret", "mean"),
        regret_std=("regret", "std"),
        wall_min=("wall_s", lambda s: s.mean() / 60),
        dominates=("dominates_seed_design", "sum"),
        runs=("seed", "count"),
    )
    print(f"union front HV {hv_union:.4f} over {len(runs)} runs ({trials} trials each)")
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))
    print(f"wrote {args.out / 'search_quality.csv'}, search_quality_curves.csv, img/search_quality.png")
    return 0


def plot(curves: Any, path: Path, trials: int) -> None:
    """Regret against trials and against wall time: mean over seeds, band = min..max."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=120)
    colours = plt.get_cmap("tab20").colors
    for number, (strategy, group) in enumerate(curves.groupby("strategy", sort=False)):
        by_trial = group.pivot_table(index="trial", columns="seed", values="regret").ffill()
        line = left.plot(
            by_trial.index, by_trial.mean(axis=1), label=strategy, color=colours[(2 * number) % 20 + (2 * number) // 20]
        )[0]
        left.fill_between(by_trial.index, by_trial.min(axis=1), by_trial.max(axis=1), alpha=0.12,
                          color=line.get_color())  # fmt: skip
        grid = np.linspace(0, group["wall_s"].max(), 60)
        per_seed = []
        for _, run in group.groupby("seed"):
            run = run.sort_values("wall_s")
            idx = np.searchsorted(run["wall_s"].to_numpy(), grid, side="right") - 1
            values = np.where(idx >= 0, run["regret"].to_numpy()[np.maximum(idx, 0)], np.nan)
            per_seed.append(values)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # grid points before any run finished a trial
            mean = np.nanmean(np.array(per_seed), axis=0)
        right.plot(grid / 60, mean, label=strategy, color=line.get_color())
    left.set(xlabel="trials finished", ylabel="hypervolume regret (normalised)", xlim=(1, trials), yscale="log")
    right.set(xlabel="wall time (minutes)", ylabel="hypervolume regret (normalised)", yscale="log")
    left.set_title("regret vs trials (mean over seeds, band: min..max)", fontsize=9)
    right.set_title("regret vs wall time (mean over seeds)", fontsize=9)
    for ax in (left, right):
        ax.grid(alpha=0.3, which="both")
    right.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
