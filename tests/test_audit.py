"""The audit's pure parts: rank statistics against scipy, the sample, the figures, the journal.

The audit end to end (a real search, then ``snn-nas audit`` through Ray, killed and resumed) is
in ``tests/test_search_strategies.py``.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from snn_nas.audit import (
    AuditError,
    AuditStore,
    audit_sample,
    audit_statistics,
    front_recall,
    kendall_tau,
    spearman_rho,
    top1_regret,
)


@pytest.mark.parametrize("seed", range(6))
def test_rank_statistics_match_scipy_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 30))
    x = rng.integers(0, 6, n).astype(float)  # many ties
    y = x + rng.integers(-3, 4, n)
    assert kendall_tau(x, y) == pytest.approx(stats.kendalltau(x, y).statistic)
    assert spearman_rho(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)


def test_rank_statistics_edge_cases():
    assert kendall_tau([1, 2, 3], [10, 20, 30]) == 1.0 and kendall_tau([1, 2, 3], [3, 2, 1]) == -1.0
    assert math.isnan(kendall_tau([1], [2])) and math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))
    assert spearman_rho([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    with pytest.raises(AuditError, match="one length"):
        kendall_tau([1, 2], [1, 2, 3])


def _table(rows):
    base = {"status": "ok", "baseline": "", "genotype": "{}", "fidelity": "{}", "summary": ""}
    return pd.DataFrame([{**base, **row} for row in rows])


def test_sample_is_the_front_then_a_spread_over_the_proxy_ranking():
    rows = [  # key, proxy accuracy, SOPs: a, b, c on the front; d..j behind it
        {"key": "a", "val_acc": 0.95, "sops": 900.0},
        {"key": "b", "val_acc": 0.90, "sops": 300.0},
        {"key": "c", "val_acc": 0.50, "sops": 10.0},
        *[{"key": k, "val_acc": 0.89 - 0.05 * i, "sops": 950.0} for i, k in enumerate("defghij")],
        {"key": "x", "val_acc": 0.99, "sops": 1.0, "baseline": "mlp_spe_micro"},  # baselines are not audited
        {"key": "y", "val_acc": 0.99, "sops": 1.0, "status": "stopped"},  # nor unfinished trials
    ]
    sample = audit_sample(_table(rows), 6)
    assert [r["key"] for r in sample[:3]] == ["a", "b", "c"] and all(r["on_front"] for r in sample[:3])
    assert [r["key"] for r in sample[3:]] == ["d", "g", "j"]  # first, middle and last by proxy accuracy
    assert not any(r["on_front"] for r in sample[3:])
    assert [r["key"] for r in audit_sample(_table(rows), 3)] == ["a", "b", "c"]  # the front always
    with pytest.raises(AuditError, match="at least 3"):
        audit_sample(_table(rows), 1)
    with pytest.raises(AuditError, match="has 2 finished"):
        audit_sample(_table(rows[:2]), 5)


def test_a_chance_level_trial_is_no_search_front_member_as_in_every_view():
    rows = [
        {"key": "a", "val_acc": 0.95, "sops": 900.0},
        {"key": "b", "val_acc": 0.90, "sops": 300.0},
        {"key": "c", "val_acc": 0.50, "sops": 10.0},
        {"key": "z", "val_acc": 0.097, "sops": 1.0},  # 10 classes: chance level, on the raw front
        {"key": "d", "val_acc": 0.40, "sops": 950.0},
    ]
    by_key = {r["key"]: r for r in audit_sample(_table(rows), 5, num_classes=10)}
    assert {k for k, r in by_key.items() if r["on_front"]} == {"a", "b", "c"}
    assert not by_key["z"]["on_front"]  # still audited, in the spread
    assert audit_sample(_table(rows), 5)[3]["key"] == "z"  # without the classes, the rule cannot tell


def _audit_row(key, proxy_acc, acc, proxy_sops, sops, **extra):
    return {"key": key, "status": "ok", "proxy_val_acc": proxy_acc, "val_acc": acc,
            "proxy_sops": proxy_sops, "sops": sops, "test_acc": acc - 0.01, "params": 100, **extra}  # fmt: skip


def test_statistics_by_hand():
    rows = [
        _audit_row("a", 0.9, 0.96, 100.0, 150.0, params=300, sahd=5.0),
        _audit_row("b", 0.8, 0.97, 50.0, 40.0, params=200, sahd=4.0),
        _audit_row("c", 0.7, 0.90, 20.0, 22.0, params=100, sahd=6.0),
        {"key": "d", "status": "failed", "proxy_val_acc": 0.99},  # left out
    ]
    figures = audit_statistics(rows)
    assert figures["n"] == 3
    assert figures["kendall_tau"] == pytest.approx(1 / 3)  # pairs ab discordant, ac and bc concordant
    assert figures["kendall_tau_sops"] == 1.0 and figures["kendall_tau_params"] == pytest.approx(1 / 3)
    assert figures["kendall_tau_sahd"] == -1.0  # every pair discordant
    assert figures["sops_drift_median"] == pytest.approx(0.1)  # +50 %, -20 %, +10 %
    assert figures["sops_drift_max"] == pytest.approx(0.5)
    assert figures["top1_regret"] == pytest.approx(0.01)  # the proxy's best (a) is 1 point behind b
    # high-fidelity front: b (0.97, 40) and c (0.90, 22); proxy front: a, b, c -> both held
    assert figures["front_recall"] == 1.0
    assert front_recall([_audit_row("a", 0.9, 0.8, 10.0, 10.0), _audit_row("b", 0.8, 0.9, 20.0, 20.0)]) == 0.5
    assert top1_regret([]) != top1_regret([])  # NaN without rows


def test_store_resumes_from_its_journal_and_skips_only_a_torn_last_line(tmp_path):
    store = AuditStore(tmp_path)
    store.record(_audit_row("a", 0.9, 0.95, 1.0, 2.0))
    store.record(_audit_row("b", 0.8, 0.85, 1.0, 2.0))
    assert pd.read_parquet(tmp_path / "audit.parquet")["key"].tolist() == ["a", "b"]
    with (tmp_path / "audit.jsonl").open("a") as handle:
        handle.write('{"key": "c", "sta')  # a crash while writing
    assert {key for key, _ in AuditStore(tmp_path).done()} == {"a", "b"}
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    (tmp_path / "audit.jsonl").write_text("\n".join([lines[0], "not json", lines[1]]) + "\n")
    with pytest.raises(AuditError, match="line 2 is not valid JSON"):
        AuditStore(tmp_path)
    (tmp_path / "audit.jsonl").write_text(json.dumps([1, 2]) + "\n")
    with pytest.raises(AuditError, match="line 1 is not an audit row"):
        AuditStore(tmp_path)


def test_rows_are_keyed_by_architecture_and_settings(tmp_path):
    """An audit run again with other settings must not report the old rows as the new ones."""
    from snn_nas.audit import row_id

    store = AuditStore(tmp_path)
    two = {**_audit_row("a", 0.9, 0.95, 1.0, 2.0), "fidelity": json.dumps({"epochs": 2, "seed": 0})}
    three = {**_audit_row("a", 0.9, 0.97, 1.0, 2.0), "fidelity": json.dumps({"seed": 0, "epochs": 3})}
    store.record(two)
    store.record(three)
    again = AuditStore(tmp_path)
    assert len(again.rows()) == 2  # both settings kept
    assert row_id(three) in again.done() and row_id(two) in again.done() and row_id(two) != row_id(three)
    assert row_id({"key": "a", "fidelity": {"epochs": 3, "seed": 0}}) == row_id(three)  # key order does not matter


def test_rank_statistics_come_with_an_interval_or_a_small_n_warning(tmp_path):
    """Fisher's z by hand: tau 0.87 over 12 pairs, s = sqrt(0.437 / 8) = 0.2337,
    atanh(0.87) = 1.3331, so [tanh(0.8750), tanh(1.7912)] = [0.704, 0.946]."""
    from snn_nas.audit import draw_audit_png, plot_info, rank_interval
    from snn_nas.cli.audit import summary_lines

    low, high = rank_interval(0.87, 12)
    assert (low, high) == (pytest.approx(0.7039, abs=1e-3), pytest.approx(0.9459, abs=1e-3))
    assert rank_interval(-1.0, 4) is None and rank_interval(0.5, 4, "rho") is not None  # too few for tau's
    rows = [_audit_row(k, p, h, s, s * 2) for k, p, h, s in (("a", 0.9, 0.95, 1.0), ("b", 0.8, 0.85, 2.0),
                                                              ("c", 0.7, 0.6, 3.0), ("d", 0.6, 0.7, 4.0))]  # fmt: skip
    stats = audit_statistics(rows)
    assert stats["n_kendall_tau"] == 4 and stats["ci95_kendall_tau"] is None and stats["small_n"] is True
    report = {**stats, "front_members": 1, "high_fidelity": {"epochs": 2}}
    text = "\n".join(summary_lines(report))
    assert "(n=4)" in text and "no interval: too few" in text and "warning: only 4 architectures" in text
    drawn = draw_audit_png(plot_info(rows), tmp_path / "audit.png")
    assert {"a", "b", "c", "d"} <= set(drawn) and any("n = 4 < 10" in t for t in drawn)
