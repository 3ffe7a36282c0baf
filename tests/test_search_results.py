"""The result table: rows, the crash-safe store, load_results; rows built from trial records; the front."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

import snn_nas
from snn_nas.errors import SnnNasError
from snn_nas.search.progress import SearchProgress, current_front, format_metric
from snn_nas.search.results import (
    COLUMNS,
    JOURNAL_FILE,
    TABLE_FILE,
    ResultsError,
    ResultStore,
    load_results,
    normalise_row,
)
from snn_nas.search.trial import TrialSpec, error_line, make_row, violations

CONTRACT = [
    *("trial_id", "status", "key", "genotype", "summary", "seed", "fidelity", "val_acc", "val_loss", "sops", "macs"),
    *("energy_uj", "params", "macs_per_step", "time_steps", "firing_rate", "epochs", "wall_s", "error", "baseline"),
    "version",
]


def row(trial_id: str, status: str = "ok", **values) -> dict:
    return {"trial_id": trial_id, "status": status, "key": f"k{trial_id}", **values}


def test_columns_hold_the_contract_in_order():
    assert list(COLUMNS[: len(CONTRACT)]) == CONTRACT
    assert {"trial_id", "status", "key", "genotype", "val_acc", "sops", "macs", "energy_uj", "params"} <= set(COLUMNS)


def test_normalise_row_fills_and_types():
    clean = normalise_row({"trial_id": "t1", "status": "ok", "val_acc": "0.5", "params": 12.0, "extra": 1})
    assert set(clean) == set(COLUMNS)  # unknown keys dropped, missing ones present
    assert clean["val_acc"] == 0.5 and clean["params"] == 12 and isinstance(clean["params"], int)
    assert math.isnan(clean["sops"]) and clean["error"] is None and clean["baseline"] == ""
    assert normalise_row({"trial_id": "t", "status": "failed", "params": math.nan})["params"] is None
    with pytest.raises(ValueError, match="status 'done' is not one of"):
        normalise_row({"trial_id": "t", "status": "done"})
    with pytest.raises(ValueError, match="trial_id"):
        normalise_row({"status": "ok"})


def test_store_writes_table_and_journal_and_upserts(tmp_path):
    store = ResultStore(tmp_path / "exp")
    store.record(row("a", val_acc=0.5, sops=10.0, params=100, feasible=True))
    store.record(row("b", "failed", error="RuntimeError: boom"))
    assert (tmp_path / "exp" / TABLE_FILE).is_file()
    assert len((tmp_path / "exp" / JOURNAL_FILE).read_text().splitlines()) == 2
    table = pd.read_parquet(tmp_path / "exp" / TABLE_FILE)
    assert list(table.columns) == list(COLUMNS) and list(table["trial_id"]) == ["a", "b"]
    # a trial is recorded once: recording it again keeps the first row, in memory and on disk
    assert store.record(row("a", val_acc=0.75, sops=10.0))["val_acc"] == 0.5
    assert len((tmp_path / "exp" / JOURNAL_FILE).read_text().splitlines()) == 2
    frame = load_results(tmp_path / "exp")
    assert list(frame["trial_id"]) == ["a", "b"] and frame.loc[0, "val_acc"] == 0.5
    assert frame.loc[1, "error"] == "RuntimeError: boom" and pd.isna(frame.loc[1, "val_acc"])
    assert str(frame["params"].dtype) == "Int64" and str(frame["feasible"].dtype) == "boolean"
    # a new store on the same folder (a resumed search) starts from the rows on disk
    again = ResultStore(tmp_path / "exp")
    assert len(again) == 2 and "a" in again and again.get("a")["val_acc"] == 0.5
    assert not list((tmp_path / "exp").glob("*.tmp"))  # the temporary file was moved over the table


def test_journal_rows_survive_a_crash_before_the_table_was_rewritten(tmp_path):
    store = ResultStore(tmp_path)
    store.record(row("a", val_acc=0.1))
    # a crash after the journal line of trial "b" but before its table write, with a torn last line
    with (tmp_path / JOURNAL_FILE).open("a") as handle:
        handle.write(json.dumps(normalise_row(row("b", val_acc=0.2))) + "\n")
        handle.write('{"trial_id": "c", "sta')
    frame = load_results(tmp_path)
    assert list(frame["trial_id"]) == ["a", "b"] and frame.loc[1, "val_acc"] == 0.2
    assert len(pd.read_parquet(tmp_path / TABLE_FILE)) == 1  # the table itself only had "a"
    assert len(ResultStore(tmp_path)) == 2


def test_load_results_accepts_the_table_path_and_is_exported(tmp_path):
    ResultStore(tmp_path).record(row("a"))
    assert list(snn_nas.load_results(tmp_path / TABLE_FILE)["trial_id"]) == ["a"]
    assert len(load_results(str(tmp_path))) == 1


def test_load_results_errors(tmp_path):
    with pytest.raises(ResultsError, match="no such results folder"):
        load_results(tmp_path / "missing")
    with pytest.raises(ResultsError, match=r"no trials\.parquet here"):
        load_results(tmp_path)
    (tmp_path / TABLE_FILE).write_bytes(b"not parquet")
    with pytest.raises(ResultsError, match="cannot read the result table"):
        load_results(tmp_path)
    assert issubclass(ResultsError, SnnNasError) and issubclass(ResultsError, LookupError)


# ---------------------------------------------------------------------- damaged tables (issue 10, family 4)
def five_trials(folder) -> ResultStore:
    store = ResultStore(folder)
    for i in range(5):
        store.record(row(f"t{i}", val_acc=0.5 + i / 20, sops=100.0 * (i + 1), params=10, time_steps=1))
    return store


def damage_journal(folder) -> None:
    """Lines 2-5 of five: not JSON, a list, an unknown status, not UTF-8; then a torn last line."""
    journal = folder / JOURNAL_FILE
    lines = journal.read_bytes().splitlines()
    lines[1] = lines[1][:30] + b"#garbage"
    lines[2] = b"[1, 2, 3]"
    lines[3] = json.dumps({**normalise_row(row("t3")), "status": "done"}).encode()
    lines[4] = lines[4].replace(b'"t4"', b'"t\xe9"')
    journal.write_bytes(b"\n".join(lines) + b'\n{"trial_id": "t5", "sta')


def test_journal_lines_that_cannot_be_read_are_skipped_with_a_warning_naming_file_and_line(tmp_path, caplog):
    five_trials(tmp_path)
    damage_journal(tmp_path)
    with caplog.at_level("WARNING", logger="snn_nas.search.results"):
        frame = load_results(tmp_path)  # the table holds every trial: nothing is lost
    assert list(frame["trial_id"]) == ["t0", "t1", "t2", "t3", "t4"]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 4, warnings  # the torn last line is what a crash leaves: no warning
    for number, why in zip((2, 3, 4, 5), ("not valid JSON", "a JSON list", "status 'done'", "not UTF-8"), strict=True):
        assert any(f"{tmp_path / JOURNAL_FILE}: line {number}: {why}" in w for w in warnings), (number, warnings)
    # without the table, the rows of the intact lines are all that is left, and all of them are read
    (tmp_path / TABLE_FILE).unlink()
    assert list(load_results(tmp_path)["trial_id"]) == ["t0"]
    assert ResultStore(tmp_path).skipped[0].startswith("line 2: not valid JSON")


def test_rewrite_journal_keeps_the_damaged_copy_and_appends_after_a_torn_line(tmp_path, caplog):
    five_trials(tmp_path)
    damage_journal(tmp_path)
    store = ResultStore(tmp_path)
    kept = store.rewrite_journal()
    assert kept == tmp_path / f"{JOURNAL_FILE}.damaged" and b"#garbage" in kept.read_bytes()
    caplog.clear()
    again = ResultStore(tmp_path)
    assert not again.skipped and len(again) == 5 and not caplog.records
    # a crash tore the last line: the next record starts on a line of its own, and the torn text is gone
    with (tmp_path / JOURNAL_FILE).open("a") as handle:
        handle.write('{"trial_id": "t9", "sta')
    again.record(row("t6", val_acc=0.1))
    lines = (tmp_path / JOURNAL_FILE).read_text().splitlines()
    assert len(lines) == 6 and json.loads(lines[-1])["trial_id"] == "t6"
    assert len(load_results(tmp_path)) == 6 and not caplog.records


def unrelated_table(folder):
    folder.mkdir()
    pd.DataFrame({"trial_id": ["x"], "score": [1.0]}).to_parquet(folder / TABLE_FILE)
    return folder


def percent_table(folder):
    """A table written by something else: accuracies in percent."""
    ResultStore(folder).record(row("a", val_acc=0.95, sops=10.0))
    table = pd.read_parquet(folder / TABLE_FILE)
    table["val_acc"] = table["val_acc"] * 100
    table.to_parquet(folder / TABLE_FILE)
    (folder / JOURNAL_FILE).unlink()
    return folder


def test_tables_that_are_not_search_tables_or_hold_percentages_are_errors(tmp_path):
    unrelated = unrelated_table(tmp_path / "other")
    with pytest.raises(ResultsError, match=r"not a result table of 'snn-nas search' \(no column status, key"):
        load_results(unrelated)
    with pytest.raises(ResultsError, match=r"row 1 \(trial_id a\): val_acc: 95 is not a fraction in \[0, 1\]"):
        load_results(percent_table(tmp_path / "percent"))
    with pytest.raises(ValueError, match=r"not a fraction in .* not percentages"):
        normalise_row(row("b", val_acc=95.0))
    with pytest.raises(ValueError, match="mapping"):
        normalise_row([("trial_id", "x")])


def test_pareto_cli_refuses_such_tables_in_one_line_and_writes_nothing_there(tmp_path, capsys):
    from snn_nas.cli.main import main

    for folder, message in (
        (unrelated_table(tmp_path / "other"), "not a result table"),
        (percent_table(tmp_path / "percent"), "val_acc: 95 is not a fraction"),
    ):
        assert main(["pareto", str(folder)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("snn-nas pareto: error: ") and message in err, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert not list(folder.glob("pareto.*"))


def test_damaged_journal_through_the_real_cli_keeps_every_intact_trial_and_says_what_it_skipped(tmp_path):
    import subprocess
    import sys

    five_trials(tmp_path)
    damage_journal(tmp_path)
    (tmp_path / TABLE_FILE).unlink()  # a crash before the table was ever written: the journal is all there is
    lines = (tmp_path / JOURNAL_FILE).read_bytes().splitlines()
    lines.insert(1, json.dumps(normalise_row(row("t7", val_acc=0.9, sops=50.0))).encode())
    (tmp_path / JOURNAL_FILE).write_bytes(b"\n".join(lines))
    done = subprocess.run(
        [sys.executable, "-m", "snn_nas.cli.main", "pareto", str(tmp_path), "--json"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["status_counts"] == {"ok": 2}  # t0 and t7: every trial whose line is intact
    warnings = done.stderr.strip().splitlines()
    assert len(warnings) == 4 and all(w.startswith("warning: ") and w.endswith("; skipped") for w in warnings)
    assert [w.split(": line ")[1].split(":")[0] for w in warnings] == ["3", "4", "5", "6"]
    assert "Traceback" not in done.stderr


SPEC = TrialSpec(train_config=(("dataset", "synthetic"), ("epochs", 2), ("seed", 3)), constraints=(("params", 100.0),))


def test_make_row_statuses():
    final = {"status": "ok", "key": "abc", "genotype": "{}", "val_acc": 0.5, "sops": 7.0, "epochs": 2, "node": "n1"}
    ok = make_row("t1", {}, final, space=None, spec=SPEC)
    assert (ok["status"], ok["trial_id"], ok["seed"], ok["node"], ok["baseline"]) == ("ok", "t1", 3, "n1", "")
    assert json.loads(ok["fidelity"]) == {"dataset": "synthetic", "epochs": 2, "seed": 3}
    assert ok["version"] == snn_nas.__version__
    # a last record still "running" was stopped by the scheduler after some epochs
    assert make_row("t2", {}, {**final, "status": "running", "epochs": 1}, space=None, spec=SPEC)["status"] == "stopped"
    # ... or, without any epoch, ended without a result
    empty = make_row("t3", {}, {}, space=None, spec=SPEC)
    assert empty["status"] == "failed" and "without reporting a result" in empty["error"]
    # an error from Ray (the worker died, an exception escaped) overrides the record
    died = make_row("t4", {}, final, space=None, spec=SPEC, error="RayActorError: died")
    assert (died["status"], died["error"]) == ("failed", "RayActorError: died")
    assert make_row("t5", {}, final, space=None, spec=SPEC, baseline="mlp_spe_micro")["baseline"] == "mlp_spe_micro"


def test_make_row_decodes_the_key_of_a_trial_that_never_reported():
    from snn_nas.presets import get_preset

    row_ = make_row("t", {}, {}, space=None, spec=SPEC, baseline="mlp_spe_micro", error="boom")
    assert (
        row_["key"] == get_preset("mlp_spe_micro").key() and row_["genotype"] == get_preset("mlp_spe_micro").to_json()
    )


def test_violations_and_error_lines():
    assert violations({"params": 50, "sops": 300.0}, (("params", 100.0), ("sops", 200.0))) == [-0.5, 0.5]
    assert violations({"params": None}, (("params", 100.0),)) == [1.0]  # unknown counts as violated
    assert error_line("Traceback ...\n  File x\nRuntimeError: boom\n") == "RuntimeError: boom"
    assert error_line("torch.OutOfMemoryError: CUDA out of memory. Tried").startswith("out of memory: ")
    assert error_line(None) == "the trial's worker failed"


def test_current_front_by_hand():
    rows = [
        row("a", val_acc=0.9, sops=100.0),
        row("b", val_acc=0.8, sops=50.0),
        row("c", val_acc=0.7, sops=80.0),  # dominated by b
        row("d", val_acc=0.95, sops=500.0),
        row("e", "failed", val_acc=0.99, sops=1.0),  # not ok
        row("f", val_acc=0.6, sops=10.0, baseline="mlp_spe_micro"),  # a baseline: on the front, named
        row("g", val_acc=0.99, sops=1.0, feasible=False),  # breaks a constraint
        row("h", val_acc=math.nan, sops=1.0),  # no value
        row("i", val_acc=0.11, sops=2.0, num_classes=10),  # chance level: 1/10 + 2 points
        row("j", val_acc=0.99, sops=1.0, proxy="supernet"),  # a weight-sharing estimate
    ]
    front = current_front(rows, ["val_acc", "sops"], ["max", "min"])
    assert [r["trial_id"] for r in front] == ["d", "a", "b", "f"]  # best accuracy first, as snn-nas pareto ranks
    assert [r["seed_design"] for r in front] == ["", "", "", "mlp_spe_micro"]
    assert [r["trial_id"] for r in current_front(rows, ["sops"], ["min"])] == ["f"]  # the rule, then sops
    assert current_front([], ["val_acc", "sops"], ["max", "min"]) == []
    # one architecture, one point: the warm-start trial of a seed design stands for its baseline row
    twin = [row("w", val_acc=0.6, sops=10.0, key="kf"), row("f", val_acc=0.6, sops=10.0, baseline="mlp_spe_micro")]
    assert [(r["trial_id"], r["seed_design"]) for r in current_front(twin, ["val_acc", "sops"], ["max", "min"])] == [
        ("w", "mlp_spe_micro")
    ]
    # non-spiking rows have no place on the SOP axis (pareto compares them on energy)
    snn_mlp = row("n", val_acc=0.95, sops=0.0, macs=1e6, time_steps=1, baseline="snn_mlp_micro")
    assert (
        current_front([snn_mlp, row("a", val_acc=0.9, sops=100.0)], ["val_acc", "sops"], ["max", "min"])[0]["trial_id"]
        == "a"
    )


def test_progress_counts_and_lines(tmp_path):
    stream = (tmp_path / "out.txt").open("w")
    progress = SearchProgress("exp", 4, ["val_acc", "sops"], ["max", "min"], live=False, stream=stream)
    with progress:
        progress.trial_started("a")
        progress.trial_started("b")
        progress.trial_result("a", {"epoch": 1, "val_acc": 0.5, "sops": 10.0})
        progress.trial_finished(row("a", val_acc=0.5, sops=10.0))
        progress.trial_finished(row("b", "failed", error="boom"))
        counts = progress.counts()
        assert (counts["done"], counts["running"], counts["ok"], counts["failed_total"]) == (2, 0, 1, 1)
        assert progress.render() is not None
    stream.close()
    lines = (tmp_path / "out.txt").read_text().splitlines()
    assert lines[0].startswith("[1/4] a ok val_acc=50.00% sops=10") and "front 1" in lines[0]
    assert lines[1].startswith("[2/4] b failed") and "(boom)" in lines[1]
    assert lines[-1].startswith("exp: 2/4 done (ok 1, stopped 0, failed or invalid 1), 0 running, front 1")
    assert format_metric("sops", 1.5e6) == "1.5M" and format_metric("val_acc", math.nan) == "-"
    assert format_metric("sops", 966.75) == "967" and format_metric("sops", 4.18e5) == "418k"  # one format


def test_a_store_of_the_driver_appends_lines_and_compacts_the_table_at_close(tmp_path):
    """With ``compact_every_s`` (the driver's setting) a record appends one journal line and
    leaves the parquet table alone until the interval passed or ``close``; readers see every
    row meanwhile (the journal is merged)."""
    from snn_nas.search.results import JOURNAL_FILE, TABLE_FILE, load_results

    store = ResultStore(tmp_path, compact_every_s=3600)
    for i in range(5):
        store.record(row(f"t{i}", val_acc=0.5, sops=10.0))
    assert not (tmp_path / TABLE_FILE).exists()  # no rewrite per trial
    assert (tmp_path / JOURNAL_FILE).read_text().count("\n") == 5
    assert sorted(load_results(tmp_path)["trial_id"]) == [f"t{i}" for i in range(5)]
    store.close()
    import pandas as pd

    assert sorted(pd.read_parquet(tmp_path / TABLE_FILE)["trial_id"]) == [f"t{i}" for i in range(5)]
    mtime = (tmp_path / TABLE_FILE).stat().st_mtime_ns
    store.close()  # nothing new: not rewritten
    assert (tmp_path / TABLE_FILE).stat().st_mtime_ns == mtime
    eager = ResultStore(tmp_path / "eager")  # the default: the table after every record
    eager.record(row("a", val_acc=0.5, sops=10.0))
    assert (tmp_path / "eager" / TABLE_FILE).is_file()
