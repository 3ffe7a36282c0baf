from __future__ import annotations

import json
import math

from snn_nas.jsonutil import finite_or_null


def test_non_finite_floats_become_null_at_any_depth():
    value = {"a": math.nan, "b": [1.0, math.inf, {"c": -math.inf, "d": 2}], "e": (0.5, "x")}
    cleaned = finite_or_null(value)
    assert cleaned == {"a": None, "b": [1.0, None, {"c": None, "d": 2}], "e": [0.5, "x"]}
    json.dumps(cleaned, allow_nan=False)  # strict JSON now
