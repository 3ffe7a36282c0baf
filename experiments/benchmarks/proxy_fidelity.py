"""Which proxy is cheapest while still ranking architectures like high-fidelity training does?

Takes a search folder that ``snn-nas audit`` has audited (its ``audit/audit.parquet`` holds the
high-fidelity validation accuracy of a sample of the search's architectures) and trains the same
architectures at candidate proxy fidelities, exactly as a search trial would (``run_trial``:
train on ``train``, rank on ``val``, the search's calibration batch for the SOPs), without Ray,
``--workers`` processes at a time with one thread each. Per candidate it reports Kendall's tau
between its accuracy and the audit's high-fidelity accuracy over all the sample and among the
best third by the candidate's own accuracy, and its cost: the mean training seconds per
architecture, measured in this run next to the reference (the experiment's own fidelity), and
its epochs x subset (epoch-equivalents of the training part, a load-independent cost).

A candidate qualifies when tau >= 0.8 overall and >= 0.7 among the best third. Example::

    snn-nas search quick --name q && snn-nas audit results/q --sample 16
    python experiments/benchmarks/proxy_fidelity.py results/q --out docs/proxy_fidelity.csv
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

CANDIDATES: dict[str, dict[str, Any]] = {
    "reference": {},
    "4 epochs": {"epochs": 4},
    "3 epochs": {"epochs": 3},
    "2 epochs": {"epochs": 2},
    "2 epochs, lr x2": {"epochs": 2, "lr": 0.01},
    "2 epochs, all data": {"epochs": 2, "subset": 1.0},
    "3 epochs, half data": {"epochs": 3, "subset": 0.5},
    "1 epoch, all data": {"epochs": 1, "subset": 1.0},
}
TAU_ALL, TAU_TOP = 0.8, 0.7


def _train(experiment_path: str, changes: dict[str, Any], genotype_json: str) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    from snn_nas.genotype import Genotype
    from snn_nas.search.experiment import load_experiment
    from snn_nas.search.trial import TrialSpec, run_trial

    experiment = load_experiment(experiment_path)
    fidelity = {**dict(experiment.fidelity), **changes}
    experiment = dataclasses.replace(experiment, fidelity=tuple(sorted(fidelity.items())))
    genotype = Genotype.from_json(genotype_json)

    class _One:  # a one-genotype "space": run_trial decodes the sample through it
        def decode(self, sample: Any) -> Genotype:
            return genotype

    record = run_trial({}, space=_One(), spec=TrialSpec.from_experiment(experiment))
    return {k: record[k] for k in ("key", "status", "val_acc", "sops", "wall_s")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results_dir", type=Path, help="a search folder with an audit")
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="CSV of the per-candidate figures")
    args = parser.parse_args(argv)

    import pandas as pd

    from snn_nas.audit import kendall_tau, load_audit
    from snn_nas.search.results import load_results

    audit = load_audit(args.results_dir)
    if audit is None:
        raise SystemExit(f"{args.results_dir}: no audit/audit.parquet; run 'snn-nas audit {args.results_dir}' first")
    audit = audit[audit["status"] == "ok"]
    table = load_results(args.results_dir)
    genotypes = dict(zip(table["key"], table["genotype"], strict=False))
    experiment_path = str(args.results_dir / "experiment.yaml")
    cache = args.results_dir / "audit" / "proxy_fidelity.jsonl"
    done = {}
    if cache.is_file():
        for line in cache.read_text().splitlines():
            row = json.loads(line)
            done[(row["candidate"], row["key"])] = row
    jobs = [(c, k) for c in args.candidates for k in audit["key"] if (c, k) not in done]
    print(f"{len(jobs)} trainings to run ({len(done)} cached)", file=sys.stderr, flush=True)
    with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(_train, experiment_path, CANDIDATES[c], genotypes[k]): (c, k) for c, k in jobs}
        for future in as_completed(futures):
            candidate, key = futures[future]
            row = {"candidate": candidate, **future.result()}
            done[(candidate, key)] = row
            with cache.open("a") as handle:
                handle.write(json.dumps(row) + "\n")
            print(f"  {candidate:>20} {key}: {row['val_acc']:.3f}", file=sys.stderr, flush=True)

    high = dict(zip(audit["key"], audit["val_acc"], strict=True))
    proxy_epochs = {k: v for k, v in json.loads(audit["fidelity"].iloc[0]).items() if k in ("epochs", "subset")}
    rows = []
    reference_s = None
    for candidate in args.candidates:
        results = [done[(candidate, k)] for k in high if (candidate, k) in done]
        results = [r for r in results if r["status"] == "ok"]
        ranked = sorted(results, key=lambda r: -r["val_acc"])
        top = ranked[: max(3, math.ceil(len(ranked) / 3))]
        seconds = sum(r["wall_s"] for r in results) / max(1, len(results))
        if candidate == "reference":
            reference_s = seconds
        settings = {**_reference_fidelity(experiment_path), **CANDIDATES[candidate]}
        rows.append(
            {
                "candidate": candidate,
                "epochs": settings["epochs"],
                "subset": settings.get("subset", 1.0),
                "lr": settings.get("lr"),
                "epoch_equivalents": settings["epochs"] * settings.get("subset", 1.0),
                "n": len(results),
                "kendall_tau": kendall_tau([r["val_acc"] for r in results], [high[r["key"]] for r in results]),
                "kendall_tau_top": kendall_tau([r["val_acc"] for r in top], [high[r["key"]] for r in top]),
                "seconds_per_trial": seconds,
            }
        )
    frame = pd.DataFrame(rows)
    if reference_s:
        frame["relative_cost"] = frame["seconds_per_trial"] / reference_s
    frame["qualifies"] = (frame["kendall_tau"] >= TAU_ALL) & (frame["kendall_tau_top"] >= TAU_TOP)
    print(f"high fidelity: {len(high)} architectures from the audit; its proxy: {proxy_epochs}")
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(args.out, index=False)
    return 0


def _reference_fidelity(experiment_path: str) -> dict[str, Any]:
    from snn_nas.search.experiment import load_experiment

    return dict(load_experiment(experiment_path).fidelity)


if __name__ == "__main__":
    sys.exit(main())
