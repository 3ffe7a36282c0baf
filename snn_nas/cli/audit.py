"""``snn-nas audit``: how far can a search's proxy be trusted?"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from snn_nas.errors import SnnNasError

HELP = "retrain a sample of a search at a higher fidelity and measure how well the proxy ranked it"

DESCRIPTION = """\
Measure the proxy of a search: retrain a sample of its finished trials at a higher fidelity and
compare the rankings. The sample is every member of the search front plus an even spread over
the proxy's accuracy ranking (--sample N in all, default 12). Each is trained on the training
part (the held-out val part stays held out, so proxy and high-fidelity accuracies are measured
on the same images), at the trial's own search fidelity raised like 'snn-nas retrain' does
(whole training part, every batch, the architecture's own T) for --epochs (default 10); the
test part is measured once on each final model. Trials run in parallel through Ray (a local
instance, or --address of a cluster), one row is written as each finishes, and an interrupted
audit continues where it stopped: run the same command again.

Writes RESULTS_DIR/audit/: audit.parquet (per architecture: key, proxy val_acc and sops,
high-fidelity val_acc, test_acc, sops, params, T, SAHD score, wall time), audit.json and
audit.png (proxy versus high-fidelity accuracy, front members marked). Reports:
  kendall_tau, spearman_rho   proxy vs high-fidelity val_acc (1 = same order)
  kendall_tau_top             the same among the best third by proxy accuracy (close competitors)
  kendall_tau_sops            proxy vs high-fidelity SOPs; sops_drift_median/_max: relative change
  kendall_tau_params          parameter count as a naive proxy (the bar to beat)
  kendall_tau_sahd            the training-free SAHD score as a proxy
  front_recall                share of the high-fidelity front that the proxy front holds
  top1_regret                 best high-fidelity accuracy minus that of the proxy's best

examples:
  snn-nas audit results/quick
  snn-nas audit results/quick --sample 16 --epochs 12 --json
  snn-nas audit /shared/results/cifar10 --address auto --epochs 100
"""

_OVERRIDES = {  # command-line option -> TrainConfig field
    "subset": "subset",
    "batch_size": "batch_size",
    "lr": "lr",
    "optimizer": "optimizer",
    "weight_decay": "weight_decay",
    "seed": "seed",
    "image_size": "image_size",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results_dir", metavar="RESULTS_DIR", help="folder written by 'snn-nas search'")
    parser.add_argument("--sample", type=int, default=12, metavar="N", help="architectures to retrain (default 12)")
    parser.add_argument("--epochs", type=int, default=10, metavar="E", help="high-fidelity epochs (default 10)")
    parser.add_argument("--subset", type=float, metavar="F", help="fraction of the training part (default 1.0)")
    parser.add_argument("--batch-size", type=int, help="training batch size (default: the search's)")
    parser.add_argument("--lr", type=float, help="peak learning rate (default: the search's)")
    parser.add_argument("--optimizer", choices=("sgd", "adamw"), help="optimizer (default: the search's)")
    parser.add_argument("--weight-decay", type=float, help="weight decay (default: the search's)")
    parser.add_argument("--seed", type=int, help="training seed (default: the search's)")
    parser.add_argument("--image-size", type=int, help="input side length (default: the search's)")
    parser.add_argument(
        "--address", default=None, metavar="ADDR",
        help="an existing Ray cluster ('auto', 'HOST:6379', 'ray://HOST:10001'); default: a local Ray",
    )  # fmt: skip
    parser.add_argument("--num-cpus", type=int, default=None, metavar="N", help="CPUs of the local Ray instance")
    parser.add_argument("--no-progress", action="store_true", help="no progress lines")
    parser.add_argument("--verbose", action="store_true", help="show Ray's own logs")
    parser.add_argument("--json", action="store_true", help="print audit.json")


def summary_lines(report: dict) -> list[str]:
    """The audit in words: every rank statistic with its n and 95 % interval (or why it has none),
    and a warning when the sample is small."""

    def stat(name: str, n_name: str | None = None) -> str:
        value = report.get(name)
        if value is None:
            return "-"
        n = report.get(n_name or f"n_{name}")
        interval = report.get(f"ci95_{name}")
        spread = f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else " (no interval: too few)"
        return f"{value:.2f}{spread} (n={n})"

    lines = [
        f"audit of {report['n']} architectures ({report['front_members']} front members) at "
        f"{report['high_fidelity'].get('epochs')} epochs on train (95% intervals in brackets):",
        f"  Kendall tau {stat('kendall_tau')}, best third {stat('kendall_tau_top', 'n_top')}",
        f"  Spearman rho {stat('spearman_rho')}; vs test accuracy: tau {stat('kendall_tau_test')}",
        f"  naive proxies: parameters tau {stat('kendall_tau_params')}, SAHD tau {stat('kendall_tau_sahd')}",
    ]
    drift_med, drift_max = report.get("sops_drift_median"), report.get("sops_drift_max")
    drift = (
        "-"
        if drift_med is None
        else f"median {drift_med:+.1%}, largest {drift_max:+.1%} (n={report.get('n_sops_drift')})"
    )
    lines.append(f"  SOPs: tau {stat('kendall_tau_sops')}, drift from proxy to high fidelity {drift}")
    regret, recall = report.get("top1_regret"), report.get("front_recall")
    lines.append(
        f"  front recall {'-' if recall is None else f'{recall:.2f}'} (n={report['n']}); top-1 regret "
        + ("-" if regret is None else f"{100 * regret:.2f} points")
    )
    if report.get("kendall_tau_supernet") is not None or report.get("kendall_tau_supernet_proxy") is not None:
        recall, recall_proxy = report.get("front_recall_supernet"), report.get("front_recall_supernet_proxy")
        recall = "-" if recall is None else f"{recall:.2f}"
        recall_proxy = "-" if recall_proxy is None else f"{recall_proxy:.2f}"
        lines += [
            "  supernet ranking (a two-stage search's stage 1) against standalone training:",
            f"    vs the proxy: tau {stat('kendall_tau_supernet_proxy')}, best third "
            f"{stat('kendall_tau_supernet_proxy_top')}, front recall "
            f"{recall_proxy}; parameters tau {stat('kendall_tau_params_proxy')}",
            f"    vs {report['high_fidelity'].get('epochs')} epochs: tau {stat('kendall_tau_supernet')}, best third "
            f"{stat('kendall_tau_supernet_top')}, front recall {recall}; "
            f"parameters tau {stat('kendall_tau_params')}",
        ]
    if report.get("small_n"):
        lines.append(
            f"warning: only {report['n']} architectures compared (fewer than 10): one swapped pair moves tau by "
            f"{2 / max(1, report['n'] * (report['n'] - 1) / 2):.2f}; read these figures as indications, and audit a "
            "larger --sample to rank proxies"
        )
    return lines


def run(args: argparse.Namespace) -> int:
    from snn_nas.search.audit import run_audit

    if args.epochs < 1:
        raise SnnNasError(f"--epochs: {args.epochs} must be >= 1")
    if args.num_cpus is not None and args.num_cpus < 1:
        raise SnnNasError(f"--num-cpus: {args.num_cpus} must be >= 1")
    overrides = {field: getattr(args, flag) for flag, field in _OVERRIDES.items() if getattr(args, flag) is not None}
    outcome = run_audit(
        Path(args.results_dir),
        sample=args.sample,
        epochs=args.epochs,
        overrides=overrides,
        address=args.address,
        num_cpus=args.num_cpus,
        progress=not args.no_progress,
        verbose=args.verbose,
    )
    report = outcome.report
    if args.json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return 0 if outcome.complete else 1

    for line in summary_lines(report):
        print(line)
    print(f"wrote {outcome.directory / 'audit.parquet'}, audit.json, audit.png")
    if not outcome.complete:
        print("some architectures did not finish; run the same command again to continue", file=sys.stderr)
        return 1
    return 0
