"""Retraining from a results directory: selection, full fidelity, and pareto -> retrain end to end.

The results directory is built the way a search builds it, but without Ray: two tiny genotypes
trained with the real engine at a proxy fidelity, measured with the real cost model, and
recorded with the search's own ``ResultStore``; a third row marks one of them as a baseline.
"""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from snn_nas.errors import SnnNasError
from snn_nas.genotype import Genotype, Stage
from snn_nas.retrain import RetrainError, full_fidelity_config, select_trial

DATASET = "synthetic:train=48,val=24,test=30,classes=3,channels=1"


def tiny(dim: int, time_steps: int) -> Genotype:
    return Genotype(stages=(Stage(depth=1, dim=dim),), time_steps=time_steps, patch_size=4)


def proxy_config():
    from snn_nas.training import TrainConfig

    return TrainConfig(
        dataset=DATASET,
        epochs=1,
        batch_size=16,
        subset=0.5,
        image_size=8,
        max_time_steps=1,
        max_batches_per_epoch=1,
        eval_batch_size=32,
        amp=False,
    )


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    from snn_nas.costs import measure_costs
    from snn_nas.search.results import ResultStore
    from snn_nas.training import train_model

    root = tmp_path_factory.mktemp("search")
    store = ResultStore(root)
    config = proxy_config()
    trained = {}
    for i, (genotype, baseline) in enumerate([(tiny(8, 2), ""), (tiny(4, 1), ""), (tiny(4, 1), "tiny_preset")]):
        if genotype.key() not in trained:  # the baseline row repeats the second architecture
            result = train_model(genotype, config, progress=False)
            images = torch.stack([result.data.val[j][0] for j in range(8)])
            trained[genotype.key()] = (result, measure_costs(result.model, images))
        result, costs = trained[genotype.key()]
        store.record(
            {
                "trial_id": f"t{i}",
                "status": "ok",
                "key": genotype.key(),
                "genotype": genotype.to_json(),
                "summary": genotype.summary(),
                "seed": 0,
                "fidelity": config.to_json(),
                "val_acc": result.val_acc,
                **costs.metrics(),
                "epochs": result.epochs,
                "baseline": baseline,
            }
        )
    # two failed rows: they never enter the front
    store.record({"trial_id": "t9", "status": "failed", "key": "deadbeef0000", "error": "out of memory"})
    return root


def test_full_fidelity_config_raises_proxy_knobs():
    proxy = proxy_config()
    full = full_fidelity_config(proxy.to_json(), epochs=7)
    assert (full.subset, full.max_batches_per_epoch, full.max_time_steps, full.epochs) == (1.0, None, None, 7)
    assert proxy.train_on == "train" and full.train_on == "train+val"  # retraining uses all the training data
    assert full_fidelity_config(proxy.to_json(), train_on="train").train_on == "train"  # an audit keeps val out
    # the rest is the search's
    assert (full.dataset, full.image_size, full.batch_size, full.lr) == (DATASET, 8, 16, proxy.lr)
    over = full_fidelity_config(proxy.to_dict(), epochs=2, overrides={"lr": 0.5, "batch_size": None, "seed": 3})
    assert (over.lr, over.batch_size, over.seed) == (0.5, 16, 3)
    assert full_fidelity_config(proxy.to_json(), native_image_size=True).image_size is None
    with pytest.raises(RetrainError, match="not a TrainConfig field"):
        full_fidelity_config(proxy.to_json(), overrides={"lr_max": 1.0})
    assert full_fidelity_config(None, epochs=3).epochs == 3  # no fidelity stored: the defaults


def test_select_trial_by_rank_and_key(results_dir):
    from snn_nas.report import analyse_front, load_trials

    trials = load_trials(results_dir)
    front = analyse_front(trials).front
    top = select_trial(trials)
    assert top["key"] == front.iloc[0]["key"] and top["rank"] == 0
    last = select_trial(trials, rank=len(front) - 1)
    assert last["key"] == front.iloc[-1]["key"]
    with pytest.raises(RetrainError, match=r"out of range; the front has ranks 0\.\."):
        select_trial(trials, rank=len(front))
    key = tiny(8, 2).key()
    assert select_trial(trials, key=key[:5])["trial_id"] == "t0"  # unique prefix
    with pytest.raises(RetrainError, match="no trial has key"):
        select_trial(trials, key="zzz")
    with pytest.raises(RetrainError, match="not both"):
        select_trial(trials, rank=0, key=key)


def _cli(module_name: str, argv: list[str]) -> int:
    import importlib

    module = importlib.import_module(f"snn_nas.cli.{module_name}")
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return module.run(parser.parse_args(argv))


def _accuracy(model, part) -> float:
    images = torch.stack([part[i][0] for i in range(len(part))])
    labels = torch.tensor([part[i][1] for i in range(len(part))])
    with torch.no_grad():
        return float((model(images).argmax(1) == labels).float().mean())


def test_pareto_then_retrain_rank0_end_to_end(results_dir, capsys):
    import snn_nas
    from snn_nas.costs import measure_costs
    from snn_nas.data import load_dataset

    assert _cli("pareto", [str(results_dir), "--json"]) == 0
    front = json.loads(capsys.readouterr().out)["front"]
    for name in ("pareto.csv", "pareto.png", "pareto.html"):
        assert (results_dir / name).stat().st_size > 0

    assert _cli("retrain", [str(results_dir), "--rank", "0", "--epochs", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    key = front[0]["key"]
    folder = results_dir / "retrain" / key
    report = json.loads((folder / "report.json").read_text())
    assert report["key"] == key and report["status"] == "ok" and report["epochs"] == 2
    assert report["source"]["rank"] == 0 and report["source"]["trial_id"] == front[0]["trial_id"]
    assert report["config"]["subset"] == 1.0 and report["config"]["max_time_steps"] is None
    assert report["config"]["train_on"] == "train+val" and report["trained_on"] == "train+val (72 images)"
    assert report["search_val_acc"] == pytest.approx(front[0]["val_acc"])  # the number it was selected on ...
    assert 0.0 <= report["test_acc"] <= 1.0 and f"test_acc {report['test_acc']:.2%}" in out  # ... and the reported one
    assert all(h["val_acc"] is None for h in report["history"])  # nothing held out: no per-epoch val
    for name in ("last.pt", "report.md", "training_curve.png"):
        assert (folder / name).stat().st_size > 0
    assert not (folder / "best.pt").exists()  # no checkpoint is chosen by any accuracy
    markdown = (folder / "report.md").read_text()
    assert f"{100 * report['test_acc']:.2f} %" in markdown and "training_curve.png" in markdown

    # the checkpoint is a ready model whose accuracy is the one the report states
    model = snn_nas.load_model(folder / "last.pt")
    assert not model.training
    assert model.time_steps == Genotype.from_dict(report["genotype"]).time_steps  # no proxy cap
    data = load_dataset(DATASET, image_size=8)
    assert _accuracy(model, data.test) == pytest.approx(report["test_acc"], abs=1e-6)
    # and the costs are those of that model on the calibration images
    images = torch.stack([data.val[i][0] for i in range(report["costs"]["batch_size"])])
    assert measure_costs(model, images).sops == pytest.approx(report["costs"]["sops"])

    # running it again resumes from last.pt: nothing retrained, same report
    assert _cli("retrain", [str(results_dir), "--key", key, "--epochs", "2", "--no-progress", "--no-export"]) == 0
    again = json.loads((folder / "report.json").read_text())
    assert again["test_acc"] == report["test_acc"] and len(again["history"]) == 2
    # different settings cannot resume silently
    with pytest.raises(RetrainError, match="--no-resume"):
        _cli("retrain", [str(results_dir), "--key", key, "--epochs", "3", "--no-progress", "--no-export"])


def test_cli_constants_match_the_library_and_help_stays_light():
    import subprocess
    import sys

    from snn_nas.cli import pareto as cli_pareto
    from snn_nas.cli import retrain as cli_retrain
    from snn_nas.report import ACCURACY_COLUMNS, COST_COLUMNS
    from snn_nas.retrain import DEFAULT_EPOCHS

    assert cli_pareto.COST_COLUMNS == COST_COLUMNS and cli_pareto.ACCURACY_COLUMNS == ACCURACY_COLUMNS
    assert cli_retrain.DEFAULT_EPOCHS == DEFAULT_EPOCHS
    code = (
        "import argparse, sys; from snn_nas.cli import pareto, retrain\n"
        "for m in (pareto, retrain): m.add_arguments(argparse.ArgumentParser())\n"
        "print(sorted(k for k in ('pandas', 'torch', 'matplotlib', 'plotly') if k in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_retrain_cli_input_errors(results_dir):
    with pytest.raises(SnnNasError, match="--epochs"):
        _cli("retrain", [str(results_dir), "--epochs", "0"])
    with pytest.raises(SnnNasError, match="--rank"):
        _cli("retrain", [str(results_dir), "--rank", "-1"])
    with pytest.raises(SnnNasError, match="no such results folder"):
        _cli("retrain", [str(results_dir / "missing")])


def test_default_choice_is_the_best_architecture_the_search_found_not_a_seed_design():
    """The issue's case: the warm-start copy of mlp_spe_micro and its baseline row share a key
    and were front ranks 0 and 1; plain retrain retrained the hand design."""
    from snn_nas.search.results import rows_to_frame

    seed = "121efd2da575"
    rows = [
        {"trial_id": "b0", "key": seed, "baseline": "mlp_spe_micro", "val_acc": 0.939, "sops": 691e3},
        {"trial_id": "w0", "key": seed, "val_acc": 0.939, "sops": 691e3},  # the warm-start trial
        {"trial_id": "s1", "key": "7aaa86f6a559", "val_acc": 0.933, "sops": 434e3},
        {"trial_id": "s2", "key": "804691a136f2", "val_acc": 0.10, "sops": 967.0, "num_classes": 10},  # chance
    ]
    table = rows_to_frame({"status": "ok", **r} for r in rows)
    row = select_trial(table)
    assert row["key"] == "7aaa86f6a559" and row["rank"] == 1
    assert "most accurate architecture the search found" in row["why"] and f"{seed} (mlp_spe_micro)" in row["why"]
    seed_row = select_trial(table, rank=0)
    assert seed_row["key"] == seed and "this is the seed design mlp_spe_micro" in seed_row["why"]
    with pytest.raises(RetrainError, match=r"out of range; the front has ranks 0\.\.1"):
        select_trial(table, rank=2)  # one architecture, one rank; the chance-level trial has none
    by_key = select_trial(table, key=seed)
    assert "this is the seed design mlp_spe_micro" in by_key["why"]
    only_seed = rows_to_frame({"status": "ok", **r} for r in rows[:2])
    with pytest.raises(RetrainError, match="every front member is a seed design"):
        select_trial(only_seed)
