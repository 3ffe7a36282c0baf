"""How well does a supernet rank architectures? Kendall's tau against standalone training.

Ground truth: a random search of ``--archs`` architectures of ``experiments/oneshot.yaml``'s
space, data, proxy (2 epochs) and constraints, run once as a real ``snn-nas search``
(``sampler: random``, no scheduler, no warm start, the seed designs as baselines) into
``--truth`` and reused by later runs. Then every ``--variant`` (supernet settings over the
experiment's, ``name=value`` pairs joined by ``;``, values in YAML, e.g. ``epochs=3`` or
``epochs=3;anchors=[mlp_spe_micro]``) trains a supernet in this process (``--out/<variant>``,
resumed when there) and evaluates every feasible architecture of the ground truth on it with the
search's own evaluation (``snn_nas.supernet.evaluate.evaluate_subnet``). It prints, per variant,
the training time, Kendall's tau of the supernet's estimates against the proxy with its 95 %
interval (``snn_nas.audit.rank_interval``), tau over the best third, and each seed design's
estimate next to its standalone accuracy, and writes every estimate to a CSV.

Example (about 5 minutes for the ground truth of 30 architectures and 3-4 minutes per 3-epoch
variant on 2 idle CPU cores)::

    python experiments/benchmarks/supernet_ranking.py --variant "epochs=3" \
        --variant "epochs=3;anchors=[mlp_spe_micro]" --from-scratch 10

``--from-scratch STEPS`` adds the baseline a supernet must beat: every estimate made from the
initial weights after STEPS training steps (``finetune_steps``), no supernet trained. ``--seed N``
gives every variant and baseline supernet seed N (its runs are named ``...-seedN``), for the
spread of tau over seeds::

    for s in 1 2; do python experiments/benchmarks/supernet_ranking.py --seed $s \
        --variant "epochs=4" --from-scratch 10 --csv ranking_s$s.csv; done
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def parse_variant(text: str) -> dict[str, Any]:
    """``"epochs=3;anchors=[mlp_spe_micro]"`` -> ``{"epochs": 3, "anchors": ["mlp_spe_micro"]}``."""
    import yaml

    out: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise SystemExit(f"--variant {text!r}: expected name=value pairs joined by ';'")
        out[name.strip()] = yaml.safe_load(value)
    return out


def truth_experiment(archs: int) -> Any:
    """The ground truth's experiment: the one-shot experiment as a random per-trial search."""
    from snn_nas.search.experiment import Scheduler, load_experiment

    base = load_experiment("oneshot")
    return dataclasses.replace(base, name="truth", oneshot=None, trials=archs, sampler="random", sampler_options=(),
                               scheduler=Scheduler("none"), warm_start="none")  # fmt: skip


def ground_truth(folder: Path, archs: int) -> Any:
    """The ``ok`` rows of the ground-truth search in ``folder`` (run now when not finished)."""
    from snn_nas.search.results import load_results

    experiment = truth_experiment(archs)
    done = folder / "benchmark.json"
    if not done.is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        path = folder.parent / "truth.yaml"
        path.write_text(experiment.to_yaml())
        command = [sys.executable, "-m", "snn_nas.cli.main", "search", str(path), "--results-dir",
                   str(folder.parent), "--no-progress"]  # fmt: skip
        if (folder / "trials.parquet").is_file() or (folder / "trials.jsonl").is_file():
            command.append("--resume")
        print(f"ground truth: {archs} architectures at the proxy -> {folder}", file=sys.stderr, flush=True)
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        subprocess.run(command, cwd=REPO, env=env, stdout=sys.stderr, check=True)  # its summary to stderr
        done.write_text(json.dumps({"archs": archs, "finished": time.time()}))
    table = load_results(folder)
    return table[(table["status"] == "ok") & table["val_acc"].notna()]


def evaluate_variant(name: str, overrides: dict[str, Any], rows: Any, out: Path, *,
                     untrained: bool = False) -> list[dict[str, Any]]:  # fmt: skip
    """Train the variant's supernet (or resume it) and estimate every row's architecture on it.
    ``untrained``: no supernet training, every estimate starts from the initial weights (with
    ``finetune_steps``: that many training steps from scratch, the baseline a supernet must beat)."""
    import torch

    from snn_nas.errors import SnnNasError
    from snn_nas.genotype import Genotype
    from snn_nas.search.experiment import load_experiment
    from snn_nas.search.supernet_train import settings_of
    from snn_nas.space import load_space
    from snn_nas.supernet import Supernet, SupernetBounds
    from snn_nas.supernet.config import SupernetConfig
    from snn_nas.supernet.evaluate import calibration_images, evaluate_subnet
    from snn_nas.supernet.training import train_supernet
    from snn_nas.training import load_config_data

    experiment = load_experiment("oneshot")
    settings = SupernetConfig.from_dict({**settings_of(experiment).to_dict(), **overrides})
    config = experiment.train_config()
    data = load_config_data(config).without_test()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    started = time.perf_counter()
    if untrained:
        bounds = SupernetBounds.from_space(load_space(experiment.space), num_classes=data.num_classes,
                                           in_chans=data.in_chans, image_size=data.image_size)  # fmt: skip
        supernet, train_s = Supernet(bounds, seed=settings.seed), 0.0
    else:
        run = train_supernet(load_space(experiment.space), settings, data, constraints=experiment.constraints,
                             out_dir=out / name, resume=True, progress=False)  # fmt: skip
        supernet = run.supernet
        train_s = sum(float(h.get("epoch_s", 0.0)) for h in run.history) or time.perf_counter() - started
    calibration = calibration_images(data, settings, torch.device("cpu"))
    estimates = []
    for row in rows.to_dict("records"):
        genotype = Genotype.from_json(str(row["genotype"]))
        try:
            supernet.bounds.check(genotype)
        except SnnNasError:  # e.g. a non-spiking seed design: not a sub-network of this supernet
            continue
        evaluation = evaluate_subnet(supernet, genotype, data, settings, calibration=calibration,
                                     time_steps=config.max_time_steps)  # fmt: skip
        estimates.append({"variant": name, "key": row["key"], "baseline": row["baseline"],
                          "proxy_val_acc": float(row["val_acc"]), "supernet_val_acc": evaluation.val_acc,
                          "train_s": train_s})  # fmt: skip
    return estimates


def summarize(name: str, estimates: list[dict[str, Any]]) -> str:
    """One line per variant: tau (interval), tau of the best third, the seed designs."""
    from snn_nas.audit import kendall_tau, rank_interval

    searched = [e for e in estimates if not e["baseline"]]
    proxy = [e["proxy_val_acc"] for e in searched]
    tau = kendall_tau([e["supernet_val_acc"] for e in searched], proxy)
    interval = rank_interval(tau, len(searched))
    top = sorted(searched, key=lambda e: -e["proxy_val_acc"])[: max(2, len(searched) // 3)]
    tau_top = kendall_tau([e["supernet_val_acc"] for e in top], [e["proxy_val_acc"] for e in top])
    span = f" [{interval[0]:+.2f}, {interval[1]:+.2f}]" if interval else ""
    seeds = ", ".join(
        f"{e['baseline']} {e['supernet_val_acc']:.1%} (standalone {e['proxy_val_acc']:.1%})"
        for e in estimates
        if e["baseline"]
    )
    train_s = estimates[0]["train_s"] if estimates else float("nan")
    return (f"{name}: supernet {train_s:.0f} s; tau {tau:+.3f}{span} (n={len(searched)}), best third {tau_top:+.3f}"
            f" (n={len(top)}); {seeds}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", action="append", default=[],
                        help="supernet settings over experiments/oneshot.yaml's, e.g. 'epochs=3;random_subnets=4' "
                             "(repeatable; default: the experiment's settings)")  # fmt: skip
    parser.add_argument("--from-scratch", type=int, action="append", default=[], metavar="STEPS",
                        help="also rank by STEPS training steps from the initial weights, no supernet "
                             "(the baseline a supernet must beat; repeatable)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=None,
                        help="supernet seed (initial weights, sampling, calibration and fine-tuning batches) of "
                             "every variant and --from-scratch baseline (default: the experiment's)")  # fmt: skip
    parser.add_argument("--archs", type=int, default=30, help="architectures in the ground truth (default 30)")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "benchmark_supernet_ranking")
    parser.add_argument("--csv", type=Path, default=REPO / "docs" / "supernet_ranking.csv")
    args = parser.parse_args(argv)
    if args.archs < 5:
        parser.error("--archs: at least 5 architectures are needed for a rank correlation with an interval")
    variants = {v: parse_variant(v) for v in (args.variant or ([] if args.from_scratch else [""]))}
    if any(steps < 1 for steps in args.from_scratch):
        parser.error("--from-scratch: at least 1 training step")
    if args.seed is not None and args.seed < 0:
        parser.error("--seed: a seed is 0 or more")
    seeded = {} if args.seed is None else {"seed": args.seed}
    suffix = "" if args.seed is None else f"-seed{args.seed}"

    import pandas as pd

    rows = ground_truth(args.out / "truth", args.archs)
    print(f"ground truth: {int((rows['baseline'] == '').sum())} architectures and "
          f"{int((rows['baseline'] != '').sum())} seed designs at the proxy", flush=True)  # fmt: skip
    every, lines = [], []
    for text, overrides in variants.items():
        name = "default" if not overrides else text.replace(";", "_").replace("=", "-").replace(" ", "")
        name = "".join(c if c.isalnum() or c in "-_." else "" for c in name) + suffix
        estimates = evaluate_variant(name, {**overrides, **seeded}, rows, args.out)
        every += estimates
        lines.append(summarize((text or "default") + suffix, estimates))
        print(lines[-1], flush=True)
    for steps in args.from_scratch:
        name = f"scratch-{steps}-steps{suffix}"
        estimates = evaluate_variant(name, {"finetune_steps": steps, **seeded}, rows, args.out, untrained=True)
        every += estimates
        lines.append(summarize(f"no supernet, {steps} steps from the initial weights{suffix}", estimates))
        print(lines[-1], flush=True)
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(every).to_csv(args.csv, index=False)
    print(f"wrote {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
