"""The user's study writes a finished trial in one transaction (``UserStudy._finish``): the trial
read back must be the one Optuna's own API writes, attribute for attribute."""

from __future__ import annotations

import json
import time

import optuna
import pytest

from snn_nas.genotype import Genotype
from snn_nas.search.study import UserStudy
from snn_nas.space import load_space


def _row(space, trial_id: str, status: str = "ok") -> dict:
    genotype = space.decode(space.sample(3))
    curve = [{"epoch": 1, "val_acc": 0.4, "sops": 2.0e5}, {"epoch": 2, "val_acc": 0.6, "sops": 2.1e5}]
    return {
        "trial_id": trial_id, "status": status, "key": genotype.key(), "genotype": genotype.to_json(),
        "summary": genotype.summary(), "val_acc": 0.6, "sops": 2.1e5, "params": 1234, "time_steps": 2,
        "firing_rate": 0.12, "epochs": 2, "curve": json.dumps(curve), "finished_at": time.time(),
        "started_at": time.time() - 5, "error": None if status == "ok" else "RuntimeError: boom",
    }  # fmt: skip


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.parametrize("status", ["ok", "failed", "stopped"])
def test_a_trial_finished_in_one_transaction_reads_back_as_through_the_api(tmp_path, status):
    space = load_space("quick")
    row = _row(space, "t1", status)
    sample = space.encode(Genotype.from_json(row["genotype"]))
    (tmp_path / "fast").mkdir()
    (tmp_path / "slow").mkdir()
    fast = UserStudy(tmp_path / "fast", "s", ["val_acc", "sops"], ["max", "min"], space, (("params", 3000.0),))
    fast.start("t1", sample, row["started_at"])
    fast.add(row, sample)

    slow = UserStudy(tmp_path / "slow", "s", ["val_acc", "sops"], ["max", "min"], space, (("params", 3000.0),))
    slow.start("t1", sample, row["started_at"])
    params, distributions = slow._params(row, sample)
    state, values, attrs, system, intermediate = slow._content(row)
    storage, number_id = slow._rdb, slow._running["t1"]
    for name, value in params.items():  # what Optuna's API writes, one call per item
        storage.set_trial_param(number_id, name, distributions[name].to_internal_repr(value), distributions[name])
    for name, value in attrs.items():
        storage.set_trial_user_attr(number_id, name, value)
    for name, value in system.items():
        storage.set_trial_system_attr(number_id, name, value)
    for step, value in intermediate.items():
        storage.set_trial_intermediate_value(number_id, step, value)
    storage.set_trial_state_values(number_id, state, values)

    got = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'fast' / 'optuna.db'}").trials
    want = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'slow' / 'optuna.db'}").trials
    assert len(got) == len(want) == 1
    a, b = got[0], want[0]
    assert a.state == b.state and a.values == b.values and a.params == b.params
    assert a.distributions == b.distributions and a.intermediate_values == b.intermediate_values
    assert a.user_attrs == b.user_attrs and a.system_attrs == b.system_attrs
    assert a.datetime_complete is not None and a.user_attrs["status"] == status
    assert len(a.params) == len(sample) and a.intermediate_values == {1: 0.4, 2: 0.6}
