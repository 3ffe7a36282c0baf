"""Status counts of the live search display (snn_nas.search.progress), by hand."""

from __future__ import annotations

import io

from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from snn_nas.search.progress import SearchProgress, status_counts, status_summary
from snn_nas.search.scheduler import MOASHAScheduler
from snn_nas.search.trial import TrialSpec, make_row

SPEC = TrialSpec(train_config=(("dataset", "synthetic"), ("epochs", 4), ("seed", 0)))


def row(trial_id: str, status: str = "ok", **values) -> dict:
    return {"trial_id": trial_id, "status": status, "key": f"k{trial_id}", **values}


def test_status_counts_by_hand():
    rows = [row("a"), row("b"), row("c", "stopped"), row("d", "silent"), row("e", "silent"), row("f", "failed")]
    rows += [row("g", "diverged"), row("h", "invalid")]
    counts = status_counts(rows, running=3)
    assert counts == {
        "done": 8,
        "running": 3,
        "ok": 2,
        "stopped": 1,
        "silent": 2,
        "failed": 1,
        "diverged": 1,
        "invalid": 1,
        "failed_total": 3,  # failed + diverged + invalid; silent is not a failure
    }
    assert status_summary(counts) == "ok 2, stopped 1, silent 2, failed or invalid 3"
    # every finished row is in exactly one shown count
    assert counts["ok"] + counts["stopped"] + counts["silent"] + counts["failed_total"] == counts["done"]


def test_status_summary_without_silent_reads_as_before():
    counts = status_counts([row("a"), row("b", "failed")])
    assert (counts["done"], counts["running"], counts["failed_total"]) == (2, 0, 1)
    assert status_summary(counts) == "ok 1, stopped 0, failed or invalid 1"
    assert status_summary(status_counts([])) == "ok 0, stopped 0, failed or invalid 0"


def test_headline_counts_silent_rows():
    stream = io.StringIO()
    progress = SearchProgress("exp", 5, ["val_acc", "sops"], ["max", "min"], live=False, stream=stream)
    with progress:
        progress.trial_started("c")
        progress.trial_finished(row("a", val_acc=0.9, sops=10.0))
        progress.trial_finished(row("b", "silent", val_acc=0.1, sops=0.0, error="never fires"))
        headline = "exp: 2/5 done (ok 1, stopped 0, silent 1, failed or invalid 0), 1 running, front 1"
        assert progress.headline().startswith(headline)
    lines = stream.getvalue().splitlines()
    assert lines[1].startswith("[2/5] b silent") and "(never fires)" in lines[1]
    assert lines[-1].startswith("exp: 2/5 done (ok 1, stopped 0, silent 1, failed or invalid 0), 1 running")


def test_a_trial_stopped_by_moasha_counts_as_stopped():
    scheduler = MOASHAScheduler(["val_acc", "sops"], ["max", "min"], max_t=4, grace_period=1, reduction_factor=2)
    trials = {name: Trial("snn_nas_test_trainable", stub=True) for name in ("a", "b")}
    results = {"a": {"val_acc": 0.9, "sops": 10.0}, "b": {"val_acc": 0.5, "sops": 20.0}}  # b dominated by a
    decisions = {}
    for name, trial in trials.items():
        scheduler.on_trial_add(None, trial)
        decisions[name] = scheduler.on_trial_result(None, trial, {"training_iteration": 1, **results[name]})
    assert decisions == {"a": TrialScheduler.CONTINUE, "b": TrialScheduler.STOP}

    # the stopped trial's last record says "running" after one epoch: the driver's row is "stopped"
    last = {"status": "running", "epoch": 1, "epochs": 1, "key": "kb", **results["b"]}
    stopped = make_row("b", {}, last, space=None, spec=SPEC)
    assert stopped["status"] == "stopped"
    progress = SearchProgress("exp", 2, ["val_acc", "sops"], ["max", "min"], enabled=False)
    progress.trial_finished(stopped)
    assert status_summary(progress.counts()) == "ok 0, stopped 1, failed or invalid 0"
    assert progress.front() == []  # a stopped trial is never on the live front


def test_the_front_kept_row_by_row_is_the_front_of_all_rows():
    """``FrontTracker`` (what the live display and the progress lines use) against
    ``current_front`` over every row so far, after each of a few hundred rows: repeated
    architectures, baselines of the same key before and after search rows, failed and
    chance-level rows."""
    import random

    from snn_nas.search.progress import FrontTracker, current_front

    rng = random.Random(5)
    for _ in range(5):
        tracker, rows = FrontTracker(["val_acc", "sops"], ["max", "min"]), []
        for i in range(150):
            key = f"k{rng.randrange(40)}"
            baseline = "mlp_spe_micro" if key == "k0" and rng.random() < 0.5 else ""
            row = {"trial_id": f"t{i}", "key": key, "status": rng.choice(["ok", "ok", "ok", "stopped", "failed"]),
                   "val_acc": rng.choice([0.05, rng.random()]), "sops": float(rng.randrange(1, 30)) * 1e4,
                   "num_classes": 10, "baseline": baseline, "time_steps": 1, "firing_rate": 0.1}  # fmt: skip
            rows.append(row)
            tracker.add(row)
            want = current_front(rows, ["val_acc", "sops"], ["max", "min"])
            assert [(r["trial_id"], r["seed_design"]) for r in tracker.front] == [
                (r["trial_id"], r["seed_design"]) for r in want
            ]


def test_a_long_reason_line_is_wrapped_at_the_terminal_width_above_the_panel(monkeypatch):
    """On an 80-column terminal a long line must be wrapped by rich, which counts its rows, not by
    the terminal: else the live panel's redraw moves back over fewer rows and erases its end."""
    monkeypatch.setenv("COLUMNS", "80")
    stream = io.StringIO()
    reason = "not in the supernet: " + "stage 2 token_h group 7 is not among the supernet's choices " * 3
    progress = SearchProgress("os.stage1", 5, ["val_acc", "sops"], ["max", "min"], live=True, stream=stream)
    with progress:
        progress.trial_finished(row("abcdef12", "invalid", error=reason.strip()))
    printed = [line for line in stream.getvalue().splitlines() if line.strip()]
    start = next(i for i, line in enumerate(printed) if line.startswith("[1/5] abcdef12 invalid"))
    assert all(len(line) <= 80 for line in printed)
    wrapped = " ".join(line.strip() for line in printed[start : start + 6])
    assert " ".join(reason.split()) in " ".join(wrapped.split())
