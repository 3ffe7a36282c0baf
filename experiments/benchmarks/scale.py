"""Scale benchmark of the real search driver, with stand-in trials (issue 26).

    python experiments/benchmarks/scale.py --trials 10000 --slots 16 --trial-seconds 1 --json
    python experiments/benchmarks/scale.py --trials 1000 --slots 64 --trial-seconds 30
    python experiments/benchmarks/scale.py --fit results/quick   # refit the curve model

Runs ``snn_nas.search.run_search`` on the quick experiment exactly as ``snn-nas search`` does (TPE
through the samplers' journal, MOASHA, the result table, the user's Optuna study, the progress
lines, Ray's experiment snapshots for a resume), on a local Ray instance with ``--slots`` logical
CPUs, one per trial. Only the trial's work is replaced: a ``StandinTrial``
(``snn_nas.search.driver.standin``) sleeps ``--trial-seconds`` over the experiment's epochs and
reports accuracy and SOPs drawn from a ``CurveModel`` fitted to a real search of the quick space
(``experiments/benchmarks/data/scale_curve_model.json``; ``--fit DIR`` refits it from a search
folder). No baselines, warm start or pre-screen: every trial is drawn by the sampler.

Reported (``--json``: one JSON object on stdout; otherwise a table on stderr):

* ``observed_s``: wall time of the search (from the call to ``run_search`` to its return, Ray's
  start included), ``minimum_s = trials x trial_seconds / slots``, and their ratio;
* ``driver_ms_per_trial_first`` (finished trials 100-200) and ``driver_ms_per_trial_last`` (the
  last 100), the sum of the parts the driver times (``snn_nas.search.clock``): ``suggest``
  (sampler suggest and tell), ``scheduler`` (MOASHA's decisions), ``table``, ``study``,
  ``display``; each part in ``parts_first`` / ``parts_last``; ``--growth CSV`` writes every
  window of 100 trials (the plot in docs/benchmarks.md);
* ``peak_driver_mb``: the driver process's peak resident memory (``ru_maxrss``).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import resource
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODEL_FILE = HERE / "data" / "scale_curve_model.json"


def fit(results_dir: str) -> None:
    from snn_nas.search import load_results
    from snn_nas.search.driver.standin import fit_curve_model
    from snn_nas.space import load_space

    frame = load_results(results_dir)
    rows = [{k: (None if v != v else v) for k, v in r.items()} for r in frame.astype(object).to_dict("records")]
    model = fit_curve_model(rows, load_space("quick"))
    MODEL_FILE.parent.mkdir(parents=True, exist_ok=True)
    data = {"fitted_on": str(results_dir), **model.to_dict()}
    MODEL_FILE.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"fitted on {model.rows} rows of {results_dir} -> {MODEL_FILE}", file=sys.stderr)


def write_growth(path: str, timer) -> None:
    """The driver's ms per trial per window of 100 finished trials so far, as CSV."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["trial", *writer_columns()])
        for end in range(100, timer.trials + 1, 100):
            parts = timer.window_ms(end - 100, end)
            writer.writerow([end, *(round(parts.get(k, 0.0), 3) for k in writer_columns())])


def snapshots(path: str | None, name: str, every_s: float = 20.0) -> None:
    """While the search runs, rewrite the growth CSV every ``every_s`` seconds (a run stopped
    before its end keeps what it measured), with the peak memory so far beside it."""
    import threading

    from snn_nas.search.clock import clock

    def loop() -> None:
        while True:
            time.sleep(every_s)
            write_growth(path, clock(name))
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            Path(path).with_suffix(".peak_mb").write_text(f"{peak:.1f} at {clock(name).trials} trials\n")

    if path:
        threading.Thread(target=loop, daemon=True).start()


def run(
    trials: int, slots: int, seconds: float, epochs: int, sampler: str, keep: str | None, growth: str | None = None
) -> dict:
    from snn_nas.search.clock import clock
    from snn_nas.search.driver.standin import CurveModel, standin_runner
    from snn_nas.search.experiment import Prescreen, load_experiment
    from snn_nas.search.tune import run_search

    model = CurveModel.from_dict(json.loads(MODEL_FILE.read_text()))
    base = load_experiment("quick")
    fidelity = dict(base.fidelity)
    fidelity["epochs"] = epochs
    experiment = replace(
        base,
        name="scale",
        trials=trials,
        max_concurrent=slots,
        baselines=(),
        warm_start=(),
        prescreen=Prescreen(),
        sampler=sampler,
        fidelity=tuple(sorted(fidelity.items())),
    )
    root = keep or tempfile.mkdtemp(prefix="snn-scale-")
    snapshots(growth, str(Path(root) / "scale"))
    started = time.perf_counter()
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        result = run_search(
            experiment, results_dir=root, num_cpus=slots, runner=standin_runner(model, seconds, epochs), progress=True
        )
    observed = time.perf_counter() - started
    timer = clock(str(result.directory))
    n = timer.trials
    first, last = timer.window_ms(100, 200), timer.window_ms(n - 100, n)
    minimum = trials * seconds / slots
    statuses = result.table["status"].value_counts().to_dict()
    return {
        "trials": trials,
        "slots": slots,
        "trial_seconds": seconds,
        "epochs": epochs,
        "sampler": sampler,
        "finished": len(result.table),
        "statuses": {str(k): int(v) for k, v in statuses.items()},
        "complete": bool(result.complete),
        "observed_s": round(observed, 1),
        "minimum_s": round(minimum, 1),
        "ratio": round(observed / minimum, 3),
        "driver_ms_per_trial_first": round(first.get("total", float("nan")), 2),
        "driver_ms_per_trial_last": round(last.get("total", float("nan")), 2),
        "parts_first": {k: round(v, 2) for k, v in first.items()},
        "parts_last": {k: round(v, 2) for k, v in last.items()},
        "peak_driver_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "results": str(result.directory),
    }


def plot(growth_csv: str, png: str) -> None:
    """The driver's milliseconds per trial, by part, per window of 100 finished trials."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    frame = pd.read_csv(growth_csv)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    parts = [c for c in writer_columns() if c != "total"]
    ax.stackplot(frame["trial"], *(frame[p] for p in parts), labels=parts, alpha=0.85)
    ax.set_xlabel("finished trials")
    ax.set_ylabel("driver ms per trial (window of 100)")
    ax.set_title(Path(growth_csv).stem)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--slots", type=int, default=16, help="logical CPUs of the local Ray (one per trial)")
    parser.add_argument("--trial-seconds", type=float, default=1.0)
    parser.add_argument("--epochs", type=int, default=2, help="epochs per trial (MOASHA rungs)")
    parser.add_argument("--sampler", default="tpe")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--growth", metavar="CSV", help="write the driver's ms per trial per window of 100")
    parser.add_argument("--keep", metavar="DIR", help="results folder to keep (default: a temporary one)")
    parser.add_argument("--fit", metavar="RESULTS", help="refit the curve model from a search folder and exit")
    parser.add_argument("--plot", nargs=2, metavar=("CSV", "PNG"), help="draw a --growth CSV and exit")
    args = parser.parse_args(argv)
    if args.plot:
        plot(*args.plot)
        return 0
    if args.fit:
        fit(args.fit)
        return 0
    out = run(args.trials, args.slots, args.trial_seconds, args.epochs, args.sampler, args.keep, args.growth)
    if args.growth:
        from snn_nas.search.clock import clock

        write_growth(args.growth, clock(out["results"]))
    if args.json:
        print(json.dumps(out, sort_keys=True))
    else:
        for key, value in out.items():
            print(f"{key:28s} {value}", file=sys.stderr)
    return 0


def writer_columns() -> tuple[str, ...]:
    return ("suggest", "scheduler", "table", "study", "display", "total")


if __name__ == "__main__":
    sys.exit(main())
