"""``snn-nas search``: run an experiment with Ray Tune and Optuna, write its result table."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

HELP = "search a space with Ray Tune + Optuna (default: the bundled quick experiment on the CPU)"

DESCRIPTION = """\
Run a multi-objective architecture search described by an experiment file (experiments/*.yaml):
Optuna samples architectures from the space file (TPE, NSGA-II, GP or random), Ray Tune trains
each one at the experiment's fidelity and measures its synaptic operations, energy and
parameters after every epoch. Without arguments it runs experiments/quick.yaml (the quick space
on the bundled 5,000-image MNIST subset) on a local Ray instance on the CPU.

Trials train on the dataset's training part and are ranked on its held-out validation part;
the test part is never read by a search (snn-nas retrain and snn-nas audit measure it after).
The experiment may start from known designs (warm_start: its baselines that are members of the
space are the first trials) and from a training-free pre-screen (prescreen), and its scheduler
(moasha by default) stops trials that are dominated at a rung on all the objectives.

Results go to RESULTS_DIR/NAME/ (default results/<experiment name>/): trials.parquet (one row
per trial, written as each trial finishes, with its per-epoch curve; read it with
snn_nas.load_results), the Optuna study optuna.db (open it with
'optuna-dashboard sqlite:///RESULTS_DIR/NAME/optuna.db': real values only, one trial per row),
the samplers' own study samplers.journal (an Optuna journal file, not *.db, so that
optuna-dashboard never opens it by mistake), Ray's experiment directory ray/ and the experiment as run.
The seed presets the experiment lists under 'baselines' are trained first at the same
fidelity, as reference points (rows with 'baseline' set; 'snn-nas pareto' compares the front
with them); --no-baselines skips them.
A trial that fails (an exception, a diverged loss, out of memory) is recorded with its reason
and the search goes on. A search stopped at any moment (Ctrl-C, kill -9) continues with
--resume: finished trials are kept and not run again.

EXPERIMENT is a path or the name of a bundled experiment (quick, cifar10, imagenet).

Before Ray starts, the search checks what would fail every trial: the dataset and its files,
and that some architecture of the space fits the image size the trials train at.

exit status: 0 the search ran and some trial trained; 1 it ran, but no trial could train (every
trial failed or was invalid; the reasons are in the table's 'error' column); 2 bad input, found
before any trial ran (experiment, space, dataset, results folder, cluster address), one line on
stderr; 130 interrupted before every trial finished (continue with --resume).

examples:
  snn-nas search                                   # the quick experiment: about 3 minutes on 2 CPU cores
  snn-nas search quick --num-samples 4 --name try  # a shorter run in results/try/
  snn-nas search --resume                          # continue results/quick/ after a crash
  snn-nas search cifar10 --address auto --results-dir /shared/results
  snn-nas search quick --no-baselines              # the search trials only, no seed presets
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "experiment", nargs="?", default=None, metavar="EXPERIMENT",
        help="experiment file or bundled name (default: quick; with --resume: the stored one)",
    )  # fmt: skip
    parser.add_argument("--name", default=None, help="name of the search folder (default: the experiment's name)")
    parser.add_argument(
        "--num-samples", type=int, default=None, metavar="N", help="number of trials (default: the file's)"
    )
    parser.add_argument(
        "--address", default=None, metavar="ADDR",
        help="address of an existing Ray cluster ('auto', 'HOST:6379', 'ray://HOST:10001'); default: a local Ray",
    )  # fmt: skip
    parser.add_argument("--resume", action="store_true", help="continue the search in RESULTS_DIR/NAME")
    parser.add_argument(
        "--results-dir", default="results", metavar="DIR", help="parent folder of the results (default: results)"
    )
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument(
        "--no-baselines", action="store_true",
        help="do not evaluate the experiment's seed presets (by default its 'baselines', e.g. mlp_spe_micro and "
        "snn_mlp_micro, are trained at the search's fidelity as reference points)",
    )  # fmt: skip
    seeds.add_argument(
        "--baselines", action="store_true", help="evaluate the seed presets (the default; kept for older scripts)"
    )
    parser.add_argument(
        "--num-cpus", type=int, default=None, metavar="N", help="CPUs of the local Ray instance (default: all)"
    )
    parser.add_argument(
        "--num-gpus", type=int, default=None, metavar="N",
        help="GPUs of the local Ray instance (default: the GPUs Ray finds; trials take resources.gpus each, "
        "e.g. 0.25 puts 4 trials on a GPU)",
    )  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="no live progress display")
    parser.add_argument("--verbose", action="store_true", help="show Ray's and Optuna's own logs")


def _experiment(args: argparse.Namespace):
    from snn_nas.search.experiment import load_experiment
    from snn_nas.search.layout import EXPERIMENT_FILE, SearchError

    if args.resume and args.experiment is None:
        name = args.name or "quick"
        stored = Path(args.results_dir) / name / EXPERIMENT_FILE
        if not stored.is_file():
            raise SearchError(f"--resume: {stored} not found; name the search with --name (and --results-dir)")
        experiment = load_experiment(stored)
    else:
        experiment = load_experiment(args.experiment or "quick")
    return experiment.with_overrides(name=args.name, trials=args.num_samples)


def _nodes_text(rows: list[dict]) -> str:
    """``, on 3 Ray nodes`` when the trials ran on more than one node (the table's ``node``)."""
    nodes = {str(r["node"]) for r in rows if r.get("node")}
    return f", on {len(nodes)} Ray nodes" if len(nodes) > 1 else ""


def summary_lines(experiment, rows: list[dict], wall_s: float) -> list[str]:
    """The summary after a search: counts (as ``snn-nas pareto`` counts them), the front (by the
    same rule, seed designs named), what was kept off it and why, and a warning when most trained
    trials of the fidelity are at chance level."""
    from snn_nas.report import EXCLUSIONS, chance_text, counts_text, front_exclusion, trial_counts
    from snn_nas.search.progress import current_front, format_metric

    search, base = trial_counts(rows)
    front = current_front(rows, experiment.metrics, experiment.modes)
    lines = [f"{experiment.name}: {counts_text(search, base)}, {wall_s:.0f} s{_nodes_text(rows)}"]
    if getattr(experiment, "oneshot", None) is not None:  # a two-stage search: say what each stage did
        from snn_nas.search.oneshot import is_stage1, is_stage2, verdicts

        ranked, trained = sum(map(is_stage1, rows)), sum(map(is_stage2, rows))
        lines.append(f"  one-shot: stage 1 ranked {ranked} architectures on the supernet; stage 2 trained {trained} "
                     "standalone (only these stand on the front)")  # fmt: skip
        lines += [f"  verdict on seed means: {v['line']}" for v in verdicts(experiment, rows)]
    lines.append(f"front of {len(front)}:")
    for row in front[:5]:
        figures = ", ".join(f"{m} {format_metric(m, row.get(m))}" for m in experiment.metrics)
        design = f"  (seed design {row['seed_design']})" if row.get("seed_design") else ""
        lines.append(f"  {row['key']}  {figures}{design}")
    if len(front) > 5:
        lines.append(f"  ... {len(front) - 5} more (snn-nas pareto)")
    cost = "sops" if "sops" in experiment.metrics else experiment.metrics[-1]
    classes = next((int(r["num_classes"]) for r in rows if _is_count(r.get("num_classes"))), None)
    excluded: dict[str, int] = {}
    for row in rows:
        if row.get("status") == "ok":
            reason = front_exclusion(row, x=cost, num_classes=classes)
            if reason not in (None, "non-spiking"):  # the non-spiking baseline: compared on energy by pareto
                excluded[reason] = excluded.get(reason, 0) + 1
    for reason, n in excluded.items():
        rule = f" ({chance_text(classes)})" if reason == "chance" else ""
        lines.append(f"kept off the front: {n} ok trial(s), {EXCLUSIONS[reason]}{rule}")
    trained = [r for r in rows if not r.get("baseline") and r.get("status") in ("ok", "stopped", "silent")]
    at_chance = [r for r in trained if front_exclusion({**r, "status": "ok"}, x=cost, num_classes=classes) == "chance"]
    if trained and 2 * len(at_chance) > len(trained):
        lines.append(
            f"warning: {len(at_chance)} of {len(trained)} trained trials are at chance level at this fidelity "
            f"({chance_text(classes)}): the proxy may be too short to tell the architectures apart; "
            "consider more epochs or data per trial"
        )
    return lines


def _is_count(value) -> bool:
    try:
        return int(value) >= 2
    except (TypeError, ValueError):
        return False


def run(args: argparse.Namespace) -> int:
    from snn_nas.search.layout import SearchError
    from snn_nas.search.tune import run_search

    if args.num_cpus is not None and args.num_cpus < 1:
        raise SearchError(f"--num-cpus: {args.num_cpus} must be at least 1")
    if args.num_gpus is not None and args.num_gpus < 0:
        raise SearchError(f"--num-gpus: {args.num_gpus} must be 0 or more")
    if args.num_gpus is not None and args.address:
        raise SearchError("--num-gpus sizes a local Ray instance; a cluster (--address) has its own GPUs")
    experiment = _experiment(args)
    outcome = run_search(
        experiment,
        results_dir=args.results_dir,
        address=args.address,
        resume=args.resume,
        baselines=not args.no_baselines,
        progress=not args.no_progress,
        num_cpus=args.num_cpus,
        verbose=args.verbose,
        num_gpus=args.num_gpus,
    )
    rows = outcome.table.to_dict("records")
    search_rows = outcome.search_rows()
    for line in summary_lines(experiment, rows, outcome.wall_s):
        print(line)
    table, study = outcome.directory / "trials.parquet", outcome.directory / "optuna.db"
    print(f"table: {table}" if table.is_file() else f"table: none yet (no trial finished) in {outcome.directory}")
    if study.is_file():
        print(f"study: optuna-dashboard sqlite:///{study}")
    if not outcome.complete:
        print(
            f"the search stopped before all trials finished; continue it with: snn-nas search --resume "
            f"--name {experiment.name} --results-dir {args.results_dir}"
        )
        return 130
    if outcome.none_ran:
        reasons = Counter(str(r.get("error") or r["status"]) for r in search_rows)
        reason, _ = reasons.most_common(1)[0]
        print(
            f"snn-nas search: error: no trial could train: all {len(search_rows)} trials failed or were invalid "
            f"(most often: {reason[:300]}); every reason is in the table's 'error' column",
            file=sys.stderr,
        )
        return 1
    where = outcome.directory
    print(f"next: snn-nas pareto {where}  |  snn-nas retrain {where}  |  snn-nas audit {where}")
    return 0
