"""The first trials of a search without Ray: warm-start designs, their mutants, the pre-screen pool."""

from __future__ import annotations

from dataclasses import replace

import pytest

from snn_nas.presets import get_preset
from snn_nas.search.experiment import Experiment, ExperimentError
from snn_nas.search.prescreen import (
    cheaper_mutants,
    dense_ops,
    draw_pool,
    single_label_mutants,
    warm_start_samples,
)
from snn_nas.space import load_space

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def quick():
    return load_space("quick")


def test_single_label_mutants_differ_in_one_label_and_are_distinct(quick):
    seed = quick.encode(get_preset("mlp_spe_micro"))
    mutants = single_label_mutants(quick, seed)
    keys = {quick.decode(m).key() for _, m in mutants}
    assert len(keys) == len(mutants) and get_preset("mlp_spe_micro").key() not in keys
    for label, mutant in mutants:
        assert mutant[label] != seed[label]
        shared = set(mutant) & set(seed)
        # the changed label, plus labels switched on or off by it, are the only differences
        assert all(mutant[k] == seed[k] for k in shared - {label} if quick.by_label[k].condition == ())
    t_mutants = {m["time_steps"] for label, m in mutants if label == "time_steps"}
    assert t_mutants == {1, 2}  # both other choices of T


def test_cheaper_mutants_spread_along_the_cost_axis_below_the_design(quick):
    seed = quick.encode(get_preset("mlp_spe_micro"))
    own = dense_ops(quick.decode(seed), 32, 1)
    picked = cheaper_mutants(quick, seed, 6, 32, 1)
    costs = [dense_ops(quick.decode(m), 32, 1) for _, m in picked]
    assert len(picked) == 6 and costs == sorted(costs) and all(c <= own for c in costs)
    assert costs[0] <= own / 3  # the cheap end is reached (e.g. T = 1), not only near-copies
    assert [m["time_steps"] for label, m in picked if label == "time_steps"]  # T is among the cost knobs
    # T = 4 -> 1 divides the dense count by 4 exactly
    t1 = {**seed, "time_steps": 1}
    assert dense_ops(quick.decode(t1), 32, 1) == pytest.approx(own / 4)


def test_warm_start_samples_seed_designs_then_mutants(quick):
    base = Experiment(name="w", space="quick", baselines=("mlp_spe_micro", "snn_mlp_micro"))
    plain = warm_start_samples(base, quick)
    assert [name for name, _ in plain] == ["mlp_spe_micro"]  # snn_mlp_micro is not in a spiking space
    assert quick.decode(plain[0][1]).key() == get_preset("mlp_spe_micro").key()
    with_mutants = warm_start_samples(replace(base, warm_mutants=3), quick, (32, 1))
    names = [name for name, _ in with_mutants]
    assert names[0] == "mlp_spe_micro" and len(names) == 4 and all(n.startswith("mlp_spe_micro~") for n in names[1:])
    assert warm_start_samples(replace(base, warm_start="none"), quick) == []


def test_pool_is_seeded_and_distinct(quick):
    a = draw_pool(quick, 10, seed=3)
    b = draw_pool(quick, 10, seed=3, exclude={a[0][1].key()})
    assert [g.key() for _, g in a] == [g.key() for _, g in draw_pool(quick, 10, seed=3)]
    assert len({g.key() for _, g in a}) == 10 and a[0][1].key() not in {g.key() for _, g in b}


def test_warm_start_setting_is_parsed_and_round_trips():
    exp = Experiment.from_dict({"space": "quick", "warm_start": {"from": "baselines", "mutants": 8}})
    assert (exp.warm_start, exp.warm_mutants) == ("baselines", 8)
    again = Experiment.from_dict(exp.to_dict())
    assert (again.warm_start, again.warm_mutants) == ("baselines", 8)
    assert Experiment.from_dict({"space": "quick"}).warm_start == "baselines"
    with pytest.raises(ExperimentError, match=r"warm_start\.mutants: needs designs"):
        Experiment.from_dict({"space": "quick", "warm_start": {"from": "none", "mutants": 2}})
    with pytest.raises(ExperimentError, match="unknown key"):
        Experiment.from_dict({"space": "quick", "warm_start": {"designs": "baselines"}})
