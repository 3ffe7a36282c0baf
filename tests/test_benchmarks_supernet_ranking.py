"""The supernet-ranking benchmark (``experiments/benchmarks/supernet_ranking.py``): its variant
syntax and its summary line, which the guide's table quotes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from snn_nas.supernet.config import SupernetConfig

BENCHMARKS = Path(__file__).resolve().parents[1] / "experiments" / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from supernet_ranking import parse_variant, summarize  # noqa: E402


def test_a_variant_is_yaml_values_joined_by_semicolons_and_a_valid_supernet_setting():
    overrides = parse_variant("epochs=3; anchors=[mlp_spe_micro];distill=false")
    assert overrides == {"epochs": 3, "anchors": ["mlp_spe_micro"], "distill": False}
    assert SupernetConfig.from_dict(overrides).anchors == ("mlp_spe_micro",)
    assert parse_variant("") == {}
    with pytest.raises(SystemExit, match="name=value"):
        parse_variant("epochs")


def test_the_summary_ranks_searched_architectures_only_and_names_the_seed_designs():
    proxy = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    rows = [{"key": str(i), "baseline": "", "proxy_val_acc": p, "supernet_val_acc": p / 2, "train_s": 12.0}
            for i, p in enumerate(proxy)]  # fmt: skip
    rows.append({"key": "b", "baseline": "mlp_spe_micro", "proxy_val_acc": 0.939, "supernet_val_acc": 0.1,
                 "train_s": 12.0})  # fmt: skip
    line = summarize("default", rows)
    assert line.startswith("default: supernet 12 s; tau +1.000")
    assert "(n=6)" in line and "mlp_spe_micro 10.0% (standalone 93.9%)" in line
    rows[0]["supernet_val_acc"], rows[5]["supernet_val_acc"] = rows[5]["supernet_val_acc"], rows[0]["supernet_val_acc"]
    assert "tau +1.000" not in summarize("default", rows)


def test_the_from_scratch_baseline_trains_no_supernet_and_its_steps_matter(tmp_path):
    import pandas as pd
    from supernet_ranking import evaluate_variant

    from snn_nas.presets import get_preset

    rows = pd.DataFrame(
        [{"key": "micro", "baseline": "", "val_acc": 0.9, "genotype": get_preset("mlp_spe_micro").to_json()}]
    )
    untouched = evaluate_variant("s0", {"finetune_steps": 0, "val_images": 100}, rows, tmp_path, untrained=True)
    trained = evaluate_variant("s5", {"finetune_steps": 5, "val_images": 100}, rows, tmp_path, untrained=True)
    assert [e["train_s"] for e in untouched + trained] == [0.0, 0.0]
    assert not any(tmp_path.iterdir())  # no supernet was trained or written
    assert untouched[0]["supernet_val_acc"] != trained[0]["supernet_val_acc"]
