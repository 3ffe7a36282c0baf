"""Stage 2 from scratch or from the supernet's weights: which ranks better?

For every architecture audited in a two-stage search's folder (``snn-nas audit``: the stage-2
architectures and a spread over the supernet's ranking, each trained at a higher fidelity), this
trains it at the search's proxy twice, through the search's own trial code
(``snn_nas.search.trial.run_trial``): from scratch (``init: scratch``) and from the supernet's
weights with batch norm recalibrated (``init: inherit``), with the same seed. It then reports
Kendall's tau of each against the audit's high-fidelity validation accuracy (and the supernet's
own estimate, for reference), and the mean accuracy each start reaches at the proxy.

Example (about 5 minutes on 2 CPU cores for a 12-architecture audit)::

    snn-nas search oneshot && snn-nas audit results/oneshot
    python experiments/benchmarks/stage2_init.py results/oneshot
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results_dir", type=Path, help="a two-stage search folder with an audit")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "stage2_init.csv")
    args = parser.parse_args(argv)

    import pandas as pd
    import torch

    from snn_nas.audit import kendall_tau, load_audit
    from snn_nas.genotype import Genotype
    from snn_nas.search.experiment import load_experiment
    from snn_nas.search.oneshot_settings import OneShot
    from snn_nas.search.supernet_train import supernet_path
    from snn_nas.search.trial import TrialSpec, run_trial
    from snn_nas.space import load_space
    from snn_nas.training import load_config_data

    audit = load_audit(args.results_dir)
    if audit is None:
        print(f"{args.results_dir}: no audit; run 'snn-nas audit {args.results_dir}' first", file=sys.stderr)
        return 2
    audit = audit[(audit["status"] == "ok") & audit["supernet_val_acc"].notna()]
    experiment = load_experiment(args.results_dir / "experiment.yaml")
    oneshot = experiment.oneshot or OneShot()
    space = load_space(experiment.space)
    table = pd.read_parquet(args.results_dir / "trials.parquet")
    genotypes = dict(zip(table["key"], table["genotype"], strict=False))
    scratch = TrialSpec.from_experiment(experiment)
    inherit = dataclasses.replace(
        scratch,
        oneshot=tuple(sorted({**oneshot.supernet.to_dict(), "init": "inherit",
                              "checkpoint": str(supernet_path(args.results_dir).resolve())}.items())),
    )  # fmt: skip
    data = load_config_data(scratch.config())
    torch.set_num_threads(max(1, int(scratch.cpus)))  # as a trial's worker
    rows = []
    for record in audit.to_dict("records"):
        sample = space.encode(Genotype.from_json(str(genotypes[record["key"]])))
        row = {"key": record["key"], "supernet_val_acc": record["supernet_val_acc"], "audit_val_acc": record["val_acc"]}
        for name, spec in (("scratch", scratch), ("inherit", inherit)):
            result = run_trial(sample, space=space, spec=spec, data=data)
            row[f"{name}_val_acc"] = result["val_acc"] if result["status"] == "ok" else float("nan")
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    frame = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out, index=False)
    truth = frame["audit_val_acc"].to_numpy(float)
    for name in ("supernet", "scratch", "inherit"):
        values = frame[f"{name}_val_acc"].to_numpy(float)
        tau = kendall_tau(values, truth)
        print(f"{name:9s} tau vs audit {tau:+.3f}  mean val_acc {values.mean():.3f}  (n={len(frame)})")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
