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

Reads RESULTS_DIR/trials.parquet (works while the search is still running). The rows placed are
those the front rule admits, the same rule as the search's live display, retrain and the Optuna
study: status 'ok', a standalone training (not a supernet estimate), finite accuracy and cost,
spiking on the SOP axis, feasible, and above chance level (1/classes + 2 points); the others are
counted with their reason and drawn as grey crosses. One architecture is one point (a warm-start
trial and the baseline of the same design are placed once, named as the seed design). The front
is the non-dominated set of the placed rows, baselines included, sorted by accuracy descending:
its 'rank' column (0 = most accurate) is what 'snn-nas retrain --rank K' takes. The hypervolume
is that of the search trials only (baselines excluded), in raw units (accuracy fraction x cost),
against the experiment's declared reference_point (experiment.yaml / search.json), else 1.1 x
the largest cost; its accuracy is chance level (a declared one below chance is raised to it).
Trials are counted as the search counts them: search trials, plus the baselines, named as such.

Baselines: each seed preset the experiment lists is reported as dominated by the search front
or not, with the accuracy margin of the best search trial at equal or lower cost (in points);
a note says when they were not run (search with --no-baselines). A non-spiking row (SNN-MLP:
0 SOPs, all its work in MACs) is not comparable on the SOP axis: it is kept out of the SOP
front, compared on energy instead, and drawn at the left edge of the SOP plots.

Test accuracy: front members that were retrained (RESULTS_DIR/retrain/<key>/report.json,
trained on train+val) or audited (RESULTS_DIR/audit/audit.parquet, a higher fidelity) show
their test-split accuracy beside the search's validation accuracy. It is never used for
ranking or for the front.

Writes into RESULTS_DIR: pareto.csv (the front, every column), pareto.json (what --json prints,
with the reference point used), pareto.png (all trials, the front as a step line, baselines
marked with their verdicts, log cost axis, notes on what is not shown) and pareto.html
(interactive, self-contained; hover shows the architecture).

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
    """Rich table of the front (with test accuracy where known), the hypervolume line, the
    baseline verdicts and what is not shown."""
    from rich.console import Console
    from rich.markup import escape

    from snn_nas.report import (
        EXCLUSIONS,
        TEST_ACC_SOURCES,
        UNITS,
        baseline_verdict,
        chance_text,
        counts_text,
        format_count,
        not_shown_text,
    )

    console = Console()
    x, y = analysis.x, analysis.y
    console.print(
        f"[bold]{escape(str(root))}[/bold]: {counts_text(analysis.search_counts, analysis.baseline_counts)}"
        + (f"; {analysis.unplaced_ok} ok without metrics" if analysis.unplaced_ok else "")
    )
    if analysis.front.empty:
        console.print("no trial is eligible for the front yet (see the reasons below): the front is empty")
    else:
        _front_table(console, analysis, top)
        ref = analysis.reference_point
        console.print(
            f"hypervolume of the search front: [bold]{analysis.hypervolume:.6g}[/bold] "
            f"({UNITS[y]} x {UNITS[x]}), reference point {y}={ref[y]:g}, {x}={ref[x]:.6g} "
            f"({analysis.reference_source})"
        )
    compared = {b.key for b in analysis.baselines}
    for row in analysis.not_comparable.to_dict("records"):
        if row["key"] in compared:  # its verdict line says so
            continue
        name = f"baseline {row['baseline']}" if row["baseline"] else f"trial {row['key']}"
        console.print(
            f"{name} ({100 * row[y]:.2f}%, energy {_energy(row.get('energy_uj'))} uJ): non-spiking, 0 SOPs "
            "(all MACs): not on the SOP front; compare it with --x energy_uj"
        )
    for b in analysis.baselines:
        cost = f"energy {_energy(b.cost)} uJ" if b.axis == "energy_uj" else f"{b.axis} {format_count(b.cost)}"
        verdict = escape(baseline_verdict(b))
        if b.dominated:
            verdict = verdict.replace("dominated", "[green]dominated[/green]", 1)
        console.print(f"baseline {b.baseline} ({100 * b.val_acc:.2f}%, {cost}): {verdict}")
    for v in analysis.seed_verdicts:
        console.print(f"on seed means: {escape(v['line'])}")
    for b in analysis.baselines_unplaced:
        console.print(
            f"baseline {b['baseline']}: status {b['status']}" + (f" ({escape(b['error'])})" if b["error"] else "")
        )
    if analysis.baselines_note:
        console.print(f"[yellow]{escape(analysis.baselines_note)}[/yellow]")
    for reason, n in analysis.excluded_counts.items():
        rule = f" ({chance_text(analysis.num_classes)})" if reason == "chance" else ""
        console.print(f"{n} ok trial(s) kept off the front: {EXCLUSIONS[reason]}{escape(rule)}")
    for m in analysis.merged:
        console.print(
            f"one architecture, one point: {m['key']} (baseline {m['baseline'] or '-'}, trial {m['trial_id']}) "
            f"is the same network as trial {m['placed_as']}, placed once"
        )
    hidden = not_shown_text(analysis.not_shown)
    if hidden:
        console.print(escape(hidden) + "; stopped trials are plotted as such")
    if not analysis.front.empty:
        sources = sorted({s for s in analysis.front["test_acc_source"] if s})
        marks = "".join(f"; ({s[0]}) {TEST_ACC_SOURCES.get(s, s)}" for s in sources)
        console.print(
            f"test acc: test-split accuracy, shown only, never ranked{escape(marks)}; "
            "- not retrained (snn-nas retrain) or audited (snn-nas audit)"
        )


OPTIONAL_COLUMNS = ("energy uJ", "params", "T", "test acc")
"""Front-table columns dropped, in this order, when the terminal is too narrow (the key never is)."""


def front_table(analysis, top: int | None, width: int):
    """The rich table of the front, fitted to ``width`` columns: whole keys, optional columns
    dropped first (``OPTIONAL_COLUMNS``). Returns ``(table, dropped column names)``."""
    from rich.console import Console
    from rich.measure import Measurement
    from rich.table import Table

    from snn_nas.report import format_count

    x, y = analysis.x, analysis.y
    rows = analysis.front if top is None else analysis.front.head(top)
    cells = []
    for row in rows.to_dict("records"):
        design = row.get("seed_design") or row["baseline"] or ""
        cells.append(
            {
                "rank": str(row["rank"]),
                "accuracy": f"{100 * row[y]:.2f}%",
                "test acc": _test_acc(row.get("test_acc"), row.get("test_acc_source")),
                "SOPs": format_count(row.get("sops")),
                "energy uJ": _energy(row.get("energy_uj")),
                "params": format_count(row.get("params")),
                "T": format_count(row.get("time_steps")),
                "key": str(row["key"]),
                "seed design": design or "-",
            }
        )
    columns = ["rank", "accuracy", "test acc", "SOPs", "energy uJ", "params", "T", "key", "seed design"]
    measure = Console(width=10_000)
    dropped: list[str] = []

    def build(names):
        table = Table(title=f"Pareto front: {y} (max) vs {x} (min)", title_justify="left")
        for name in names:
            table.add_column(name, justify="left" if name in ("key", "seed design") else "right", no_wrap=True)
        for cell in cells:
            table.add_row(*(cell[n] for n in names))
        return table

    table = build(columns)
    for name in OPTIONAL_COLUMNS:
        if Measurement.get(measure, measure.options, table).maximum <= width:
            break
        columns.remove(name)
        dropped.append(name)
        table = build(columns)
    return table, dropped


def _front_table(console, analysis, top: int | None) -> None:
    table, dropped = front_table(analysis, top, console.width)
    console.print(table)
    if dropped:
        console.print(f"(terminal {console.width} columns wide: {', '.join(dropped)} left out; all in pareto.csv)")
    if top is not None and len(analysis.front) > top:
        console.print(f"({len(analysis.front) - top} more front rows in pareto.csv)")


def _test_acc(value, source) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "-"
    if number != number:  # NaN
        return "-"
    return f"{100 * number:.2f}% ({source[0]})" if source else f"{100 * number:.2f}%"


def _energy(value) -> str:
    try:
        return f"{float(value):.4g}"
    except (TypeError, ValueError):
        return "-"
