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


@pytest.mark.parametrize(
    ("sampler", "options", "message"),
    [
        ("tpe", {"n_startup_trials": -3}, "n_startup_trials: expected a whole number >= 0, got -3"),
        ("tpe", {"n_startup_trials": 2.5}, "n_startup_trials: expected a whole number >= 0, got 2.5"),
        ("tpe", {"multivariate": "yes"}, "multivariate: expected true or false, got 'yes'"),
        ("tpe", {"max_history": 10}, "max_history: expected a whole number >= 100, got 10"),
        ("tpe", {"population_size": 4}, "'population_size' is not an option of the tpe sampler; it takes"),
        ("tpe", {"gamma": 0.1}, "gamma takes a Python object, which an experiment file cannot give"),
        ("nsga2", {"crossover_prob": 1.5}, "crossover_prob: expected a number in [0, 1], got 1.5"),
        ("nsga2", {"population_size": 1}, "population_size: expected a whole number >= 2, got 1"),
        ("gp", {"n_startup_trials": -1}, "n_startup_trials: expected a whole number >= 0, got -1"),
        ("random", {"n_startup_trials": 5}, "is not an option of the random sampler; it takes none"),
    ],
)
def test_sampler_options_are_checked_against_the_samplers_signature_and_ranges(tmp_path, sampler, options, message):
    from snn_nas.search.experiment import ExperimentError

    experiment = Experiment.from_dict(
        {"space": "quick", "sampler": sampler, "sampler_options": options}, source="e.yaml"
    )
    with pytest.raises(ExperimentError, match=r"^e\.yaml: sampler_options: ") as caught:
        make_sampler(experiment)
    assert message in str(caught.value)


def test_sampler_options_in_range_reach_the_sampler():
    experiment = Experiment.from_dict(
        {"space": "quick", "sampler_options": {"n_startup_trials": 3, "multivariate": True, "max_history": 200}}
    )
    sampler = make_sampler(experiment)
    assert sampler._n_startup_trials == 3 and sampler._multivariate and sampler._max_history == 200
