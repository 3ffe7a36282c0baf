"""``snn-nas pareto``: the Pareto front of a results directory, its hypervolume and the baselines."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from snn_nas.errors import SnnNasError

HELP = "show the Pareto front (accuracy vs SOPs/energy/params/T) of a search; write CSV, PNG, HTML"

DESCRIPTION = """\
Show the Pareto front of a search's results: accuracy (maximised) against a cost (minimised).

Reads RESULTS_DIR/trials.parquet (works while the search is still running); only trials with
status 'ok' are placed. The front is the non-dominated set of all placed trials, baselines
(presets) included, sorted by accuracy descending: its 'rank' column (0 = most accurate) is what
'snn-nas retrain --rank K' takes. The hypervolume is that of the search trials only (baselines
excluded), in raw units (accuracy fraction x cost), against the experiment's declared
reference_point (experiment.yaml / search.json), else accuracy 0 and 1.1 x the largest cost.
Each baseline is reported as dominated (by which trials) or not.

Writes into RESULTS_DIR: pareto.csv (the front, every column), pareto.json (what --json prints,
with the reference point used), pareto.png (all trials, the front as a step line, baselines
marked, log cost axis) and pareto.html (interactive, self-contained; hover shows the
architecture).

example:
  snn-nas pareto results/quick
  snn-nas pareto results/quick --x energy_uj --top 5
  snn-nas pareto results/quick --json | jq .hypervolume
"""


# the same as snn_nas.report.COST_COLUMNS / ACCURACY_COLUMNS (a test checks), kept here so that
# building the parser does not import pandas
COST_COLUMNS = ("sops", "energy_uj", "params", "time_steps")
ACCURACY_COLUMNS = ("val_acc",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results_dir", metavar="RESULTS_DIR", help="directory written by 'snn-nas search'")
    parser.add_argument("--x", default="sops", choices=COST_COLUMNS, help="cost to minimise (default: sops)")
    parser.add_argument("--y", default="val_acc", choices=ACCURACY_COLUMNS, help="accuracy to maximise")
    parser.add_argument(
        "--top", type=int, default=None, metavar="K", help="show only the K most accurate front rows (files keep all)"
    )
    parser.add_argument("--json", action="store_true", help="print the front and hypervolume as JSON instead")


def run(args: argparse.Namespace) -> int:
    from snn_nas.plots import AXIS_LABELS, draw_pareto_html, draw_pareto_png, pareto_plot_info
    from snn_nas.report import front_for_dir, write_front_files

    if args.top is not None and args.top < 1:
        raise SnnNasError(f"--top: {args.top} must be a positive number of rows")
    root = Path(args.results_dir)
    analysis = front_for_dir(root, x=args.x, y=args.y)
    paths = write_front_files(analysis, root)
    info = pareto_plot_info(analysis, title=f"{root.name}: accuracy vs {AXIS_LABELS[args.x]}")
    paths["png"] = draw_pareto_png(info, root / "pareto.png")
    paths["html"] = draw_pareto_html(info, root / "pareto.html")

    if args.json:
        json.dump(analysis.to_dict(top=args.top), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print_front(analysis, root, top=args.top)
    print("wrote " + ", ".join(str(paths[k]) for k in ("csv", "json", "png", "html")))
    return 0


def print_front(analysis, root: Path, *, top: int | None = None) -> None:
    """Rich table of the front, the hypervolume line and the baseline comparison."""
    from rich.console import Console
    from rich.table import Table

    from snn_nas.report import UNITS, format_count

    console = Console()
    x, y = analysis.x, analysis.y
    counts = analysis.status_counts
    total = sum(counts.values())
    others = ", ".join(f"{n} {s}" for s, n in counts.items() if s != "ok")
    console.print(
        f"[bold]{root}[/bold]: {counts.get('ok', 0)} ok of {total} trials"
        + (f" ({others})" if others else "")
        + (f"; {analysis.unplaced_ok} ok without metrics" if analysis.unplaced_ok else "")
    )
    if analysis.front.empty:
        console.print("no completed trial yet: the front is empty")
        return
    table = Table(title=f"Pareto front: {y} (max) vs {x} (min)", title_justify="left")
    for name, justify in (
        ("rank", "right"),
        ("accuracy", "right"),
        ("SOPs", "right"),
        ("energy uJ", "right"),
        ("params", "right"),
        ("T", "right"),
        ("key", "left"),
        ("baseline", "left"),
    ):
        table.add_column(name, justify=justify)
    rows = analysis.front if top is None else analysis.front.head(top)
    for row in rows.to_dict("records"):
        table.add_row(
            str(row["rank"]),
            f"{100 * row[y]:.2f}%",
            format_count(row.get("sops")),
            _energy(row.get("energy_uj")),
            format_count(row.get("params")),
            format_count(row.get("time_steps")),
            str(row["key"]),
            row["baseline"] or "-",
        )
    console.print(table)
    if top is not None and len(analysis.front) > top:
        console.print(f"({len(analysis.front) - top} more front rows in pareto.csv)")
    ref = analysis.reference_point
    console.print(
        f"hypervolume of the search front: [bold]{analysis.hypervolume:.6g}[/bold] "
        f"({UNITS[y]} x {UNITS[x]}), reference point {y}={ref[y]:g}, {x}={ref[x]:.6g} "
        f"({analysis.reference_source})"
    )
    for b in analysis.baselines:
        head = f"baseline {b.baseline} ({100 * b.val_acc:.2f}%, {x} {format_count(b.cost)}): "
        if b.dominated:
            shown = ", ".join(b.dominated_by[:5]) + (" ..." if len(b.dominated_by) > 5 else "")
            console.print(head + f"[green]dominated[/green] by {len(b.dominated_by)} trial(s): {shown}")
        elif b.best_cheaper is not None:
            console.print(
                head + f"not dominated; the best trial costing no more is {b.best_cheaper} "
                f"at {100 * b.best_cheaper_acc:.2f}%"
            )
        else:
            console.print(head + "not dominated; every search trial costs more")


def _energy(value) -> str:
    try:
        return f"{float(value):.4g}"
    except (TypeError, ValueError):
        return "-"
