"""Stand-in trials (``snn_nas.search.driver.standin``): a curve model fitted to search rows, and
the records a stand-in trial reports."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from snn_nas.search.driver.standin import CurveModel, fit_curve_model, standin_runner
from snn_nas.search.trial import TrialSpec
from snn_nas.space import load_space


def _rows(space, n: int = 40):
    """Rows whose SOPs and accuracy follow a known rule: more width, more SOPs and accuracy."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        genotype = space.decode(space.sample(i))
        width = genotype.stages[0].dim
        sops = math.exp(10 + 0.02 * width + rng.normal(0, 0.05))
        accuracy = 1 / (1 + math.exp(-(0.02 * width - 0.5)))
        curve = [{"epoch": 1, "val_acc": 0.8 * accuracy}, {"epoch": 2, "val_acc": accuracy}]
        rows.append({"trial_id": f"t{i}", "status": "ok", "genotype": genotype.to_json(), "sops": sops,
                     "val_acc": accuracy, "curve": json.dumps(curve), "baseline": ""})  # fmt: skip
    return rows


def test_the_fitted_model_recovers_the_trend_and_the_curve_shape():
    space = load_space("quick")
    rows = _rows(space)
    model = fit_curve_model(rows, space)
    assert model.rows == len(rows) and model.ratios == pytest.approx((0.8, 1.0))
    assert CurveModel.from_dict(json.loads(json.dumps(model.to_dict()))) == model  # JSON round trip
    drawn = []
    for row in rows:
        genotype = json.loads(row["genotype"])
        sample = space.encode(space.decode(space.sample(int(row["trial_id"][1:]))))
        sops, accuracies = model.draw(sample, row["trial_id"], 2)
        drawn.append((sops, row["sops"]))
        assert accuracies[0] == pytest.approx(0.8 * accuracies[1]) and genotype
    got, real = np.log([d[0] for d in drawn]), np.log([d[1] for d in drawn])
    assert np.corrcoef(got, real)[0, 1] > 0.5  # the sampler sees realistic differences
    with pytest.raises(ValueError, match="at least 5"):
        fit_curve_model(rows[:3], space)


def test_a_standin_trial_reports_a_record_per_epoch_like_a_real_trial():
    space = load_space("quick")
    model = fit_curve_model(_rows(space), space)
    spec = TrialSpec(train_config=(("epochs", 2),))
    reports = []
    final = standin_runner(model, 0.02, 2)(space.sample(1), space=space, spec=spec, report=reports.append)
    assert [r["epoch"] for r in reports] == [1, 2] and [r["status"] for r in reports] == ["running", "ok"]
    assert final["key"] == space.decode(space.sample(1)).key() and len(final["curve"]) == 2
    assert final["sops"] > 0 and 0 <= final["val_acc"] <= 1
    bad = standin_runner(model, 0.0)({"no_such_label": 1}, space=space, spec=spec, report=reports.append)
    assert bad["status"] == "invalid" and bad["error"]
