"""The samplers' side: every sampler survives the pickling Ray Tune does to its searcher."""

from __future__ import annotations

import pickle

import optuna
import pytest

from snn_nas.search.experiment import SAMPLERS, Experiment
from snn_nas.search.searcher import make_sampler


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_pickles_and_still_samples(sampler):
    """Ray Tune pickles its search algorithm (with the Optuna sampler) into the experiment state;
    Optuna 5's NSGA-II sampler holds a thread lock, which does not pickle unless we drop it."""
    experiment = Experiment.from_dict({"space": "quick", "sampler": sampler, "trials": 8, "seed": 3})
    restored = pickle.loads(pickle.dumps(make_sampler(experiment)))
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=restored)
    study.optimize(lambda t: (t.suggest_float("x", 0, 1), t.suggest_int("n", 1, 4)), n_trials=6)
    assert len(study.trials) == 6 and all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
