"""One-shot (supernet, two stages) against today's default and random search, at equal wall time.

Every run is a real ``snn-nas search`` in its own process, run one after the other (never two at
once), stopped with Ctrl-C (SIGINT) when its wall-time budget is spent; what it had recorded by
then is its result. Budgets are multiples of ``--base-seconds``, the default quick search's wall
time on this machine (measured: ``snn-nas search`` with no arguments, baselines included).

Strategies:

* ``random``: random search at the quick proxy (2 epochs), no early stopping, no warm start;
* ``default``: ``experiments/quick.yaml`` as shipped (TPE, MOASHA, warm start from mlp_spe_micro);
* ``oneshot``: ``experiments/oneshot.yaml``, scaled to the budget (``ONESHOT_SCALES``: supernet
  epochs, stage-1 architectures and stage-2 candidates); the supernet's training counts in its
  time. Only its stage-2 (standalone) rows count, like every other run's standalone rows;
* ``oneshot_anchors``: the same with ``supernet.anchors: [mlp_spe_micro]`` (the seed design
  trained at every supernet step).

The anytime strategies (random, default) run once per seed to the largest budget; their result
at a smaller budget is what they had finished by then (the rows' ``finished_at``), which is what
a run stopped then would have. A one-shot run is configured for its budget, so it runs once per
budget.

Measures (the axes of ``search_quality.py``): the hypervolume of a run's ``ok`` standalone rows
on normalised (error, log-cost) axes, and ``regret = HV(union front of all runs) - HV(run)``; and
whether the run's front dominates the seed design ``mlp_spe_micro`` *on seed means*: the seed
design is trained with 2 seeds (``search_quality.seed_design``) and its mean accuracy is compared
with the run's best architecture at or below its SOPs, on that architecture's mean over the
seeds it was trained with (2 for a one-shot run's candidates next to the seed design, 1 for
random and TPE trials, which train each architecture once).

Example (about 2 hours on 2 idle CPU cores; runs already done in --results-dir are read)::

    python experiments/benchmarks/oneshot_quality.py --base-seconds 171 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_quality import hypervolume, normalise, seed_design

REPO = Path(__file__).resolve().parents[2]
BUDGETS = (1, 4)
ONESHOT = ("oneshot", "oneshot_anchors")
ONESHOT_SCALES: dict[int, dict[str, Any]] = {
    1: {"epochs": 1, "trials": 40, "top": 2, "spread": 1, "near_baselines": 1},
    4: {"epochs": 3, "trials": 200, "top": 4, "spread": 4, "near_baselines": 2},
}
"""Per budget (a multiple of the default search's time): the one-shot run's supernet epochs,
stage-1 architectures and stage-2 candidates (the rest of experiments/oneshot.yaml as shipped)."""


def experiment_for(strategy: str, seed: int, budget: int) -> Any:
    """The experiment a run uses (named ``<strategy>_b<budget>_s<seed>``)."""
    from snn_nas.search.experiment import Scheduler, load_experiment

    if strategy in ONESHOT:
        base = load_experiment("oneshot")
        scale = ONESHOT_SCALES[budget]
        oneshot = base.oneshot
        anchors = ("mlp_spe_micro",) if strategy == "oneshot_anchors" else oneshot.supernet.anchors
        oneshot = dataclasses.replace(
            oneshot,
            supernet=dataclasses.replace(oneshot.supernet, epochs=scale["epochs"], anchors=anchors),
            stage2=dataclasses.replace(
                oneshot.stage2, top=scale["top"], spread=scale["spread"], near_baselines=scale["near_baselines"]
            ),
        )
        return dataclasses.replace(base, name=f"{strategy}_b{budget}_s{seed}", seed=seed, trials=scale["trials"],
                                   oneshot=oneshot)  # fmt: skip
    base = load_experiment("quick")
    changes: dict[str, Any] = {"name": f"{strategy}_b{budget}_s{seed}", "seed": seed, "trials": 2000}
    if strategy == "random":
        changes.update(sampler="random", sampler_options=(), scheduler=Scheduler("none"), warm_start="none")
    return dataclasses.replace(base, **changes)


def run(strategy: str, seed: int, budget: int, seconds: float, results: Path) -> dict[str, Any]:
    """Run one search in its own process for ``seconds`` (or read a finished run)."""
    experiment = experiment_for(strategy, seed, budget)
    folder = results / experiment.name
    meta = folder / "benchmark.json"
    if meta.is_file() and json.loads(meta.read_text()).get("done"):
        return json.loads(meta.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    path = results / f"{experiment.name}.yaml"
    path.write_text(experiment.to_yaml())
    print(f"[{experiment.name}] {seconds:.0f} s", file=sys.stderr, flush=True)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    started = time.time()
    command = [sys.executable, "-m", "snn_nas.cli.main", "search", str(path), "--results-dir", str(results),
               "--no-progress"]  # fmt: skip
    with (folder.parent / f"{experiment.name}.log").open("w") as log:
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)  # Ctrl-C: finished rows are in the table already
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    info = {"name": experiment.name, "started": started, "budget_s": seconds, "wall_s": time.time() - started,
            "returncode": proc.returncode, "done": True}  # fmt: skip
    meta.write_text(json.dumps(info))
    return info


def standalone_rows(folder: Path, started: float, seconds: float) -> Any:
    """The run's ``ok`` standalone search rows finished within ``seconds`` of its start."""
    from snn_nas.search.results import load_results

    if not (folder / "trials.parquet").is_file() and not (folder / "trials.jsonl").is_file():
        return None
    table = load_results(folder)
    proxy = table["proxy"].fillna("standalone") if "proxy" in table else "standalone"
    keep = (table["baseline"] == "") & (proxy != "supernet") & (table["status"] == "ok")
    keep &= table["finished_at"] - started <= seconds
    return table[keep]


def best_at_seed_cost(rows: Any, design_sops: float, design_key: str) -> tuple[float | None, int]:
    """The best seed-mean accuracy among architectures at or below the seed design's SOPs (other
    than the seed design), and over how many seeds that architecture was trained."""
    if rows is None or not len(rows):
        return None, 0
    means = rows[rows["key"] != design_key].groupby("key").agg(acc=("val_acc", "mean"), sops=("sops", "mean"),
                                                                  n=("val_acc", "size"))  # fmt: skip
    cheaper = means[means["sops"] <= design_sops]
    if not len(cheaper):
        return None, 0
    top = cheaper.sort_values("acc", ascending=False).iloc[0]
    return float(top["acc"]), int(top["n"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-seconds", type=float, required=True, help="the default quick search's wall time")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--budgets", nargs="+", type=int, default=list(BUDGETS), choices=list(BUDGETS))
    parser.add_argument("--strategies", nargs="+", default=["oneshot", "default", "random"])
    parser.add_argument("--results-dir", type=Path, default=REPO / "results" / "benchmark_oneshot")
    parser.add_argument("--out", type=Path, default=REPO / "docs")
    parser.add_argument("--csv-name", default="oneshot_quality.csv")
    parser.add_argument("--union-hv", type=float, default=None,
                        help="the union front's HV of earlier runs not in --results-dir (regret is measured from "
                             "the larger of it and this run set's union)")  # fmt: skip
    args = parser.parse_args(argv)

    import pandas as pd

    from snn_nas.search.experiment import load_experiment

    quick = load_experiment("quick")
    sops_hi = dict(quick.reference_point).get("sops", 2e6)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    largest = max(args.budgets)
    runs = []
    for seed in args.seeds:
        designs = [seed_design(quick, s, args.results_dir) for s in (seed, seed + 1)]
        design = {"key": designs[0]["key"], "sops": float(np.mean([d["sops"] for d in designs])),
                  "acc": float(np.mean([d["val_acc"] for d in designs]))}  # fmt: skip
        for strategy in args.strategies:
            for budget in args.budgets if strategy in ONESHOT else [largest]:
                info = run(strategy, seed, budget, budget * args.base_seconds, args.results_dir)
                for at in args.budgets if strategy not in ONESHOT else [budget]:
                    rows = standalone_rows(args.results_dir / info["name"], info["started"], at * args.base_seconds)
                    runs.append({"strategy": strategy, "seed": seed, "budget": at, "rows": rows, "design": design})

    def points(rows: Any) -> np.ndarray:
        if rows is None or not len(rows):
            return np.zeros((0, 2))
        return normalise(rows["val_acc"].to_numpy(float), rows["sops"].to_numpy(float), sops_hi)

    hv_union = hypervolume(np.concatenate([points(r["rows"]) for r in runs]))
    if args.union_hv is not None:
        if hv_union > args.union_hv:
            print(f"note: these runs' union HV {hv_union:.4f} exceeds --union-hv {args.union_hv:.4f}; the earlier "
                  "runs' regrets would grow by the difference", file=sys.stderr)  # fmt: skip
        hv_union = max(hv_union, args.union_hv)
    summary = []
    for r in runs:
        best, n = best_at_seed_cost(r["rows"], r["design"]["sops"], r["design"]["key"])
        summary.append({
            "strategy": r["strategy"], "seed": r["seed"], "budget": r["budget"],
            "standalone_ok": 0 if r["rows"] is None else len(r["rows"]),
            "hv": hypervolume(points(r["rows"])), "regret": hv_union - hypervolume(points(r["rows"])),
            "seed_design_mean_acc": r["design"]["acc"], "seed_design_sops": r["design"]["sops"],
            "best_mean_acc_at_seed_sops": best, "best_seeds": n,
            "dominates_seed_design": best is not None and best >= r["design"]["acc"],
        })  # fmt: skip
    frame = pd.DataFrame(summary)
    args.out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out / args.csv_name, index=False)
    random = frame[frame["strategy"] == "random"].groupby("budget")["regret"].mean()
    table = frame.groupby(["budget", "strategy"], sort=False).agg(
        regret_mean=("regret", "mean"), regret_std=("regret", "std"), hv_mean=("hv", "mean"),
        dominates=("dominates_seed_design", "sum"), runs=("seed", "count"), standalone_ok=("standalone_ok", "mean"),
    )  # fmt: skip
    table["regret_vs_random"] = [row.regret_mean / random.get(budget, np.nan) for (budget, _), row in table.iterrows()]
    print(f"union front HV {hv_union:.4f}; base budget {args.base_seconds:.0f} s; seeds {args.seeds}")
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))
    print(f"wrote {args.out / args.csv_name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
