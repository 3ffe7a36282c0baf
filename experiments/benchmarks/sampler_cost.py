"""The samplers' cost per trial, without Ray (issue 26): the suggest-and-tell loop of the driver.

    python experiments/benchmarks/sampler_cost.py --trials 700 --max-history 500 --random-after 1

Drives ``SnnOptunaSearch`` (the driver's searcher: TPE through the samplers' journal, duplicate
redraws, constraints) on the quick space one trial at a time, with results drawn from the same
curve model as ``scale.py`` (``experiments/benchmarks/data/scale_curve_model.json``); invalid
samples are told as invalid, as the driver does. Prints one JSON object: the searcher's CPU time
(``time.process_time``, so other jobs on the machine distort it far less than wall time) per
trial, averaged over each window of 100 trials, and the draws per trial (a duplicate costs a
redraw). ``--random-after K``: TPE redraws after a duplicate before drawing at random
(``searcher.RANDOM_AFTER_DUPLICATES``); ``--max-history``: the TPE window
(``samplers.MAX_HISTORY``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main() -> None:
    import snn_nas.search.searcher as searcher
    from snn_nas.search.driver.standin import CurveModel
    from snn_nas.search.experiment import Experiment
    from snn_nas.space import load_space

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=700)
    parser.add_argument("--max-history", type=int, default=500)
    parser.add_argument("--random-after", type=int, default=searcher.RANDOM_AFTER_DUPLICATES)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    searcher.RANDOM_AFTER_DUPLICATES = args.random_after
    model = CurveModel.from_dict(json.loads((HERE / "data" / "scale_curve_model.json").read_text()))
    space = load_space("quick")
    experiment = Experiment.from_dict({"space": "quick", "trials": args.trials, "seed": args.seed,
                                       "sampler_options": {"max_history": args.max_history}})  # fmt: skip
    folder = Path(tempfile.mkdtemp(prefix="sampler_cost"))
    search = searcher.SnnOptunaSearch(
        space=space.suggest, decode=space.decode, metric=experiment.metrics, mode=experiment.modes,
        sampler=searcher.make_sampler(experiment), storage=searcher.sampler_storage(folder),
        study_name="cost", constraints=experiment.constraints, random_seed=args.seed, results_dir=str(folder),
    )  # fmt: skip
    seconds: list[float] = []
    for number in range(args.trials):
        trial_id = f"t{number}"
        started = time.process_time()
        config = search.suggest(trial_id)
        suggested = time.process_time()
        try:
            genotype = space.decode(config)
            sops, curve = model.draw(config, genotype.key(), 2)
            result = {"status": "ok", "val_acc": curve[-1], "sops": sops, "epoch": 2, "key": genotype.key()}
        except Exception:  # an architecture the space's rules rule out: told as invalid
            result = {"status": "invalid"}
        told = time.process_time()
        search.on_trial_complete(trial_id, result)
        seconds.append((suggested - started) + (time.process_time() - told))
    draws = len(search._ot_study.get_trials(deepcopy=False))
    windows = [round(1e3 * float(np.mean(seconds[k : k + 100])), 1) for k in range(0, args.trials, 100)]
    report = {"trials": args.trials, "max_history": args.max_history, "random_after": args.random_after,
              "cpu_ms_per_trial_per_100": windows, "draws_per_trial": round(draws / args.trials, 2)}  # fmt: skip
    print(json.dumps(report))


if __name__ == "__main__":
    main()
